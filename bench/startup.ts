/**
 * Start to ready with the embedded database, as a user sees it: each run starts the
 * service as it runs in production (`serviceCommand`, fixture.ts: the compiled code with
 * the Node arguments of `npm run serve`) in a new Node process with no DATABASE_URL and a
 * new, empty DATA_DIR, and times it from the spawn to its `listening` log line: Node's
 * own start, loading the modules, the embedded engine's data folder and start, the
 * migrations, binding the port. Then the same again on the folder the first start left,
 * in a new process too: what every later start does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { rssBytes, startChildServer } from './child.js';
import { serviceCommand } from './fixture.js';

export interface StartupRun {
  /** Spawn to ready on a new, empty data folder. */
  readonly ms: number;
  /** RSS of that process once it was ready, in MiB. */
  readonly rssMiB: number;
  /** Spawn to ready again, in a new process, on the folder the first start created. */
  readonly restartMs: number;
}

/** `runs` cold starts, one after the other. */
export async function measureStartup(runs: number): Promise<StartupRun[]> {
  const results: StartupRun[] = [];
  for (let i = 0; i < runs; i++) {
    const dataDir = await mkdtemp(join(tmpdir(), 'video-bench-startup-'));
    try {
      const first = await timedStart(dataDir);
      const again = await timedStart(dataDir);
      results.push({ ms: first.ms, rssMiB: first.rssMiB, restartMs: again.ms });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }
  return results;
}

/** Spawns the service on `dataDir`, times it until it is listening, then stops it. */
async function timedStart(dataDir: string): Promise<{ ms: number; rssMiB: number }> {
  const started = performance.now();
  const child = await startChildServer({
    ...(await serviceCommand()),
    env: { DATA_DIR: dataDir, LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1' },
    port: (line) => (line.msg === 'listening' ? (line.port as number) : undefined),
  });
  try {
    return {
      ms: Math.round(performance.now() - started),
      rssMiB: Math.round(rssBytes(child.pid) / 2 ** 20),
    };
  } finally {
    await child.stop();
  }
}

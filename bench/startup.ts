/**
 * Start to ready with the embedded database: each run is a fresh Node process (so the
 * WebAssembly engine and every module start cold) that calls `startApp` with no
 * DATABASE_URL and a new, empty DATA_DIR, and times the call until it resolves (PGlite
 * creates its data folder, the migrations run, the port is bound). Module loading
 * happens before the clock starts. For comparison, the same process then starts the
 * service once more on the folder the first start left (what every later start does).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';

export interface StartupRun {
  /** Start to ready on a new, empty data folder. */
  readonly ms: number;
  /** RSS of that process right after that start, in MiB. */
  readonly rssMiB: number;
  /** Start to ready again, on the folder the first start created. */
  readonly restartMs: number;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const CHILD_FLAG = '--startup-child';

/** `runs` cold starts, one after the other. */
export async function measureStartup(runs: number): Promise<StartupRun[]> {
  const results: StartupRun[] = [];
  for (let i = 0; i < runs; i++) results.push(await startInChild());
  return results;
}

function startInChild(): Promise<StartupRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE, CHILD_FLAG], {
      cwd: join(dirname(THIS_FILE), '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = output.trim().split('\n').at(-1) ?? '';
      if (code === 0) resolve(JSON.parse(line) as StartupRun);
      else reject(new Error(`startup run exited ${code}: ${output}`));
    });
  });
}

/** In the child: a timed start on a fresh data folder, a timed restart, then clean up. */
async function startOnce(): Promise<StartupRun> {
  const dataDir = await mkdtemp(join(tmpdir(), 'video-bench-startup-'));
  try {
    const config = loadConfig({
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      RATE_LIMIT_REQUESTS: '0',
    });
    const logger = createLogger(config.logLevel);
    const timedStart = async () => {
      const started = performance.now();
      const app = await startApp(config, logger);
      return { app, ms: Math.round(performance.now() - started) };
    };
    const first = await timedStart();
    const rssMiB = Math.round(process.memoryUsage.rss() / 2 ** 20);
    await first.app.stop();
    const again = await timedStart();
    await again.app.stop();
    return { ms: first.ms, rssMiB, restartMs: again.ms };
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (process.argv.includes(CHILD_FLAG)) {
  console.log(JSON.stringify(await startOnce()));
  // Whatever the engine leaves scheduled must not hold the measurement up.
  process.exit(0);
}

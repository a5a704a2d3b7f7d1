/**
 * A server in a Node process of its own: `node <nodeArgs> <script>` from the repository
 * root (TypeScript through `--import tsx` unless other arguments are given), with the
 * environment given (and nothing else of the bench's but
 * PATH), its port read from the first JSON line on stdout that carries one. Its other
 * output is drained and discarded (the last bit of stderr is kept for error messages).
 * `stop()` sends SIGTERM and waits for the process to exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPOSITORY_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface ChildServer {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** SIGTERM, then waits for exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

export interface ChildServerOptions {
  /** The script, relative to the repository root. */
  readonly script: string;
  /** Node's own arguments, before the script; `--import tsx` when not given. */
  readonly nodeArgs?: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The port, if this JSON line of stdout announces it. */
  readonly port: (line: Record<string, unknown>) => number | undefined;
  readonly startTimeoutMs?: number;
}

export function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const nodeArgs = options.nodeArgs ?? ['--import', 'tsx'];
  const child = spawn(process.execPath, [...nodeArgs, options.script], {
    cwd: REPOSITORY_ROOT,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });

  return new Promise<ChildServer>((resolve, reject) => {
    let pending = '';
    let found = false;
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${options.script}: ${message}\n${stderr}`));
    };
    const timer = setTimeout(
      () => fail('no port announced in time'),
      options.startTimeoutMs ?? 60_000,
    );
    child.once('error', (error) => fail(String(error)));
    void exited.then((code) => {
      if (!found) fail(`exited ${code} before announcing its port`);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (found) return; // drained, not read
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const port = portOf(line, options.port);
        if (port === undefined) continue;
        found = true;
        clearTimeout(timer);
        resolve(handle(child, port, exited));
        return;
      }
    });
  });
}

function portOf(
  line: string,
  pick: (line: Record<string, unknown>) => number | undefined,
): number | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const port = pick(JSON.parse(line) as Record<string, unknown>);
    return typeof port === 'number' && port > 0 ? port : undefined;
  } catch {
    return undefined;
  }
}

function handle(child: ChildProcess, port: number, exited: Promise<number | null>): ChildServer {
  const pid = child.pid;
  if (pid === undefined) throw new Error('child has no pid');
  let stopping: Promise<void> | undefined;
  return {
    pid,
    port,
    url: `http://127.0.0.1:${port}`,
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** Resident memory of process `pid` (VmRSS in /proc/<pid>/status; Linux), in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/** CPU time process `pid` has used so far (all threads, user + system), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

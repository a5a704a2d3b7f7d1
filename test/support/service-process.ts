import { spawn } from 'node:child_process';

/** The service in a Node process of its own, as it runs outside the tests. */
export interface ServiceProcess {
  readonly baseUrl: string;
  /** Its log lines so far, parsed. */
  readonly log: Record<string, unknown>[];
  /** What it wrote to stderr so far (Node's own warnings go there). */
  stderr(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` with `env` as its whole environment (and PATH) and waits for its
 * `listening` log line; fails with its stderr if it exits first.
 */
export async function startServiceProcess(
  args: readonly string[],
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        log.push(entry);
        if (entry.msg === 'listening') resolve(entry.port as number);
      }
    });
    child.once('exit', (code) => reject(new Error(`the service exited (${code}):\n${stderr}`)));
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    log,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

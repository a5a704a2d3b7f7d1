import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A script of the repository's `scripts/` folder, by its path there (`kafka/start-kafka.sh`). */
export const repositoryScript = (path: string) =>
  fileURLToPath(new URL(`../../scripts/${path}`, import.meta.url));

/** Runs one of the scripts and answers the KEY=value lines it prints on stdout. */
export async function runScript(script: string, timeout: number): Promise<Record<string, string>> {
  try {
    const { stdout } = await run('bash', [script], { timeout, maxBuffer: 16 * 1024 * 1024 });
    const values: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const [, key, value] = /^([A-Z_]+)=(.*)$/.exec(line.trim()) ?? [];
      if (key !== undefined) values[key] = value ?? '';
    }
    return values;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${script} failed:\n${stderr}`, { cause: error });
  }
}

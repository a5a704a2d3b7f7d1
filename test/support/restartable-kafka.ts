import { execFile, spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const scripts = fileURLToPath(new URL('../../scripts/kafka/', import.meta.url));

/**
 * A broker of its own on other ports that a test can stop and start again with its data:
 * an outage, not a fresh cluster. Started by the project's script; restarted by running
 * the same JVM command line on the same storage. It runs at a lower CPU priority (nice
 * 10): in production the broker is another machine, and here its JVM's start (seconds of
 * both cores) would otherwise starve the service the test is measuring.
 */
export async function startRestartableKafka(port: number) {
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) };
  const { stdout } = await run('nice', [NICENESS, 'bash', `${scripts}start-kafka.sh`], {
    env,
    timeout: 600_000,
  });
  let pid = Number(/KAFKA_PID=(\d+)/.exec(stdout)?.[1]);
  const runDir = `${scripts}run/kafka-${port}`;
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);

  return {
    brokers: `127.0.0.1:${port}`,
    /** SIGTERM, and wait until the process is gone. */
    async stop() {
      process.kill(pid, 'SIGTERM');
      while (alive(pid)) await sleep(100);
    },
    /**
     * SIGSTOP: the JVM stops without closing anything, so connections hang instead of
     * being refused (a network partition, a long GC pause, a frozen VM).
     */
    freeze() {
      process.kill(pid, 'SIGSTOP');
    },
    /** SIGCONT: the frozen broker goes on where it stopped. */
    thaw() {
      process.kill(pid, 'SIGCONT');
    },
    /** The same broker again, on the same storage; resolves once it accepts connections. */
    async start() {
      const log = openSync(`${runDir}/broker.log`, 'a');
      const child = spawn('nice', [NICENESS, ...argv], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      pid = child.pid!;
      writeFileSync(`${runDir}/broker.pid`, String(pid));
      while (!(await portOpen(port))) await sleep(200);
    },
    /** Stops it for good and removes its storage (thawed first: a frozen JVM ignores SIGTERM). */
    async remove() {
      if (alive(pid)) process.kill(pid, 'SIGCONT');
      await run('bash', [`${scripts}stop-kafka.sh`], { env, timeout: 60_000 });
    },
  };
}

/** `nice` execs the JVM, so every thread of it runs at this priority. */
const NICENESS = '-n10';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

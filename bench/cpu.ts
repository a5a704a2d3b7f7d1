/**
 * Who used the machine's CPU while a measurement ran (Linux /proc): the bench's own
 * process, the service processes it started, the PostgreSQL processes serving its
 * databases, and everything else ("others": another workload on the same cores, whose
 * share makes latencies partly its own). watch.ts reads the same sources, through
 * `postgresCpuSeconds` and `machineCpu`, for its one database.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuSeconds } from './child.js';
import { round } from './load.js';

/** CPU use over a window, in % of one core; `machine` in % of all cores. */
export interface CpuShares {
  readonly bench: number;
  readonly services: number;
  readonly postgres: number;
  readonly others: number;
  readonly machine: number;
}

/** Clock ticks per second of /proc/stat (USER_HZ: 100 on Linux). */
export const CLOCK_TICKS = 100;

/**
 * Starts reading: `stop()` answers the shares since. `services` are the pids of the
 * service processes, `databases` the names of the databases whose PostgreSQL sessions
 * (and the server's own processes) count as the run's.
 */
export function startCpuMeter(
  services: readonly number[],
  databases: readonly string[],
): { stop(): CpuShares } {
  const started = performance.now();
  const from = {
    bench: process.cpuUsage(),
    services: services.map(cpuSeconds),
    postgres: postgresCpuSeconds(databases),
    machine: machineCpu(),
  };
  return {
    stop() {
      const seconds = (performance.now() - started) / 1000;
      const bench = process.cpuUsage(from.bench);
      const benchSeconds = (bench.user + bench.system) / 1e6;
      const serviceSeconds = services.reduce(
        (sum, pid, i) => sum + cpuSeconds(pid) - (from.services[i] ?? 0),
        0,
      );
      let postgresSeconds = 0;
      for (const [pid, used] of postgresCpuSeconds(databases)) {
        postgresSeconds += used - (from.postgres.get(pid) ?? 0);
      }
      const machine = machineCpu();
      const busy = (machine.busy - from.machine.busy) / CLOCK_TICKS;
      const percent = (used: number) => round((used / seconds) * 100, 0);
      return {
        bench: percent(benchSeconds),
        services: percent(serviceSeconds),
        postgres: percent(postgresSeconds),
        others: percent(Math.max(0, busy - benchSeconds - serviceSeconds - postgresSeconds)),
        machine: round(
          ((machine.busy - from.machine.busy) / (machine.total - from.machine.total)) * 100,
          0,
        ),
      };
    },
  };
}

/**
 * CPU time so far, by pid, of the PostgreSQL processes that serve `databases`: the server
 * and its own processes (checkpointer, WAL writer…), and the sessions and autovacuum
 * workers of those databases. A process that exits meanwhile takes its time along.
 */
export function postgresCpuSeconds(databases: readonly string[]): Map<number, number> {
  const seconds = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/stat`, 'utf8').includes('(postgres)')) continue;
      // `postgres: [<cluster>: ]<user> <database> <host>(<port>) <state>` for a session,
      // `postgres: [<cluster>: ]autovacuum worker <database>` for a worker.
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const of =
        /^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])/.exec(title)?.[1] ??
        /^postgres: (?:\S+: )?autovacuum worker (\S+)/.exec(title)?.[1];
      if (of !== undefined && !databases.includes(of)) continue;
      seconds.set(Number(entry), cpuSeconds(Number(entry)));
    } catch {
      // Gone meanwhile.
    }
  }
  return seconds;
}

/** The machine's CPU time so far (/proc/stat, all cores), busy and in all, in ticks. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal…: idle and iowait are not busy.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total };
}

/**
 * A tiny closed-loop load generator: N async loops call one function back to back for a
 * warm-up, then for a fixed measured duration. Only calls that finish inside the
 * measured window count; their latencies go to a `perf_hooks` histogram (nanoseconds).
 * Every failed call counts, in the warm-up and after the window too: a run with one is
 * not measured (`checked` in rpc-overhead.ts).
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { cpuSeconds as processCpuSeconds } from './child.js';

/** What a measurement against the service is given: whom to call, as whom, how hard. */
export interface MeasurementOptions {
  readonly serviceUrl: string;
  /** The service's process, whose CPU time is measured. */
  readonly servicePid: number;
  readonly token: string;
  /** The consultations the callers pick from, round robin. */
  readonly consultationIds: readonly string[];
  readonly concurrency: number;
  /** Rounds of each target, alternating. */
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface LoadOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** One call; `worker` is the loop's index, `i` the loop's own call counter. */
  readonly call: (worker: number, i: number) => Promise<unknown>;
  /** The process of the server under load, whose CPU time is measured too (Linux). */
  readonly serverPid?: number;
}

export interface LoadResult {
  /** Successful calls that finished inside the measured window. */
  readonly calls: number;
  /** Failed calls, whenever they failed: warm-up, measured window, or the calls still out after it. */
  readonly errors: number;
  readonly seconds: number;
  /** Latencies of the successful calls of the measured window, in nanoseconds. */
  readonly histogram: RecordableHistogram;
  /** CPU time this process (the load generator) used in the measured window, in seconds. */
  readonly cpuSeconds: number;
  /** CPU time the server's process used in the measured window (all threads), in seconds. */
  readonly serverCpuSeconds: number;
  readonly firstError: unknown;
}

export interface LoadSummary {
  readonly calls: number;
  readonly errors: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The load generator's (this process's) CPU use while measuring, in % of one core. */
  readonly cpuPercent: number;
  /** The server process's CPU use while measuring, in % of one core (all its threads). */
  readonly serverCpuPercent: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const histogram = createHistogram();
  let calls = 0;
  let errors = 0;
  let firstError: unknown;
  let measuring = false;
  let stopped = false;

  async function loop(worker: number): Promise<void> {
    for (let i = 0; !stopped; i++) {
      const started = process.hrtime.bigint();
      try {
        await options.call(worker, i);
        if (measuring && !stopped) {
          histogram.record(Math.max(1, Number(process.hrtime.bigint() - started)));
          calls++;
        }
      } catch (error) {
        errors++;
        firstError ??= error;
        // A call that fails at once must not starve the timers that end the run.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  }

  const loops = Array.from({ length: options.concurrency }, (_, worker) => loop(worker));
  await sleep(options.warmupMs);
  measuring = true;
  const from = process.hrtime.bigint();
  const cpuFrom = process.cpuUsage();
  const serverCpu = () =>
    options.serverPid === undefined ? 0 : processCpuSeconds(options.serverPid);
  const serverCpuFrom = serverCpu();
  await sleep(options.durationMs);
  stopped = true;
  const seconds = Number(process.hrtime.bigint() - from) / 1e9;
  const cpu = process.cpuUsage(cpuFrom);
  const serverCpuSeconds = serverCpu() - serverCpuFrom;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  await Promise.all(loops);
  return { calls, errors, seconds, histogram, cpuSeconds, serverCpuSeconds, firstError };
}

/** Several runs of the same target as one: calls and time add up, histograms merge. */
export function summarize(results: readonly LoadResult[]): LoadSummary {
  const histogram = createHistogram();
  let calls = 0;
  let errors = 0;
  let seconds = 0;
  let cpuSeconds = 0;
  let serverCpuSeconds = 0;
  for (const result of results) {
    cpuSeconds += result.cpuSeconds;
    serverCpuSeconds += result.serverCpuSeconds;
    histogram.add(result.histogram);
    calls += result.calls;
    errors += result.errors;
    seconds += result.seconds;
  }
  const ms = (ns: number) => round(ns / 1e6, 2);
  return {
    calls,
    errors,
    rps: round(calls / seconds, 0),
    p50Ms: ms(histogram.percentile(50)),
    p99Ms: ms(histogram.percentile(99)),
    maxMs: ms(histogram.max),
    cpuPercent: round((cpuSeconds / seconds) * 100, 0),
    serverCpuPercent: round((serverCpuSeconds / seconds) * 100, 0),
  };
}

export const round = (value: number, digits: number) => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};

/** A latency distribution (nearest-rank percentiles), in milliseconds. */
export interface LatencySummary {
  /** Values measured. */
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Nearest-rank percentiles of `values` (milliseconds; Infinity stays Infinity). */
export function latencySummary(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length === 0
      ? Number.NaN
      : (sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN);
  const ms = (value: number) => (Number.isFinite(value) ? round(value, 2) : value);
  return { count: sorted.length, p50Ms: ms(at(0.5)), p99Ms: ms(at(0.99)), maxMs: ms(at(1)) };
}

/**
 * Open loop: calls `tick(from, to)` with the calls or events now due, `rate` per second
 * for `ms` (a ~1 ms timer), never waiting for what they started.
 */
export async function paced(
  rate: number,
  ms: number,
  tick: (from: number, to: number) => void,
): Promise<{ count: number; seconds: number }> {
  const total = Math.round((rate * ms) / 1000);
  const start = performance.now();
  let done = 0;
  while (done < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    if (due > done) {
      tick(done, due);
      done = due;
    }
    await sleep(1);
  }
  return { count: total, seconds: (performance.now() - start) / 1000 };
}

import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { createLogger } from '../../src/logger.js';
import { createBrokerMonitor } from '../../src/messaging/kafka.js';
import { EVENT_TYPES } from '../../src/video/events.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { collectRecords, uniquePrefix } from '../support/events.js';
import { startRestartableKafka } from '../support/restartable-kafka.js';

/**
 * A Kafka outage must not reach the API: while the broker is gone (stopped: connections
 * refused) or frozen (SIGSTOP: connections hang, as in a network partition), reads and
 * writes keep answering fast, `/readyz` stays ready but says Kafka is not connected, and
 * when the broker is back every event waiting in the outbox arrives, once.
 *
 * The broker is one of this file's own (restartable-kafka.ts, other ports), so stopping
 * it disturbs no other test file.
 */
const BROKER_PORT = 19192;
/** No call may take longer than this while the broker is away (or coming back). */
const SLOWEST_CALL_MS = 1_000;
/** How long the broker stays away: longer than kafkajs's retries of one send (~10 s). */
const OUTAGE_MS = 15_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
}, 120_000);

let broker: Awaited<ReturnType<typeof startRestartableKafka>> | undefined;
async function theBroker() {
  if (!broker) {
    broker = await startRestartableKafka(BROKER_PORT);
    cleanups.push(() => broker!.remove());
  }
  return broker;
}

interface Readiness {
  status: string;
  kafka: boolean;
  outbox: { pending: number; oldestAgeSeconds: number };
}
/** `/readyz`; a readiness that does not answer within 3 s reads as HTTP status 0. */
async function readiness(t: TestApp): Promise<Readiness & { httpStatus: number }> {
  try {
    const res = await fetch(`${t.baseUrl}/readyz`, { signal: AbortSignal.timeout(3_000) });
    return { httpStatus: res.status, ...((await res.json()) as Readiness) };
  } catch {
    return {
      httpStatus: 0,
      status: 'no answer',
      kafka: false,
      outbox: { pending: -1, oldestAgeSeconds: 0 },
    };
  }
}
async function brokerGauge(t: TestApp): Promise<string | undefined> {
  try {
    const res = await fetch(`${t.baseUrl}/metrics`, { signal: AbortSignal.timeout(3_000) });
    return /^kafka_broker_connected (\S+)$/m.exec(await res.text())?.[1];
  } catch {
    return 'no answer';
  }
}

/** Polls `read` until `done` holds; fails with the last value after `timeoutMs`. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`condition not met in ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A call still unanswered after this is abandoned, and counted as failed (and slow). */
const CALL_TIMEOUT_MS = 20_000;

/**
 * Callers at work: each worker runs whole consultations (schedule, check in, start, report
 * an issue, end: four events) and reads in between (status, history), timing every call.
 */
function startLoad(t: TestApp, workers: number, tag: string) {
  const calls: { method: string; ms: number; at: number; failed: string | undefined }[] = [];
  const consultations: string[] = [];
  let running = true;
  const timed = async <T>(
    method: string,
    call: (options: { timeoutMs: number }) => Promise<T>,
  ): Promise<T> => {
    const started = performance.now();
    let failed: string | undefined;
    try {
      return await call({ timeoutMs: CALL_TIMEOUT_MS });
    } catch (error) {
      failed = String(error);
      throw error;
    } finally {
      calls.push({ method, ms: performance.now() - started, at: Date.now(), failed });
    }
  };
  const service = videoClient(t.baseUrl, t.token('service', 'svc'));
  const admin = videoClient(t.baseUrl, t.token('clinic_admin', 'admin'));
  const consultation = async (w: number, i: number) => {
    const patientId = `pat-${tag}-${w}-${i}`;
    const doctorId = `doc-${tag}-${w}-${i}`;
    const patient = videoClient(t.baseUrl, t.token('patient', patientId));
    const doctor = videoClient(t.baseUrl, t.token('doctor', doctorId));
    const { consultation } = await timed('ScheduleConsultation', (options) =>
      service.scheduleConsultation(
        { appointmentId: appointmentId(tag), doctorId, patientId, ...slot(5) },
        options,
      ),
    );
    const id = { consultationId: consultation!.id };
    await timed('CheckIn', (options) => patient.checkIn(id, options));
    await timed('GetConsultationStatus', (options) => patient.getConsultationStatus(id, options));
    await timed('StartConsultation', (options) => doctor.startConsultation(id, options));
    await timed('ListConsultationHistory', (options) =>
      admin.listConsultationHistory({ pageSize: 20 }, options),
    );
    await timed('ReportTechnicalIssue', (options) =>
      patient.reportTechnicalIssue({ ...id, issueType: TechnicalIssueType.OTHER }, options),
    );
    await timed('EndConsultation', (options) => doctor.endConsultation(id, options));
    consultations.push(consultation!.id);
  };
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      // A failed call is recorded (and fails the test); the worker goes on with the next.
      await consultation(w, i).catch(() => {});
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    calls,
    consultations,
    /** Lets every worker finish the consultation in hand (so each has all four events). */
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Stalls of the event loop, and garbage collection pauses, worth naming. */
const STALL_MS = 100;
const GC_PAUSE_MS = 20;

/**
 * This process's event loop from `from` on: each stall over STALL_MS (a 10 ms timer's
 * lateness) and each garbage collection pause over GC_PAUSE_MS, with when it began, so
 * that a slow call can be told apart as the collector's, or as other work on the loop
 * (the embedded engine runs on it).
 */
function watchLoop(from: number) {
  const stalls: { at: number; ms: number }[] = [];
  const pauses: { at: number; ms: number }[] = [];
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - 10;
    longest = Math.max(longest, late);
    if (late > STALL_MS) {
      stalls.push({ at: Math.round(performance.timeOrigin + last - from), ms: Math.round(late) });
    }
    last = now;
  }, 10);
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.duration <= GC_PAUSE_MS) continue;
      const at = Math.round(performance.timeOrigin + entry.startTime - from);
      pauses.push({ at, ms: Math.round(entry.duration) });
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      clearInterval(timer);
      observer.disconnect();
      return { stalls, pauses, longest: Math.round(longest) };
    },
  };
}

const timeline = (events: readonly { at: number; ms: number }[]) =>
  events.length === 0 ? 'none' : events.map((e) => `${e.ms} ms at ${e.at}`).join(', ');

function percentiles(calls: readonly { ms: number }[]): string {
  const sorted = calls.map((c) => c.ms).sort((x, y) => x - y);
  const at = (q: number) =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return `p50 ${at(0.5)} / p99 ${at(0.99)} / max ${Math.round(sorted.at(-1) ?? 0)} ms`;
}

async function outage(kind: 'stopped' | 'frozen') {
  const kafka = await theBroker();
  const prefix = uniquePrefix(`outage-${kind}`);
  const t = await startTestApp({
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_CONSUMER_GROUP: `${prefix}service`,
    KAFKA_HEALTH_INTERVAL_MS: '500',
  });
  let stopped: Promise<void> | undefined;
  const stopApp = () => {
    stopped ??= t.stop();
    return stopped;
  };
  cleanups.push(stopApp);
  // Connected and publishing before the outage: a first consultation's events have left.
  await until(
    () => readiness(t),
    (r) => r.kafka,
    60_000,
  );
  const warmUp = startLoad(t, 1, `warm-up-${kind}`);
  await until(
    async () => warmUp.consultations.length,
    (n) => n >= 1,
    30_000,
  );
  await warmUp.stop();
  await until(
    () => readiness(t),
    (r) => r.outbox.pending === 0,
    60_000,
  );
  const load = startLoad(t, 3, `outage-${kind}`);
  await until(
    async () => load.consultations.length,
    (n) => n >= 4,
    30_000,
  );

  // The service runs in this process: its event loop's stalls show in every call's time.
  const awayAt = Date.now();
  const loop = watchLoop(awayAt);
  if (kind === 'stopped') await kafka.stop();
  else kafka.freeze();
  // While it is away: what readiness and the gauge say, polled until the outage ends.
  const observed: (Readiness & { httpStatus: number; gauge: string | undefined })[] = [];
  let over = false;
  const outageOver = new Promise((resolve) => setTimeout(resolve, OUTAGE_MS)).then(() => {
    over = true;
  });
  try {
    while (!over) {
      observed.push({ ...(await readiness(t)), gauge: await brokerGauge(t) });
      await Promise.race([outageOver, new Promise((resolve) => setTimeout(resolve, 250))]);
    }
  } finally {
    if (kind === 'stopped') await kafka.start();
    else kafka.thaw();
  }
  const backAt = Date.now();
  const backlog = (await readiness(t)).outbox.pending;
  const back = await until(
    () => readiness(t),
    (r) => r.kafka,
    90_000,
  );
  const gaugeWhenBack = await brokerGauge(t);
  await load.stop();
  const { stalls, pauses, longest } = loop.stop();

  const before = load.calls.filter((c) => c.at < awayAt);
  const during = load.calls.filter((c) => c.at >= awayAt);
  const slowest = during.reduce((max, c) => (c.ms > max.ms ? c : max), { method: '-', ms: 0 });
  const disconnected = observed.filter((r) => !r.kafka);
  console.info(
    `broker ${kind}: before it went away ${before.length} calls, ${percentiles(before)}; ` +
      `during the outage and recovery ${during.length} calls, ${percentiles(during)}, ` +
      `${during.filter((c) => c.failed).length} failed, ${during.filter((c) => c.ms >= SLOWEST_CALL_MS).length} slower than ${SLOWEST_CALL_MS} ms, ` +
      `slowest ${slowest.method} ${Math.round(slowest.ms)} ms; ` +
      `readiness while away: ${observed.length} readings, ${observed.filter((r) => r.httpStatus !== 200).length} not 200, ` +
      `${disconnected.length} with kafka false, max pending ${Math.max(...observed.map((r) => r.outbox.pending))}, gauges ${[...new Set(observed.map((r) => r.gauge))].join('/')}; ` +
      `this process's event loop stalled at most ${longest} ms (machine load ${loadavg()[0]?.toFixed(1)})`,
  );
  console.info(
    `broker ${kind}: event loop stalls over ${STALL_MS} ms (ms after it went away): ${timeline(stalls)}; ` +
      `garbage collection pauses over ${GC_PAUSE_MS} ms: ${timeline(pauses)}`,
  );
  console.info(
    `broker ${kind}: slowest calls (ms after it went away; back at ${backAt - awayAt}): ` +
      [...during]
        .sort((x, y) => y.ms - x.ms)
        .slice(0, 5)
        .map((c) => `${c.method} ${Math.round(c.ms)} ms at ${c.at - awayAt}`)
        .join(', '),
  );
  await until(
    () => readiness(t),
    (r) => r.outbox.pending === 0,
    90_000,
  );
  const drainedAfterMs = Date.now() - backAt;

  // Every event of every finished consultation is on Kafka, each ce_id exactly once.
  const reader = await collectRecords(
    kafka.brokers,
    EVENT_TYPES.map((type) => `${prefix}${type}`),
  );
  cleanups.push(() => reader.stop());
  const mine = new Set(load.consultations);
  const expected = load.consultations.length * 4;
  const records = () => reader.records.filter((r) => mine.has(r.headers.ce_subject ?? ''));
  await reader.waitFor(() => records().length >= expected, 60_000);
  const perId = new Map<string, number>();
  for (const r of records()) {
    const id = r.headers.ce_id ?? '';
    perId.set(id, (perId.get(id) ?? 0) + 1);
  }
  const duplicated = [...perId.values()].filter((n) => n > 1).length;
  const perEvent = new Set(records().map((r) => `${r.headers.ce_subject}/${r.headers.ce_type}`));

  console.info(
    `broker ${kind}: backlog ${backlog} when back, drained ${drainedAfterMs} ms later; ` +
      `${load.consultations.length} consultations, ${expected} events expected, ${records().length} received, ${perId.size} distinct ce_id, ${duplicated} duplicated`,
  );
  expect(slowest.ms, `${slowest.method} took ${Math.round(slowest.ms)} ms`).toBeLessThan(
    SLOWEST_CALL_MS,
  );
  expect(during.length).toBeGreaterThan(50);
  expect(during.filter((c) => c.failed).map((c) => `${c.method}: ${c.failed}`)).toEqual([]);
  // Ready all along (the API serves), and, once the broker was found missing, not connected,
  // with a backlog.
  expect(observed.every((r) => r.httpStatus === 200 && r.status === 'ready')).toBe(true);
  expect(disconnected.length, 'readings with kafka: false').toBeGreaterThan(0);
  expect(disconnected.every((r) => r.gauge === '0')).toBe(true);
  expect(Math.max(...disconnected.map((r) => r.outbox.pending))).toBeGreaterThan(0);
  expect(back.httpStatus).toBe(200);
  expect(gaugeWhenBack).toBe('1');
  expect(perEvent.size).toBe(expected);
  expect(perId.size).toBe(expected);
  expect(duplicated).toBe(0);
  await stopApp();
}

describe('a Kafka outage does not stall the API', () => {
  it('broker stopped: calls stay fast, readiness says kafka false, nothing is lost or duplicated', async () => {
    await outage('stopped');
  }, 300_000);

  it('broker frozen (SIGSTOP): calls stay fast, readiness says kafka false, nothing is lost or duplicated', async () => {
    await outage('frozen');
  }, 300_000);
});

describe('the broker monitor', () => {
  it('finds a frozen broker unreachable, though it answered a publish after the hanging check began', async () => {
    const kafka = await theBroker();
    const intervalMs = 200;
    const monitor = createBrokerMonitor(
      new Kafka({ brokers: [kafka.brokers], logLevel: logLevel.NOTHING }),
      intervalMs,
      createLogger('silent'),
    );
    cleanups.push(() => monitor.stop());
    monitor.start();
    await until(
      async () => monitor.connected(),
      (connected) => connected,
      30_000,
    );
    kafka.freeze();
    try {
      // The next check starts and hangs; then an acknowledgement lands, as a publish's ack
      // sent just before the freeze does while the relay is busy.
      await new Promise((resolve) => setTimeout(resolve, 2 * intervalMs));
      monitor.reachable();
      const noticedAfter = Date.now();
      await until(
        async () => monitor.connected(),
        (connected) => !connected,
        10 * intervalMs,
      );
      console.info(
        `broker monitor: frozen broker found unreachable ${Date.now() - noticedAfter} ms after its last answer`,
      );
    } finally {
      kafka.thaw();
    }
    await until(
      async () => monitor.connected(),
      (connected) => connected,
      30_000,
    );
  }, 300_000);
});

import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { publishSpans } from '../tracing.js';
import type { OutboxSignal } from '../video/events.js';
import { type KafkaRecord, toKafkaRecord } from './cloudevents.js';
import { type Claim, outboxClaims } from './outbox-claims.js';

/** Where the relay hands events: Kafka in production, anything in tests. */
export interface EventPublisher {
  /** Publishes the records of one batch; resolves once the broker acknowledged all. */
  publish(batch: readonly { topic: string; record: KafkaRecord }[]): Promise<void>;
}

/** Whether the broker answers, as the service last saw it (see kafka.ts). */
export interface BrokerState {
  connected(): boolean;
  /** Calls `listener` on every change; answers a function that removes it. */
  onChange(listener: (connected: boolean) => void): () => void;
}

export interface OutboxRelayOptions {
  readonly orm: MikroORM;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  readonly topicFor: (type: string) => string;
  readonly source: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  /**
   * How long a claim lasts unless renewed. A copy renews its claim while its publish is
   * in flight; the claim of a copy that died lapses after this, and another takes over.
   */
  readonly leaseMs: number;
  /** While it says the broker is unreachable, the relay neither claims nor polls. */
  readonly broker?: BrokerState | undefined;
  /** Called after each batch the broker acknowledged (proof that it is reachable). */
  readonly onPublished?: (() => void) | undefined;
  /** Rings when this copy committed events: the relay then looks at once, not at its next poll. */
  readonly signal?: Pick<OutboxSignal, 'onCommitted'> | undefined;
}

export interface OutboxBacklog {
  readonly pending: number;
  /** Seconds since the oldest pending event was committed; 0 when none waits. */
  readonly oldestAgeSeconds: number;
}

export interface OutboxRelay {
  start(): void;
  /**
   * Stops relaying. A publish in flight gets `graceMs` to be acknowledged (and marked
   * sent); within the same time what is pending is flushed if the broker is connected.
   * A claim whose publish was not acknowledged is released, or, when its publish may
   * still land, left to lapse.
   */
  stop(graceMs?: number): Promise<void>;
  /** Publishes what is pending now, batch after batch (for tests and shutdown flushing). */
  relayOnce(signal?: AbortSignal): Promise<number>;
  backlog(): Promise<OutboxBacklog>;
}

type Step =
  /** Nothing (more) to do now. */
  | 'idle'
  /** A full batch went out, or a claim was lost: go again at once. */
  | 'more'
  /** The publish failed: back off, then retry the same claim. */
  | 'failed'
  /** The broker is unreachable: wait for it without touching the database. */
  | 'waiting';

/** Retrying is one cheap statement: back off, but resume within seconds of recovery. */
const MAX_BACKOFF_MS = 5_000;

/**
 * Publishes committed outbox rows to Kafka and marks them sent, never holding a database
 * connection or transaction while it talks to the broker:
 *
 * 1. claim (one statement, see CLAIM_SQL): the earliest pending events of some keys, with
 *    a random claim token and a lease (`claimed_until`) of `leaseMs`;
 * 2. publish them with no transaction open, renewing the lease every third of it while
 *    the broker has not answered;
 * 3. mark them sent by id and claim token (one statement).
 *
 * Several copies share the work: a key is claimed by one copy at a time, and a claim
 * covers a key's earliest pending events, so each key's events go out in commit order and
 * two live copies never publish the same event. A failed publish keeps its claim and is
 * retried after a backoff, one renewal statement per attempt; while the broker is
 * unreachable the relay does not touch the database at all, and its claim lapses after
 * `leaseMs`. A copy that dies (or is cut off from the database longer than `leaseMs`)
 * between publishing and marking leaves a claim that lapses, and the events are published
 * again by whoever claims them next: delivery is at-least-once, and consumers drop such a
 * duplicate by its `ce_id`.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { orm, publisher, logger, broker } = options;
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  /** Ends the idle wait between polls early (only that one: not a backoff after failures). */
  let endIdle: (() => void) | undefined;
  /** Events were committed since the last claim began: look again before waiting. */
  let committed = false;
  options.signal?.onCommitted(() => {
    committed = true;
    endIdle?.();
  });
  /** Aborts the publish in flight when the relay stops. */
  let stopping = new AbortController();
  let held: Claim | undefined;
  let lastError: string | undefined;

  const claims = outboxClaims(orm, options);
  const { claim, renew, release } = claims;

  /** Marks the claim's events sent, by id and claim token (an event claimed since by another copy is not). */
  async function markSent(held: Claim): Promise<void> {
    const marked = await claims.markSent(held);
    if (marked < held.rows.length) {
      logger.warn(
        { published: held.rows.length, marked },
        'outbox relay: the claim lapsed before its events were marked sent; another copy may publish them again (same ce_id)',
      );
    }
  }

  /** Publishes the claim with no transaction open, renewing its lease until the broker answers. */
  async function publishClaimed(held: Claim, signal: AbortSignal): Promise<void> {
    const topics = held.rows.map((row) => options.topicFor(row.type));
    const spans = publishSpans(
      held.rows.map((row, i) => ({ topic: topics[i] ?? '', traceParent: row.trace_parent })),
    );
    const send = publisher.publish(
      held.rows.map((row, i) => {
        const record = toKafkaRecord(
          {
            id: row.id,
            source: options.source,
            type: row.type,
            time: new Date(row.created_at),
            subject: row.subject,
            data: row.payload,
          },
          row.key,
        );
        return {
          topic: topics[i] ?? '',
          record: { ...record, headers: { ...record.headers, ...spans.headers[i] } },
        };
      }),
    );
    send.then(
      () => spans.end(),
      (error: unknown) => spans.end(error),
    );
    let renewal: NodeJS.Timeout | undefined;
    const keepClaim = () => {
      renewal = setTimeout(() => {
        renew(held, undefined).then(
          (still) => {
            if (still < held.rows.length) {
              logger.error(
                { claimed: held.rows.length, still },
                'outbox relay: claim lost while its publish is in flight; those events may be published twice (same ce_id)',
              );
            }
          },
          (error: unknown) =>
            logger.warn({ err: error }, 'outbox relay: renewing the claim failed; retrying'),
        );
        keepClaim();
      }, options.leaseMs / 3);
    };
    keepClaim();
    try {
      await abortable(send, signal);
    } finally {
      clearTimeout(renewal);
    }
  }

  /** One claim, publish and mark; `sent` counts the events marked sent. */
  async function step(signal: AbortSignal): Promise<{ next: Step; sent: number }> {
    if (held?.published) {
      // Acknowledged earlier, but marking failed: mark now, never publish again.
      const sent = held.rows.length;
      await markSent(held);
      held = undefined;
      return { next: 'more', sent };
    }
    // Without a broker there is nothing to claim for: no statement at all while it is away.
    if (broker && !broker.connected()) return { next: 'waiting', sent: 0 };
    if (held) {
      // A retry: the same events, if the claim is still this copy's (one statement).
      const still = await renew(held, { error: lastError });
      if (still < held.rows.length) {
        logger.warn(
          { claimed: held.rows.length, still },
          'outbox relay: the claim lapsed and was taken over; claiming anew',
        );
        if (still > 0) await release(held);
        held = undefined;
        return { next: 'more', sent: 0 };
      }
    } else {
      held = await claim();
      if (!held) return { next: 'idle', sent: 0 };
    }
    const claimed = held;
    try {
      await publishClaimed(claimed, signal);
    } catch (error) {
      if (signal.aborted) {
        // Stopping: the publish may still land, so the claim is left to lapse.
        held = undefined;
        return { next: 'idle', sent: 0 };
      }
      lastError = errorText(error);
      return { next: 'failed', sent: 0 };
    }
    claimed.published = true;
    lastError = undefined;
    options.onPublished?.();
    await markSent(claimed);
    held = undefined;
    const sent = claimed.rows.length;
    return { next: sent === options.batchSize ? 'more' : 'idle', sent };
  }

  async function relayOnce(signal: AbortSignal = new AbortController().signal): Promise<number> {
    let sent = 0;
    for (;;) {
      const outcome = await step(signal);
      sent += outcome.sent;
      if (outcome.next !== 'more' || signal.aborted) return sent;
    }
  }

  function pause(ms: number, untilBrokerConnected: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      let unsubscribe: (() => void) | undefined;
      const done = () => {
        clearTimeout(timer);
        unsubscribe?.();
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (untilBrokerConnected && broker) {
        unsubscribe = broker.onChange((connected) => {
          if (connected) done();
        });
      }
      wake = done;
    });
  }

  /** Waits for the next poll, or for this copy to commit events. */
  async function idle(): Promise<void> {
    const waiting = pause(options.pollIntervalMs, false);
    endIdle = wake;
    await waiting;
    endIdle = undefined;
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      let next: Step;
      committed = false;
      try {
        next = (await step(stopping.signal)).next;
      } catch (error) {
        // The database failed us (the broker's failures are 'failed' outcomes).
        lastError = errorText(error);
        next = 'failed';
      }
      if (!running) break;
      if (next === 'failed') {
        failures++;
        if (failures === 1 || failures % 20 === 0) {
          logger.warn(
            { error: lastError, failures },
            'outbox relay: publish failed; events wait in the outbox',
          );
        }
      } else if (next !== 'waiting' && failures > 0) {
        logger.info({ failures }, 'outbox relay: publishing again');
        failures = 0;
      }
      if (next === 'more') continue;
      if (next === 'idle') {
        // Events committed while this step ran may have missed its claim.
        if (!committed) await idle();
      }
      // Either way woken as soon as the broker is found answering again.
      else if (next === 'waiting') await pause(MAX_BACKOFF_MS, true);
      else {
        const backoff = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(failures, 10));
        await pause(backoff * (0.5 + Math.random() / 2), true);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopping = new AbortController();
      loop = run();
    },
    async stop(graceMs = 0) {
      running = false;
      const deadline = setTimeout(() => stopping.abort(), graceMs);
      try {
        wake?.();
        await loop;
        loop = undefined;
        // What committed before the stop leaves with this copy, if the broker is there.
        if (graceMs > 0 && !stopping.signal.aborted && (!broker || broker.connected())) {
          await relayOnce(stopping.signal).catch((error: unknown) => {
            logger.warn({ err: error }, 'outbox relay: final flush failed; events wait');
          });
        }
      } finally {
        clearTimeout(deadline);
      }
      const left = held;
      held = undefined;
      if (!left) return;
      // Published and not marked, or not published at all: both are settled here, so the
      // events are neither lost nor held by a copy that is gone.
      await (left.published ? markSent(left) : release(left)).catch((error: unknown) => {
        logger.warn({ err: error }, 'outbox relay: could not settle the claim; it lapses');
      });
    },
    relayOnce,
    backlog: claims.backlog,
  };
}

/** The promise, or a rejection as soon as the signal aborts (the promise itself runs on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

import type { Principal } from '../domain/access.js';
import { DomainError } from '../domain/errors.js';
import type { ChangeFeed, ChangeListener } from './change-feed.js';

/** What the watch streams need besides the other use cases' deps. */
export interface Watching {
  readonly feed: ChangeFeed;
  /** Aborted when the service stops: every stream then ends cleanly. */
  readonly stopping: AbortSignal;
  /** Takes a place for one more open stream of the caller, or RESOURCE_EXHAUSTED. */
  open(principal: Principal): () => void;
  /** Streams open now in this process. */
  readonly openStreams: () => number;
  /** A view was sent `lagMs` after the change that it shows was made. */
  delivered(lagMs: number): void;
  /** How long a stream stays quiet before it sends a keep-alive. */
  readonly keepAliveMs: number;
}

/** What an open watch stream does next: read again, send a keep-alive, or end cleanly. */
export type WatchStep = 'read' | 'keep-alive' | 'end';

/** The caps on open streams: for the whole process, and for one caller (user of a clinic). */
export function createWatching(
  feed: ChangeFeed,
  stopping: AbortSignal,
  limits: {
    readonly maxStreams: number;
    readonly maxStreamsPerCaller: number;
    readonly keepAliveMs: number;
  },
  onDelivered: (lagMs: number) => void = () => {},
): Watching {
  let open = 0;
  const byCaller = new Map<string, number>();
  return {
    feed,
    stopping,
    openStreams: () => open,
    delivered: onDelivered,
    keepAliveMs: limits.keepAliveMs,
    open(principal) {
      const caller = `${principal.clinicId}/${principal.userId}`;
      const mine = byCaller.get(caller) ?? 0;
      if (open >= limits.maxStreams) {
        throw new DomainError('resource_exhausted', 'too many open streams; try again later');
      }
      if (mine >= limits.maxStreamsPerCaller) {
        throw new DomainError(
          'resource_exhausted',
          `at most ${limits.maxStreamsPerCaller} open streams per caller`,
        );
      }
      open++;
      byCaller.set(caller, mine + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        open--;
        const left = (byCaller.get(caller) ?? 1) - 1;
        if (left === 0) byCaller.delete(caller);
        else byCaller.set(caller, left);
      };
    },
  };
}

/** How long a stream waits before it reads again after the database failed a read. */
const RETRY_MS = 1_000;

/**
 * One open watch stream of `principal`: its place under the caps, what wakes it (a change
 * of what it watches, a resync, the caller going, the service stopping, the token
 * expiring, a quiet spell that calls for a keep-alive) and the delivery lag of what it
 * sends. `close` gives everything back.
 */
export function openWatch(
  watching: Watching | undefined,
  principal: Principal,
  signal: AbortSignal,
  subscribe: (feed: ChangeFeed, listener: ChangeListener) => () => void,
) {
  if (!watching) throw new DomainError('unavailable', 'watching is not available here');
  const release = watching.open(principal);
  const { expiresAt } = principal;
  const expired = expiresAt
    ? AbortSignal.timeout(Math.max(0, expiresAt.getTime() - Date.now()))
    : new AbortController().signal;
  const wake = wakeUps([signal, watching.stopping, expired]);
  /** When the oldest change not yet sent was made: the delivery lag is measured from it. */
  let pendingSince: number | undefined;
  const listener: ChangeListener = {
    change(change) {
      pendingSince = Math.min(pendingSince ?? change.at, change.at);
      wake.wake();
    },
    resync: wake.wake,
  };
  const unwatch = subscribe(watching.feed, listener);
  /** What the stream listens to besides, for a while (see `also`). */
  const more = new Set<() => void>();
  /** When the stream last sent something: a keep-alive is due `keepAliveMs` after it. */
  let lastSent = Date.now();
  let retry: NodeJS.Timeout | undefined;
  return {
    /**
     * Waits for something to read again ('read'), for a quiet spell long enough to send a
     * keep-alive ('keep-alive'), or for the stream to end cleanly ('end': the caller
     * went, the service stops); UNAUTHENTICATED once the caller's token expired.
     */
    async next(): Promise<WatchStep> {
      const step = await wake.next(lastSent + watching.keepAliveMs - Date.now());
      if (expired.aborted) {
        throw new DomainError('unauthenticated', 'the token expired; watch again with a new one');
      }
      return step;
    },
    /** A view showing the changes so far is being sent. */
    sent() {
      if (pendingSince !== undefined) watching.delivered(Date.now() - pendingSince);
      pendingSince = undefined;
      lastSent = Date.now();
    },
    /** A keep-alive is being sent. */
    keptAlive() {
      lastSent = Date.now();
    },
    /**
     * Listens to more changes until the answered function is called (or the stream
     * closes), and reads once more at once: a change made before this began is not missed.
     */
    also(subscribeMore: (feed: ChangeFeed, listener: ChangeListener) => () => void) {
      const stop = subscribeMore(watching.feed, listener);
      const done = () => {
        if (more.delete(done)) stop();
      };
      more.add(done);
      wake.wake();
      return done;
    },
    /**
     * The database could not be read just now (a blip): read again a moment later, with no
     * change needed to wake the stream. A blip ends no stream.
     */
    retryLater() {
      clearTimeout(retry);
      retry = setTimeout(wake.wake, RETRY_MS);
    },
    close() {
      clearTimeout(retry);
      unwatch();
      for (const done of [...more]) done();
      wake.close();
      release();
    },
  };
}

/**
 * Waits for the next wake-up (a change or a resync), for `quietMs` to pass without one,
 * or for either signal to abort. Wake-ups that came while the stream was busy count: they
 * are one pending wake-up, so nothing is missed and nothing read twice.
 */
function wakeUps(signals: readonly AbortSignal[]) {
  let pending = false;
  let resolve: ((step: WatchStep) => void) | undefined;
  const abort = () => resolve?.('end');
  for (const signal of signals) signal.addEventListener('abort', abort, { once: true });
  return {
    wake() {
      pending = true;
      resolve?.('read');
    },
    next(quietMs: number): Promise<WatchStep> {
      if (signals.some((signal) => signal.aborted)) return Promise.resolve('end');
      if (pending) {
        pending = false;
        return Promise.resolve('read');
      }
      if (quietMs <= 0) return Promise.resolve('keep-alive');
      return new Promise<WatchStep>((done) => {
        const quiet = setTimeout(() => resolve?.('keep-alive'), quietMs);
        resolve = (step) => {
          clearTimeout(quiet);
          resolve = undefined;
          pending = false;
          done(step);
        };
      });
    },
    close() {
      for (const signal of signals) signal.removeEventListener('abort', abort);
    },
  };
}

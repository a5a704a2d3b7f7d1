import type { Principal } from '../domain/access.js';
import { DomainError } from '../domain/errors.js';
import type { ChangeFeed, ChangeListener, ConsultationChange } from './change-feed.js';

/** What the watch streams need besides the other use cases' deps. */
export interface Watching {
  readonly feed: ChangeFeed;
  /**
   * Takes a place for one more open stream of its caller, or RESOURCE_EXHAUSTED; the
   * stream is ended when the service stops.
   */
  add(stream: WatchStream): void;
  /** Gives the stream's place back. */
  remove(stream: WatchStream): void;
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
  const streams = new Set<WatchStream>();
  const byCaller = new Map<string, number>();
  // One listener for all streams, not one each: an open stream should cost little.
  stopping.addEventListener('abort', () => {
    for (const stream of streams) stream.end();
  });
  return {
    feed,
    keepAliveMs: limits.keepAliveMs,
    openStreams: () => streams.size,
    delivered: onDelivered,
    add(stream) {
      const { caller } = stream;
      const mine = byCaller.get(caller) ?? 0;
      if (streams.size >= limits.maxStreams) {
        throw new DomainError('resource_exhausted', 'too many open streams; try again later');
      }
      if (mine >= limits.maxStreamsPerCaller) {
        throw new DomainError(
          'resource_exhausted',
          `at most ${limits.maxStreamsPerCaller} open streams per caller`,
        );
      }
      streams.add(stream);
      byCaller.set(caller, mine + 1);
      if (stopping.aborted) stream.end();
    },
    remove(stream) {
      if (!streams.delete(stream)) return;
      const left = (byCaller.get(stream.caller) ?? 1) - 1;
      if (left === 0) byCaller.delete(stream.caller);
      else byCaller.set(stream.caller, left);
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
  subscribe: Subscribe,
): WatchStream {
  if (!watching) throw new DomainError('unavailable', 'watching is not available here');
  return new WatchStream(watching, principal, signal, subscribe);
}

type Subscribe = (feed: ChangeFeed, listener: ChangeListener) => () => void;

/**
 * A class rather than closures, with one timer and one abort listener at a time: a
 * thousand of these stay open for hours, and each closure, timer and signal would count.
 */
export class WatchStream implements ChangeListener {
  /** The caller whose streams are capped together: a user of a clinic. */
  readonly caller: string;
  readonly #watching: Watching;
  readonly #signal: AbortSignal;
  /** When the service stops accepting the caller's token (ms since the epoch); or never. */
  readonly #expiresAt: number;
  readonly #unwatch: () => void;
  /** What the stream listens to besides, for a while (see `also`). */
  #more: Set<() => void> | undefined;
  /** A wake-up came while the stream was busy: the next wait answers at once. */
  #pending = false;
  #ended = false;
  /** Ends the wait under way, if any. */
  #resolve: ((step: WatchStep | 'expired') => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When the oldest change not yet sent was made: the delivery lag is measured from it. */
  #pendingSince: number | undefined;
  /** When the stream last sent something: a keep-alive is due `keepAliveMs` after it. */
  #lastSent = Date.now();
  /** When a read the database failed is tried again (ms since the epoch), if one is due. */
  #retryAt: number | undefined;

  constructor(watching: Watching, principal: Principal, signal: AbortSignal, subscribe: Subscribe) {
    this.caller = `${principal.clinicId}/${principal.userId}`;
    this.#watching = watching;
    this.#signal = signal;
    this.#expiresAt = principal.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
    watching.add(this);
    signal.addEventListener('abort', this, { once: true });
    // Listening before the first read: a change committed meanwhile is not missed.
    this.#unwatch = subscribe(watching.feed, this);
  }

  change(change: ConsultationChange): void {
    this.#pendingSince = Math.min(this.#pendingSince ?? change.at, change.at);
    this.#wake();
  }

  resync(): void {
    this.#wake();
  }

  /** The caller went (its request's signal aborted). */
  handleEvent(): void {
    this.end();
  }

  /** Ends the stream cleanly at its next wait (the caller went, the service stops). */
  end(): void {
    this.#ended = true;
    this.#resolve?.('end');
  }

  /**
   * Waits for something to read again ('read'), for a quiet spell long enough to send a
   * keep-alive ('keep-alive'), or for the stream to end cleanly ('end': the caller
   * went, the service stops); UNAUTHENTICATED once the caller's token expired.
   */
  next(): Promise<WatchStep> {
    return this.#wait().then((step) => {
      if (step === 'expired' || Date.now() >= this.#expiresAt) {
        throw new DomainError('unauthenticated', 'the token expired; watch again with a new one');
      }
      return step;
    });
  }

  /** A view showing the changes so far is being sent. */
  sent(): void {
    if (this.#pendingSince !== undefined) this.#watching.delivered(Date.now() - this.#pendingSince);
    this.#pendingSince = undefined;
    this.#lastSent = Date.now();
  }

  /** A keep-alive is being sent. */
  keptAlive(): void {
    this.#lastSent = Date.now();
  }

  /**
   * Listens to more changes until the answered function is called (or the stream
   * closes), and reads once more at once: a change made before this began is not missed.
   */
  also(subscribeMore: Subscribe): () => void {
    const stop = subscribeMore(this.#watching.feed, this);
    this.#more ??= new Set();
    const more = this.#more;
    const done = () => {
      if (more.delete(done)) stop();
    };
    more.add(done);
    this.#wake();
    return done;
  }

  /**
   * The database could not be read just now (a blip): read again a moment later, with no
   * change needed to wake the stream. A blip ends no stream.
   */
  retryLater(): void {
    this.#pending = false;
    this.#retryAt = Date.now() + RETRY_MS;
  }

  close(): void {
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#signal.removeEventListener('abort', this);
    this.#unwatch();
    for (const done of [...(this.#more ?? [])]) done();
    this.#watching.remove(this);
  }

  #wake(): void {
    this.#pending = true;
    this.#resolve?.('read');
  }

  /**
   * The next wake-up: a change or a resync (wake-ups that came while the stream was busy
   * count as one, so nothing is missed and nothing read twice), a retry falling due, the
   * quiet spell, the token's expiry, or the end. One timer serves the last three.
   */
  #wait(): Promise<WatchStep | 'expired'> {
    if (this.#ended || this.#signal.aborted) return Promise.resolve('end');
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve('read');
    }
    const now = Date.now();
    if (now >= this.#expiresAt) return Promise.resolve('expired');
    const keepAliveAt = this.#lastSent + this.#watching.keepAliveMs;
    if (this.#retryAt !== undefined && this.#retryAt <= now) {
      this.#retryAt = undefined;
      return Promise.resolve('read');
    }
    if (keepAliveAt <= now) return Promise.resolve('keep-alive');
    const at = Math.min(keepAliveAt, this.#expiresAt, this.#retryAt ?? Number.POSITIVE_INFINITY);
    return new Promise((resolve) => {
      this.#timer = setTimeout(() => {
        const due = Date.now();
        if (due >= this.#expiresAt) this.#resolve?.('expired');
        else if (this.#retryAt !== undefined && this.#retryAt <= due) {
          this.#retryAt = undefined;
          this.#resolve?.('read');
        } else this.#resolve?.('keep-alive');
      }, at - now);
      this.#resolve = (step) => {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#resolve = undefined;
        this.#pending = false;
        resolve(step);
      };
    });
  }
}

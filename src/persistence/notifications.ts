import pg from 'pg';
import type { Logger } from 'pino';

/** What a LISTEN on one channel reports. */
export interface ChannelListener {
  /** A NOTIFY payload, delivered once its transaction committed. */
  notify(payload: string): void;
  /**
   * The listening connection was replaced: notifications sent meanwhile are lost, so
   * whoever relies on them must read the current state again.
   */
  resync(): void;
}

/** Listens on channels; `stop` ends it. */
export interface Notifications {
  listen(channel: string, listener: ChannelListener): Promise<void>;
  stop(): Promise<void>;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;
const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 5_000;

/**
 * LISTEN on a PostgreSQL server: one connection of its own (not one of the pool's, and
 * one per copy of the service however many watch), named `video-service-listen` in
 * pg_stat_activity. When it drops, it reconnects with backoff, listens again, and tells
 * every listener to resync.
 */
export function serverNotifications(url: string, logger: Logger): Notifications {
  const listeners = new Map<string, ChannelListener>();
  let client: pg.Client | undefined;
  let stopped = false;
  let connecting: Promise<void> | undefined;
  let delay = RECONNECT_MIN_MS;
  let listened = false;

  async function connect(): Promise<void> {
    while (!stopped) {
      const next = new pg.Client({
        connectionString: url,
        application_name: 'video-service-listen',
        keepAlive: true,
      });
      next.on('notification', (message) => {
        if (message.payload !== undefined) listeners.get(message.channel)?.notify(message.payload);
      });
      // A connection the server ends reports it twice (the server's message, then the
      // socket closing): one log line per lost connection.
      let lost = false;
      next.on('error', (error) => {
        if (!lost) logger.warn({ err: error }, 'notifications: connection lost');
        lost = true;
      });
      next.on('end', () => {
        if (client !== next || stopped) return;
        client = undefined;
        connecting ??= connect().finally(() => {
          connecting = undefined;
        });
      });
      try {
        await next.connect();
        for (const channel of listeners.keys()) await next.query(`listen ${channel}`);
        client = next;
        delay = RECONNECT_MIN_MS;
        if (listened) logger.info('notifications: listening again');
        listened = true;
        for (const listener of listeners.values()) listener.resync();
        return;
      } catch (error) {
        logger.warn({ err: error, retryInMs: delay }, 'notifications: cannot listen yet');
        await next.end().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(RECONNECT_MAX_MS, delay * 2);
      }
    }
  }

  return {
    async listen(channel, listener) {
      if (!CHANNEL.test(channel)) throw new Error(`not a channel name: ${channel}`);
      listeners.set(channel, listener);
      if (client) await client.query(`listen ${channel}`);
      else {
        connecting ??= connect().finally(() => {
          connecting = undefined;
        });
        await connecting;
      }
    },
    async stop() {
      stopped = true;
      const last = client;
      client = undefined;
      await last?.end().catch(() => {});
    },
  };
}

/**
 * LISTEN on the embedded engine: it has one connection, the pool's, so that one listens.
 * A notification arrives on the session that sent it once its transaction commits. When
 * the pool opens a new connection (the old one broke), it listens again and every listener
 * resyncs.
 */
export function embeddedNotifications(
  execute: (sql: string) => Promise<unknown>,
): Notifications & { readonly opened: (client: pg.Client) => void } {
  const listeners = new Map<string, ChannelListener>();
  let first = true;
  return {
    opened(client) {
      client.on('notification', (message) => {
        if (message.payload !== undefined) listeners.get(message.channel)?.notify(message.payload);
      });
      if (first) {
        first = false;
        return;
      }
      for (const channel of listeners.keys())
        void client.query(`listen ${channel}`).catch(() => {});
      for (const listener of listeners.values()) listener.resync();
    },
    async listen(channel, listener) {
      if (!CHANNEL.test(channel)) throw new Error(`not a channel name: ${channel}`);
      listeners.set(channel, listener);
      await execute(`listen ${channel}`);
    },
    async stop() {
      listeners.clear();
    },
  };
}

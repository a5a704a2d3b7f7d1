import { once } from 'node:events';
import net from 'node:net';

/**
 * A TCP proxy a test can cut: the service talks to PostgreSQL through it. `stop()` looks
 * like a database restart (new connections refused, open ones torn down) until `start()`
 * listens again on the same port; `freeze()` like a network partition (connections stay
 * open, nothing gets through) until `thaw()`.
 */
export interface TcpProxy {
  readonly port: number;
  /** Refuses new connections and destroys every open one; resolves once closed. */
  stop(): Promise<void>;
  /** Accepts connections again, on the same port. */
  start(): Promise<void>;
  /** Holds every byte, both ways, on open and new connections alike. */
  freeze(): void;
  /** Lets the held bytes and everything after them through again. */
  thaw(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let frozen = false;
  const link = ({ client, upstream }: Pair) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const unlink = ({ client, upstream }: Pair) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    // Either side failing or closing takes the pair down, as a dying server would.
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', drop);
      socket.on('close', drop);
    }
    if (!frozen) link(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
  };

  return {
    port,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      destroyAll();
      await closed;
    },
    async start() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    freeze() {
      frozen = true;
      for (const pair of pairs) unlink(pair);
    },
    thaw() {
      frozen = false;
      for (const pair of pairs) link(pair);
    },
    async close() {
      destroyAll();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

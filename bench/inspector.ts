/**
 * A server process's V8 inspector, reached from the bench (the Chrome DevTools protocol
 * over a WebSocket): to collect its garbage before its memory is read, and to record a
 * CPU profile over a chosen window only. The process is started with
 * `--inspect=127.0.0.1:<port>` (NODE_OPTIONS), `port` found free here first.
 */
import net from 'node:net';

export interface Inspector {
  /** A full garbage collection (HeapProfiler.collectGarbage); resolves once it is done. */
  collectGarbage(): Promise<void>;
  /** Starts the CPU profiler (1 ms sampling). */
  startProfile(): Promise<void>;
  /** Stops it; answers the profile (a `.cpuprofile` file's JSON). */
  stopProfile(): Promise<unknown>;
  close(): void;
}

/** A TCP port of 127.0.0.1 that was free a moment ago, for a child's inspector. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** Connects to the inspector listening on `port` (its first target, the main thread). */
export async function connectInspector(port: number): Promise<Inspector> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl?: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`cannot reach the inspector at ${url}`));
  });
  let lastId = 0;
  const replies = new Map<
    number,
    { resolve: (result: unknown) => void; reject: (e: Error) => void }
  >();
  socket.onmessage = (event) => {
    const reply = JSON.parse(String(event.data)) as {
      id?: number;
      result?: unknown;
      error?: { message: string };
    };
    const waiting = reply.id === undefined ? undefined : replies.get(reply.id);
    if (!waiting || reply.id === undefined) return; // an event, not a reply
    replies.delete(reply.id);
    if (reply.error) waiting.reject(new Error(`inspector: ${reply.error.message}`));
    else waiting.resolve(reply.result);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++lastId;
      replies.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    collectGarbage: async () => void (await send('HeapProfiler.collectGarbage')),
    async startProfile() {
      await send('Profiler.enable');
      await send('Profiler.setSamplingInterval', { interval: 1000 });
      await send('Profiler.start');
    },
    async stopProfile() {
      const { profile } = (await send('Profiler.stop')) as { profile: unknown };
      return profile;
    },
    close: () => socket.close(),
  };
}

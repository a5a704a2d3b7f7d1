import { repositoryScript, runScript } from './scripts.js';

/** A real Zipkin server: ZIPKIN_URL when set, else one started by scripts/zipkin. */
export interface Zipkin {
  readonly url: string;
  /** Stops it if this started it. */
  stop(): Promise<void>;
}

export async function ensureZipkin(): Promise<Zipkin> {
  const given = process.env.ZIPKIN_URL;
  if (given) return { url: given, stop: async () => {} };
  const started = await runScript(repositoryScript('zipkin/start-zipkin.sh'), 240_000);
  const url = started.ZIPKIN_URL;
  if (!url) throw new Error(`start-zipkin.sh printed no ZIPKIN_URL: ${JSON.stringify(started)}`);
  const reused = started.ZIPKIN_REUSED === '1';
  return {
    url,
    stop: async () => {
      if (!reused) await runScript(repositoryScript('zipkin/stop-zipkin.sh'), 60_000);
    },
  };
}

/** A span as Zipkin's API answers it (`/api/v2/trace/{id}`). */
export interface ZipkinSpan {
  readonly traceId: string;
  readonly id: string;
  readonly parentId?: string;
  readonly name: string;
  readonly kind?: string;
  readonly tags?: Record<string, string>;
  readonly localEndpoint?: { readonly serviceName?: string };
}

/** The spans the Zipkin at `url` holds for a trace (none yet: an empty list). */
export async function zipkinTrace(url: string, traceId: string): Promise<ZipkinSpan[]> {
  const response = await fetch(`${url}/api/v2/trace/${traceId}`);
  if (response.status === 404) return [];
  if (!response.ok) throw new Error(`zipkin: ${response.status} ${await response.text()}`);
  return (await response.json()) as ZipkinSpan[];
}

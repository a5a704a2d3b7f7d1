import { readdir, readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import type { Logger } from 'pino';

/** A static answer, ready to send. */
export interface WebAppAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface WebApp {
  /** The answer for a path under /app, or undefined for any other path. */
  answer(path: string): WebAppAnswer | undefined;
}

const PREFIX = '/app';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * The page may load only its own files and call only this origin: a token pasted into it
 * cannot be sent anywhere else, and no other site may frame it.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS = {
  // Revalidated on every load: a rebuilt app is seen at once.
  'cache-control': 'no-cache',
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * The web app (web/, built by `npm run build:web`) under /app/: the files of `dir`, read
 * once at start. When it is not built, /app/ says how to build it.
 */
export async function loadWebApp(dir: string, logger: Logger): Promise<WebApp> {
  const root = resolve(dir);
  const files = new Map<string, WebAppAnswer>();
  try {
    for (const name of await readdir(root)) {
      const contentType = TYPES[extname(name)];
      if (!contentType) continue;
      const body = await readFile(join(root, name));
      files.set(`${PREFIX}/${name}`, {
        status: 200,
        headers: { ...HEADERS, 'content-type': contentType, 'content-length': String(body.length) },
        body,
      });
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const index = files.get(`${PREFIX}/index.html`);
  if (index) {
    files.set(`${PREFIX}/`, index);
    logger.info({ dir: root, path: `${PREFIX}/` }, 'serving the web app');
  } else {
    logger.info({ dir: root }, 'the web app is not built (npm run build:web); /app/ says so');
  }
  const notFound = (message: string): WebAppAnswer => {
    const body = Buffer.from(JSON.stringify({ code: 'not_found', message }));
    return { status: 404, headers: { 'content-type': 'application/json' }, body };
  };
  const notBuilt = notFound('the web app is not built here: run `npm run build:web`');
  const redirect: WebAppAnswer = {
    status: 308,
    headers: { location: `${PREFIX}/` },
    body: Buffer.alloc(0),
  };
  return {
    answer(path) {
      if (path === PREFIX) return redirect;
      if (!path.startsWith(`${PREFIX}/`)) return undefined;
      if (!index) return notBuilt;
      return files.get(path) ?? notFound(`no file ${path} in the web app`);
    },
  };
}

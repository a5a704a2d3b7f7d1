import { createPrivateKey, hkdfSync } from 'node:crypto';
import { DEVELOPMENT_JWT_SECRET } from './variables.js';

/** How some variables' values are read and checked: origins, keys, secrets. */

/**
 * The origins whose pages may call the service from a browser: exact origins, any origin
 * (`*`), or, in development with nothing configured, any port of localhost and 127.0.0.1.
 */
export interface CorsPolicy {
  readonly origins: readonly string[];
  readonly anyOrigin: boolean;
  readonly localDevelopment: boolean;
}

/** CORS_ALLOWED_ORIGINS: `*`, or exact origins (`scheme://host[:port]`) separated by commas. */
export function corsPolicy(
  value: string | undefined,
  env: 'development' | 'production' | 'test',
  problems: string[],
): CorsPolicy {
  if (value === undefined) {
    return { origins: [], anyOrigin: false, localDevelopment: env === 'development' };
  }
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const anyOrigin = entries.includes('*');
  if (anyOrigin && env === 'production') {
    problems.push('CORS_ALLOWED_ORIGINS: * is refused in production; list the origins');
  }
  const origins = entries.filter((entry) => entry !== '*');
  for (const origin of origins) {
    if (!isOrigin(origin)) {
      problems.push(
        `CORS_ALLOWED_ORIGINS: "${origin}" is not an origin (scheme://host[:port], no path)`,
      );
    }
  }
  return { origins, anyOrigin, localDevelopment: false };
}

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** A page-token key for development: HKDF-SHA256 of the HS256 secret (or the development one). */
export function derivedPageTokenSecret(jwtSecret: string | undefined): string {
  const key = hkdfSync(
    'sha256',
    jwtSecret ?? DEVELOPMENT_JWT_SECRET,
    'video-service',
    'page-token-key',
    32,
  );
  return Buffer.from(key).toString('hex');
}

export function isPrivateKey(pem: string): boolean {
  try {
    createPrivateKey(pem);
    return true;
  } catch {
    return false;
  }
}

/** The PEM blocks of a variable; literal `\n` escapes allowed, since env vars are one line. */
export function pemBlocks(value: string | undefined): string[] {
  const text = value?.replaceAll('\\n', '\n') ?? '';
  return text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

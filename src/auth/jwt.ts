import { createHash, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import jwt from 'jsonwebtoken';
import { type Principal, ROLES, type Role } from '../domain/access.js';
import { DomainError } from '../domain/errors.js';
import { isExternalId, LIMITS } from '../rpc/validation.js';

/**
 * Bearer tokens, verified with `jose`: HS256 with a shared secret, RS256 or ES256 with
 * configured public keys or a JWKS URL (cached; an unknown `kid` triggers a refresh at
 * most once per cooldown). The algorithms accepted are exactly those the configured keys
 * allow, so `alg: none` and algorithm confusion (an HS256 token "signed" with a public
 * key) are refused before any claim is read. `iss` and `aud` are checked when configured,
 * `exp` and `nbf` with a clock skew. `exp` is required and bounds the token's lifetime:
 * `exp` − (`iat`, or now without it) at most `maxLifetimeSeconds`; an `iat` in the future
 * (beyond the skew) is refused. The claims that matter: `sub` (user id), `role` (or the
 * first known of `roles`), `clinic_id`; ids follow the API's id rules (validation.ts), so
 * they fit the columns they are stored in.
 */
export interface TokenVerifierOptions {
  readonly hs256Secret?: string | undefined;
  /** PEM public keys (SPKI); RSA keys verify RS256, EC P-256 keys ES256. */
  readonly publicKeys?: readonly string[];
  readonly jwksUrl?: string | undefined;
  readonly jwksCooldownSeconds?: number;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly clockSkewSeconds: number;
  /** The longest lifetime accepted (`exp` − `iat`, or − now); 24 hours by default. */
  readonly maxLifetimeSeconds?: number;
}

export interface TokenVerifier {
  /** The caller; or UNAUTHENTICATED with a short reason, or UNAVAILABLE when keys can't be fetched. */
  verify(token: string): Promise<Principal>;
}

/** Tokens longer than this are refused before they are parsed. */
export const MAX_TOKEN_LENGTH = 8192;
type Algorithm = 'HS256' | 'RS256' | 'ES256';

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  // Imported once: a KeyObject spares jose a WebCrypto key import on every call.
  const secret = options.hs256Secret
    ? createSecretKey(Buffer.from(options.hs256Secret))
    : undefined;
  const pemKeys = (options.publicKeys ?? []).map((pem) => {
    const key = createPublicKey(pem);
    const alg: Algorithm = key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
    return { key, alg };
  });
  const jwks = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), {
        cooldownDuration: (options.jwksCooldownSeconds ?? 30) * 1000,
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: 3_000,
      })
    : undefined;
  const accepted = new Set<Algorithm>([
    ...(secret ? (['HS256'] as const) : []),
    ...pemKeys.map((k) => k.alg),
    ...(jwks ? (['RS256', 'ES256'] as const) : []),
  ]);

  /** The keys that may have signed a token of this algorithm, most specific first. */
  function keysFor(alg: Algorithm): (KeyObject | JWTVerifyGetKey)[] {
    if (alg === 'HS256') return secret ? [secret] : [];
    return [...pemKeys.filter((k) => k.alg === alg).map((k) => k.key), ...(jwks ? [jwks] : [])];
  }

  const verified = verifiedTokens();
  return {
    async verify(token) {
      if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated('token too large');
      const key = tokenKey(token);
      const known = verified.get(key);
      if (known) return known;
      const principal = await verifyAnew(token);
      verified.add(key, principal);
      return principal;
    },
  };

  async function verifyAnew(token: string): Promise<Principal> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (error) {
      throw unauthenticated('token malformed', error);
    }
    if (!alg || !accepted.has(alg as Algorithm)) {
      throw unauthenticated('token algorithm not accepted');
    }
    let lastError: unknown;
    for (const key of keysFor(alg as Algorithm)) {
      try {
        const { payload } = await jwtVerify(token, key as KeyObject, {
          algorithms: [alg],
          clockTolerance: options.clockSkewSeconds,
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        });
        checkLifetime(payload, options);
        return principalOf(payload, options.clockSkewSeconds);
      } catch (error) {
        if (error instanceof DomainError) throw error;
        lastError = error;
        // Only a signature mismatch means "try the next key"; anything else is final.
        if (!(error instanceof errors.JWSSignatureVerificationFailed)) break;
      }
    }
    throw refusal(lastError);
  }
}

/** How many verified tokens are remembered, and for how long at most. */
const VERIFIED_TOKENS = 10_000;
const VERIFIED_FOR_MS = 60_000;

/**
 * The tokens verified lately, by their SHA-256: a caller sends the same token with every
 * call, and checking its signature again (an HMAC or RSA verification through WebCrypto)
 * was a tenth of the CPU of a read. A token is answered from here only while it would
 * still be accepted (its `exp` plus the skew, which `expiresAt` is) and for at most a
 * minute after it was verified, so that a key withdrawn from the JWKS stops counting about
 * as soon as it would have without this (jose keeps fetched keys for ten minutes anyway).
 * Refused tokens are not kept. The oldest entry goes when the map is full.
 */
function verifiedTokens() {
  const entries = new Map<string, { principal: Principal; until: number }>();
  return {
    get(key: string): Principal | undefined {
      const entry = entries.get(key);
      if (entry && entry.until > Date.now()) return entry.principal;
      if (entry) entries.delete(key);
      return undefined;
    },
    add(key: string, principal: Principal): void {
      const expiresAt = principal.expiresAt?.getTime() ?? 0;
      const until = Math.min(expiresAt, Date.now() + VERIFIED_FOR_MS);
      if (entries.size >= VERIFIED_TOKENS) {
        const oldest = entries.keys().next();
        if (!oldest.done) entries.delete(oldest.value);
      }
      entries.set(key, { principal, until });
    },
  };
}

/** A verified token's key in that memory: its SHA-256, computed once per call. */
const tokenKey = (token: string) => createHash('sha256').update(token).digest('base64');

/** Reads the caller out of verified claims; a token without them proves nobody. */
function principalOf(claims: JWTPayload, clockSkewSeconds: number): Principal {
  const userId = claims.sub;
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  const role = [claims.role, ...roles].find((r): r is Role => ROLES.includes(r as Role));
  const clinicId = claims.clinic_id;
  if (!isExternalId(userId, LIMITS.userId)) {
    throw unauthenticated('token has no valid sub claim');
  }
  if (!role) throw unauthenticated('token has no valid role claim');
  if (!isExternalId(clinicId, LIMITS.clinicId)) {
    throw unauthenticated('token has no valid clinic_id claim');
  }
  const expiresAt =
    typeof claims.exp === 'number' ? new Date((claims.exp + clockSkewSeconds) * 1000) : undefined;
  return { userId, role, clinicId, expiresAt };
}

/**
 * A token must expire, and not too late: a stolen token that never expires (or in 2200)
 * would be a permanent credential. jose has checked `exp` (if any) and `nbf` already.
 */
function checkLifetime(claims: JWTPayload, options: TokenVerifierOptions): void {
  const now = Math.floor(Date.now() / 1000);
  const skew = options.clockSkewSeconds;
  const max = options.maxLifetimeSeconds ?? 86_400;
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) {
    throw unauthenticated('token has no exp claim');
  }
  if (claims.iat !== undefined) {
    if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) {
      throw unauthenticated('token has no valid iat claim');
    }
    if (claims.iat > now + skew) throw unauthenticated('token issued in the future');
  }
  // Measured from `iat`, or from this clock (give or take the skew) for a token without one.
  const lifetime = claims.iat === undefined ? claims.exp - now - skew : claims.exp - claims.iat;
  if (lifetime > max) {
    throw unauthenticated(`token lifetime exceeds ${max} seconds`);
  }
}

/** The client's answer for a failed verification; the cause stays for the log. */
function refusal(error: unknown): DomainError {
  if (error instanceof errors.JWKSTimeout || isFetchFailure(error)) {
    return new DomainError('unavailable', 'identity keys unavailable', undefined, { cause: error });
  }
  if (error instanceof errors.JWTExpired) return unauthenticated('token expired', error);
  if (error instanceof errors.JWTClaimValidationFailed) {
    const reason =
      error.claim === 'nbf'
        ? 'token not yet valid'
        : error.claim === 'aud'
          ? 'token audience not accepted'
          : error.claim === 'iss'
            ? 'token issuer not accepted'
            : 'token claims not accepted';
    return unauthenticated(reason, error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return unauthenticated('token signature invalid', error);
  }
  if (error instanceof errors.JWKSNoMatchingKey) return unauthenticated('token key unknown', error);
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return unauthenticated('token algorithm not accepted', error);
  }
  return unauthenticated('token malformed', error);
}

/** jose's JWKS fetch failing below HTTP (connection refused, DNS) or with an HTTP error. */
function isFetchFailure(error: unknown): boolean {
  if (error instanceof errors.JOSEError) return error.code === 'ERR_JOSE_GENERIC';
  return (
    error instanceof TypeError ||
    (error instanceof Error && 'cause' in error && error.message.includes('fetch'))
  );
}

function unauthenticated(reason: string, cause?: unknown): DomainError {
  return new DomainError('unauthenticated', reason, undefined, { cause });
}

export interface MintOptions {
  readonly secret: string;
  readonly userId: string;
  readonly role: Role;
  readonly clinicId: string;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  readonly expiresInSeconds?: number;
}

/** Signs an HS256 token the verifier accepts (development and tests). */
export function mintToken(options: MintOptions): string {
  return jwt.sign({ role: options.role, clinic_id: options.clinicId }, options.secret, {
    algorithm: 'HS256',
    subject: options.userId,
    expiresIn: options.expiresInSeconds ?? 3600,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  });
}

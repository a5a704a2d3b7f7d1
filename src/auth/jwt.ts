import jwt from 'jsonwebtoken';
import { type Principal, ROLES, type Role } from '../domain/access.js';
import { DomainError } from '../domain/errors.js';

/**
 * Bearer tokens: HS256 with the configured secret. The claims that matter are `sub`
 * (user id), `role` and `clinic_id`; `iss` and `aud` are checked when configured, `exp`
 * and `nbf` with a small clock skew. Only HS256 is accepted, so `alg: none` and
 * algorithm confusion are refused by the library before any claim is read.
 */
export interface TokenVerifierOptions {
  readonly secret: string;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly clockSkewSeconds: number;
}

export interface TokenVerifier {
  /** The caller, or an `unauthenticated` DomainError with a short reason. */
  verify(token: string): Principal;
}

/** Tokens longer than this are refused before they are parsed. */
const MAX_TOKEN_LENGTH = 8192;
const ID_PATTERN = /^[A-Za-z0-9._:@|-]{1,128}$/;

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  return {
    verify(token) {
      if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated('token too large');
      let claims: jwt.JwtPayload | string;
      try {
        claims = jwt.verify(token, options.secret, {
          algorithms: ['HS256'],
          clockTolerance: options.clockSkewSeconds,
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        });
      } catch (error) {
        throw unauthenticated(reasonOf(error), error);
      }
      if (typeof claims === 'string') throw unauthenticated('token has no claims');
      return principalOf(claims);
    },
  };
}

/** Reads the caller out of verified claims; a token without them proves nobody. */
function principalOf(claims: jwt.JwtPayload): Principal {
  const userId = claims.sub;
  const role = claims.role;
  const clinicId = claims.clinic_id;
  if (typeof userId !== 'string' || !ID_PATTERN.test(userId)) {
    throw unauthenticated('token has no valid sub claim');
  }
  if (typeof role !== 'string' || !ROLES.includes(role as Role)) {
    throw unauthenticated('token has no valid role claim');
  }
  if (typeof clinicId !== 'string' || !ID_PATTERN.test(clinicId)) {
    throw unauthenticated('token has no valid clinic_id claim');
  }
  return { userId, role: role as Role, clinicId };
}

function reasonOf(error: unknown): string {
  if (error instanceof jwt.TokenExpiredError) return 'token expired';
  if (error instanceof jwt.NotBeforeError) return 'token not yet valid';
  if (error instanceof jwt.JsonWebTokenError) {
    if (/audience/.test(error.message)) return 'token audience not accepted';
    if (/issuer/.test(error.message)) return 'token issuer not accepted';
    if (/signature/.test(error.message)) return 'token signature invalid';
    if (/algorithm/.test(error.message)) return 'token algorithm not accepted';
  }
  return 'token malformed';
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

/** Signs a token the verifier accepts (for development and tests). */
export function mintToken(options: MintOptions): string {
  return jwt.sign({ role: options.role, clinic_id: options.clinicId }, options.secret, {
    algorithm: 'HS256',
    subject: options.userId,
    expiresIn: options.expiresInSeconds ?? 3600,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  });
}

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTokenVerifier, type TokenVerifierOptions } from '../../src/auth/jwt.js';
import { DomainError } from '../../src/domain/errors.js';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'video-service';
const SECRET = 'unit-test-hs256-secret-of-more-than-32-chars';
const claims = { role: 'doctor', clinic_id: 'clinic-1' };
const base: TokenVerifierOptions = { issuer: ISSUER, audience: AUDIENCE, clockSkewSeconds: 30 };
const now = () => Math.floor(Date.now() / 1000);

type Key = Awaited<ReturnType<typeof generateKeyPair>>;
let rsa: Key;
let ec: Key;
let rotated: Key;
let rsaPem: string;
let ecPem: string;

/** A JWKS endpoint whose keys the test can change, counting every fetch. */
let jwksServer: Server;
let jwksKeys: JWK[] = [];
let jwksFetches = 0;
let jwksUrl: string;

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  rotated = await generateKeyPair('ES256', { extractable: true });
  rsaPem = await exportSPKI(rsa.publicKey);
  ecPem = await exportSPKI(ec.publicKey);
  jwksKeys = [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' }];
  jwksServer = createServer((_req, res) => {
    jwksFetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: jwksKeys }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
});
afterAll(() => new Promise((resolve) => jwksServer.close(resolve)));

function sign(key: Key['privateKey'] | Uint8Array, alg: string, extra: object = {}, kid?: string) {
  return new SignJWT({ ...claims, ...extra })
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setSubject('doc-1')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('exp' in extra ? (extra as { exp: number }).exp : '10m')
    .sign(key);
}
const hs = (extra: object = {}) => sign(new TextEncoder().encode(SECRET), 'HS256', extra);

async function refusal(options: TokenVerifierOptions, token: string): Promise<string> {
  try {
    await createTokenVerifier(options).verify(token);
    return 'accepted';
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return `${(error as DomainError).code}: ${(error as DomainError).message}`;
  }
}

describe('token verification', () => {
  it('accepts HS256, RS256 (PEM) and ES256 (JWKS) tokens and reads the caller', async () => {
    const principal = {
      userId: 'doc-1',
      role: 'doctor',
      clinicId: 'clinic-1',
      // From the token's exp: a stream the caller opens ends then.
      expiresAt: expect.any(Date),
    };
    await expect(
      createTokenVerifier({ ...base, hs256Secret: SECRET }).verify(await hs()),
    ).resolves.toEqual(principal);
    await expect(
      createTokenVerifier({ ...base, publicKeys: [rsaPem] }).verify(
        await sign(rsa.privateKey, 'RS256'),
      ),
    ).resolves.toEqual(principal);
    await expect(
      createTokenVerifier({ ...base, publicKeys: [ecPem] }).verify(
        await sign(ec.privateKey, 'ES256'),
      ),
    ).resolves.toEqual(principal);
    await expect(
      createTokenVerifier({ ...base, jwksUrl }).verify(
        await sign(ec.privateKey, 'ES256', {}, 'ec-1'),
      ),
    ).resolves.toEqual(principal);
    // A roles array works too: the first known role counts.
    await expect(
      createTokenVerifier({ ...base, hs256Secret: SECRET }).verify(
        await hs({ role: undefined, roles: ['x', 'nurse'] }),
      ),
    ).resolves.toMatchObject({ role: 'nurse' });
  });

  it('follows key rotation by kid, refreshing at most once per cooldown', async () => {
    // Only Date is faked: jose reads the cooldown off Date.now(), while the fetches still
    // go to the real JWKS server on real timers.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const cooldownMs = 30_000;
      const verifier = createTokenVerifier({ ...base, jwksUrl, jwksCooldownSeconds: 30 });
      const fetchesDuring = async (verify: () => Promise<unknown>) => {
        const before = jwksFetches;
        await verify();
        return jwksFetches - before;
      };
      const keyUnknown = { code: 'unauthenticated', message: 'token key unknown' };

      // The first token loads the set: the one fetch that starts the cooldown.
      const first = await sign(ec.privateKey, 'ES256', {}, 'ec-1');
      expect(await fetchesDuring(() => verifier.verify(first))).toBe(1);
      const loadedAt = Date.now();

      // The identity provider rotates in a new key.
      jwksKeys = [
        ...jwksKeys,
        { ...(await exportJWK(rotated.publicKey)), kid: 'ec-2', alg: 'ES256' },
      ];
      const next = await sign(rotated.privateKey, 'ES256', {}, 'ec-2');
      const unknown = await sign(rotated.privateKey, 'ES256', {}, 'ec-unknown');

      // Within the cooldown, no unknown kid fetches the set again, not even the new key's:
      // at its start and on its last millisecond.
      for (const at of [loadedAt, loadedAt + cooldownMs - 1]) {
        vi.setSystemTime(at);
        expect(
          await fetchesDuring(async () => {
            for (let i = 0; i < 10; i++) {
              await expect(verifier.verify(unknown)).rejects.toMatchObject(keyUnknown);
            }
            await expect(verifier.verify(next)).rejects.toMatchObject(keyUnknown);
          }),
        ).toBe(0);
      }

      // Once it is over, the first unknown kid fetches the set once, and the new key is found.
      vi.setSystemTime(loadedAt + cooldownMs + 1);
      expect(
        await fetchesDuring(() =>
          expect(verifier.verify(next)).resolves.toMatchObject({ userId: 'doc-1' }),
        ),
      ).toBe(1);
      const refreshedAt = Date.now();

      // That fetch starts a new cooldown: a kid still unknown costs nothing until it ends…
      vi.setSystemTime(refreshedAt + cooldownMs - 1);
      expect(
        await fetchesDuring(async () => {
          for (let i = 0; i < 10; i++) {
            await expect(verifier.verify(unknown)).rejects.toMatchObject(keyUnknown);
          }
        }),
      ).toBe(0);
      // …and one fetch after it, which does not find the kid either.
      vi.setSystemTime(refreshedAt + cooldownMs + 1);
      expect(
        await fetchesDuring(() =>
          expect(verifier.verify(unknown)).rejects.toMatchObject(keyUnknown),
        ),
      ).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers UNAVAILABLE, not UNAUTHENTICATED, when the JWKS endpoint is down', async () => {
    const down = 'http://127.0.0.1:1/.well-known/jwks.json';
    expect(
      await refusal({ ...base, jwksUrl: down }, await sign(ec.privateKey, 'ES256', {}, 'ec-1')),
    ).toBe('unavailable: identity keys unavailable');
  });

  it('refuses alg none, algorithm confusion, oversized and malformed tokens', async () => {
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({ ...claims, sub: 'doc-1', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }),
    ).toString('base64url')}.`;
    expect(await refusal({ ...base, hs256Secret: SECRET }, none)).toBe(
      'unauthenticated: token algorithm not accepted',
    );
    // HS256 "signed" with the RSA public key as the secret: refused whether or not HS256 is on.
    const confused = jwt.sign({ ...claims, sub: 'doc-1' }, rsaPem, {
      algorithm: 'HS256',
      issuer: ISSUER,
      audience: AUDIENCE,
    });
    expect(await refusal({ ...base, publicKeys: [rsaPem] }, confused)).toBe(
      'unauthenticated: token algorithm not accepted',
    );
    expect(await refusal({ ...base, publicKeys: [rsaPem], hs256Secret: SECRET }, confused)).toBe(
      'unauthenticated: token signature invalid',
    );
    expect(await refusal({ ...base, hs256Secret: SECRET }, 'x'.repeat(8193))).toBe(
      'unauthenticated: token too large',
    );
    expect(await refusal({ ...base, hs256Secret: SECRET }, 'not-a-jwt')).toBe(
      'unauthenticated: token malformed',
    );
    expect(await refusal({ ...base, hs256Secret: SECRET }, '%%%.%%%.%%%')).toBe(
      'unauthenticated: token malformed',
    );
  });

  it('checks exp and nbf with the skew, and iss, aud and the claims', async () => {
    const options = { ...base, hs256Secret: SECRET };
    expect(await refusal(options, await hs({ exp: now() - 120 }))).toBe(
      'unauthenticated: token expired',
    );
    expect(await refusal(options, await hs({ exp: now() - 10 }))).toBe('accepted');
    expect(await refusal(options, await hs({ nbf: now() + 600 }))).toBe(
      'unauthenticated: token not yet valid',
    );
    expect(await refusal(options, await hs({ nbf: now() + 10 }))).toBe('accepted');
    expect(await refusal({ ...options, audience: 'other' }, await hs())).toBe(
      'unauthenticated: token audience not accepted',
    );
    expect(await refusal({ ...options, issuer: 'https://other.test' }, await hs())).toBe(
      'unauthenticated: token issuer not accepted',
    );
    expect(await refusal(options, await hs({ role: 'superuser' }))).toBe(
      'unauthenticated: token has no valid role claim',
    );
    expect(await refusal(options, await hs({ clinic_id: undefined }))).toBe(
      'unauthenticated: token has no valid clinic_id claim',
    );
    expect(
      await refusal(
        { ...options, hs256Secret: 'another-secret-of-more-than-32-chars!!' },
        await hs(),
      ),
    ).toBe('unauthenticated: token signature invalid');
  });
});

describe('tokens verified lately', () => {
  it('are answered from memory, never past their exp and the skew', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const verifier = createTokenVerifier({ ...base, hs256Secret: SECRET });
      const token = await hs({ exp: now() + 40 });
      const first = await verifier.verify(token);
      // The same caller object: its signature was not checked again.
      expect(await verifier.verify(token)).toBe(first);
      // Past exp, within the skew (30 s): still accepted.
      vi.setSystemTime(Date.now() + 50_000);
      expect(await verifier.verify(token)).toMatchObject({ userId: 'doc-1' });
      // Past exp and the skew: refused, as a verification would.
      vi.setSystemTime(Date.now() + 25_000);
      await expect(verifier.verify(token)).rejects.toMatchObject({ message: 'token expired' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('are verified again after a minute, and a refused token is never remembered', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const verifier = createTokenVerifier({ ...base, hs256Secret: SECRET });
      const token = await hs();
      const first = await verifier.verify(token);
      vi.setSystemTime(Date.now() + 59_000);
      expect(await verifier.verify(token)).toBe(first);
      vi.setSystemTime(Date.now() + 2_000);
      const again = await verifier.verify(token);
      expect(again).not.toBe(first);
      expect(again).toEqual(first);

      const forged = `${token.slice(0, -4)}AAAA`;
      for (let i = 0; i < 2; i++) {
        await expect(verifier.verify(forged)).rejects.toMatchObject({
          message: 'token signature invalid',
        });
      }
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('token lifetime and claim rules', () => {
  const options = { ...base, hs256Secret: SECRET };
  /** An HS256 or RS256 token with exactly these claims (no exp unless given). */
  const bare = (payload: object, alg: 'HS256' | 'RS256' = 'HS256') =>
    new SignJWT({ ...claims, sub: 'doc-1', iss: ISSUER, aud: AUDIENCE, ...payload })
      .setProtectedHeader({ alg })
      .sign(alg === 'HS256' ? new TextEncoder().encode(SECRET) : rsa.privateKey);

  it('requires exp, with HS256 and RS256 alike', async () => {
    expect(await refusal(options, await bare({ iat: now() }))).toBe(
      'unauthenticated: token has no exp claim',
    );
    expect(await refusal({ ...base, publicKeys: [rsaPem] }, await bare({}, 'RS256'))).toBe(
      'unauthenticated: token has no exp claim',
    );
  });

  it('caps the lifetime (exp − iat, or − now without iat) at 24 hours by default', async () => {
    const year2200 = Math.floor(Date.UTC(2200, 0, 1) / 1000);
    expect(await refusal(options, await bare({ exp: year2200 }))).toBe(
      'unauthenticated: token lifetime exceeds 86400 seconds',
    );
    expect(await refusal(options, await bare({ iat: now(), exp: year2200 }))).toBe(
      'unauthenticated: token lifetime exceeds 86400 seconds',
    );
    expect(await refusal(options, await bare({ iat: now(), exp: now() + 86_400 }))).toBe(
      'accepted',
    );
    expect(await refusal(options, await bare({ exp: now() + 86_400 }))).toBe('accepted');
    // Issued 20 hours ago for 25 hours: too long, though only 5 hours are left.
    expect(
      await refusal(options, await bare({ iat: now() - 20 * 3600, exp: now() + 5 * 3600 })),
    ).toBe('unauthenticated: token lifetime exceeds 86400 seconds');
    expect(
      await refusal(
        { ...options, maxLifetimeSeconds: 600 },
        await bare({ iat: now(), exp: now() + 3600 }),
      ),
    ).toBe('unauthenticated: token lifetime exceeds 600 seconds');
  });

  it('refuses an iat in the future beyond the skew', async () => {
    expect(await refusal(options, await bare({ iat: now() + 600, exp: now() + 1200 }))).toBe(
      'unauthenticated: token issued in the future',
    );
    expect(await refusal(options, await bare({ iat: now() + 10, exp: now() + 600 }))).toBe(
      'accepted',
    );
  });

  it('holds sub and clinic_id to the id rules of the API (and the columns)', async () => {
    expect(await refusal(options, await hs({ clinic_id: 'c'.repeat(64) }))).toBe('accepted');
    expect(await refusal(options, await hs({ clinic_id: 'c'.repeat(65) }))).toBe(
      'unauthenticated: token has no valid clinic_id claim',
    );
    expect(await refusal(options, await hs({ clinic_id: 'clinic\u00001' }))).toBe(
      'unauthenticated: token has no valid clinic_id claim',
    );
    expect(await refusal(options, await bare({ sub: 'u'.repeat(128), exp: now() + 60 }))).toBe(
      'accepted',
    );
    expect(await refusal(options, await bare({ sub: 'u'.repeat(129), exp: now() + 60 }))).toBe(
      'unauthenticated: token has no valid sub claim',
    );
    expect(await refusal(options, await bare({ sub: 'doc 1', exp: now() + 60 }))).toBe(
      'unauthenticated: token has no valid sub claim',
    );
  });
});

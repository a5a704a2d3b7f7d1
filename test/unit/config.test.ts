import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEVELOPMENT_JWT_SECRET,
  loadConfig,
  redactedConfig,
} from '../../src/config.js';

describe('configuration', () => {
  it('runs with no configuration at all, embedded and in development mode', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.database.url).toBeUndefined();
    expect(config.database.migrateOnStart).toBe(true);
    expect(config.auth.jwtSecret).toBe(DEVELOPMENT_JWT_SECRET);
    expect(Object.isFrozen(config.database)).toBe(true);
  });

  it('does not migrate a real database unless asked', () => {
    const url = 'postgresql://u:p@db:5432/video';
    expect(loadConfig({ DATABASE_URL: url }).database.migrateOnStart).toBe(false);
    expect(
      loadConfig({ DATABASE_URL: url, MIGRATE_ON_START: 'true' }).database.migrateOnStart,
    ).toBe(true);
  });

  it('counts rate limits where the copies can share them: in the database when there is one', () => {
    const url = 'postgresql://u:p@db:5432/video';
    expect(loadConfig({}).rateLimit.store).toBe('memory');
    expect(loadConfig({ DATABASE_URL: url }).rateLimit.store).toBe('postgres');
    expect(loadConfig({ DATABASE_URL: url, RATE_LIMIT_STORE: 'memory' }).rateLimit.store).toBe(
      'memory',
    );
    expect(() => loadConfig({ RATE_LIMIT_STORE: 'postgres' })).toThrow(
      /RATE_LIMIT_STORE: postgres needs DATABASE_URL/,
    );
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', AUTH_JWT_SECRET: 'short' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems.join('\n');
      expect(problems).toMatch(/PORT/);
      expect(problems).toMatch(/DATABASE_URL/);
      expect(problems).toMatch(/AUTH_JWT_SECRET/);
    }
  });

  it('refuses development secrets in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /AUTH_JWT_SECRET.*\n.*JITSI_APP_SECRET/s,
    );
  });

  it('configures OpenVidu, the default provider and the clinics that use another', () => {
    const config = loadConfig({
      OPENVIDU_URL: 'https://openvidu.example.test',
      OPENVIDU_SECRET: 'openvidu-secret',
      PROVIDER_DEFAULT: 'openvidu',
      PROVIDER_BY_CLINIC: 'north=jitsi,south=openvidu',
    });
    expect(config.providers.default).toBe('openvidu');
    expect(config.providers.byClinic).toEqual({ north: 'jitsi', south: 'openvidu' });
    expect(config.providers.openVidu).toEqual({
      url: 'https://openvidu.example.test',
      secret: 'openvidu-secret',
      timeoutMs: 5000,
    });
    expect(JSON.stringify(redactedConfig(config))).not.toContain('openvidu-secret');
    expect(loadConfig({}).providers.openVidu).toBeUndefined();
  });

  it('refuses OpenVidu half-configured, or chosen without being configured', () => {
    expect(() => loadConfig({ OPENVIDU_URL: 'https://ov.example.test' })).toThrow(
      /OPENVIDU_SECRET: required with OPENVIDU_URL/,
    );
    expect(() => loadConfig({ OPENVIDU_SECRET: 's' })).toThrow(/OPENVIDU_URL: required/);
    expect(() => loadConfig({ PROVIDER_DEFAULT: 'openvidu' })).toThrow(/PROVIDER_DEFAULT/);
    expect(() => loadConfig({ PROVIDER_BY_CLINIC: 'south=openvidu' })).toThrow(
      /PROVIDER_BY_CLINIC: south use openvidu/,
    );
    expect(() => loadConfig({ PROVIDER_BY_CLINIC: 'south=daily' })).toThrow(/PROVIDER_BY_CLINIC/);
  });

  it('refuses a JaaS key it cannot read', () => {
    expect(() =>
      loadConfig({
        JITSI_MODE: 'jaas',
        JITSI_JAAS_KEY_ID: 'key-1',
        JITSI_JAAS_PRIVATE_KEY:
          '-----BEGIN PRIVATE KEY-----\\nnot a key\\n-----END PRIVATE KEY-----',
      }),
    ).toThrow(/JITSI_JAAS_PRIVATE_KEY: not a readable PEM private key/);
  });

  it('derives a page-token key outside production: the same for copies configured alike', () => {
    const one = loadConfig({ AUTH_JWT_SECRET: 's'.repeat(40) }).pageTokens;
    expect(one.derived).toBe(true);
    expect(one.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(loadConfig({ AUTH_JWT_SECRET: 's'.repeat(40) }).pageTokens.secret).toBe(one.secret);
    expect(loadConfig({}).pageTokens.secret).not.toBe(one.secret);
    // Not the HS256 secret itself: a page token's MAC never helps forge a bearer token.
    expect(one.secret).not.toContain('s'.repeat(40));
  });

  it('bounds the token lifetime: 24 hours by default, configurable', () => {
    expect(loadConfig({}).auth.maxTokenLifetimeSeconds).toBe(86_400);
    expect(
      loadConfig({ AUTH_MAX_TOKEN_LIFETIME_SECONDS: '3600' }).auth.maxTokenLifetimeSeconds,
    ).toBe(3600);
    expect(() => loadConfig({ AUTH_MAX_TOKEN_LIFETIME_SECONDS: '0' })).toThrow(
      /AUTH_MAX_TOKEN_LIFETIME_SECONDS/,
    );
  });

  it('never logs secrets', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://user:hunter2@db:5432/video',
      AUTH_JWT_SECRET: 's'.repeat(40),
      JITSI_APP_SECRET: 'j'.repeat(20),
    });
    const text = JSON.stringify(redactedConfig(config));
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('s'.repeat(40));
    expect(text).not.toContain('j'.repeat(20));
  });
});

describe('production rules', () => {
  const production = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgresql://u:p@db:5432/video',
    JITSI_APP_SECRET: 'j'.repeat(20),
  };

  it('requires PAGE_TOKEN_SECRET in production, at least 32 characters', () => {
    const complete = {
      ...production,
      AUTH_JWT_SECRET: 's'.repeat(40),
      AUTH_ISSUER: 'https://idp.example.test',
      AUTH_AUDIENCE: 'video-service',
    };
    expect(() => loadConfig(complete)).toThrow(/PAGE_TOKEN_SECRET: required in production/);
    expect(() => loadConfig({ ...complete, PAGE_TOKEN_SECRET: 'short' })).toThrow(
      /PAGE_TOKEN_SECRET: must be at least 32 characters/,
    );
    const config = loadConfig({ ...complete, PAGE_TOKEN_SECRET: 'p'.repeat(32) });
    expect(config.pageTokens).toEqual({ secret: 'p'.repeat(32), derived: false });
    expect(JSON.stringify(redactedConfig(config))).not.toContain('p'.repeat(32));
  });

  it('refuses to start without real keys, issuer and audience', () => {
    try {
      loadConfig(production);
      expect.unreachable();
    } catch (error) {
      const problems = (error as ConfigError).problems.join('\n');
      expect(problems).toMatch(/AUTH_JWT_SECRET, AUTH_PUBLIC_KEYS or AUTH_JWKS_URL: required/);
      expect(problems).toMatch(/AUTH_ISSUER: required in production/);
      expect(problems).toMatch(/AUTH_AUDIENCE: required in production/);
    }
  });

  it('starts with a JWKS, issuer and audience, and then accepts no development token', () => {
    const config = loadConfig({
      ...production,
      AUTH_JWKS_URL: 'https://idp.example.test/.well-known/jwks.json',
      AUTH_ISSUER: 'https://idp.example.test',
      AUTH_AUDIENCE: 'video-service',
      PAGE_TOKEN_SECRET: 'p'.repeat(32),
    });
    expect(config.auth.hs256Secret).toBeUndefined();
    expect(config.auth.usesDevelopmentSecret).toBe(false);
  });

  it('says which public key it cannot read', () => {
    expect(() => loadConfig({ AUTH_PUBLIC_KEYS: 'not a key' })).toThrow(/AUTH_PUBLIC_KEYS: no/);
  });
});

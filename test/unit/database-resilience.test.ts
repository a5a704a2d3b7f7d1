import { DriverException } from '@mikro-orm/core';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { type ConfigError, loadConfig, redactedConfig } from '../../src/config.js';
import { isDatabaseUnavailable } from '../../src/persistence/database-errors.js';
import { selfReleasingClient } from '../../src/persistence/pool.js';

/** An error as `pg` or Node reports it: a message, maybe a code, maybe a cause. */
const failure = (message: string, props: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), props);

describe('database errors that mean "unavailable, retry"', () => {
  it.each([
    [
      'a terminated session (57P01)',
      failure('terminating connection due to administrator command', { code: '57P01' }),
    ],
    ['a connection exception (class 08)', failure('connection failure', { code: '08006' })],
    ['too many connections (53300)', failure('sorry, too many clients already', { code: '53300' })],
    [
      'a statement timeout (57014)',
      failure('canceling statement due to statement timeout', { code: '57014' }),
    ],
    [
      'an idle-in-transaction timeout (25P03)',
      failure('terminating connection due to idle-in-transaction timeout', { code: '25P03' }),
    ],
    [
      'a refused connection',
      failure('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' }),
    ],
    ['a reset connection', failure('read ECONNRESET', { code: 'ECONNRESET' })],
    ['a connection lost under a query', failure('Connection terminated unexpectedly')],
    [
      'no connection within the acquire timeout',
      failure('timeout exceeded when trying to connect'),
    ],
    [
      'a connect that timed out',
      failure('Connection terminated due to connection timeout', {
        cause: failure('Connection terminated unexpectedly'),
      }),
    ],
    [
      'a query on a broken connection',
      failure('Client has encountered a connection error and is not queryable'),
    ],
    [
      'a refusal on every address',
      new AggregateError(
        [failure('connect ECONNREFUSED ::1:5432', { code: 'ECONNREFUSED' })],
        'connect failed',
      ),
    ],
  ])('%s', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
    // MikroORM wraps driver errors, copying their code.
    expect(isDatabaseUnavailable(new DriverException(error))).toBe(true);
  });

  it.each([
    ['a unique violation', failure('duplicate key value', { code: '23505' })],
    ['a syntax error', failure('syntax error at or near', { code: '42601' })],
    ['a permission error', failure('permission denied for table audit_entry', { code: '42501' })],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['not an error', 'Connection terminated'],
  ])('but not %s', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('a pooled connection that breaks', () => {
  const events = () => {
    const seen: string[] = [];
    return { seen, connected: () => seen.push('connected'), broken: () => seen.push('broken') };
  };

  /** A client as pg-pool hands it out: `release` set at checkout, called once. */
  function checkedOut() {
    const observed = events();
    const Client = selfReleasingClient(observed);
    const client = new Client({}) as pg.Client & { release: (error?: Error | boolean) => void };
    const releases: (Error | boolean | undefined)[] = [];
    client.release = (error) => {
      releases.push(error);
    };
    return { client, releases, observed };
  }

  it('gives itself back, with the error, the moment its socket ends', () => {
    const { client, releases } = checkedOut();
    client.emit('end');
    expect(releases).toHaveLength(1);
    expect(releases[0]).toBeInstanceOf(Error);
    // The holder's own release (after its failed ROLLBACK, if ever) changes nothing.
    client.release();
    expect(releases).toHaveLength(1);
  });

  it('and on a fatal error, which it reports', () => {
    const { client, releases, observed } = checkedOut();
    const error = new Error('terminating connection due to administrator command');
    client.emit('error', error);
    client.emit('end');
    expect(releases).toEqual([error]);
    expect(observed.seen).toEqual(['broken']);
  });

  it('is released once by its holder when nothing breaks, and a second release is a bug', () => {
    const { client, releases } = checkedOut();
    client.release();
    expect(releases).toEqual([undefined]);
    expect(() => client.release()).toThrow(/already been released/);
    // Idle in the pool, a broken connection is pg-pool's to drop.
    client.emit('end');
    expect(releases).toEqual([undefined]);
  });
});

describe('database configuration', () => {
  const url = 'postgresql://video_service@db:5432/video';
  it('has bounded waits by default', () => {
    const { database } = loadConfig({ DATABASE_URL: url });
    expect(database).toMatchObject({
      acquireTimeoutMs: 3_000,
      statementTimeoutMs: 15_000,
      idleInTransactionTimeoutMs: 15_000,
      readinessGraceMs: 10_000,
      migrationUrl: undefined,
    });
  });

  it('takes a migration role for the same database, and hides its password', () => {
    const config = loadConfig({
      DATABASE_URL: url,
      DATABASE_MIGRATION_URL: 'postgresql://video_owner:s3cret@db:5432/video',
    });
    expect(config.database.migrationUrl).toContain('video_owner');
    expect(JSON.stringify(redactedConfig(config))).not.toContain('s3cret');
  });

  it('refuses a migration URL without DATABASE_URL, or for another database', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems({ DATABASE_MIGRATION_URL: url }).join()).toMatch(/needs DATABASE_URL/);
    expect(
      problems({
        DATABASE_URL: url,
        DATABASE_MIGRATION_URL: 'postgresql://o@db:5432/other',
      }).join(),
    ).toMatch(/same database/);
    expect(problems({ DATABASE_URL: url, DATABASE_ACQUIRE_TIMEOUT_MS: '0' }).join()).toMatch(
      /DATABASE_ACQUIRE_TIMEOUT_MS/,
    );
  });
});

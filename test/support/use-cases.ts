import { PassThrough } from 'node:stream';
import { type Config, loadConfig } from '../../src/config.js';
import type { Principal } from '../../src/domain/access.js';
import { type Clock, systemClock } from '../../src/domain/ports.js';
import { createLogger } from '../../src/logger.js';
import { type Database, openDatabase } from '../../src/persistence/database.js';
import { createConfiguredProviders } from '../../src/providers/configured-providers.js';
import type { Caller } from '../../src/video/audit.js';
import { createPageTokens } from '../../src/video/pagination.js';
import type { ReplayReason, UseCaseDeps } from '../../src/video/use-case.js';
import { createTestDatabase } from './database.js';

/**
 * The use cases on a database of their own, without the server around them: for tests
 * that need to reach inside a unit of work (the ORM's events) or to read what the
 * service logged and counted.
 */
export interface TestUseCases {
  /** What the use cases are called with (`scheduleConsultation(u.deps, caller, …)`). */
  readonly deps: UseCaseDeps;
  readonly database: Database;
  /** Runs SQL on the test database as its owner, outside the service's units of work. */
  sql<T>(query: string, params?: unknown[]): Promise<T[]>;
  /** Every replay of a unit of work, in order. */
  readonly replays: ReplayReason[];
  /** How many refusals could not be audited. */
  readonly refusalsNotAudited: () => number;
  /** The configuration the use cases run with. */
  readonly config: Config;
  /** The service's log lines so far, parsed. */
  readonly logLines: () => Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function openTestUseCases(
  env: Record<string, string> = {},
  clock: Clock = systemClock,
): Promise<TestUseCases> {
  const testDatabase = await createTestDatabase();
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', ...testDatabase.env, ...env });
  const logged: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logged.push(...chunk.toString().split('\n')));
  const logger = createLogger('info', stream);
  const database = await openDatabase(config, logger);
  await database.migrate();
  const replays: ReplayReason[] = [];
  let notAudited = 0;
  const deps: UseCaseDeps = {
    orm: database.orm,
    providers: createConfiguredProviders(config.providers, clock),
    clock,
    logger,
    rules: config.consultation,
    pageTokens: createPageTokens(config.pageTokens.secret),
    onReplay: (reason) => replays.push(reason),
    onRefusalNotAudited: () => notAudited++,
  };
  return {
    deps,
    config,
    database,
    sql: async <T>(query: string, params: unknown[] = []) =>
      (await database.orm.em.fork().getConnection().execute(query, params)) as unknown as T[],
    replays,
    refusalsNotAudited: () => notAudited,
    logLines: () => logged.filter((line) => line.trim() !== '').map((line) => JSON.parse(line)),
    async stop() {
      await database.stop();
      await testDatabase.drop();
    },
  };
}

/** A caller of the use cases, as the RPC layer makes one from a verified token. */
export function callerOf(
  role: Principal['role'],
  userId: string,
  clinicId = 'clinic-1',
  extra: Partial<Caller> = {},
): Caller {
  return { principal: { role, userId, clinicId }, requestId: `test-${userId}`, ...extra };
}

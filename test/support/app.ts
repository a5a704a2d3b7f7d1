import { type App, startApp } from '../../src/app.js';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET, loadConfig } from '../../src/config.js';
import type { Role } from '../../src/domain/access.js';
import type { Clock } from '../../src/domain/ports.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, serverForSeveralCopies, type TestDatabase } from './database.js';

export interface TestApp {
  readonly app: App;
  readonly baseUrl: string;
  /** A bearer token for a caller, signed like the service expects. */
  token(role: Role, userId: string, clinicId?: string): string;
  stop(): Promise<void>;
}

/**
 * The real service on a free port, on a database of its own (see createTestDatabase),
 * logging nothing unless LOG_LEVEL says otherwise.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  /** A database to share with other instances; the caller drops it. Else one of its own. */
  shared?: TestDatabase,
  clock?: Clock,
): Promise<TestApp> {
  if (shared && !serverForSeveralCopies) {
    throw new Error('several copies of the service on one database need DATABASE_URL');
  }
  const database: TestDatabase = shared ?? (await createTestDatabase());
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    // Tests call far faster than people; the rate-limit test sets its own limit.
    RATE_LIMIT_REQUESTS: '1000000',
    // Tests send many bad tokens on purpose; the auth-failure test sets its own limit.
    AUTH_FAILURE_LIMIT: '0',
    ...database.env,
    ...env,
  });
  const app = await startApp(config, createLogger(config.logLevel), clock);
  return {
    app,
    baseUrl: `http://127.0.0.1:${app.port}`,
    token: (role, userId, clinicId = 'clinic-1') =>
      mintToken({
        secret: config.auth.jwtSecret ?? DEVELOPMENT_JWT_SECRET,
        role,
        userId,
        clinicId,
      }),
    async stop() {
      await app.stop();
      if (!shared) await database.drop();
    },
  };
}

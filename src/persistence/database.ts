import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { periodicTask } from '../video/periodic-task.js';
import { autovacuumPass } from './autovacuum.js';
import { embeddedTemplates } from './embedded-template.js';
import { ENTITIES } from './entities.js';
import { APPEND_ONLY_TABLES, grantServiceRole, roleOf } from './grants.js';
import { MIGRATIONS } from './migrations/index.js';
import { embeddedNotifications, type Notifications, serverNotifications } from './notifications.js';
import { type PoolStats, poolOptions } from './pool.js';

export interface Database {
  readonly orm: MikroORM;
  /**
   * Whether the database answers a trivial query through the pool. Never waits longer
   * than the acquire timeout: a pool that cannot hand out a connection answers false.
   */
  ping(): Promise<boolean>;
  /**
   * Readiness: true while the database answers, and through a blip shorter than the
   * grace (READINESS_DATABASE_GRACE_MS); false once no connection could be had for longer.
   */
  ready(): Promise<boolean>;
  /** The pool, and for how long the database has been out of reach (0: it answers). */
  status(): DatabaseStatus;
  /** Applies the pending migrations; answers their names. */
  migrate(): Promise<string[]>;
  /** LISTEN/NOTIFY: committed changes announced by the database (see notifications.ts). */
  readonly notifications: Notifications;
  /** The ORM's own pool, for the few statements made without it (rate limits, audit seals). */
  pool(): pg.Pool;
  stop(): Promise<void>;
}

export interface DatabaseStatus {
  readonly pool: PoolStats;
  /** Whether the database answered last time it was asked (or a connection was made). */
  readonly reachable: boolean;
  /** For how long it has not answered (0 while it answers). */
  readonly unreachableMs: number;
}

/** MikroORM options shared by the service, the migration command and the tests. */
export function ormOptions(
  clientUrl: string,
  poolSize: number,
  logger: Logger,
  /** `pg` pool options (see pool.ts); none for short-lived migration connections. */
  driverOptions: Record<string, unknown> = {},
): Options {
  return {
    clientUrl,
    // The ORM's own messages (the migrator's progress) go to the service's log.
    logger: (message) => logger.debug({ component: 'orm' }, message),
    entities: ENTITIES,
    extensions: [Migrator],
    pool: { min: 0, max: poolSize },
    driverOptions,
    migrations: {
      tableName: 'mikro_orm_migrations',
      path: 'src/persistence/migrations',
      // Listed explicitly so that the compiled service needs no file globbing.
      migrationsList: MIGRATIONS,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
    },
    // Entities are looked up by their schemas, never by reflection.
    discovery: { warnWhenNoEntities: true },
    debug: false,
  };
}

/**
 * Opens the database: `DATABASE_URL` when set, else PostgreSQL's own engine embedded
 * (PGlite, data in `DATA_DIR`) behind a local socket so the same driver and migrations
 * apply. PGlite is a single connection, so the embedded pool holds exactly one.
 *
 * The pool never keeps a broken connection (see pool.ts), gives up on a connection after
 * DATABASE_ACQUIRE_TIMEOUT_MS, and its sessions carry statement and idle-in-transaction
 * timeouts, so that no call waits on the database without bound.
 */
/**
 * The embedded engine's one connection is a queue inside this process, not a server that
 * can go away: waiting in it is how calls share it, and a busy moment must not turn into
 * UNAVAILABLE after the server's short acquire timeout.
 */
const EMBEDDED_ACQUIRE_TIMEOUT_MS = 30_000;
/**
 * How often autovacuum's rules run on the embedded engine, which has no daemon of its own
 * (autovacuum.ts). Shorter than the daemon's minute: a fresh data folder has no statistics
 * at all, and a burst of writes should not run for long on plans made for empty tables.
 */
const EMBEDDED_AUTOVACUUM_INTERVAL_MS = 10_000;

export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { readonly fromTemplate?: boolean } = {},
): Promise<Database> {
  let embedded: { server: PGLiteSocketServer; db: PGlite } | undefined;
  let clientUrl = config.database.url;
  let poolSize = config.database.poolSize;
  const { acquireTimeoutMs, readinessGraceMs } = config.database;

  if (clientUrl === undefined) {
    // A new folder that will be migrated anyway starts as a copy of a migrated one.
    if (config.database.migrateOnStart && options.fromTemplate !== false) {
      await embeddedTemplates(logger).prepare(config.database.dataDir, (dir) =>
        buildTemplate(config, dir, logger),
      );
    }
    await mkdir(config.database.dataDir, { recursive: true });
    const db = await PGlite.create(config.database.dataDir);
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 });
    await server.start();
    embedded = { server, db };
    clientUrl = `postgresql://postgres@${server.getServerConn()}/postgres`;
    poolSize = 1;
    logger.info(
      { dataDir: config.database.dataDir },
      'no DATABASE_URL: using the embedded PostgreSQL engine (PGlite)',
    );
  }

  const reachability = createReachability(readinessGraceMs);
  // The embedded engine's one connection listens itself; it is bound to the ORM below.
  let orm: MikroORM | undefined;
  const embeddedListening =
    embedded &&
    embeddedNotifications((sql) => {
      if (!orm) throw new Error('the database is not open yet');
      return orm.em.getConnection().execute(sql);
    });
  let pool: pg.Pool | undefined;
  let poolStats: () => PoolStats = () => ({ used: 0, free: 0, pending: 0, max: poolSize });
  const driverOptions = poolOptions(
    {
      max: poolSize,
      acquireTimeoutMs: embedded
        ? Math.max(acquireTimeoutMs, EMBEDDED_ACQUIRE_TIMEOUT_MS)
        : acquireTimeoutMs,
      statementTimeoutMs: config.database.statementTimeoutMs,
      idleInTransactionTimeoutMs: config.database.idleInTransactionTimeoutMs,
    },
    {
      connected: (client) => {
        reachability.answered();
        embeddedListening?.opened(client);
      },
      broken: (error) => {
        reachability.failed();
        logger.warn({ err: error }, 'database connection lost');
      },
    },
    (created, stats) => {
      pool = created;
      poolStats = stats;
    },
  );
  const opened = await MikroORM.init(ormOptions(clientUrl, poolSize, logger, driverOptions));
  orm = opened;
  if (!embedded) await warnOfAuditOwnership(opened, logger);
  const notifications = embeddedListening || serverNotifications(clientUrl, logger);

  let pinging: Promise<boolean> | undefined;
  async function ping(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // The pool gives up after the acquire timeout; the timer also bounds a query sent
      // on a connection that silently stopped answering.
      await Promise.race([
        opened.em.getConnection().execute('select 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('ping timed out')), acquireTimeoutMs);
        }),
      ]);
      reachability.answered();
      return true;
    } catch (error) {
      reachability.failed();
      logger.warn({ err: error }, 'database ping failed');
      return false;
    } finally {
      clearTimeout(timer);
      pinging = undefined;
    }
  }

  // The driver makes its pool at the first statement; one ping makes it now (and only
  // logs if the database does not answer yet), so that pool() has one to give.
  if (!pool) await ping();

  // The embedded engine has no autovacuum daemon: the service applies its rules.
  const autovacuum =
    embedded &&
    periodicTask('embedded engine autovacuum', EMBEDDED_AUTOVACUUM_INTERVAL_MS, logger, () =>
      vacuumEmbedded(opened, logger),
    );
  autovacuum?.start();

  return {
    orm: opened,
    notifications,
    pool() {
      if (!pool) throw new Error('the database pool is not open');
      return pool;
    },
    // One ping at a time: probes that arrive while one runs share its answer.
    ping: () => {
      pinging ??= ping();
      return pinging;
    },
    async ready() {
      pinging ??= ping();
      await pinging;
      return reachability.ready();
    },
    status: () => ({
      pool: poolStats(),
      reachable: reachability.reachable(),
      unreachableMs: reachability.unreachableMs(),
    }),
    async migrate() {
      if (embedded) {
        const applied = await opened.migrator.up();
        return applied.map((m) => m.name);
      }
      return migrateAsOwner(config.database.migrationUrl ?? clientUrl, clientUrl, logger);
    },
    async stop() {
      await autovacuum?.stop();
      await notifications.stop();
      await opened.close(true);
      if (embedded) {
        await embedded.server.stop();
        await embedded.db.close();
      }
    },
  };
}

/** One autovacuum pass over the embedded engine, on its one connection. */
async function vacuumEmbedded(orm: MikroORM, logger: Logger): Promise<void> {
  const run = async (sql: string) => ({ rows: await orm.em.getConnection().execute(sql) });
  for (const work of await autovacuumPass(run)) {
    logger.debug({ ...work, ms: Math.round(work.ms) }, 'embedded engine: autovacuum rules applied');
  }
}

/**
 * A migrated, closed embedded data folder at `dataDir`: the template new folders copy.
 * It keeps only the `postgres` database the service uses: initdb's `template0` and
 * `template1` are 600 of its 1,000 files, and every fresh start copies them. Nothing
 * creates databases in the embedded engine, which is all they are for.
 */
async function buildTemplate(config: Config, dataDir: string, logger: Logger): Promise<void> {
  const database = await openDatabase(
    { ...config, database: { ...config.database, dataDir } },
    logger,
    { fromTemplate: false },
  );
  try {
    await database.migrate();
  } finally {
    await database.stop();
  }
  const db = await PGlite.create(dataDir);
  try {
    // One by one: DROP DATABASE cannot run in the transaction a multi-statement exec is.
    for (const statement of [
      'alter database template0 with is_template false allow_connections true',
      'drop database template0',
      'alter database template1 with is_template false',
      'drop database template1',
      'checkpoint',
    ]) {
      await db.exec(statement);
    }
  } finally {
    await db.close();
  }
}

/**
 * Applies the migrations as the tables' owner (DATABASE_MIGRATION_URL, else DATABASE_URL's
 * role), on a connection of its own without the service's statement timeout, then gives
 * the service's role (DATABASE_URL's) what it needs when the two roles differ.
 */
export async function migrateAsOwner(
  migrationUrl: string,
  serviceUrl: string | undefined,
  logger: Logger,
): Promise<string[]> {
  const owner = await MikroORM.init(ormOptions(migrationUrl, 1, logger));
  try {
    const applied = (await owner.migrator.up()).map((m) => m.name);
    const serviceRole = serviceUrl === undefined ? '' : roleOf(serviceUrl);
    if (serviceRole !== '' && serviceRole !== roleOf(migrationUrl)) {
      const granted = await grantServiceRole(owner, serviceRole);
      logger.info(granted, 'privileges granted to the service role');
    }
    return applied;
  } finally {
    await owner.close(true);
  }
}

/**
 * Whether the database has been reachable: failures start a clock, an answer stops it.
 * Ready until the clock has run for longer than the grace.
 */
function createReachability(graceMs: number) {
  let failingSince: number | undefined;
  const now = () => performance.now();
  return {
    answered() {
      failingSince = undefined;
    },
    failed() {
      failingSince ??= now();
    },
    reachable: () => failingSince === undefined,
    unreachableMs: () => (failingSince === undefined ? 0 : Math.round(now() - failingSince)),
    ready: () => failingSince === undefined || now() - failingSince < graceMs,
  };
}

/**
 * A role that owns the audit table (or is a superuser) can disable its triggers and
 * rewrite history: say so at start. Silent before the first migration made the table.
 */
async function warnOfAuditOwnership(orm: MikroORM, logger: Logger): Promise<void> {
  try {
    const rows = await orm.em.getConnection().execute<{ table: string; risky: boolean }[]>(
      `select t.tablename as "table",
              pg_has_role(current_user, t.tableowner, 'MEMBER')
                or (select rolsuper from pg_roles where rolname = current_user) as risky
         from pg_tables t
        where t.schemaname = current_schema()
          and t.tablename in (${APPEND_ONLY_TABLES.map(() => '?').join(', ')})`,
      [...APPEND_ONLY_TABLES],
    );
    const risky = rows.filter((row) => row.risky).map((row) => row.table);
    if (risky.length > 0) {
      logger.warn(
        { tables: risky },
        'the service\'s database role owns the audit trail (or is a superuser) and could rewrite it: run it as a least-privilege role (README, "Database roles")',
      );
    }
  } catch (error) {
    logger.warn({ err: error }, 'could not check the database role');
  }
}

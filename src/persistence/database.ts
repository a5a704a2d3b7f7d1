import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';

export interface Database {
  readonly orm: MikroORM;
  /** Whether the database answers a trivial query (for readiness). */
  ping(): Promise<boolean>;
  /** Applies the pending migrations; answers their names. */
  migrate(): Promise<string[]>;
  stop(): Promise<void>;
}

/** MikroORM options shared by the service, the migration command and the tests. */
export function ormOptions(clientUrl: string, poolSize: number, logger: Logger): Options {
  return {
    clientUrl,
    // The ORM's own messages (the migrator's progress) go to the service's log.
    logger: (message) => logger.debug({ component: 'orm' }, message),
    entities: ENTITIES,
    extensions: [Migrator],
    pool: { min: 0, max: poolSize },
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
 */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  let embedded: { server: PGLiteSocketServer; db: PGlite } | undefined;
  let clientUrl = config.database.url;
  let poolSize = config.database.poolSize;

  if (clientUrl === undefined) {
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

  const orm = await MikroORM.init(ormOptions(clientUrl, poolSize, logger));

  return {
    orm,
    async ping() {
      try {
        await orm.em.getConnection().execute('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async migrate() {
      const applied = await orm.migrator.up();
      return applied.map((m) => m.name);
    },
    async stop() {
      await orm.close(true);
      if (embedded) {
        await embedded.server.stop();
        await embedded.db.close();
      }
    },
  };
}

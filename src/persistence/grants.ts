import type { MikroORM } from '@mikro-orm/postgresql';

/**
 * Tables the service may only read and append to: their rows are history. The database
 * refuses UPDATE, DELETE and TRUNCATE on them with triggers; the service's role also
 * lacks the privileges, and, not being their owner, cannot drop or disable the triggers.
 */
export const APPEND_ONLY_TABLES: readonly string[] = ['audit_entry', 'audit_seal'];

/**
 * Tables of short-lived counts the service also deletes from: the shared rate limits,
 * whose expired windows it clears (rate-limit.ts).
 */
const DISPOSABLE_TABLES: readonly string[] = ['rate_limit'];

/** The migrator's bookkeeping: the service itself never reads it. */
const MIGRATION_TABLES: readonly string[] = ['mikro_orm_migrations'];

/** What the service's role may do to every other table: no DELETE, no TRUNCATE. */
const READ_WRITE = 'select, insert, update';
const APPEND_ONLY = 'select, insert';
const DISPOSABLE = 'select, insert, update, delete';

export interface GrantSummary {
  readonly role: string;
  readonly readWrite: readonly string[];
  readonly appendOnly: readonly string[];
  readonly disposable: readonly string[];
  readonly sequences: readonly string[];
}

/**
 * Gives `role` exactly what the service needs on the current database and schema, run
 * as the tables' owner (the migration role) after the migrations: CONNECT, USAGE on the
 * schema, SELECT/INSERT/UPDATE on the tables, SELECT/INSERT only on the append-only ones,
 * DELETE too on the disposable ones, nothing on the migrator's table, USAGE on the sequences. Whatever the role held on
 * these tables before is revoked first, so the result is the same however often it runs.
 *
 * Roles belong to the whole PostgreSQL cluster, not to one database, so no migration can
 * assume one's name: this runs after every `npm run migrate` (and MIGRATE_ON_START) when
 * DATABASE_MIGRATION_URL and DATABASE_URL name different roles, and on its own with
 * `npm run migrate -- grant <role>`. It refuses a role that could rewrite the audit
 * trail anyway: a superuser, or the tables' owner or a member of it.
 */
export async function grantServiceRole(orm: MikroORM, role: string): Promise<GrantSummary> {
  const sql = orm.em.getConnection();
  const [found] = await sql.execute<{ superuser: boolean }[]>(
    'select rolsuper as superuser from pg_roles where rolname = ?',
    [role],
  );
  if (!found) {
    throw new Error(`role "${role}" does not exist: create it first (README, "Database roles")`);
  }
  if (found.superuser) {
    throw new Error(`role "${role}" is a superuser: it could rewrite the audit trail`);
  }
  const owned = await sql.execute<{ tablename: string }[]>(
    `select tablename from pg_tables
      where schemaname = current_schema() and pg_has_role(?, tableowner, 'MEMBER')`,
    [role],
  );
  if (owned.length > 0) {
    throw new Error(
      `role "${role}" owns (or is a member of the owner of) ${owned.map((t) => t.tablename).join(', ')}: it could alter them and rewrite the audit trail; run migrations as another role`,
    );
  }

  const tables = (
    await sql.execute<{ tablename: string }[]>(
      'select tablename from pg_tables where schemaname = current_schema() order by tablename',
    )
  ).map((t) => t.tablename);
  // Sequences, with the table whose column owns them (serial columns): the migrator's own
  // are left out like its table.
  const allSequences = await sql.execute<{ name: string; owner: string | null }[]>(
    `select s.relname as name, t.relname as owner
         from pg_class s
         join pg_namespace n on n.oid = s.relnamespace
         left join pg_depend d on d.objid = s.oid and d.classid = 'pg_class'::regclass
                              and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
         left join pg_class t on t.oid = d.refobjid
        where s.relkind = 'S' and n.nspname = current_schema()
        order by s.relname`,
  );
  const sequences = allSequences
    .filter((s) => s.owner === null || !MIGRATION_TABLES.includes(s.owner))
    .map((s) => s.name);
  const [{ database, schema } = { database: '', schema: '' }] = await sql.execute<
    { database: string; schema: string }[]
  >('select current_database() as database, current_schema() as schema');

  const grantee = ident(role);
  const summary = {
    role,
    readWrite: [] as string[],
    appendOnly: [] as string[],
    disposable: [] as string[],
    sequences,
  };
  await orm.em.fork().transactional(async (em) => {
    const run = (statement: string) => em.execute(statement, [], 'run');
    await run(`grant connect on database ${ident(database)} to ${grantee}`);
    await run(`grant usage on schema ${ident(schema)} to ${grantee}`);
    for (const table of tables) {
      await run(`revoke all on table ${ident(table)} from ${grantee}`);
      if (MIGRATION_TABLES.includes(table)) continue;
      const [privileges, granted] = APPEND_ONLY_TABLES.includes(table)
        ? [APPEND_ONLY, summary.appendOnly]
        : DISPOSABLE_TABLES.includes(table)
          ? [DISPOSABLE, summary.disposable]
          : [READ_WRITE, summary.readWrite];
      await run(`grant ${privileges} on table ${ident(table)} to ${grantee}`);
      granted.push(table);
    }
    for (const { name } of allSequences) {
      await run(`revoke all on sequence ${ident(name)} from ${grantee}`);
    }
    for (const sequence of sequences) {
      await run(`grant usage, select on sequence ${ident(sequence)} to ${grantee}`);
    }
  });
  return summary;
}

/** The role a PostgreSQL URL logs in as. */
export function roleOf(url: string): string {
  return decodeURIComponent(new URL(url).username);
}

/** A PostgreSQL identifier, quoted. */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

import pg from 'pg';

type Query = (this: pg.Client, ...args: unknown[]) => unknown;

/**
 * The statements sent through the pg driver (the one MikroORM uses, on either engine)
 * while `work` runs, each reduced to its kind and table (`statementKind`). Run it with
 * nothing else going on: every client's statements are recorded.
 */
export async function recordStatements(work: () => Promise<unknown>): Promise<string[]> {
  return (await recordQueries(work)).map(statementKind);
}

/** `select consultation`, `insert audit_entry`, `begin`, `with`…: enough to compare two scripts. */
export function statementKind(sql: string): string {
  const text = sql.trim().toLowerCase();
  const table =
    /^select .*? from "?(\w+)"?/s.exec(text) ??
    /^insert into "?(\w+)"?/.exec(text) ??
    /^update "?(\w+)"?/.exec(text) ??
    /^delete from "?(\w+)"?/.exec(text);
  const verb = text.split(/\s/, 1)[0] ?? '';
  return table ? `${verb} ${table[1]}` : verb;
}

/** The full text of every statement sent through the pg driver while `work` runs. */
export async function recordQueries(work: () => Promise<unknown>): Promise<string[]> {
  const prototype = pg.Client.prototype as unknown as { query: Query };
  const original = prototype.query;
  const sent: string[] = [];
  prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [query] = args;
    const text = typeof query === 'string' ? query : (query as { text?: string })?.text;
    if (text) sent.push(text);
    return original.apply(this, args);
  };
  try {
    await work();
  } finally {
    prototype.query = original;
  }
  return sent;
}

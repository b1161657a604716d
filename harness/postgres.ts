/**
 * Databases of their own on a PostgreSQL server (tests, the local cluster): created, addressed, dropped.
 * Names are the caller's and are put into SQL as they are: pass only names made of [a-z0-9_].
 */
import pg from 'pg';

const SAFE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** One connection to `serverUrl` for `fn`, closed after. */
export async function withPg<T>(serverUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The URL of database `name` on the server of `serverUrl`. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates database `name` (unless `ifMissing` and it exists) and gives its URL. */
export async function createDatabase(serverUrl: string, name: string, opts: { ifMissing?: boolean } = {}): Promise<string> {
  if (!SAFE_NAME.test(name)) throw new Error(`not a safe database name: ${name}`);
  await withPg(serverUrl, async (client) => {
    if (opts.ifMissing && (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount) return;
    await client.query(`CREATE DATABASE ${name}`);
  });
  return databaseUrl(serverUrl, name);
}

/** Drops database `name`, closing what is still connected to it. */
export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  if (!SAFE_NAME.test(name)) throw new Error(`not a safe database name: ${name}`);
  await withPg(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { AppError, ClosedError, monotonicNow } from '../core/index.js';
import type { Logger } from '../core/index.js';
import { CatalogUnavailableError, isUnreachable, toAppError } from './errors.js';

/** Something that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  /** One statement, parameters bound as $1..$n (never interpolated). */
  query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in BEGIN/COMMIT; rolls back and rethrows when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Waits for queries in flight, then releases the database. Idempotent. */
  close(): Promise<void>;
}

/** Names we splice into SQL (schema) must be plain identifiers: they cannot be bound as parameters. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertIdentifier(name: string, what: string): void {
  if (!IDENTIFIER.test(name)) {
    throw new AppError('E_CONFIG_INVALID', `${what} must match ${IDENTIFIER.source}, got ${JSON.stringify(name)}`);
  }
}

export interface Backend extends Queryable {
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

/** After a query finds the server away, new ones fail at once for this long before one may try again. */
export const CATALOG_AWAY_RETRY_MS = 1000;

/** Whether an error says the server is away: not one connection lost, nor a slow statement it cancelled. */
function foundAway(err: AppError): boolean {
  return err.code === 'E_UNAVAILABLE' && isUnreachable((err as { cause?: unknown }).cause);
}

/**
 * Wraps a backend with what both share: closed-state checks, driver errors mapped to AppError (see
 * errors.ts), tracking of work in flight so close() can wait for it, and idempotent close.
 *
 * And a fail-fast while the server is away: once a query finds it away (refused, or no answer within the
 * timeouts), every new query fails at once with E_UNAVAILABLE instead of waiting for the same
 * timeouts (up to 20 s against a server that hangs); every CATALOG_AWAY_RETRY_MS one query is let through
 * to try, and the first that succeeds ends it. What waits on the catalog (API requests, publish checks,
 * the recorder's journal) is refused or retried in milliseconds, not held.
 */
export class TrackedDb implements Db {
  readonly kind: 'pglite' | 'postgres';
  #backend: Backend;
  #log: Logger;
  #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  /** Set while the server is known to be away: when the next try may go, and whether one is in flight. */
  #away: { retryAt: number; trying: boolean; since: number; refused: number } | undefined;

  constructor(kind: 'pglite' | 'postgres', backend: Backend, logger: Logger) {
    this.kind = kind;
    this.#backend = backend;
    this.#log = logger;
  }

  query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }> {
    return this.#track(() => this.#backend.query<T>(sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#track(() => this.#backend.exec(sql));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#track(() => this.#backend.transaction(fn));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inFlight]);
      await this.#backend.end();
    })();
    return this.#closing;
  }

  #track<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError('catalog'));
    const away = this.#away;
    if (away) {
      if (away.trying || monotonicNow() < away.retryAt) {
        away.refused++;
        return Promise.reject(new CatalogUnavailableError(new Error('the catalog was found away; a query tries again shortly')));
      }
      away.trying = true;
    }
    const p = run().then(
      (out) => {
        if (this.#away) this.#back();
        return out;
      },
      (err: unknown) => {
        const e = toAppError(err);
        if (foundAway(e)) this.#found(e);
        // Any other answer (a constraint, a bad value, a slow statement cancelled) came from the server.
        else if (this.#away) this.#back();
        throw e;
      },
    );
    this.#inFlight.add(p);
    const forget = () => this.#inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  #found(err: AppError): void {
    const now = monotonicNow();
    if (this.#away) {
      this.#away.retryAt = now + CATALOG_AWAY_RETRY_MS;
      this.#away.trying = false;
      return;
    }
    this.#away = { retryAt: now + CATALOG_AWAY_RETRY_MS, trying: false, since: now, refused: 0 };
    this.#log.warn({ err }, `catalog: the server is away; queries fail at once, one tries every ${CATALOG_AWAY_RETRY_MS} ms`);
  }

  #back(): void {
    const away = this.#away;
    this.#away = undefined;
    if (away)
      this.#log.info({ awayMs: Math.round(monotonicNow() - away.since), refused: away.refused }, 'catalog: the server answers again');
  }
}

/**
 * Create a new PGlite data directory in a short-lived worker thread. initdb grows the WASM heap to
 * ~750 MB and a WASM heap never shrinks; in a worker it is released when the worker exits, so the server
 * itself only ever opens an existing directory (measured: first start 870 MB -> 470 MB RSS).
 */
function initPgliteDir(dir: string): Promise<void> {
  const url = pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href;
  const code = `import(${JSON.stringify(url)}).then(async ({ PGlite }) => { const db = new PGlite(${JSON.stringify(dir)}); await db.waitReady; await db.close(); })`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true });
    worker.once('error', (err) => reject(new AppError('E_INTERNAL', `could not create the catalog in ${dir}`, { cause: err })));
    worker.once('exit', (code) =>
      code === 0 ? resolve() : reject(new AppError('E_INTERNAL', `catalog initialisation exited with ${code}`)),
    );
  });
}

/**
 * The catalog's folder, made private (0700) when it is new, and refused when it is not private: it holds
 * every stream key's hash, the videos and their visibility. PostgreSQL itself refuses a data directory
 * that group or others can enter; one left by an older version (0755) gets the command that fixes it.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mode = (await stat(dir)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new AppError(
      'E_CONFIG_INVALID',
      `the catalog directory ${dir} has mode ${mode.toString(8).padStart(4, '0')}: other users can read it ` +
        `(it must be 0700, as PostgreSQL requires of a data directory). Make it private with: chmod -R go= '${dir}'`,
    );
  }
}

/**
 * Takes group and other bits off everything under `dir` (about 1,000 files: a few ms). PGlite unpacks its
 * initial database with the modes of its bundled archive (files 0666, folders 0755) whatever the umask,
 * and its C library's umask is a fixed 0022 with no way to set it: a file PostgreSQL writes through stdio
 * (pg_internal.init, pgstat.stat) is chmod-ed 0644. So this runs after the first start, after each open
 * and after close; in between the 0700 folder is what keeps others out, as it is for PostgreSQL.
 */
async function restrictTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      await chmod(path, 0o700);
      await restrictTree(path);
    } else if (entry.isFile()) {
      await chmod(path, 0o600);
    }
  }
}

/** Embedded PostgreSQL (WASM) with its files in `dir`. */
export async function openPglite(dir: string, logger: Logger): Promise<Db> {
  await ensurePrivateDir(dir);
  if (!existsSync(join(dir, 'PG_VERSION'))) {
    logger.info({ dir }, 'catalog: creating the embedded database (first start)');
    await initPgliteDir(dir);
  }
  const pgl = new PGlite(dir);
  await pgl.waitReady;
  await restrictTree(dir);
  logger.info({ dir }, 'catalog: PGlite ready');
  const asQueryable = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    query: async <T>(sql: string, params?: readonly unknown[]) => {
      const res = await q.query<T>(sql, params ? [...params] : undefined);
      return { rows: res.rows };
    },
    exec: async (sql: string) => {
      await q.exec(sql);
    },
  });
  return new TrackedDb(
    'pglite',
    {
      ...asQueryable(pgl),
      transaction: (fn) => pgl.transaction((tx) => fn(asQueryable(tx))),
      end: async () => {
        await pgl.close();
        await restrictTree(dir);
      },
    },
    logger,
  );
}

export interface PostgresOptions {
  url: string;
  logger: Logger;
  /** Schema to create (if missing) and put alone on search_path. */
  schema?: string;
  max?: number;
}

/** Longest a new PostgreSQL connection may take to open (a server that accepts and never answers). */
export const PG_CONNECT_TIMEOUT_MS = 10_000;
/** Longest one statement may run on the server (statement_timeout): it is cancelled there past it. */
export const PG_STATEMENT_TIMEOUT_MS = 15_000;
/**
 * Longest the client waits for one query's answer (query_timeout): a little over the statement timeout,
 * so the server's own cancel is what normally ends a slow statement; past it the connection itself is
 * taken as lost (a server that stopped answering without closing it).
 */
export const PG_QUERY_TIMEOUT_MS = 20_000;
/** Scripts (migrations) may run longer than one statement may: both limits are this for them. */
const PG_SCRIPT_TIMEOUT_MS = 600_000;

/** A `pg` Pool against a real PostgreSQL server. */
export async function openPostgres(opts: PostgresOptions): Promise<Db> {
  const { url, logger, schema } = opts;
  if (schema !== undefined) assertIdentifier(schema, 'catalog schema');
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    statement_timeout: PG_STATEMENT_TIMEOUT_MS,
    query_timeout: PG_QUERY_TIMEOUT_MS,
    // Every pooled connection starts with the schema on its search_path; no per-checkout SET needed.
    ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client losing its server must not crash the process; the next query reports the failure.
  pool.on('error', (err) => logger.warn({ err }, 'catalog: idle PostgreSQL connection failed'));

  const asQueryable = (q: pg.Pool | pg.PoolClient): Queryable => ({
    query: async <T>(sql: string, params?: readonly unknown[]) => {
      const res = await q.query(sql, params ? [...params] : undefined);
      return { rows: res.rows as T[] };
    },
    exec: async (sql: string) => {
      // Without parameters pg uses the simple protocol, which accepts several statements; they run as one
      // transaction block, in which SET LOCAL lifts the statement timeout for this script alone.
      // (query_timeout per query is read by pg, not in its types.)
      const script: pg.QueryConfig & { query_timeout: number } = {
        text: `SET LOCAL statement_timeout = ${PG_SCRIPT_TIMEOUT_MS};\n${sql}`,
        query_timeout: PG_SCRIPT_TIMEOUT_MS,
      };
      await q.query(script);
    },
  });

  const transaction = async <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const out = await fn(asQueryable(client));
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = true;
        logger.warn({ err: rollbackErr }, 'catalog: ROLLBACK failed; discarding connection');
      });
      throw err;
    } finally {
      client.release(broken);
    }
  };

  const db = new TrackedDb('postgres', { ...asQueryable(pool), transaction, end: () => pool.end() }, logger);
  try {
    if (schema !== undefined) {
      // Two processes creating the same schema at once would race on pg_namespace's unique index.
      await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`livepack.schema.${schema}`]);
        await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      });
    } else {
      await db.query('SELECT 1');
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  logger.info({ schema: schema ?? 'public' }, 'catalog: PostgreSQL ready');
  return db;
}

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { silentLogger } from '../../src/core/index.js';
import type { CatalogOptions } from '../../src/catalog/index.js';
import { openPglite, openPostgres } from '../../src/catalog/db.js';
import type { Db } from '../../src/catalog/db.js';

export const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

// Skipped only on a developer machine without PostgreSQL; in CI an unreachable server fails the suite.
export const skipPostgres = process.env.CI !== 'true' && !(await canConnect(PG_URL));

export const randomSchema = () => `catalog_test_${randomBytes(6).toString('hex')}`;

export async function dropSchemas(schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Where one backend keeps its data for the whole suite; open() may be called again to reopen it. */
export interface Backend {
  setup(): Promise<void>;
  options(): CatalogOptions;
  /** The raw database at the same place, for checks the public API does not expose. */
  openDb(): Promise<Db>;
  teardown(): Promise<void>;
}

export function pgliteBackend(): Backend {
  let dataDir = '';
  return {
    setup: async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'livepack-catalog-'));
    },
    options: () => ({ dataDir, logger: silentLogger }),
    openDb: () => openPglite(join(dataDir, 'catalog'), silentLogger),
    teardown: () => rm(dataDir, { recursive: true, force: true }),
  };
}

export function postgresBackend(): Backend {
  const schema = randomSchema();
  let dataDir = '';
  return {
    setup: async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'livepack-catalog-pg-'));
    },
    options: () => ({ databaseUrl: PG_URL, schema, dataDir, logger: silentLogger }),
    openDb: () => openPostgres({ url: PG_URL, schema, logger: silentLogger }),
    teardown: async () => {
      await dropSchemas([schema]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

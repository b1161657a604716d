/**
 * The PostgreSQL pool's time limits, on a real server: every statement runs under statement_timeout (a
 * slow one is cancelled and answers E_UNAVAILABLE, as a server too slow to answer does), while a script
 * (migrations) runs under a longer limit of its own.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { isAppError, silentLogger } from '../../src/core/index.js';
import { openPostgres, PG_STATEMENT_TIMEOUT_MS, type Db } from '../../src/catalog/db.js';
import { dropSchemas, PG_URL, randomSchema, skipPostgres } from '../helpers/catalog.js';

describe.skipIf(skipPostgres)('catalog on PostgreSQL: time limits', () => {
  const schema = randomSchema();
  const dbs: Db[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.close();
    await dropSchemas([schema]);
  });

  it('statements run under statement_timeout, scripts under their own longer one', async () => {
    const db = await openPostgres({ url: PG_URL, schema, logger: silentLogger });
    dbs.push(db);
    const { rows } = await db.query<{ statement_timeout: string }>('SHOW statement_timeout');
    expect(rows[0].statement_timeout).toBe(`${PG_STATEMENT_TIMEOUT_MS / 1000}s`);
    const inScript = await db.transaction(async (tx) => {
      await tx.exec(`CREATE TEMP TABLE limits ON COMMIT DROP AS SELECT current_setting('statement_timeout') AS v`);
      return (await tx.query<{ v: string }>('SELECT v FROM limits')).rows[0].v;
    });
    expect(inScript).toBe('10min');
    // A statement over the limit is cancelled by the server: E_UNAVAILABLE, and the pool goes on.
    const slow = await db
      .transaction(async (tx) => {
        await tx.query(`SET LOCAL statement_timeout = 200`);
        await tx.query('SELECT pg_sleep(2)');
      })
      .catch((err: unknown) => err);
    expect(isAppError(slow) && slow.code).toBe('E_UNAVAILABLE');
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});

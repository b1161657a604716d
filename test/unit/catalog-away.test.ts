/**
 * The catalog's fail-fast while its server is away (TrackedDb in src/catalog/db.ts), over a backend whose
 * answers the test decides: once a query finds the server away, new queries fail at once; one is let
 * through each CATALOG_AWAY_RETRY_MS; the first answer from the server ends it.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/index.js';
import { CATALOG_AWAY_RETRY_MS, TrackedDb, type Backend } from '../../src/catalog/db.js';

type Answer = 'ok' | 'refused' | 'reset' | 'cancelled' | 'constraint' | 'hang';

function backend() {
  const state = { answer: 'ok' as Answer, calls: 0, hanging: [] as Array<(err: Error) => void> };
  const query = <T>(): Promise<{ rows: T[] }> => {
    state.calls++;
    switch (state.answer) {
      case 'ok':
        return Promise.resolve({ rows: [] });
      case 'refused':
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
      case 'reset':
        return Promise.reject(new Error('Connection terminated unexpectedly'));
      case 'cancelled':
        return Promise.reject(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }));
      case 'constraint':
        return Promise.reject(Object.assign(new Error('duplicate key'), { code: '23505' }));
      case 'hang':
        return new Promise((_, reject) => state.hanging.push(reject));
    }
  };
  const b: Backend = {
    query,
    exec: async () => {},
    transaction: (fn) => fn({ query, exec: async () => {} }),
    end: async () => {},
  };
  return { state, db: new TrackedDb('postgres', b, silentLogger) };
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (err: { code?: string }) => err.code,
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('catalog: fail fast while the server is away', () => {
  it('after a refused query, new ones fail at once without reaching the server; one tries after the delay and ends it', async () => {
    const { state, db } = backend();
    state.answer = 'refused';
    expect(await codeOf(db.query('SELECT 1'))).toBe('E_UNAVAILABLE');
    expect(state.calls).toBe(1);
    state.answer = 'ok';
    // The server is back, but nothing asks it before the delay: these fail at once.
    expect(await codeOf(db.query('SELECT 1'))).toBe('E_UNAVAILABLE');
    expect(await codeOf(db.transaction(async (tx) => tx.query('SELECT 1')))).toBe('E_UNAVAILABLE');
    expect(state.calls).toBe(1);
    await sleep(CATALOG_AWAY_RETRY_MS + 50);
    expect(await codeOf(db.query('SELECT 1'))).toBe('ok');
    expect(await codeOf(db.query('SELECT 1'))).toBe('ok');
    expect(state.calls).toBe(3);
  });

  it('lets one query through at a time while the server hangs; its failure starts the delay again', async () => {
    const { state, db } = backend();
    state.answer = 'refused';
    await codeOf(db.query('SELECT 1'));
    await sleep(CATALOG_AWAY_RETRY_MS + 50);
    state.answer = 'hang';
    const trial = codeOf(db.query('SELECT 1'));
    // While the one try hangs, the others do not join it.
    expect(await codeOf(db.query('SELECT 1'))).toBe('E_UNAVAILABLE');
    expect(state.calls).toBe(2);
    state.hanging.shift()!(new Error('Query read timeout'));
    expect(await trial).toBe('E_UNAVAILABLE');
    state.answer = 'ok';
    expect(await codeOf(db.query('SELECT 1'))).toBe('E_UNAVAILABLE');
    expect(state.calls).toBe(2);
  });

  it('one connection lost, a statement the server cancelled, a constraint it refused: nothing fails fast after it', async () => {
    const { state, db } = backend();
    for (const answer of ['reset', 'cancelled', 'constraint'] as const) {
      state.answer = answer;
      expect(await codeOf(db.query('SELECT 1')), answer).toBe(answer === 'constraint' ? 'E_CONFLICT' : 'E_UNAVAILABLE');
      state.answer = 'ok';
      expect(await codeOf(db.query('SELECT 1')), answer).toBe('ok');
    }
    // And such an answer to the one try ends the away state, as a success does.
    state.answer = 'refused';
    await codeOf(db.query('SELECT 1'));
    await sleep(CATALOG_AWAY_RETRY_MS + 50);
    state.answer = 'constraint';
    expect(await codeOf(db.query('SELECT 1'))).toBe('E_CONFLICT');
    state.answer = 'ok';
    expect(await codeOf(db.query('SELECT 1'))).toBe('ok');
  });
});

import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER, hashSecret, newId, newStreamKey, silentLogger } from '../../src/core/index.js';
import type { AppError, LadderRung } from '../../src/core/index.js';
import { effectiveLadder, openCatalog } from '../../src/catalog/index.js';
import type { Catalog, StreamRecord } from '../../src/catalog/index.js';
import { openPostgres } from '../../src/catalog/db.js';
import { MIGRATIONS, migrate } from '../../src/catalog/migrations.js';
import { PG_URL, pgliteBackend, postgresBackend, randomSchema, skipPostgres, dropSchemas, type Backend } from '../helpers/catalog.js';

const newKeyHash = () => hashSecret(newStreamKey());

async function expectCode(p: Promise<unknown>, code: string): Promise<AppError> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as AppError | undefined;
  expect(err, `expected rejection with ${code}`).toBeDefined();
  expect(err?.code).toBe(code);
  return err as AppError;
}

function catalogSuite(kind: 'pglite' | 'postgres', makeBackend: () => Backend): void {
  const backend = makeBackend();
  let catalog: Catalog;

  beforeAll(async () => {
    await backend.setup();
    catalog = await openCatalog(backend.options());
  });

  afterAll(async () => {
    await catalog?.close();
    await backend.teardown();
  });

  const reopen = async () => {
    await catalog.close();
    catalog = await openCatalog(backend.options());
  };

  it('opens the expected backend', () => {
    expect(catalog.kind).toBe(kind);
  });

  it('creates a stream and finds it by id and by key hash', async () => {
    const keyHash = newKeyHash();
    const s = await catalog.createStream({ name: 'Main stage', profile: 'abr', record: true, keyHash });
    expect(s).toMatchObject({ name: 'Main stage', profile: 'abr', record: true, ladder: null });
    expect(s.id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(s.createdAt).toBeInstanceOf(Date);
    expect(s.updatedAt.getTime()).toBe(s.createdAt.getTime());
    expect(s.keyRotatedAt.getTime()).toBe(s.createdAt.getTime());

    expect(await catalog.getStream(s.id)).toEqual(s);
    expect(await catalog.findStreamByKeyHash(keyHash)).toEqual(s);
    expect(await catalog.getStream('nope')).toBeUndefined();
    expect(await catalog.findStreamByKeyHash(newKeyHash())).toBeUndefined();

    const plain = await catalog.createStream({ name: 'Side', profile: 'passthrough', keyHash: newKeyHash() });
    expect(plain.record).toBe(true); // recording is on unless asked otherwise
  });

  it('rejects a duplicate key hash with E_CONFLICT and keeps the cause', async () => {
    const keyHash = newKeyHash();
    await catalog.createStream({ name: 'first', profile: 'passthrough', keyHash });
    const err = await expectCode(catalog.createStream({ name: 'second', profile: 'passthrough', keyHash }), 'E_CONFLICT');
    expect((err.cause as { code?: string }).code).toBe('23505');
  });

  it('rejects invalid names and profiles with E_VALIDATION', async () => {
    await expectCode(catalog.createStream({ name: '', profile: 'abr', keyHash: newKeyHash() }), 'E_VALIDATION');
    await expectCode(catalog.createStream({ name: 'x'.repeat(201), profile: 'abr', keyHash: newKeyHash() }), 'E_VALIDATION');
    const bad = { name: 'ok', profile: 'hd' as 'abr', keyHash: newKeyHash() };
    await expectCode(catalog.createStream(bad), 'E_VALIDATION');
  });

  it('pages through streams by (createdAt, id) with an opaque cursor', async () => {
    const created: StreamRecord[] = [];
    for (let i = 0; i < 25; i++) {
      created.push(await catalog.createStream({ name: `page-${i}`, profile: 'passthrough', keyHash: newKeyHash() }));
    }
    const total = await catalog.countStreams();
    expect(total).toBeGreaterThanOrEqual(25);

    const seen: StreamRecord[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await catalog.listStreams({ limit: 7, cursor });
      pages++;
      expect(page.items.length).toBeLessThanOrEqual(7);
      seen.push(...page.items);
      if (page.nextCursor === null) break;
      expect(page.items.length).toBe(7);
      cursor = page.nextCursor;
    }
    expect(seen).toHaveLength(total);
    expect(pages).toBe(Math.ceil(total / 7));
    expect(new Set(seen.map((s) => s.id)).size).toBe(total);
    // Ordered by createdAt, then id bytewise (ties within a millisecond are common here), across the whole
    // table and so across every page boundary.
    const byKey = (a: StreamRecord, b: StreamRecord) =>
      a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    expect(seen.map((s) => s.id)).toEqual([...seen].sort(byKey).map((s) => s.id));
    const ids = new Set(created.map((s) => s.id));
    expect(seen.filter((s) => ids.has(s.id)).map((s) => s.id)).toEqual([...created].sort(byKey).map((s) => s.id));
  });

  it('rejects a garbage cursor and a bad limit with E_VALIDATION', async () => {
    await expectCode(catalog.listStreams({ limit: 5, cursor: 'garbage' }), 'E_VALIDATION');
    await expectCode(catalog.listStreams({ limit: 5, cursor: '%%%' }), 'E_VALIDATION');
    const wrongShape = Buffer.from(JSON.stringify({ t: 'yesterday', id: 1 })).toString('base64url');
    await expectCode(catalog.listStreams({ limit: 5, cursor: wrongShape }), 'E_VALIDATION');
    await expectCode(catalog.listStreams({ limit: 0 }), 'E_VALIDATION');
    await expectCode(catalog.listStreams({ limit: 2.5 }), 'E_VALIDATION');
  });

  it('updates only the given fields', async () => {
    const s = await catalog.createStream({ name: 'before', profile: 'passthrough', keyHash: newKeyHash() });
    const u = await catalog.updateStream(s.id, { name: 'after', record: true });
    expect(u).toMatchObject({ id: s.id, name: 'after', profile: 'passthrough', record: true });
    expect(u!.updatedAt.getTime()).toBeGreaterThanOrEqual(s.updatedAt.getTime());
    expect(u!.createdAt).toEqual(s.createdAt);

    const v = await catalog.updateStream(s.id, { profile: 'abr' });
    expect(v).toMatchObject({ name: 'after', profile: 'abr', record: true });
    expect(await catalog.updateStream(s.id, {})).toEqual(v);
    expect(await catalog.getStream(s.id)).toEqual(v);
    expect(await catalog.updateStream('missing', { name: 'x' })).toBeUndefined();
    await expectCode(catalog.updateStream(s.id, { name: '' }), 'E_VALIDATION');
  });

  it('stores a custom ladder as a jsonb array, highest rung first, and reads it back', async () => {
    const input: LadderRung[] = [
      { name: 'low', height: 240, videoBitrateKbps: 300, maxFrameRate: 15, encoder: 'libx264' },
      { name: 'hd', height: 720, videoBitrateKbps: 3000, maxFrameRate: 29.97, encoder: 'h264_vaapi' },
      { name: 'sd', height: 480, videoBitrateKbps: 1200, maxFrameRate: 30, encoder: 'h264_qsv' },
    ];
    const sorted = [input[1], input[2], input[0]];
    const s = await catalog.createStream({ name: 'custom ladder', profile: 'passthrough', ladder: input, keyHash: newKeyHash() });
    expect(s.ladder).toEqual(sorted);
    expect(s.profile).toBe('passthrough'); // a ladder is kept whatever the profile
    expect(await catalog.getStream(s.id)).toEqual(s);
    const listed: StreamRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await catalog.listStreams({ limit: 100, cursor });
      listed.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(listed.find((x) => x.id === s.id)).toEqual(s);
    const plain = await catalog.createStream({ name: 'default ladder', profile: 'abr', ladder: null, keyHash: newKeyHash() });
    expect(plain.ladder).toBeNull();
    expect(effectiveLadder(plain)).toBe(DEFAULT_LADDER);
    expect(effectiveLadder(s)).toEqual(sorted);

    // In the column: a jsonb array of objects (not a JSON string in jsonb, not a PostgreSQL array), and SQL NULL
    // for the default. Checked through a raw connection with the catalog closed (PGlite allows one opener).
    await catalog.close();
    const db = await backend.openDb();
    try {
      const { rows } = await db.query<{ id: string; t: string | null; h: number | null }>(
        `SELECT id, jsonb_typeof(ladder) AS t, (ladder -> 0 ->> 'height')::int AS h FROM streams WHERE id = ANY($1)`,
        [[s.id, plain.id]],
      );
      expect(Object.fromEntries(rows.map((r) => [r.id, [r.t, r.h]]))).toEqual({ [s.id]: ['array', 720], [plain.id]: [null, null] });
      await expectCode(db.query(`UPDATE streams SET ladder = '{"height": 720}'::jsonb WHERE id = $1`, [s.id]), 'E_VALIDATION');
    } finally {
      await db.close();
      catalog = await openCatalog(backend.options());
    }
    expect(await catalog.getStream(s.id)).toEqual(s);
  });

  it('updates the ladder: undefined keeps it, null goes back to the default, a bad one is refused', async () => {
    const first: LadderRung[] = [{ name: '720p', height: 720, videoBitrateKbps: 2500, maxFrameRate: 60, encoder: 'libx264' }];
    const s = await catalog.createStream({ name: 'ladder updates', profile: 'abr', ladder: first, keyHash: newKeyHash() });
    expect(s.ladder).toEqual(first);

    const renamed = await catalog.updateStream(s.id, { name: 'renamed', profile: 'passthrough' });
    expect(renamed).toMatchObject({ name: 'renamed', profile: 'passthrough', ladder: first });

    const cleared = await catalog.updateStream(s.id, { ladder: null });
    expect(cleared).toMatchObject({ name: 'renamed', profile: 'passthrough', ladder: null });
    expect((await catalog.getStream(s.id))?.ladder).toBeNull();

    const second: LadderRung[] = [
      { name: 'b', height: 360, videoBitrateKbps: 700, maxFrameRate: 30, encoder: 'libx264' },
      { name: 'a', height: 1080, videoBitrateKbps: 6000, maxFrameRate: 60, encoder: 'h264_nvenc' },
    ];
    const set = await catalog.updateStream(s.id, { ladder: second, profile: 'abr' });
    expect(set).toMatchObject({ profile: 'abr', ladder: [second[1], second[0]] });
    expect(await catalog.getStream(s.id)).toEqual(set);

    const dup = [second[0], { ...second[1], name: 'b' }];
    const err = await expectCode(catalog.updateStream(s.id, { ladder: dup }), 'E_VALIDATION');
    expect(err.message).toBe('ladder[1].name: "b" is used by another rung');
    await expectCode(catalog.createStream({ name: 'x', profile: 'abr', ladder: [], keyHash: newKeyHash() }), 'E_VALIDATION');
    expect(await catalog.getStream(s.id)).toEqual(set);
    expect(await catalog.updateStream('missing', { ladder: null })).toBeUndefined();
  });

  it('upgrades a version 1 database: existing streams get the default ladder', async () => {
    const old = makeBackend();
    await old.setup();
    try {
      const db = await old.openDb();
      const id = newId();
      try {
        expect(await migrate(db, silentLogger, MIGRATIONS.slice(0, 1))).toEqual([1]);
        const now = new Date();
        await db.query(
          `INSERT INTO streams (id, name, profile, record, key_hash, created_at, updated_at, key_rotated_at)
           VALUES ($1, 'from v1', 'passthrough', true, $2, $3, $3, $3)`,
          [id, newKeyHash(), now],
        );
      } finally {
        await db.close();
      }
      const upgraded = await openCatalog(old.options());
      try {
        expect(await upgraded.getStream(id)).toMatchObject({ name: 'from v1', profile: 'passthrough', ladder: null });
        const set = await upgraded.updateStream(id, { ladder: [...DEFAULT_LADDER].slice(1) });
        expect(set?.ladder).toEqual(DEFAULT_LADDER.slice(1));
      } finally {
        await upgraded.close();
      }
    } finally {
      await old.teardown();
    }
  });

  it('rotates the key: the old hash no longer finds the stream', async () => {
    const oldHash = newKeyHash();
    const s = await catalog.createStream({ name: 'rotating', profile: 'abr', keyHash: oldHash });
    const newHash = newKeyHash();
    const r = await catalog.rotateStreamKey(s.id, newHash);
    expect(r?.id).toBe(s.id);
    expect(r!.keyRotatedAt.getTime()).toBeGreaterThanOrEqual(s.keyRotatedAt.getTime());
    expect(await catalog.findStreamByKeyHash(oldHash)).toBeUndefined();
    expect((await catalog.findStreamByKeyHash(newHash))?.id).toBe(s.id);
    expect(await catalog.rotateStreamKey('missing', newKeyHash())).toBeUndefined();

    const other = await catalog.createStream({ name: 'other', profile: 'abr', keyHash: newKeyHash() });
    await expectCode(catalog.rotateStreamKey(other.id, newHash), 'E_CONFLICT');
  });

  it('starts, ends and lists sessions newest first', async () => {
    const s = await catalog.createStream({ name: 'sessions', profile: 'passthrough', keyHash: newKeyHash() });
    const t0 = Date.UTC(2025, 0, 1, 12, 0, 0);
    const ids = [newId(), newId(), newId()];
    for (let i = 0; i < ids.length; i++) {
      await catalog.startSession({
        id: ids[i],
        streamId: s.id,
        protocol: i === 2 ? 'whip' : 'rtmp',
        remoteAddress: `192.0.2.${i + 1}`,
        startedAt: new Date(t0 + i * 60_000),
      });
    }
    const bytes = 5_000_000_123; // past 2^32: a bigint that must come back as an exact number
    await catalog.endSession(ids[0], { endedAt: new Date(t0 + 30_000), reason: 'publisher-closed', bytes, frames: 1800 });
    // A second end keeps the first; an unknown id is a no-op.
    await catalog.endSession(ids[0], { endedAt: new Date(t0 + 99_000), reason: 'late', bytes: 1, frames: 1 });
    await catalog.endSession('unknown', { endedAt: new Date(), reason: 'x', bytes: 0, frames: 0 });

    const list = await catalog.listSessions(s.id, 10);
    expect(list.map((x) => x.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect(list[0]).toEqual({
      id: ids[2],
      streamId: s.id,
      protocol: 'whip',
      remoteAddress: '192.0.2.3',
      startedAt: new Date(t0 + 120_000),
      endedAt: null,
      endReason: null,
      bytes: 0,
      frames: 0,
    });
    expect(list[2]).toMatchObject({
      endedAt: new Date(t0 + 30_000),
      endReason: 'publisher-closed',
      bytes,
      frames: 1800,
    });
    expect(await catalog.listSessions(s.id, 2)).toHaveLength(2);

    await expectCode(
      catalog.startSession({ id: ids[0], streamId: s.id, protocol: 'rtmp', remoteAddress: '::1', startedAt: new Date() }),
      'E_CONFLICT',
    );
    await expectCode(
      catalog.startSession({ id: newId(), streamId: 'no-such-stream', protocol: 'rtmp', remoteAddress: '::1', startedAt: new Date() }),
      'E_CONFLICT',
    );
  });

  it('deletes a stream together with its sessions', async () => {
    const s = await catalog.createStream({ name: 'doomed', profile: 'abr', keyHash: newKeyHash() });
    await catalog.startSession({ id: newId(), streamId: s.id, protocol: 'rtmp', remoteAddress: '::1', startedAt: new Date() });
    expect(await catalog.listSessions(s.id, 10)).toHaveLength(1);

    expect(await catalog.deleteStream(s.id)).toBe(true);
    expect(await catalog.getStream(s.id)).toBeUndefined();
    expect(await catalog.listSessions(s.id, 10)).toEqual([]);
    expect(await catalog.deleteStream(s.id)).toBe(false);
  });

  it('runs migrations once: opening again applies nothing and records each version once', async () => {
    await reopen();
    const db = await backend.openDb();
    try {
      expect(await migrate(db, silentLogger)).toEqual([]);
      const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await db.close();
    }
  });

  it('keeps data across close and reopen', async () => {
    const keyHash = newKeyHash();
    const s = await catalog.createStream({ name: 'durable', profile: 'abr', record: true, keyHash });
    const count = await catalog.countStreams();
    await reopen();
    expect(await catalog.getStream(s.id)).toEqual(s);
    expect(await catalog.findStreamByKeyHash(keyHash)).toEqual(s);
    expect(await catalog.countStreams()).toBe(count);
  });

  it('close waits for queries in flight, is idempotent, and later calls fail with E_CLOSED', async () => {
    const closing = catalog;
    const inFlight = closing.countStreams();
    await Promise.all([closing.close(), closing.close()]);
    expect(await inFlight).toBeGreaterThan(0);
    await closing.close();
    await expectCode(closing.getStream('x'), 'E_CLOSED');
    catalog = await openCatalog(backend.options());
  });
}

describe('catalog on PGlite', () => {
  catalogSuite('pglite', pgliteBackend);
});

describe.skipIf(skipPostgres)('catalog on PostgreSQL', () => {
  catalogSuite('postgres', postgresBackend);

  it('two processes migrating the same fresh schema at once both succeed', async () => {
    const schema = randomSchema();
    const opts = { databaseUrl: PG_URL, schema, dataDir: tmpdir(), logger: silentLogger };
    try {
      const [a, b] = await Promise.all([openCatalog(opts), openCatalog(opts)]);
      const s = await a.createStream({ name: 'shared', profile: 'abr', keyHash: newKeyHash() });
      expect(await b.getStream(s.id)).toEqual(s);
      await Promise.all([a.close(), b.close()]);
      const db = await openPostgres({ url: PG_URL, schema, logger: silentLogger });
      try {
        const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM schema_migrations');
        expect(Number(rows[0].n)).toBe(MIGRATIONS.length);
      } finally {
        await db.close();
      }
    } finally {
      await dropSchemas([schema]);
    }
  });
});

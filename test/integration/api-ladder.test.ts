import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER } from '../../src/core/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgReachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

const reachable = await pgReachable();
if (!reachable && process.env.CI === 'true') throw new Error(`PostgreSQL is not reachable at ${PG_URL}; CI must test the real catalog`);

const rung = (height: number, videoBitrateKbps: number, extra: Record<string, unknown> = {}) => ({ height, videoBitrateKbps, ...extra });

/** Ladders the API must refuse, with the exact message it must answer. */
const BAD_LADDERS: Array<[string, unknown, string]> = [
  ['not an array', { height: 720, videoBitrateKbps: 2800 }, 'ladder: must be a list of rungs'],
  ['a string', '720p', 'ladder: must be a list of rungs'],
  // With coerceTypes on, a typed schema would turn these into null and reset the ladder.
  ['zero', 0, 'ladder: must be a list of rungs'],
  ['false', false, 'ladder: must be a list of rungs'],
  ['an empty string', '', 'ladder: must be a list of rungs'],
  ['empty', [], 'ladder: must have at least one rung (use profile "passthrough" for none)'],
  ['7 rungs', [1080, 900, 720, 540, 480, 360, 240].map((h) => rung(h, 1000)), 'ladder: at most 6 rungs'],
  ['a rung that is not an object', [rung(720, 2800), 480], 'ladder[1]: must be an object'],
  ['an odd height', [rung(721, 2800)], 'ladder[0].height: must be an even integer between 144 and 4320'],
  ['height 100', [rung(720, 2800), rung(100, 300)], 'ladder[1].height: must be an even integer between 144 and 4320'],
  [
    'height as a string',
    [rung(720, 2800), { height: '480', videoBitrateKbps: 1400 }],
    'ladder[1].height: must be an even integer between 144 and 4320',
  ],
  ['bitrate 50', [rung(720, 50)], 'ladder[0].videoBitrateKbps: must be an integer between 100 and 50000'],
  ['a fractional bitrate', [rung(720, 2800.5)], 'ladder[0].videoBitrateKbps: must be an integer between 100 and 50000'],
  ['frame rate 0', [rung(720, 2800, { maxFrameRate: 0 })], 'ladder[0].maxFrameRate: must be a number between 1 and 120'],
  [
    'encoder x265',
    [rung(720, 2800), rung(480, 1400, { encoder: 'x265' })],
    'ladder[1].encoder: must be one of libx264, h264_nvenc, h264_qsv, h264_vaapi',
  ],
  ['duplicate names', [rung(720, 2800, { name: 'hd' }), rung(480, 1400, { name: 'hd' })], 'ladder[1].name: "hd" is used by another rung'],
  [
    'duplicate heights',
    [rung(720, 2800, { name: 'a' }), rung(720, 1400, { name: 'b' })],
    'ladder[1].height: another rung already has height 720',
  ],
  ['an unknown field', [rung(720, 2800, { bitrate: 2800 })], 'ladder[0].bitrate: unknown field'],
  ['name "source"', [rung(720, 2800, { name: 'source' })], 'ladder[0].name: "source" is the name of the untouched top rung'],
  [
    'an upper-case name',
    [rung(720, 2800, { name: 'HD' })],
    'ladder[0].name: must be 1-32 characters of a-z, 0-9, "-" or "_", starting with a letter or digit',
  ],
];

const backends = [
  { name: 'embedded PGlite', pg: false },
  { name: 'PostgreSQL', pg: true },
];

describe.each(backends)('stream profile and ladder over the API on $name', ({ pg: usePg }) => {
  let srv: TestServer;
  let schema = '';
  const skip = usePg && !reachable;

  beforeAll(async () => {
    if (skip) return;
    const env: Record<string, string> = {};
    if (usePg) {
      // A fresh database schema per run, so runs never see each other's streams.
      schema = `api_ladder_test_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`CREATE SCHEMA ${schema}`);
      await c.end();
      const u = new URL(PG_URL);
      u.searchParams.set('options', `-c search_path=${schema}`);
      env.DATABASE_URL = u.toString();
    }
    srv = await startTestServer(env);
  });

  afterAll(async () => {
    await srv?.stop();
    if (schema) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    }
  });

  const create = async (body: Record<string, unknown>) => {
    const res = await srv.api('POST', '/api/v1/streams', { name: 'ladder test', ...body });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    return res.json;
  };

  it.skipIf(skip)('a new stream is "abr" with the default ladder', async () => {
    const s = await create({});
    expect(s.profile).toBe('abr');
    expect(s.customLadder).toBe(false);
    expect(s.ladder).toEqual(DEFAULT_LADDER);
    const got = await srv.api('GET', `/api/v1/streams/${s.id}`);
    expect(got.json).toMatchObject({ profile: 'abr', customLadder: false, ladder: DEFAULT_LADDER });
    // An explicit null on create is the default ladder too.
    expect(await create({ ladder: null })).toMatchObject({ customLadder: false, ladder: DEFAULT_LADDER });
  });

  it.skipIf(skip)('a custom ladder comes back completed and sorted by height, highest first, and persists', async () => {
    const s = await create({
      ladder: [
        rung(360, 700),
        { name: 'hd', height: 720, videoBitrateKbps: 3000, maxFrameRate: 30, encoder: 'h264_nvenc' },
        rung(540, 1800, { maxFrameRate: 29.97 }),
      ],
    });
    const expected = [
      { name: 'hd', height: 720, videoBitrateKbps: 3000, maxFrameRate: 30, encoder: 'h264_nvenc' },
      { name: '540p', height: 540, videoBitrateKbps: 1800, maxFrameRate: 29.97, encoder: 'libx264' },
      { name: '360p', height: 360, videoBitrateKbps: 700, maxFrameRate: 60, encoder: 'libx264' },
    ];
    expect(s).toMatchObject({ profile: 'abr', customLadder: true, ladder: expected });
    expect((await srv.api('GET', `/api/v1/streams/${s.id}`)).json.ladder).toEqual(expected);
    const list = await srv.api('GET', '/api/v1/streams?limit=1000');
    expect(list.json.items.find((x: { id: string }) => x.id === s.id)).toMatchObject({ customLadder: true, ladder: expected });
  });

  it.skipIf(skip)('PATCH changes profile and ladder independently; ladder null goes back to the default', async () => {
    const s = await create({ ladder: [rung(480, 1200)] });
    const custom = [{ name: '480p', height: 480, videoBitrateKbps: 1200, maxFrameRate: 60, encoder: 'libx264' }];
    expect(s.ladder).toEqual(custom);

    const pass = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { profile: 'passthrough' });
    expect(pass.status).toBe(200);
    // The ladder is kept for when the profile is "abr" again.
    expect(pass.json).toMatchObject({ id: s.id, name: 'ladder test', profile: 'passthrough', customLadder: true, ladder: custom });
    expect(pass.json.streamKey).toBeUndefined();

    const renamed = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { name: 'renamed', record: false });
    expect(renamed.json).toMatchObject({ name: 'renamed', record: false, profile: 'passthrough', customLadder: true, ladder: custom });

    const reset = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { ladder: null });
    expect(reset.status).toBe(200);
    expect(reset.json).toMatchObject({ profile: 'passthrough', customLadder: false, ladder: DEFAULT_LADDER });

    // A ladder may be set while passthrough; both together work too.
    const set = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { ladder: [rung(720, 2500), rung(240, 300)] });
    expect(set.json).toMatchObject({ profile: 'passthrough', customLadder: true });
    expect(set.json.ladder.map((r: { name: string }) => r.name)).toEqual(['720p', '240p']);
    const both = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { profile: 'abr', ladder: [rung(1080, 6000)] });
    expect(both.json).toMatchObject({ profile: 'abr', customLadder: true, ladder: [{ name: '1080p', height: 1080 }] });

    const empty = await srv.api('PATCH', `/api/v1/streams/${s.id}`, {});
    expect(empty.status).toBe(200);
    expect(empty.json).toMatchObject({ name: 'renamed', profile: 'abr', ladder: both.json.ladder });
    expect((await srv.api('GET', `/api/v1/streams/${s.id}`)).json).toMatchObject({ profile: 'abr', ladder: both.json.ladder });
  });

  it.skipIf(skip)('refuses bad ladders on create with 400 naming the field', async () => {
    for (const [what, ladder, message] of BAD_LADDERS) {
      const res = await srv.api('POST', '/api/v1/streams', { name: 'bad ladder', ladder });
      expect(res.status, what).toBe(400);
      expect(res.json, what).toEqual({ error: { code: 'E_VALIDATION', message } });
    }
  });

  it.skipIf(skip)('refuses bad ladders on PATCH with 400 naming the field and leaves the stream as it was', async () => {
    const s = await create({ profile: 'passthrough', ladder: [rung(720, 2800), rung(360, 800)] });
    for (const [what, ladder, message] of BAD_LADDERS) {
      const res = await srv.api('PATCH', `/api/v1/streams/${s.id}`, { name: 'changed', ladder });
      expect(res.status, what).toBe(400);
      expect(res.json, what).toEqual({ error: { code: 'E_VALIDATION', message } });
    }
    const got = await srv.api('GET', `/api/v1/streams/${s.id}`);
    expect(got.json).toMatchObject({ name: 'ladder test', profile: 'passthrough', customLadder: true, ladder: s.ladder });
  });

  it.skipIf(skip)('refuses an unknown profile, unknown fields and unknown streams', async () => {
    const s = await create({});
    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '/api/v1/streams', { name: 'x', profile: 'hd' }, 400, 'profile'],
      ['POST', '/api/v1/streams', { name: 'x', profile: 1 }, 400, 'profile'],
      ['PATCH', `/api/v1/streams/${s.id}`, { profile: 'hd' }, 400, 'profile'],
      ['PATCH', `/api/v1/streams/${s.id}`, { profile: null }, 400, 'profile'],
      ['PATCH', `/api/v1/streams/${s.id}`, { ladders: [] }, 400, 'additional'],
      ['PATCH', `/api/v1/streams/${s.id}`, { name: '' }, 400, 'name'],
      ['PATCH', '/api/v1/streams/no-such-stream', { profile: 'abr' }, 404, 'no-such-stream'],
    ];
    for (const [method, path, body, status, word] of cases) {
      const res = await srv.api(method, path, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.json.error.code).toBe(status === 404 ? 'E_STREAM_NOT_FOUND' : 'E_VALIDATION');
      expect(res.json.error.message).toContain(word);
    }
    for (const init of [{}, { headers: { 'content-type': 'application/json' }, body: 'null' }]) {
      const res = await fetch(`${srv.base}/api/v1/streams/${s.id}`, {
        method: 'PATCH',
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${srv.apiToken}` },
      });
      expect(res.status, JSON.stringify(init)).toBe(400);
      expect((await res.json()).error.code).toBe('E_VALIDATION');
    }
    expect((await srv.api('GET', `/api/v1/streams/${s.id}`)).json).toMatchObject({ profile: 'abr', customLadder: false });
  });

  it.skipIf(skip)('documents PATCH and the ladder in the OpenAPI spec', async () => {
    const spec = await (await fetch(`${srv.base}/docs/json`)).json();
    const patch = spec.paths['/api/v1/streams/{id}'].patch;
    expect(patch.summary).toContain('next start');
    const props = patch.requestBody.content['application/json'].schema.properties;
    expect(Object.keys(props).sort()).toEqual(['ladder', 'name', 'profile', 'record', 'visibility']);
    expect(props.profile.enum).toEqual(['abr', 'passthrough']);
    const created = spec.paths['/api/v1/streams'].post.responses['201'].content['application/json'].schema.properties;
    expect(Object.keys(created.ladder.items.properties).sort()).toEqual(['encoder', 'height', 'maxFrameRate', 'name', 'videoBitrateKbps']);
  });
});

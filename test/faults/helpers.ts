/**
 * What every fault test checks while its dependency is away: a live viewer's media playlist keeps
 * advancing, and, once it is back, a recorded run's VOD playlists and counters.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import { createDatabase, databaseUrl, dropDatabase } from '../../harness/postgres.js';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

/** The shared PostgreSQL the PostgreSQL faults use (each test its own database on it). */
export const FAULT_PG = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A test server whose catalog is a database of its own on the shared PostgreSQL, reached through a TCP
 * proxy the test cuts or stalls. Registers the describe's beforeAll/afterAll: the cleanups pushed run
 * first (in reverse), then the server stops, the proxy closes and the database is dropped.
 */
export function serverBehindPostgresProxy(dbPrefix: string): { proxy: TcpProxy; srv: TestServer; cleanups: Array<() => unknown> } {
  const db = `${dbPrefix}_${randomBytes(4).toString('hex')}`;
  const ctx = { proxy: undefined as unknown as TcpProxy, srv: undefined as unknown as TestServer, cleanups: [] as Array<() => unknown> };
  beforeAll(async () => {
    await createDatabase(FAULT_PG, db);
    const pgUrl = new URL(FAULT_PG);
    ctx.proxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const viaProxy = new URL(databaseUrl(FAULT_PG, db));
    viaProxy.port = String(ctx.proxy.port);
    ctx.srv = await startTestServer({ DATABASE_URL: viaProxy.toString(), RECONNECT_GRACE_MS: '500' });
  });
  afterAll(async () => {
    for (const c of ctx.cleanups.reverse()) await c();
    await ctx.srv?.stop();
    await ctx.proxy?.close();
    await dropDatabase(FAULT_PG, db);
  });
  return ctx;
}

/** The next media sequence number of a stream's source rendition (what a viewer polling it sees). */
export async function liveNextMsn(srv: TestServer, streamId: string): Promise<number> {
  const res = await fetch(`${srv.base}/live/${streamId}/source/index.m3u8`);
  if (res.status !== 200) throw new Error(`live playlist answered ${res.status}: ${await res.text()}`);
  return parseMediaPlaylist(await res.text()).nextMsn;
}

/**
 * Polls a stream's live playlist for `ms` as a viewer does (every 500 ms) and returns every answer: each
 * must be 200 and the playlist must advance.
 */
export async function watchLive(
  srv: TestServer,
  streamId: string,
  ms: number,
): Promise<{ statuses: number[]; first: number; last: number }> {
  const statuses: number[] = [];
  let first = -1;
  let last = -1;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t0 = Date.now();
    const res = await fetch(`${srv.base}/live/${streamId}/source/index.m3u8`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    statuses.push(res?.status ?? 0);
    if (res?.status === 200) {
      const msn = parseMediaPlaylist(await res.text()).nextMsn;
      if (first < 0) first = msn;
      last = msn;
    } else await res?.text();
    await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - t0))));
  }
  return { statuses, first, last };
}

/** What watchLive saw: every playlist answer 200, and the playlist moved on by at least `segments`. */
export function expectKeptWatching(seen: { statuses: number[]; first: number; last: number }, segments: number): void {
  expect(
    seen.statuses.filter((s) => s !== 200),
    `statuses ${seen.statuses.join(',')}`,
  ).toEqual([]);
  expect(seen.last - seen.first).toBeGreaterThanOrEqual(segments);
}

/** Waits for the stream's run to be a ready VOD asset. */
export async function readyVideo(srv: TestServer, streamId: string, timeoutMs = 20_000): Promise<any> {
  return until(async () => {
    const { json } = await srv.api('GET', `/api/v1/videos?streamId=${streamId}&type=vod`);
    const v = json?.items?.[0];
    return v?.status === 'ready' ? v : undefined;
  }, timeoutMs);
}

/** Waits for an upload's video to be packaged or failed for good: the video as it ended. */
export async function settledVideo(srv: TestServer, videoId: string, timeoutMs: number): Promise<any> {
  return until(
    async () => {
      const { json: v } = await srv.api('GET', `/api/v1/videos/${videoId}`);
      return v?.status === 'ready' || v?.status === 'failed' ? v : undefined;
    },
    timeoutMs,
    250,
  );
}

/** A VOD rendition's media playlist: its segments, and those marked EXT-X-GAP. */
export async function vodSegments(srv: TestServer, videoId: string, rendition = 'source') {
  const text = await (await fetch(`${srv.base}/vod/${videoId}/${rendition}/index.m3u8`)).text();
  const segments = parseMediaPlaylist(text).segments;
  return { segments, gaps: segments.filter((s) => s.gap).length, text };
}

/** A counter (or gauge) from /metrics, summed over its label sets. */
export async function metric(srv: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${srv.base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** /healthz's body. */
export async function health(srv: TestServer): Promise<any> {
  return (await fetch(`${srv.base}/healthz`, { signal: AbortSignal.timeout(5000) })).json();
}

/** A short H.264/AAC MP4 of test pattern and tone, made with the real FFmpeg on PATH. */
export async function makeClip(path: string, seconds: number): Promise<Buffer> {
  const { execFile } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=30', '-f', 'lavfi'];
  args.push('-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast');
  args.push('-pix_fmt', 'yuv420p', '-c:a', 'aac', path);
  await new Promise<void>((resolve, reject) =>
    execFile('ffmpeg', args, { timeout: 60_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`ffmpeg: ${stderr || err.message}`)) : resolve(),
    ),
  );
  return readFile(path);
}

/** Initiates an upload (tus, one PATCH): the initiate answer, and the PATCH's when initiate succeeded. */
export async function upload(
  srv: TestServer,
  file: Buffer,
  filename: string,
): Promise<{ initiate: { status: number; json: any; retryAfter: string | null }; patch?: { status: number; body: string } }> {
  const res = await fetch(`${srv.base}/api/v1/videos/upload/initiate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: filename, size: file.length, filename }),
    signal: AbortSignal.timeout(10_000),
  });
  const initiate = { status: res.status, json: await res.json(), retryAfter: res.headers.get('retry-after') };
  if (res.status !== 201) return { initiate };
  const put = await fetch(uploadUrlOf(srv, initiate.json.uploadUrl), {
    method: 'PATCH',
    headers: {
      authorization: `Bearer ${srv.apiToken}`,
      'tus-resumable': '1.0.0',
      'upload-offset': '0',
      'content-type': 'application/offset+octet-stream',
    },
    body: new Uint8Array(file),
    signal: AbortSignal.timeout(15_000),
  });
  return { initiate, patch: { status: put.status, body: await put.text() } };
}

/** The tus URL initiate answered, on the test server's own address (PUBLIC_BASE_URL is not set in tests). */
export function uploadUrlOf(srv: TestServer, uploadUrl: string): string {
  return `${srv.base}${new URL(uploadUrl).pathname}`;
}

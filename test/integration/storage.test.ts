/**
 * One contract, two object stores: FsStorage on a temporary folder and S3Storage against s3rver, a
 * pure-npm S3 stand-in on 127.0.0.1 and a port the OS picks. No S3 server installs here; docker-compose
 * would run MinIO (S3_ENDPOINT=http://minio:9000, S3_FORCE_PATH_STYLE=true) for the real thing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, silentLogger } from '../../src/core/index.js';
import { createStorage, FsStorage, MIN_PART_SIZE, S3Storage } from '../../src/storage/index.js';
import type { ObjectStore } from '../../src/storage/index.js';
import { S3RVER_BUCKET as BUCKET, S3RVER_CREDENTIALS, startS3rver } from '../helpers/s3rver.js';

/** Small, so that listing and batch deletes cross page boundaries with a few dozen objects. */
const PAGE_SIZE = 7;

async function expectCode(p: Promise<unknown>, code: string): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  return err as AppError;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readStream(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `size` random bytes as a stream of 64 KiB chunks, and their hash. */
function randomStream(size: number): { stream: Readable; hash: string } {
  const data = randomBytes(size);
  const chunks: Buffer[] = [];
  for (let i = 0; i < size; i += 65536) chunks.push(data.subarray(i, i + 65536));
  return { stream: Readable.from(chunks), hash: sha256(data) };
}

interface Backend {
  setup(): Promise<ObjectStore>;
  teardown(): Promise<void>;
  /** Names of the S3 commands sent so far; empty for the file store. */
  readonly commands: string[];
}

function fsBackend(): Backend & { root: () => string; parent: () => string } {
  let dir = '';
  let root = '';
  return {
    commands: [],
    root: () => root,
    parent: () => dir,
    setup: async () => {
      dir = await mkdtemp(join(tmpdir(), 'livepack-storage-'));
      root = join(dir, 'media');
      return new FsStorage(root);
    },
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
}

function s3Backend(): Backend & { endpoint: () => string } {
  let dir = '';
  let server: { endpoint: string; stop(): Promise<void> } | undefined;
  let endpoint = '';
  const commands: string[] = [];
  return {
    commands,
    endpoint: () => endpoint,
    setup: async () => {
      dir = await mkdtemp(join(tmpdir(), 'livepack-s3rver-'));
      server = await startS3rver(dir);
      endpoint = server.endpoint;
      const store = new S3Storage({
        bucket: BUCKET,
        region: 'us-east-1',
        endpoint,
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        pageSize: PAGE_SIZE,
        partSize: MIN_PART_SIZE,
      });
      store.client.middlewareStack.add(
        (next, context) => (args) => {
          commands.push(String(context.commandName));
          return next(args);
        },
        { step: 'initialize', name: 'recordCommandNames' },
      );
      await store.checkBucket();
      return store;
    },
    teardown: async () => {
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The contract every ObjectStore keeps. Each test works under its own prefix, so they share one store. */
function storageSuite(backend: Backend): () => ObjectStore {
  let store: ObjectStore;
  let n = 0;
  /** A fresh top-level prefix for one test. */
  const ns = () => `t${++n}`;

  beforeAll(async () => {
    store = await backend.setup();
  });
  afterAll(async () => {
    await store.close();
    await backend.teardown();
  });

  it('round-trips a buffer: get, getBuffer, head, with the content type and cache control kept', async () => {
    const key = `${ns()}/vod/asset/720p/seg-000001.m4s`;
    const data = randomBytes(1000);
    expect(await store.put(key, data, { contentType: 'video/mp4', cacheControl: 'public, max-age=31536000, immutable' })).toEqual({
      size: 1000,
    });
    expect(await store.getBuffer(key)).toEqual(data);
    expect(await store.head(key)).toEqual({ size: 1000, contentType: 'video/mp4', cacheControl: 'public, max-age=31536000, immutable' });
    const obj = await store.get(key);
    expect(obj).toMatchObject({ size: 1000, contentType: 'video/mp4', cacheControl: 'public, max-age=31536000, immutable' });
    expect(obj!.range).toBeUndefined();
    expect(await readStream(obj!.body)).toEqual(data);
  });

  it('gives application/octet-stream when no content type was given, and stores empty objects', async () => {
    const key = `${ns()}/empty`;
    expect(await store.put(key, Buffer.alloc(0))).toEqual({ size: 0 });
    expect(await store.head(key)).toEqual({ size: 0, contentType: 'application/octet-stream' });
    expect(await store.getBuffer(key)).toEqual(Buffer.alloc(0));
  });

  it('round-trips a stream of small chunks, and chunks given as strings', async () => {
    const key = `${ns()}/playlist.m3u8`;
    const lines = ['#EXTM3U\n', '#EXT-X-VERSION:7\n', '#EXT-X-ENDLIST\n'];
    expect(await store.put(key, Readable.from(lines), { contentType: 'application/vnd.apple.mpegurl' })).toEqual({
      size: lines.join('').length,
    });
    expect((await store.getBuffer(key))!.toString()).toBe(lines.join(''));
    expect((await store.head(key))!.contentType).toBe('application/vnd.apple.mpegurl');
  });

  it('round-trips a 12 MiB stream (on S3 as a multipart upload in 5 MiB parts)', async () => {
    const key = `${ns()}/upload/source.mp4`;
    const size = 12 * 1024 * 1024 + 12345;
    const { stream, hash } = randomStream(size);
    const before = backend.commands.length;
    expect(await store.put(key, stream, { contentType: 'video/mp4' })).toEqual({ size });
    expect(await store.head(key)).toEqual({ size, contentType: 'video/mp4' });
    expect(sha256((await store.getBuffer(key, { maxBytes: size }))!)).toBe(hash);
    if (store.kind === 's3') {
      const sent = backend.commands.slice(before);
      expect(sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
      expect(sent).toContain('CreateMultipartUploadCommand');
      expect(sent).toContain('CompleteMultipartUploadCommand');
      expect(sent).not.toContain('PutObjectCommand');
    }
  });

  it('sends a large buffer through the multipart path too', async () => {
    const key = `${ns()}/big.bin`;
    const data = randomBytes(MIN_PART_SIZE + 1);
    const before = backend.commands.length;
    expect(await store.put(key, data)).toEqual({ size: data.length });
    expect(sha256((await store.getBuffer(key))!)).toBe(sha256(data));
    if (store.kind === 's3') expect(backend.commands.slice(before)).toContain('CompleteMultipartUploadCommand');
  });

  it('overwrites: the new bytes and metadata replace the old, also when the new put gives no metadata', async () => {
    const key = `${ns()}/thumb`;
    await store.put(key, Buffer.from('first version, longer'), { contentType: 'image/png', cacheControl: 'no-cache' });
    await store.put(key, Buffer.from('second'), { contentType: 'image/jpeg' });
    expect((await store.getBuffer(key))!.toString()).toBe('second');
    expect(await store.head(key)).toEqual({ size: 6, contentType: 'image/jpeg' });
    await store.put(key, Readable.from([Buffer.from('third')]));
    expect(await store.head(key)).toEqual({ size: 5, contentType: 'application/octet-stream' });
    expect(await store.list(`${key.split('/')[0]}/`)).toEqual([key]);
  });

  it('answers undefined for a missing object, and deleting one is no error', async () => {
    const key = `${ns()}/missing/object.m4s`;
    expect(await store.get(key)).toBeUndefined();
    expect(await store.get(key, { start: 0, end: 10 })).toBeUndefined();
    expect(await store.getBuffer(key)).toBeUndefined();
    expect(await store.head(key)).toBeUndefined();
    await expect(store.delete(key)).resolves.toBeUndefined();
    expect(await store.deletePrefix(`${key}/`)).toBe(0);
    expect(await store.list(key)).toEqual([]);
  });

  it('treats a folder-like prefix of existing keys as no object', async () => {
    const p = ns();
    await store.put(`${p}/a/b`, Buffer.from('x'));
    expect(await store.head(`${p}/a`)).toBeUndefined();
    expect(await store.get(`${p}/a`)).toBeUndefined();
    await store.delete(`${p}/a`);
    expect(await store.list(`${p}/`)).toEqual([`${p}/a/b`]);
  });

  it('refuses bad keys, prefixes, options and bodies with E_VALIDATION before touching anything', async () => {
    for (const key of ['../escape', '/etc/passwd', '', 'a//b', 'a/../../b', 'a\\b', 'a\0b', 'dir/', '.hidden', 'x'.repeat(1025)]) {
      await expectCode(store.put(key, Buffer.from('x')), 'E_VALIDATION');
      await expectCode(store.get(key), 'E_VALIDATION');
      await expectCode(store.getBuffer(key), 'E_VALIDATION');
      await expectCode(store.head(key), 'E_VALIDATION');
      await expectCode(store.delete(key), 'E_VALIDATION');
    }
    for (const prefix of ['../', '/abs/', 'a/../']) {
      await expectCode(store.list(prefix), 'E_VALIDATION');
      await expectCode(store.deletePrefix(prefix), 'E_VALIDATION');
    }
    const err = await expectCode(store.deletePrefix(''), 'E_VALIDATION');
    expect(err.message).toContain('non-empty prefix');
    const key = `${ns()}/ok`;
    await expectCode(store.put(key, Buffer.from('x'), { contentType: 'text/plain\r\nX-Injected: 1' }), 'E_VALIDATION');
    await expectCode(store.put(key, Buffer.from('x'), { cacheControl: 'x'.repeat(300) }), 'E_VALIDATION');
    await expectCode(store.put(key, 'a string' as unknown as Buffer), 'E_VALIDATION');
    expect(await store.head(key)).toBeUndefined();
  });

  it('lists keys by prefix, in byte order, across many pages', async () => {
    const p = ns();
    const keys = [`${p}/a/1`, `${p}/a/2`, `${p}/a/sub/3`, `${p}/ab/4`, `${p}/a-b/5`, `${p}/b/6`];
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
    expect(await store.list(`${p}/a/`)).toEqual([`${p}/a/1`, `${p}/a/2`, `${p}/a/sub/3`]);
    expect(await store.list(`${p}/a`)).toEqual([`${p}/a-b/5`, `${p}/a/1`, `${p}/a/2`, `${p}/a/sub/3`, `${p}/ab/4`]);
    expect(await store.list(`${p}/`)).toEqual([...keys].sort());
    expect(await store.list(`${p}/a/s`)).toEqual([`${p}/a/sub/3`]);
    expect(await store.list(`${p}/zzz/`)).toEqual([]);

    // More objects than a page holds (7 on S3): listing must follow the continuation tokens.
    const many = Array.from({ length: 30 }, (_, i) => `${p}/many/seg-${String(i).padStart(3, '0')}.m4s`);
    await Promise.all(many.map((k) => store.put(k, Buffer.from('seg'))));
    const before = backend.commands.length;
    expect(await store.list(`${p}/many/`)).toEqual(many);
    if (store.kind === 's3')
      expect(backend.commands.slice(before).filter((c) => c === 'ListObjectsV2Command').length).toBe(Math.ceil(30 / PAGE_SIZE));
  });

  it('deletes one object; the rest stay', async () => {
    const p = ns();
    await store.put(`${p}/x/1`, Buffer.from('1'));
    await store.put(`${p}/x/2`, Buffer.from('2'));
    await store.delete(`${p}/x/1`);
    expect(await store.head(`${p}/x/1`)).toBeUndefined();
    expect(await store.list(`${p}/`)).toEqual([`${p}/x/2`]);
    await store.delete(`${p}/x/1`);
  });

  it('deletes everything under a prefix, in batches, and nothing else', async () => {
    const p = ns();
    const doomed = Array.from({ length: 23 }, (_, i) => `${p}/vod/asset1/${i % 2 ? '720p' : '360p'}/seg-${i}.m4s`);
    const kept = [`${p}/vod/asset10/seg-0.m4s`, `${p}/vod/asset2/seg-0.m4s`, `${p}/other`];
    await Promise.all([...doomed, ...kept].map((k) => store.put(k, Buffer.from(k), { contentType: 'video/mp4' })));
    const before = backend.commands.length;
    expect(await store.deletePrefix(`${p}/vod/asset1/`)).toBe(doomed.length);
    if (store.kind === 's3')
      expect(backend.commands.slice(before).filter((c) => c === 'DeleteObjectsCommand').length).toBe(Math.ceil(23 / PAGE_SIZE));
    expect(await store.list(`${p}/`)).toEqual([...kept].sort());
    for (const k of kept) expect((await store.getBuffer(k))!.toString()).toBe(k);
    // A partial last segment matches like S3 does: "asset1" also takes asset10.
    expect(await store.deletePrefix(`${p}/vod/asset1`)).toBe(1);
    expect(await store.list(`${p}/`)).toEqual([`${p}/other`, `${p}/vod/asset2/seg-0.m4s`]);
  });

  it('reads byte ranges, clipped to the object as HTTP does', async () => {
    const key = `${ns()}/seg.m4s`;
    const data = randomBytes(1000);
    await store.put(key, data, { contentType: 'video/mp4' });
    const mid = await store.get(key, { start: 10, end: 19 });
    expect(mid).toMatchObject({ size: 1000, contentType: 'video/mp4', range: { start: 10, end: 19 } });
    expect(await readStream(mid!.body)).toEqual(data.subarray(10, 20));
    const tail = await store.get(key, { start: 990 });
    expect(tail!.range).toEqual({ start: 990, end: 999 });
    expect(await readStream(tail!.body)).toEqual(data.subarray(990));
    const clipped = await store.get(key, { start: 995, end: 5000 });
    expect(clipped!.range).toEqual({ start: 995, end: 999 });
    expect(await readStream(clipped!.body)).toEqual(data.subarray(995));
    const last = await store.get(key, { start: 999, end: 999 });
    expect(await readStream(last!.body)).toEqual(data.subarray(999));
    // (s3rver reads an end of 0 as "to the end", so the one-byte range at 0 is not checked here.)

    await expectCode(store.get(key, { start: 1000 }), 'E_VALIDATION');
    await expectCode(store.get(key, { start: -1 }), 'E_VALIDATION');
    await expectCode(store.get(key, { start: 5, end: 4 }), 'E_VALIDATION');
    await expectCode(store.get(key, { start: 1.5 }), 'E_VALIDATION');
  });

  it('keeps concurrent puts of different keys apart', async () => {
    const p = ns();
    const bodies = Array.from({ length: 24 }, (_, i) => randomBytes(1000 + i * 997));
    await Promise.all(
      bodies.map((b, i) =>
        store.put(`${p}/c/${i}`, i % 2 ? b : Readable.from([b.subarray(0, 500), b.subarray(500)]), {
          contentType: `application/x-test-${i}`,
        }),
      ),
    );
    const got = await Promise.all(bodies.map((_, i) => store.getBuffer(`${p}/c/${i}`)));
    got.forEach((b, i) => expect(sha256(b!)).toBe(sha256(bodies[i])));
    const heads = await Promise.all(bodies.map((_, i) => store.head(`${p}/c/${i}`)));
    heads.forEach((h, i) => expect(h).toEqual({ size: bodies[i].length, contentType: `application/x-test-${i}` }));
  });

  it('is atomic: while a stream is being written, readers see the old object (or none) and never a part', async () => {
    const p = ns();
    const key = `${p}/master.m3u8`;
    const fresh = `${p}/new.m3u8`;
    const old = Buffer.from('old content');
    await store.put(key, old);

    // highWaterMark 1: 'drain' comes only once the store has taken the chunk out of the stream.
    const slow = new PassThrough({ highWaterMark: 1 });
    const slowNew = new PassThrough({ highWaterMark: 1 });
    const writing = store.put(key, slow, { contentType: 'application/vnd.apple.mpegurl' });
    const writingNew = store.put(fresh, slowNew);
    for (const s of [slow, slowNew]) {
      expect(s.write(Buffer.from('#EXTM3U\n'.repeat(1000)))).toBe(false);
      await once(s, 'drain');
    }

    expect(await store.getBuffer(key)).toEqual(old);
    expect(await store.head(key)).toEqual({ size: old.length, contentType: 'application/octet-stream' });
    expect(await store.head(fresh)).toBeUndefined();
    expect(await store.getBuffer(fresh)).toBeUndefined();
    expect(await store.list(`${p}/`)).toEqual([key]);

    slow.end(Buffer.from('#EXT-X-ENDLIST\n'));
    slowNew.end(Buffer.from('done'));
    const size = '#EXTM3U\n'.length * 1000 + '#EXT-X-ENDLIST\n'.length;
    expect(await writing).toEqual({ size });
    await writingNew;
    expect(await store.head(key)).toEqual({ size, contentType: 'application/vnd.apple.mpegurl' });
    expect((await store.getBuffer(key))!.toString().endsWith('#EXT-X-ENDLIST\n')).toBe(true);
    expect(await store.list(`${p}/`)).toEqual([key, fresh]);
  });

  it('leaves the old object and no new one when the body stream fails', async () => {
    const p = ns();
    const key = `${p}/recording.mp4`;
    await store.put(key, Buffer.from('old'));
    const failing = new PassThrough({ highWaterMark: 1 });
    const putting = store.put(key, failing);
    // Its failure may come while the test waits below: the expectation is attached at once, so the
    // rejection is never briefly unhandled.
    const putNew = expectCode(
      store.put(
        `${p}/other.mp4`,
        Readable.from(
          (async function* () {
            yield Buffer.from('partial');
            throw new Error('encoder died');
          })(),
        ),
      ),
      'E_INTERNAL',
    );
    failing.write(Buffer.alloc(100_000));
    await once(failing, 'drain');
    failing.destroy(new Error('source went away'));
    const err = await expectCode(putting, 'E_INTERNAL');
    expect(err.message).toContain('source went away');
    expect((await putNew).message).toContain('encoder died');
    expect((await store.getBuffer(key))!.toString()).toBe('old');
    expect(await store.list(`${p}/`)).toEqual([key]);
  });

  it('refuses getBuffer past maxBytes with E_LIMIT_EXCEEDED', async () => {
    const key = `${ns()}/big`;
    await store.put(key, randomBytes(2048));
    await expectCode(store.getBuffer(key, { maxBytes: 1024 }), 'E_LIMIT_EXCEEDED');
    expect(await store.getBuffer(key, { maxBytes: 2048 })).toHaveLength(2048);
  });

  return () => store;
}

describe('storage on the file system', () => {
  const backend = fsBackend();
  const current = storageSuite(backend);

  it('keeps objects as plain files under the root, and the side files hidden', async () => {
    const store = current();
    await store.put('plain/seg.m4s', Buffer.from('bytes'), { contentType: 'video/mp4' });
    expect((await stat(join(backend.root(), 'plain', 'seg.m4s'))).size).toBe(5);
    expect((await readdir(join(backend.root(), 'plain'))).sort()).toEqual(['.seg.m4s.meta', 'seg.m4s']);
    expect(await store.list('plain/')).toEqual(['plain/seg.m4s']);
  });

  it('writes into a hidden temporary file beside the object, then renames it', async () => {
    const store = current();
    const slow = new PassThrough({ highWaterMark: 1 });
    const writing = store.put('tmpcheck/obj', slow);
    slow.write(Buffer.from('part'));
    await once(slow, 'drain');
    const names = await readdir(join(backend.root(), 'tmpcheck'));
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^\.obj\.[0-9a-f]{16}\.tmp$/);
    slow.end();
    await writing;
    expect(await readdir(join(backend.root(), 'tmpcheck'))).toEqual(['obj']);
  });

  it('lets a reader that opened the old file finish it after an overwrite', async () => {
    const store = current();
    const old = randomBytes(300_000);
    await store.put('reader/obj', old);
    const reading = await store.get('reader/obj');
    await store.put('reader/obj', Buffer.from('new'));
    expect(sha256(await readStream(reading!.body))).toBe(sha256(old));
    expect((await store.getBuffer('reader/obj'))!.toString()).toBe('new');
  });

  it('removes folders left empty by deletes, up to the root but not the root', async () => {
    const store = current();
    await store.put('prune/a/b/c/obj', Buffer.from('x'), { contentType: 'text/plain' });
    await store.put('prune/keep', Buffer.from('y'));
    await store.delete('prune/a/b/c/obj');
    expect(await readdir(join(backend.root(), 'prune'))).toEqual(['keep']);
    await store.deletePrefix('prune/');
    expect(await readdir(backend.root())).not.toContain('prune');
    await stat(backend.root());
  });

  it('never writes outside the root for a bad key', async () => {
    const store = current();
    await expectCode(store.put('../outside', Buffer.from('x')), 'E_VALIDATION');
    await expectCode(store.put('/tmp/outside', Buffer.from('x')), 'E_VALIDATION');
    expect(await readdir(backend.parent())).not.toContain('outside');
    expect(await readdir('/tmp')).not.toContain('outside');
  });

  it('refuses a key that needs a folder where an object is, and the other way round, with E_CONFLICT', async () => {
    const store = current();
    await store.put('clash/a', Buffer.from('object'));
    await expectCode(store.put('clash/a/b', Buffer.from('x')), 'E_CONFLICT');
    await store.put('clash/dir/x', Buffer.from('x'));
    await expectCode(store.put('clash/dir', Buffer.from('x')), 'E_CONFLICT');
    expect(await store.list('clash/')).toEqual(['clash/a', 'clash/dir/x']);
  });

  it('createStorage picks files under DATA_DIR/media when no bucket is set', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'livepack-storage-data-'));
    try {
      const store = await createStorage({ dataDir, s3: undefined }, silentLogger);
      expect(store.kind).toBe('fs');
      await store.put('k', Buffer.from('v'));
      expect((await stat(join(dataDir, 'media', 'k'))).isFile()).toBe(true);
      await store.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('close waits for writes in flight, is idempotent, and later calls fail with E_CLOSED', async () => {
    const store = new FsStorage(join(backend.parent(), 'closing'));
    const slow = new PassThrough();
    const writing = store.put('k', slow);
    const closed = store.close();
    const order: string[] = [];
    void writing.then(() => order.push('written'));
    void closed.then(() => order.push('closed'));
    slow.end(Buffer.from('v'));
    expect(await writing).toEqual({ size: 1 });
    await Promise.all([closed, store.close()]);
    expect(order).toEqual(['written', 'closed']);
    await expectCode(store.get('k'), 'E_CLOSED');
    await expectCode(store.put('k', Buffer.from('v')), 'E_CLOSED');
  });
});

describe('storage on S3 (s3rver)', () => {
  const backend = s3Backend();
  const current = storageSuite(backend);

  it('keeps every key under the configured prefix', async () => {
    const prefixed = new S3Storage({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: backend.endpoint(),
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      prefix: 'tenant-a',
    });
    try {
      await prefixed.put('vod/x', Buffer.from('x'));
      expect(await prefixed.list('')).toEqual(['vod/x']);
      expect(await current().list('tenant-a/')).toEqual(['tenant-a/vod/x']);
      expect(await prefixed.deletePrefix('vod/')).toBe(1);
      expect(await current().list('tenant-a/')).toEqual([]);
    } finally {
      await prefixed.close();
    }
  });

  it('createStorage picks S3 when a bucket is set, with credentials from the AWS variables', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    try {
      const s3 = { bucket: BUCKET, endpoint: backend.endpoint(), region: 'us-east-1', forcePathStyle: true };
      const store = await createStorage({ dataDir: tmpdir(), s3 }, silentLogger);
      expect(store.kind).toBe('s3');
      await store.put('from-create-storage', Buffer.from('ok'));
      expect((await current().getBuffer('from-create-storage'))!.toString()).toBe('ok');
      await store.close();

      const err = await expectCode(
        createStorage({ dataDir: tmpdir(), s3: { ...s3, bucket: 'no-such-bucket' } }, silentLogger),
        'E_CONFIG_INVALID',
      );
      expect(err.message).toBe('storage: S3 bucket "no-such-bucket" does not exist');
    } finally {
      for (const [k, v] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('close is idempotent and later calls fail with E_CLOSED', async () => {
    const store = new S3Storage({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: backend.endpoint(),
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    await store.put('closing', Buffer.from('v'));
    await Promise.all([store.close(), store.close()]);
    await expectCode(store.head('closing'), 'E_CLOSED');
  });
});

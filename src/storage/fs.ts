import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { AppError } from '../core/index.js';
import {
  clipRange,
  validateDeletePrefix,
  validateKey,
  validatePrefix,
  validateMaxBytes,
  validatePutOptions,
  validateRange,
} from './keys.js';
import { adoptBody, bufferOf, collectKeys, DEFAULT_MAX_BUFFER_BYTES, Operations } from './shared.js';
import { DEFAULT_CONTENT_TYPE } from './types.js';
import type { ByteRange, ObjectBody, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** Where one key lives: the object's file, its metadata side file, and the folder holding both. */
interface Paths {
  dir: string;
  file: string;
  meta: string;
}

/** Stored beside an object when it has more than the defaults. */
interface SideMeta {
  contentType?: string;
  cacheControl?: string;
}

/** How often put() recreates its folder when a concurrent delete() pruned it between mkdir and open. */
const CREATE_ATTEMPTS = 3;
/** Keys deletePrefix() gathers before deleting them. */
const DELETE_BATCH = 1000;
/**
 * Objects are the server's own: private VOD must not be readable by other local users. Explicit, so they
 * hold whatever the process umask (main.ts sets 0077; a library user may not).
 */
const FILE_MODE = 0o600;
/** Free space below which ping() says the store is down (a few segments' worth). */
const PING_MIN_FREE_BYTES = 4 << 20;
const DIR_MODE = 0o700;

const isCode = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException | null | undefined)?.code ?? '');

/**
 * Objects as files under `root`: key "vod/a/seg1.m4s" is the file `<root>/vod/a/seg1.m4s`, so the tree
 * can be served or inspected as it is. Beside a file with a content type or cache control of its own sits
 * `.<name>.meta` (JSON); writes in progress are `.<name>.<random>.tmp`. Valid keys never start a segment
 * with a dot, so neither can clash with an object, and list() skips both.
 *
 * A put writes the temporary file, flushes it to disk and renames it over the object: rename is atomic
 * within a folder, so a reader opens either the old file or the new one, never a part. A reader that has
 * already opened the old file keeps reading it whole. The metadata side file is renamed in just after the
 * object, so an overwrite that changes the content type can show the old type for that moment.
 *
 * Unlike S3, a key cannot be both an object and a folder ("a" and "a/b"): such a put is E_CONFLICT.
 */
export class FsStorage implements ObjectStore {
  readonly kind = 'fs' as const;
  readonly root: string;
  readonly #ops = new Operations('storage');

  constructor(root: string) {
    this.root = resolve(root);
  }

  /**
   * Whether the media folder is there and writable now (for /healthz): one access(2) and one statfs(2), no
   * write. A disk with less than PING_MIN_FREE_BYTES free cannot take a segment: that is down too.
   */
  async ping(): Promise<boolean> {
    try {
      await access(this.root, constants.W_OK | constants.X_OK);
      const fs = await statfs(this.root);
      return fs.bavail * fs.bsize >= PING_MIN_FREE_BYTES;
    } catch {
      return false;
    }
  }

  async put(key: string, body: Buffer | Readable, opts?: PutOptions): Promise<{ size: number }> {
    validateKey(key);
    const meta = validatePutOptions(opts);
    checkBody(body);
    return this.#ops.run('put', key, async () => {
      const owned = adoptBody(body);
      const paths = this.#paths(key);
      const tmp = join(paths.dir, `.${basename(paths.file)}.${randomBytes(8).toString('hex')}.tmp`);
      try {
        const size = await writeDurably(paths.dir, tmp, body);
        await this.#commit(paths, tmp, meta);
        owned.release(false);
        return { size };
      } catch (err) {
        owned.release(true);
        await removeQuietly(tmp);
        throw mapConflict(key, err);
      }
    });
  }

  async get(key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    validateKey(key);
    if (range) validateRange(range);
    return this.#ops.run('get', key, () => this.#open(key, range));
  }

  async getBuffer(key: string, opts?: { maxBytes?: number }): Promise<Buffer | undefined> {
    validateKey(key);
    const maxBytes = validateMaxBytes(opts?.maxBytes ?? DEFAULT_MAX_BUFFER_BYTES);
    return this.#ops.run('getBuffer', key, async () => bufferOf(key, await this.#open(key), maxBytes));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    return this.#ops.run('head', key, async () => {
      const paths = this.#paths(key);
      const st = await stat(paths.file).catch((err: unknown) => {
        if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
        throw err;
      });
      if (!st?.isFile()) return undefined;
      return this.#info(paths, st.size);
    });
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    return this.#ops.run('delete', key, () => this.#deleteOne(key));
  }

  async deletePrefix(prefix: string): Promise<number> {
    validateDeletePrefix(prefix);
    return this.#ops.run('deletePrefix', prefix, async () => {
      // In batches, each from a fresh walk: memory stays bounded, and no walk reads folders being pruned.
      let deleted = 0;
      for (;;) {
        const batch: string[] = [];
        for await (const key of this.#walkPrefix(prefix)) {
          batch.push(key);
          if (batch.length === DELETE_BATCH) break;
        }
        for (const key of batch) await this.#deleteOne(key);
        deleted += batch.length;
        if (batch.length < DELETE_BATCH) return deleted;
      }
    });
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    return this.#ops.run('list', prefix, () => collectKeys(prefix, this.#walkPrefix(prefix)));
  }

  close(): Promise<void> {
    return this.#ops.close(() => {});
  }

  #paths(key: string): Paths {
    const file = join(this.root, ...key.split('/'));
    // validateKey already rules out every way out of the root; this is the last line should it ever change.
    if (!file.startsWith(this.root + sep)) throw new AppError('E_VALIDATION', `storage: key ${JSON.stringify(key)} is outside the root`);
    const dir = dirname(file);
    return { dir, file, meta: join(dir, `.${basename(file)}.meta`) };
  }

  async #open(key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    const paths = this.#paths(key);
    const fh = await openFile(paths.file);
    if (!fh) return undefined;
    try {
      const info = await this.#info(paths, (await fh.stat()).size);
      const clipped = range ? clipRange(key, range, info.size) : undefined;
      // The stream reads the file opened above: a put that renames a new file over it meanwhile does not
      // change what this reader gets.
      const body = fh.createReadStream(clipped ? { start: clipped.start, end: clipped.end } : {});
      return { ...info, body, ...(clipped ? { range: clipped } : {}) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async #info(paths: Paths, size: number): Promise<ObjectInfo> {
    const meta = await readSideMeta(paths.meta);
    return {
      size,
      contentType: meta.contentType ?? DEFAULT_CONTENT_TYPE,
      ...(meta.cacheControl ? { cacheControl: meta.cacheControl } : {}),
    };
  }

  /** Renames the finished file over the object, then puts its metadata beside it (or removes stale metadata). */
  async #commit(paths: Paths, tmp: string, meta: PutOptions): Promise<void> {
    const side: SideMeta = {};
    if (meta.contentType && meta.contentType !== DEFAULT_CONTENT_TYPE) side.contentType = meta.contentType;
    if (meta.cacheControl) side.cacheControl = meta.cacheControl;
    const hasMeta = Object.keys(side).length > 0;
    const metaTmp = `${tmp}.meta`;
    if (hasMeta) await writeFile(metaTmp, JSON.stringify(side), { flag: 'wx', mode: FILE_MODE });
    try {
      await rename(tmp, paths.file);
      if (hasMeta) await rename(metaTmp, paths.meta);
      else await rm(paths.meta, { force: true });
    } catch (err) {
      await removeQuietly(metaTmp);
      throw err;
    }
  }

  async #deleteOne(key: string): Promise<void> {
    const paths = this.#paths(key);
    try {
      await unlink(paths.file);
    } catch (err) {
      // Missing, or a folder rather than an object: either way there is no object to delete.
      if (!isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw err;
    }
    await rm(paths.meta, { force: true });
    await this.#pruneEmptyFolders(paths.dir);
  }

  /** Removes `dir` and its parents while they are empty, stopping at the root. rmdir never removes a non-empty folder. */
  async #pruneEmptyFolders(dir: string): Promise<void> {
    while (dir.startsWith(this.root + sep)) {
      try {
        await rmdir(dir);
      } catch (err) {
        if (isCode(err, 'ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR', 'EBUSY')) return;
        throw err;
      }
      dir = dirname(dir);
    }
  }

  /** Keys starting with `prefix`: the folder the prefix names, filtered by its last (partial) segment. */
  async *#walkPrefix(prefix: string): AsyncGenerator<string> {
    const cut = prefix.lastIndexOf('/');
    const folderKey = cut < 0 ? '' : prefix.slice(0, cut + 1);
    const start = prefix.slice(cut + 1);
    yield* this.#walk(folderKey, (name) => name.startsWith(start));
  }

  /** Every object under the folder for `folderKey` ('' or ending in '/'), depth first. */
  async *#walk(folderKey: string, accept: (name: string) => boolean = () => true): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, ...folderKey.split('/')), { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
      throw err;
    }
    for (const entry of entries) {
      // Dot files are ours (writes in progress, metadata); symlinks and the like are not objects we made.
      if (entry.name.startsWith('.') || !accept(entry.name)) continue;
      if (entry.isDirectory()) yield* this.#walk(`${folderKey}${entry.name}/`);
      else if (entry.isFile()) yield `${folderKey}${entry.name}`;
    }
  }
}

/** Cleans up after a failed put; a failure here must not hide the error that made the put fail. */
async function removeQuietly(file: string): Promise<void> {
  await rm(file, { force: true }).catch(() => {});
}

function checkBody(body: unknown): void {
  if (!Buffer.isBuffer(body) && !(body instanceof Readable)) {
    throw new AppError('E_VALIDATION', 'storage: body must be a Buffer or a Readable stream');
  }
}

/** Opens `file` for reading; undefined when there is no such object (missing, or a folder). */
async function openFile(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
    throw err;
  }
  // Opening a folder for reading succeeds on Linux; it is still not an object.
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    return undefined;
  }
  return fh;
}

async function readSideMeta(file: string): Promise<SideMeta> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return {};
    throw err;
  }
  const parsed = JSON.parse(text) as SideMeta;
  return {
    ...(typeof parsed.contentType === 'string' ? { contentType: parsed.contentType } : {}),
    ...(typeof parsed.cacheControl === 'string' ? { cacheControl: parsed.cacheControl } : {}),
  };
}

/** Creates `tmp` (and its folder), writes `body` into it, and flushes it to disk; resolves with the size. */
async function writeDurably(dir: string, tmp: string, body: Buffer | Readable): Promise<number> {
  const fh = await createExclusive(dir, tmp);
  try {
    let size = 0;
    if (Buffer.isBuffer(body)) {
      await writeFully(fh, body);
      size = body.length;
    } else {
      for await (const chunk of body as AsyncIterable<unknown>) {
        const buf = toBuffer(chunk);
        await writeFully(fh, buf);
        size += buf.length;
      }
    }
    // Without this a crash soon after the rename can leave an empty or partial file under the final name.
    await fh.datasync();
    return size;
  } finally {
    await fh.close();
  }
}

async function createExclusive(dir: string, tmp: string): Promise<FileHandle> {
  for (let attempt = 1; ; attempt++) {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    try {
      return await open(tmp, 'wx', FILE_MODE);
    } catch (err) {
      // A delete() of the last object in `dir` may prune it between our mkdir and open: make it again.
      if (!isCode(err, 'ENOENT') || attempt === CREATE_ATTEMPTS) throw err;
    }
  }
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await fh.write(buf, offset, buf.length - offset);
    offset += bytesWritten;
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new AppError('E_VALIDATION', 'storage: a body stream must carry bytes (Buffer, Uint8Array or string chunks)');
}

/** A key that needs a folder where an object is, or the other way round. */
function mapConflict(key: string, err: unknown): unknown {
  if (isCode(err, 'ENOTDIR', 'EEXIST', 'EISDIR')) {
    return new AppError('E_CONFLICT', `storage: ${JSON.stringify(key)} clashes with an object or folder of the same name`, { cause: err });
  }
  return err;
}

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError, monotonicNow } from '../core/index.js';
import type { Catalog, VideoRecord, Visibility } from '../catalog/index.js';
import type { ByteRange, ObjectInfo, ObjectStore } from '../storage/index.js';
import { validateKey } from '../storage/index.js';
import { assetKey, contentTypeOf } from '../vod/index.js';
import type { PlaybackTokens, TokenSubject } from './playback-tokens.js';
import { ID_RE } from './schemas.js';

/** How long a looked-up visibility or video is believed. A PATCH or DELETE through this server forgets it at once. */
const CACHE_MS = 5000;
/** Entries kept; past it the oldest go (ids from outside must not grow the map). */
const CACHE_MAX = 10_000;
/**
 * How long a request waits for a look-up that has a value from before to fall back on: past it that value
 * answers and the look-up goes on (a catalog that hangs rather than refuses would otherwise hold every
 * viewer of a known stream for the whole query timeout, 20 s).
 */
const STALE_WAIT_MS = 1000;

class TtlCache<T> {
  readonly #map = new Map<string, { value: T; until: number }>();
  readonly #inflight = new Map<string, Promise<T>>();

  /** `keep` says whether a loaded value may be cached (a value about to change must not be). */
  async get(key: string, load: () => Promise<T>, keep: (value: T) => boolean = () => true): Promise<T> {
    const hit = this.#map.get(key);
    if (hit && hit.until > monotonicNow()) return hit.value;
    const p = this.#load(key, load, keep);
    if (!hit) return p;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(hit.value), STALE_WAIT_MS)));
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  /** The one look-up of `key` in flight, started if there is none. */
  #load(key: string, load: () => Promise<T>, keep: (value: T) => boolean): Promise<T> {
    let p = this.#inflight.get(key);
    if (!p) {
      // One load per key at a time: a burst of segment requests for one asset makes one query.
      // The catalog away (E_UNAVAILABLE): the last value known goes on serving, so viewers of what is
      // live or ready keep watching through an outage of PostgreSQL (nothing can change it meanwhile here).
      p = load()
        .catch((err: unknown) => {
          const stale = this.#map.get(key);
          if (stale && isAppError(err) && err.code === 'E_UNAVAILABLE') return stale.value;
          throw err;
        })
        .finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
      p.then(
        (value) => {
          this.#map.delete(key);
          if (!keep(value)) return;
          this.#map.set(key, { value, until: monotonicNow() + CACHE_MS });
          if (this.#map.size > CACHE_MAX) this.#map.delete(this.#map.keys().next().value!);
        },
        () => {},
      );
    }
    return p;
  }

  forget(key: string): void {
    this.#map.delete(key);
  }
}

/** What playback reads of the catalog: a stream's visibility, a video's record. */
export interface PlaybackCatalog {
  getStream: Catalog['getStream'];
  readonly videos: Pick<Catalog['videos'], 'get'>;
}

/** Where the files of VOD assets are read from. */
export type AssetFiles = Pick<ObjectStore, 'get' | 'head'>;

/**
 * Who may fetch what: public and unlisted content is open to anyone; private content needs a playback
 * token for that asset or stream in the path. Looks are cached briefly (every part request of a private
 * live stream passes here) and forgotten when the API changes a visibility.
 */
export class PlaybackAccess {
  readonly #catalog: PlaybackCatalog;
  readonly #tokens: PlaybackTokens;
  readonly #streams = new TtlCache<Visibility | undefined>();
  readonly #videos = new TtlCache<VideoRecord | undefined>();

  constructor(catalog: PlaybackCatalog, tokens: PlaybackTokens) {
    this.#catalog = catalog;
    this.#tokens = tokens;
  }

  get tokens(): PlaybackTokens {
    return this.#tokens;
  }

  /**
   * Only ready VOD assets and unknown ids are cached: the former change only through PATCH and DELETE
   * here, which forget them; the latter cost a query each otherwise (anyone can ask for random ids). A live
   * run or an upload being packaged is read afresh, so it plays the moment it is marked ready (on any node).
   */
  video(id: string): Promise<VideoRecord | undefined> {
    return this.#videos.get(
      id,
      () => this.#catalog.videos.get(id),
      (v) => v === undefined || v.status === 'ready',
    );
  }

  forgetVideo(id: string): void {
    this.#videos.forget(id);
  }

  forgetStream(id: string): void {
    this.#streams.forget(id);
  }

  /**
   * Throws E_FORBIDDEN unless `token` opens `subject` (or the content is not private). With a token,
   * returns the seconds it has left: answers under it must not outlive it in any cache.
   */
  check(visibility: Visibility, subject: TokenSubject, token: string | undefined): number | undefined {
    if (visibility !== 'private' && token === undefined) return undefined;
    if (token === undefined)
      throw new AppError('E_FORBIDDEN', 'this content is private: play it through a playback token URL (/t/<token>/...)');
    const why = this.#tokens.check(token, subject);
    if (why) throw new AppError('E_FORBIDDEN', `playback token refused: ${why.replace('-', ' ')}`);
    return Math.max(0, Math.floor((this.#tokens.expiryOf(token) - this.#tokens.now()) / 1000));
  }

  /** For /live/<id>/...: a stream nobody knows is let through (the origin answers 404 itself). */
  async checkLive(streamId: string, token: string | undefined): Promise<number | undefined> {
    const visibility = await this.#streams.get(streamId, async () => (await this.#catalog.getStream(streamId))?.visibility);
    return this.check(visibility ?? 'public', { kind: 's', id: streamId }, token);
  }
}

/**
 * Cache-Control for an answer under a playback token: no cache (the browser's or a CDN's, which keys on
 * the path and so on the token) may keep it past the token's expiry. Never `immutable` then.
 */
export function capCacheControl(value: string | undefined, secondsLeft: number | undefined): string | undefined {
  if (secondsLeft === undefined || value === undefined) return value;
  const m = /max-age=(\d+)/.exec(value);
  if (!m) return value;
  const maxAge = Math.min(Number(m[1]), secondsLeft);
  return `${value.startsWith('private') ? 'private' : 'public'}, max-age=${maxAge}`;
}

/**
 * Parses one `Range: bytes=...` header; a suffix range needs the size. A header we do not serve
 * (malformed, several ranges, another unit) is ignored: the whole object is sent, as RFC 9110 allows.
 */
export function parseRange(
  header: string | undefined,
  size: () => Promise<number | undefined>,
): Promise<ByteRange | undefined> | ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return size().then((n) => (n === undefined ? undefined : { start: Math.max(0, n - suffix), end: n - 1 }));
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? undefined : Number(m[2]);
  if (end !== undefined && end < start) return undefined;
  return { start, end };
}

/**
 * A parsed range fitted to an object of `size` bytes (RFC 9110 §14.1.2): "If the last-pos value is
 * absent, or if the value is greater than or equal to the current length of the representation data, the
 * byte range is interpreted as the remainder of the representation". A first-pos at or past the end is
 * unsatisfiable (undefined: 416), and so is any range of an empty object.
 */
export function fitRange(range: ByteRange, size: number): { start: number; end: number } | undefined {
  if (range.start >= size) return undefined;
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
}

const NOT_FOUND = { error: { code: 'E_NOT_FOUND', message: 'no such file in this asset' } };

/** The headers of one asset file's answer: the same for GET and HEAD. */
function fileHeaders(
  reply: FastifyReply,
  file: string,
  info: ObjectInfo,
  range: { start: number; end: number } | undefined,
  tokenSecondsLeft: number | undefined,
): void {
  reply
    .header('content-type', contentTypeOf(file))
    .header('accept-ranges', 'bytes')
    .header('access-control-allow-origin', '*')
    .header('access-control-expose-headers', 'content-length, content-range');
  const cacheControl = capCacheControl(info.cacheControl, tokenSecondsLeft);
  if (cacheControl) reply.header('cache-control', cacheControl);
  if (range) {
    reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${info.size}`)
      .header('content-length', range.end - range.start + 1);
  } else reply.header('content-length', info.size);
}

/**
 * Serves one object of a ready VOD asset from storage, with ranges. HEAD answers what GET would, without
 * the body (RFC 9110 §9.3.2) and without reading the object. One range is served; several, or a malformed
 * header, get the whole file (200), which RFC 9110 allows.
 */
async function sendAssetFile(
  store: AssetFiles,
  videoId: string,
  file: string,
  req: FastifyRequest,
  reply: FastifyReply,
  tokenSecondsLeft: number | undefined,
) {
  let key: string;
  try {
    key = validateKey(assetKey(videoId, file));
  } catch {
    return reply.code(404).send(NOT_FOUND);
  }
  const isHead = req.method === 'HEAD';
  const header = req.headers.range;
  let range: { start: number; end: number } | undefined;
  // A whole GET learns the size with the bytes; HEAD and ranges need it before them.
  if (isHead || header) {
    const info = await store.head(key);
    if (!info) return reply.code(404).send(NOT_FOUND);
    const asked = await parseRange(header, async () => info.size);
    range = asked && fitRange(asked, info.size);
    if (asked && !range)
      return reply
        .code(416)
        .header('content-range', `bytes */${info.size}`)
        .send({ error: { code: 'E_VALIDATION', message: 'the range starts past the end of the file' } });
    if (isHead) {
      fileHeaders(reply, file, info, range, tokenSecondsLeft);
      return reply.send();
    }
  }
  const obj = await store.get(key, range);
  if (!obj) return reply.code(404).send(NOT_FOUND);
  fileHeaders(reply, file, obj, obj.range, tokenSecondsLeft);
  return reply.send(obj.body);
}

export interface PlaybackRouteDeps {
  readonly access: PlaybackAccess;
  readonly store: AssetFiles;
}

/**
 * /vod/<id>/... and /t/<token>/vod/<id>/...: files of ready VOD assets. A video that is not ready (live,
 * being packaged, failed) has no files here: 404. Private ones need the token form: 403 otherwise.
 */
export function registerVodRoutes(app: FastifyInstance, deps: PlaybackRouteDeps): void {
  const handler = async (req: FastifyRequest<{ Params: { id: string; token?: string; '*': string } }>, reply: FastifyReply) => {
    const { id, token } = req.params;
    if (!ID_RE.test(id)) return reply.code(404).send(NOT_FOUND);
    const video = await deps.access.video(id);
    if (!video || video.type !== 'vod' || video.status !== 'ready') {
      // One answer for "unknown" and "not playable yet": it tells nothing about private videos.
      return reply.code(404).send({ error: { code: 'E_NOT_FOUND', message: `no playable video ${id}` } });
    }
    const secondsLeft = deps.access.check(video.visibility, { kind: 'v', id }, token);
    return sendAssetFile(deps.store, id, req.params['*'], req, reply, secondsLeft);
  };
  for (const url of ['/vod/:id/*', '/t/:token/vod/:id/*']) {
    // HEAD is declared, not left to fastify's exposed HEAD route: that one sets Content-Length from the
    // body it is given, and sendAssetFile gives a HEAD none (it does not read the object for it).
    app.route({ method: ['GET', 'HEAD'], url, schema: { hide: true }, logLevel: 'warn', handler });
  }
  app.options('/vod/*', { schema: { hide: true }, logLevel: 'warn' }, corsPreflight);
  app.options('/t/*', { schema: { hide: true }, logLevel: 'warn' }, corsPreflight);
}

export async function corsPreflight(_req: FastifyRequest, reply: FastifyReply) {
  return reply
    .code(204)
    .headers({
      'access-control-allow-origin': '*',
      'access-control-allow-methods': 'GET, HEAD, OPTIONS',
      'access-control-allow-headers': 'range, if-none-match, if-modified-since',
      'access-control-max-age': '86400',
    })
    .send();
}

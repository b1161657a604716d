/**
 * The live origin: LL-HLS over HTTP without a framework, a path below /live/<streamId>/ and its query
 * mapped to a status, headers (caching, CORS) and a body from the live packager.
 */
import { AppError, isAppError } from '../core/index.js';
import type { RenditionReport } from './playlist.js';

export interface OriginResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array;
}

/** One rendition as the origin reads it (packager's LiveRendition; the cluster's view of a shared store). */
export interface OriginRendition {
  /** The playlist lists a complete segment. */
  readonly hasSegments: boolean;
  /**
   * The media playlist once it holds `msn`/`part` (blocking reload), held up to holdMs; at once without msn.
   * Rejects with E_PLAYLIST_TOO_FAR_AHEAD for a request the window cannot reach soon.
   */
  playlist(
    q: { msn?: number; part?: number; skip?: boolean },
    reports: () => readonly RenditionReport[],
    holdMs: number,
    signal?: AbortSignal,
  ): Promise<string>;
  /** A file's bytes by name; the part the preload hint names is waited for (up to holdMs). */
  file(name: string, holdMs: number, signal?: AbortSignal): Promise<{ readonly bytes: Uint8Array } | undefined>;
}

/** One stream run as the origin reads it (packager's StreamPackage). */
export interface OriginPackage {
  /** Resolves once the stream can be played, or it ended, or after timeoutMs. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  multivariant(): string | undefined;
  rendition(name: string): OriginRendition | undefined;
  /** EXT-X-RENDITION-REPORT of every other rendition. */
  reportsFor(name: string): readonly RenditionReport[];
}

/**
 * Where the origin finds a live stream: the packager of this node (LivePackager), or a view of a shared
 * store that another node writes. A promise only where the answer needs I/O.
 */
export interface OriginPackages {
  get(streamId: string): OriginPackage | undefined | Promise<OriginPackage | undefined>;
}

export interface OriginOptions {
  /** Longest a blocking playlist request or a preload-hint part is held, ms. */
  readonly holdMs: number;
  /** Longest a first playlist request waits for a stream's first segment, ms. */
  readonly startupWaitMs: number;
}

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
/** Parts, segments and init segments never change under their name (names carry the run and session). */
export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** Media playlists change every part: caches must revalidate (ARCHITECTURE: not cached past one part). */
export const CACHE_MEDIA_PLAYLIST = 'no-cache';
export const CACHE_MULTIVARIANT = 'public, max-age=2';
export const CACHE_ERROR = 'no-store';

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'content-length, age, date',
} as const;

const RENDITION = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const FILE = /^[A-Za-z0-9_]{1,64}\.(m4s|mp4)$/;

function text(status: number, body: string, cache = CACHE_ERROR): OriginResponse {
  return { status, headers: { ...CORS, 'content-type': 'text/plain; charset=utf-8', 'cache-control': cache }, body };
}

function parseIndex(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new AppError('E_PLAYLIST_BAD_REQUEST', `${name} must be a non-negative integer`);
  return Number(value);
}

/**
 * Serves the live window over HTTP without knowing the framework: `handle` maps a path below
 * /live/<streamId>/ and its query to a status, headers and a body.
 */
export class LiveOrigin {
  readonly #packages: OriginPackages;
  readonly #opts: OriginOptions;

  constructor(packages: OriginPackages, opts: OriginOptions) {
    this.#packages = packages;
    this.#opts = opts;
  }

  async handle(streamId: string, path: string, query: Record<string, string | undefined>, signal?: AbortSignal): Promise<OriginResponse> {
    try {
      return await this.#handle(streamId, path, query, signal);
    } catch (err) {
      if (!isAppError(err)) throw err;
      const answer = text(err.status, `${err.code}: ${err.message}\n`);
      // A dependency that is down (the shared store, for a stream another node ingests): ask again shortly.
      return err.status === 503 ? { ...answer, headers: { ...answer.headers, 'retry-after': '1' } } : answer;
    }
  }

  async #handle(streamId: string, path: string, query: Record<string, string | undefined>, signal?: AbortSignal): Promise<OriginResponse> {
    const found = this.#packages.get(streamId);
    // The local packager answers synchronously: no await then, so a held request is registered at once.
    const pkg = found instanceof Promise ? await found : found;
    if (!pkg) return text(404, 'stream is not live\n');
    if (path === 'master.m3u8') {
      await pkg.whenReady(this.#opts.startupWaitMs, signal);
      const body = pkg.multivariant();
      if (!body) return text(503, 'stream has no media yet\n');
      return { status: 200, headers: { ...CORS, 'content-type': PLAYLIST_TYPE, 'cache-control': CACHE_MULTIVARIANT }, body };
    }
    const slash = path.indexOf('/');
    const renditionName = path.slice(0, slash);
    const file = path.slice(slash + 1);
    if (slash < 0 || !RENDITION.test(renditionName)) return text(404, 'not found\n');
    const rendition = pkg.rendition(renditionName);
    if (!rendition) return text(404, 'no such rendition\n');

    if (file === 'index.m3u8') {
      const msn = parseIndex('_HLS_msn', query._HLS_msn);
      const part = parseIndex('_HLS_part', query._HLS_part);
      // "A Client MUST NOT request a Playlist with _HLS_part unless it also has _HLS_msn."
      if (part !== undefined && msn === undefined) throw new AppError('E_PLAYLIST_BAD_REQUEST', '_HLS_part needs _HLS_msn');
      const skipValue = query._HLS_skip;
      if (skipValue !== undefined && skipValue !== 'YES' && skipValue !== 'v2') {
        throw new AppError('E_PLAYLIST_BAD_REQUEST', '_HLS_skip must be YES or v2');
      }
      if (!rendition.hasSegments) await pkg.whenReady(this.#opts.startupWaitMs, signal);
      const body = await rendition.playlist(
        { msn, part, skip: skipValue !== undefined },
        () => pkg.reportsFor(renditionName),
        this.#opts.holdMs,
        signal,
      );
      return { status: 200, headers: { ...CORS, 'content-type': PLAYLIST_TYPE, 'cache-control': CACHE_MEDIA_PLAYLIST }, body };
    }
    if (!FILE.test(file)) return text(404, 'not found\n');
    const got = await rendition.file(file, this.#opts.holdMs, signal);
    if (!got) return text(404, 'no such file in the live window\n');
    return { status: 200, headers: { ...CORS, 'content-type': 'video/mp4', 'cache-control': CACHE_IMMUTABLE }, body: got.bytes };
  }
}

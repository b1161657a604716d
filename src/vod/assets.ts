/**
 * A VOD asset in storage, whether recorded live or packaged from an upload:
 *
 *   videos/<videoId>/master.m3u8                  multivariant playlist
 *   videos/<videoId>/poster.jpg                   poster from a keyframe
 *   videos/<videoId>/<rendition>/index.m3u8       VOD media playlist
 *   videos/<videoId>/<rendition>/<init>.mp4       init segment(s): one per publish session
 *   videos/<videoId>/<rendition>/<segment>.m4s    CMAF segments, exactly as they were packaged
 *
 * Playlists use relative URIs only, so the same objects play at /vod/<id>/... and /t/<token>/vod/<id>/...
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RenditionInfo, VideoSegmentRecord } from '../catalog/index.js';
import { renderMultivariantPlaylist, renderVodPlaylist } from '../packager/index.js';
import type { ObjectStore } from '../storage/index.js';
import { AppError } from '../core/index.js';
import { execTool } from '../process/index.js';

/** Longest title and description of a video, recorded or uploaded. */
export const MAX_TITLE_LENGTH = 200;
export const MAX_DESCRIPTION_LENGTH = 5000;

export const MASTER_PLAYLIST = 'master.m3u8';
export const MEDIA_PLAYLIST = 'index.m3u8';
export const POSTER = 'poster.jpg';

/** Segments and inits never change once written; playlists of a ready asset change only on a new packaging. */
export const CACHE_MEDIA = 'public, max-age=31536000, immutable';
export const CACHE_PLAYLIST = 'public, max-age=60';

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  m3u8: 'application/vnd.apple.mpegurl',
  mp4: 'video/mp4',
  m4s: 'video/iso.segment',
  jpg: 'image/jpeg',
};

export function videoPrefix(videoId: string): string {
  return `videos/${videoId}/`;
}

/** Key of a file of the asset: `file` is relative to the asset (e.g. "720p/index.m3u8", "poster.jpg"). */
export function assetKey(videoId: string, file: string): string {
  return `${videoPrefix(videoId)}${file}`;
}

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[file.slice(file.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}

/** A rendition to publish: what the multivariant playlist says about it, and its segments in order. */
export interface VodRendition {
  readonly info: Omit<RenditionInfo, 'bandwidth' | 'averageBandwidth'>;
  readonly segments: readonly VideoSegmentRecord[];
}

export interface PublishedVod {
  /** Seconds of the top rendition's media (gaps excluded). */
  duration: number;
  /** As listed in the multivariant playlist, highest first, with measured bandwidths. */
  renditions: RenditionInfo[];
}

/**
 * Writes every rendition's VOD media playlist and the multivariant playlist over segments already in
 * storage. No media is read or re-encoded: the cost grows with the number of segments only (a few
 * hundred bytes of playlist per segment). Renditions without a playable segment are left out.
 */
export async function publishVod(store: ObjectStore, videoId: string, renditions: readonly VodRendition[]): Promise<PublishedVod> {
  const published: RenditionInfo[] = [];
  let allIndependent = true;
  for (const r of renditions) {
    const media = r.segments.filter((s) => !s.gap);
    if (media.length === 0) continue;
    let peak = 0;
    let bits = 0;
    let seconds = 0;
    for (const s of media) {
      if (s.duration <= 0) continue;
      peak = Math.max(peak, (s.bytes * 8) / s.duration);
      bits += s.bytes * 8;
      seconds += s.duration;
    }
    const independent = media.every((s) => s.independent !== false);
    allIndependent &&= independent;
    const text = renderVodPlaylist(
      r.segments.map((s) => ({
        uri: s.uri,
        duration: s.duration,
        initUri: s.initUri,
        discontinuity: s.discontinuity,
        gap: s.gap,
        programDateTime: s.programDateTime?.getTime(),
      })),
      { independentSegments: independent },
    );
    await store.put(assetKey(videoId, `${r.info.name}/${MEDIA_PLAYLIST}`), Buffer.from(text), {
      contentType: CONTENT_TYPES.m3u8,
      cacheControl: CACHE_PLAYLIST,
    });
    published.push({
      ...r.info,
      bandwidth: Math.max(1, Math.round(peak)),
      averageBandwidth: seconds > 0 ? Math.round(bits / seconds) : undefined,
    });
  }
  published.sort((a, b) => (b.height ?? 0) - (a.height ?? 0) || b.bandwidth - a.bandwidth);
  const master = renderMultivariantPlaylist(
    published.map((r) => ({
      uri: `${r.name}/${MEDIA_PLAYLIST}`,
      bandwidth: r.bandwidth,
      averageBandwidth: r.averageBandwidth,
      codecs: r.codecs,
      width: r.width,
      height: r.height,
      frameRate: r.frameRate,
      name: r.name,
    })),
    { independentSegments: allIndependent },
  );
  if (published.length > 0) {
    await store.put(assetKey(videoId, MASTER_PLAYLIST), Buffer.from(master), {
      contentType: CONTENT_TYPES.m3u8,
      cacheControl: CACHE_PLAYLIST,
    });
  }
  const top = renditions.find((r) => r.info.name === published[0]?.name);
  const duration = top ? top.segments.filter((s) => !s.gap).reduce((n, s) => n + s.duration, 0) : 0;
  // Summed floating-point seconds: kept to the millisecond.
  return { duration: Math.round(duration * 1000) / 1000, renditions: published };
}

/** Longest a poster may take; FFmpeg decodes one segment. */
const POSTER_TIMEOUT_MS = 15_000;

/**
 * A poster JPEG from the first keyframe of `segment` (an init and a segment of one rendition): the two are
 * joined into a small fMP4 file FFmpeg decodes one frame of. Resolves false when the objects are missing;
 * throws when FFmpeg fails (the caller logs it: a recording without a poster is still a recording).
 */
export async function makePoster(
  store: ObjectStore,
  ffmpegPath: string,
  videoId: string,
  rendition: string,
  segment: Pick<VideoSegmentRecord, 'uri' | 'initUri'>,
): Promise<boolean> {
  const [init, media] = await Promise.all([
    store.getBuffer(assetKey(videoId, `${rendition}/${segment.initUri}`)),
    store.getBuffer(assetKey(videoId, `${rendition}/${segment.uri}`)),
  ]);
  if (!init || !media) return false;
  const dir = await mkdtemp(join(tmpdir(), 'livepack-poster-'));
  try {
    const input = join(dir, 'in.mp4');
    const output = join(dir, 'poster.jpg');
    await writeFile(input, Buffer.concat([init, media]));
    const r = await execTool(
      ffmpegPath,
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-nostdin',
        '-i',
        input,
        '-frames:v',
        '1',
        '-vf',
        "scale='min(1280,iw)':-2",
        '-q:v',
        '4',
        '-y',
        output,
      ],
      { timeoutMs: POSTER_TIMEOUT_MS, maxBuffer: 1 << 20 },
    );
    if (r.code !== 0) throw new AppError('E_INTERNAL', `poster: ffmpeg exited with ${r.code}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    const jpeg = await readFile(output);
    await store.put(assetKey(videoId, POSTER), jpeg, { contentType: CONTENT_TYPES.jpg, cacheControl: CACHE_PLAYLIST });
    return true;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

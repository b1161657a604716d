/**
 * The recorder: every live run of a stream is a video in the catalog; a recorded run's segments go to
 * storage as the packager completes them, and when the stream ends the run becomes a VOD asset by writing
 * playlists over those segments (no re-encode, so the time to ready does not grow with the length).
 *
 * Crash safety: a segment's catalog row is written only after its object is stored, so after a crash the
 * rows say exactly what is playable. Each origin heartbeats the runs it records; `recover()` at start-up
 * and a periodic sweep finish the runs an origin left open (this one's at once, another's when its
 * heartbeat is stale). Only the segment in progress (never completed) is lost.
 *
 * Storage away: a segment's writes wait and are tried again (store-writer.ts) while the run's pending
 * bytes fit in maxPendingBytes and for at most storeRetryMs; what cannot wait is a counted gap, listed as
 * EXT-X-GAP in the asset and in its renditions' `gaps`.
 *
 * Handover: a run that continues on another ingest node (the same run id, its window seeded there) stays
 * one video. The new node's runStart adopts the run's open video (catalog adoptRun: its node id becomes
 * this one's), journals its own segments into it (their media sequence numbers continue the old node's;
 * their session, so their init and segment names, are new, and the first carries the discontinuity) and
 * heartbeats it. Every finishing step is conditional on the video still being this node's, so the node
 * the run left (its stream ended when the other took it) and any sweep leave an adopted video to its
 * adopter, which finalizes it when the run really ends.
 */
import { describeTracks, isAppError, monotonicNow, type Logger, type TrackSet } from '../../core/index.js';
import type { Catalog, RenditionInfo, VideoRecord, VideoSegmentRecord } from '../../catalog/index.js';
import type { CompletedSegment, PackageObserver } from '../../packager/index.js';
import type { ObjectStore } from '../../storage/index.js';
import { assetKey, CONTENT_TYPES, makePoster, MAX_TITLE_LENGTH, publishVod, videoPrefix } from '../assets.js';
import { DEFAULT_STORE_RETRY_MS, StoreWriter, type WriteRun } from './store-writer.js';

export interface RecorderOptions {
  readonly catalog: Catalog;
  readonly store: ObjectStore;
  /** For posters; without one, assets have none. */
  readonly ffmpegPath: string | undefined;
  readonly logger: Logger;
  /** Segment bytes a run may have waiting for storage; past it, segments are skipped (a gap) and counted. */
  readonly maxPendingBytes?: number;
  /**
   * While storage fails, how long a run's writes are tried again (backoff 250 ms to 5 s) before a
   * segment is given up (a gap), and how long a run that ended waits for them (RECORDING_STORE_RETRY_MS;
   * default 5 min). See store-writer.ts.
   */
  readonly storeRetryMs?: number;
  /** This origin's id (kept in DATA_DIR): its runs in the catalog carry it. */
  readonly nodeId: string;
  /** How often the runs recorded here are heartbeated, and others' runs looked at (ms). */
  readonly heartbeatMs?: number;
  /** Another origin's open run without a heartbeat for this long is finished here (ms). */
  readonly staleAfterMs?: number;
}

export interface RecorderCounters {
  /** Segments stored and journaled. */
  segments: number;
  bytes: number;
  /** Segments not recorded (gaps): storage failed for longer than storeRetryMs, or too much was waiting for it. */
  failedSegments: number;
  /** Runs turned into VOD assets. */
  finalized: number;
  /** Time from a stream's end to its asset being ready, last one, ms. */
  lastFinalizeMs: number;
  /**
   * Of that, the finalizing itself (playlists, poster, catalog), ms; the rest is storing segments still
   * waiting at the end (none when storage keeps up with the stream).
   */
  lastFinalizeWorkMs: number;
}

/** What the API shows about a run while it is live: the video id of each stream's current run. */
export interface LiveRunInfo {
  readonly videoId: string;
  readonly streamId: string;
  readonly runId: string;
}

interface Run extends WriteRun {
  readonly streamId: string;
  readonly runId: string;
  /** Resolves with the run's video, or undefined when it could not be created (nothing is recorded then). */
  readonly video: Promise<VideoRecord | undefined>;
  videoId: string | undefined;
  recording: boolean;
  /** Per rendition: the tail of its write chain (segments of one rendition are stored in order). */
  readonly chains: Map<string, Promise<void>>;
  /** Init URIs already stored, per rendition. */
  readonly inits: Map<string, Set<string>>;
  /** Per rendition, the description last written to the video row (written again when it changes). */
  readonly described: Map<string, string>;
  pendingBytes: number;
  overflowLogged: boolean;
  ended: Promise<void> | undefined;
}

const EMPTY = new Uint8Array(0);

/** #finalize(): the video was adopted by another node (a handover), which finishes it. */
const ELSEWHERE = Symbol('elsewhere');

const DEFAULT_MAX_PENDING_BYTES = 256 * 1024 * 1024;
const DEFAULT_HEARTBEAT_MS = 10_000;
const DEFAULT_STALE_AFTER_MS = 60_000;
/**
 * Journal rows wait this long for others and go to the catalog in one statement: the rungs complete a
 * segment a transcode delay after the source does, so one insert takes every rendition's row (a third of
 * the statements of a 3-rung stream; in the embedded catalog a one-row insert costs about 0.7 ms of CPU
 * in the server's thread, a three-row one about 0.8 ms).
 */
const JOURNAL_BATCH_MS = 200;
/**
 * Journal rows wait for a catalog that is away (E_UNAVAILABLE) and are inserted when it is back, tried
 * again after 250 ms, doubling up to this: the stream's segments wait meanwhile in their write chains,
 * bounded by maxPendingBytes (past it they become counted gaps). The insert is idempotent (ON CONFLICT
 * DO NOTHING), so a row whose insert was cut after it was made is not doubled.
 */
const JOURNAL_RETRY_MAX_MS = 2000;

interface JournalEntry {
  readonly videoId: string;
  readonly segment: VideoSegmentRecord;
  readonly done: (err?: Error) => void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What the multivariant playlist says about a rendition, from its tracks. */
export function describeRendition(name: string, tracks: TrackSet): Omit<RenditionInfo, 'bandwidth' | 'averageBandwidth'> {
  return { name, ...describeTracks(tracks) };
}

function runTitle(streamName: string, at: Date): string {
  return `${streamName} · ${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`.slice(0, MAX_TITLE_LENGTH);
}

export class Recorder implements PackageObserver {
  readonly counters: RecorderCounters = {
    segments: 0,
    bytes: 0,
    failedSegments: 0,
    finalized: 0,
    lastFinalizeMs: 0,
    lastFinalizeWorkMs: 0,
  };
  readonly #opts: RecorderOptions;
  readonly #log: Logger;
  /** Object writes, tried again while storage fails. */
  readonly #writer: StoreWriter;
  readonly #runs = new Map<string, Run>();
  /** Finalizations in flight (stream ends, recovery), awaited by close(). */
  readonly #work = new Set<Promise<unknown>>();
  /** Runs left open that are being finished now (a sweep must not take them twice). */
  readonly #recovering = new Set<string>();
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #journalBatch: JournalEntry[] = [];
  #journalTimer: NodeJS.Timeout | undefined;

  constructor(opts: RecorderOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#writer = new StoreWriter({ store: opts.store, retryMs: opts.storeRetryMs ?? DEFAULT_STORE_RETRY_MS, logger: opts.logger });
  }

  /**
   * Runs this recorder still works on, with their video ids: live, or ended and still storing or
   * finalizing (their videos must not be deleted under them).
   */
  activeRuns(): LiveRunInfo[] {
    const out: LiveRunInfo[] = [];
    for (const r of this.#runs.values()) if (r.videoId) out.push({ videoId: r.videoId, streamId: r.streamId, runId: r.runId });
    return out;
  }

  /** Heartbeats this origin's runs and finishes runs other origins left open, every heartbeatMs. */
  start(): void {
    const every = this.#opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#timer = setInterval(() => void this.#beat(), every);
    this.#timer.unref();
  }

  async #beat(): Promise<void> {
    const ids = [...this.#runs.values()].filter((r) => r.videoId && !r.ended).map((r) => r.videoId!);
    try {
      // The catalog's clock, not this host's: nodes' clocks may disagree (and jump); the sweep reads the same one.
      await this.#opts.catalog.videos.heartbeat(ids, undefined, this.#opts.nodeId);
      await this.recover();
    } catch (err) {
      this.#log.warn({ err }, 'recording: heartbeat or sweep failed');
    }
  }

  // ---- PackageObserver ----

  runStart(streamId: string, runId: string): void {
    const startedAt = new Date();
    const run: Run = {
      streamId,
      runId,
      video: this.#createVideo(streamId, runId, startedAt),
      videoId: undefined,
      recording: false,
      chains: new Map(),
      inits: new Map(),
      described: new Map(),
      pendingBytes: 0,
      overflowLogged: false,
      ended: undefined,
      failingSince: undefined,
      endedAt: undefined,
    };
    void run.video.then((v) => {
      run.videoId = v?.id;
      run.recording = v?.recording === true;
    });
    this.#runs.set(runId, run);
  }

  segment(_streamId: string, runId: string, rendition: string, seg: CompletedSegment): void {
    const run = this.#runs.get(runId);
    // Not recorded (known once its video exists): nothing to do per segment.
    if (!run || run.ended || (run.videoId !== undefined && !run.recording)) return;
    const bytes = seg.parts.reduce((n, p) => n + p.byteLength, 0);
    const max = this.#opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    // Storage slower than the stream: memory is bounded; the segment becomes a gap in the recording.
    const skip = run.pendingBytes + bytes > max;
    if (skip && !run.overflowLogged) {
      run.overflowLogged = true;
      this.#log.error(
        { stream: run.streamId, pendingBytes: run.pendingBytes },
        'recording: storage is not keeping up; segments are skipped (gaps in the recording)',
      );
    }
    if (!skip) run.pendingBytes += bytes;
    // A skipped segment waits in the chain for its row only: it must not keep its media alive meanwhile
    // (behind a write that waits for storage, that would be memory past the cap).
    const held: CompletedSegment = skip ? { ...seg, init: undefined, parts: [], bytes: () => EMPTY } : seg;
    const previous = run.chains.get(rendition) ?? run.video.then(() => undefined);
    const next = previous
      .then(() => this.#store(run, rendition, held, bytes, skip))
      .finally(() => {
        if (!skip) run.pendingBytes -= bytes;
      });
    run.chains.set(rendition, next);
  }

  runEnd(_streamId: string, runId: string, why: 'ended' | 'closed'): void {
    const run = this.#runs.get(runId);
    if (!run || run.ended) return;
    const endedAt = monotonicNow();
    // The writes still waiting are tried again for at most storeRetryMs from now (store-writer.ts).
    run.endedAt = endedAt;
    run.ended = this.#track(
      (async () => {
        await Promise.all(run.chains.values());
        const video = await run.video;
        if (!video) return;
        await this.#finish(video, endedAt, why);
      })()
        .catch((err: unknown) => this.#log.error({ err, stream: run.streamId }, 'recording: could not finish the run'))
        .finally(() => this.#runs.delete(runId)),
    );
  }

  // ---- recording ----

  async #createVideo(streamId: string, runId: string, startedAt: Date): Promise<VideoRecord | undefined> {
    try {
      // The run began on another node and continues here (a handover): its video becomes this node's.
      const adopted = await this.#opts.catalog.videos.adoptRun(runId, this.#opts.nodeId);
      if (adopted) {
        this.#log.info(
          { video: adopted.id, stream: streamId, run: runId },
          'recording: the run continues here from another node; recording into its video',
        );
        return adopted;
      }
      const stream = await this.#opts.catalog.getStream(streamId);
      if (!stream) return undefined;
      return await this.#opts.catalog.videos.create({
        type: 'live',
        source: 'recording',
        streamId,
        runId,
        title: runTitle(stream.name, startedAt),
        visibility: stream.visibility,
        status: 'live',
        recording: stream.record,
        nodeId: this.#opts.nodeId,
      });
    } catch (err) {
      // The stream plays on; only its recording (and its entry in the video list) is missing.
      this.#log.error({ err, stream: streamId }, 'recording: could not create the video of a live run; this run is not recorded');
      return undefined;
    }
  }

  /** Stores one segment (its init first, once), then journals it; a failure leaves a gap row. */
  async #store(run: Run, rendition: string, seg: CompletedSegment, bytes: number, skip: boolean): Promise<void> {
    const videoId = run.videoId;
    if (!videoId || !run.recording) return;
    const row: VideoSegmentRecord = {
      rendition,
      msn: seg.msn,
      uri: seg.uri,
      initUri: seg.initUri,
      duration: seg.duration,
      discontinuity: seg.discontinuity,
      gap: seg.gap,
      bytes: seg.gap ? 0 : bytes,
      programDateTime: new Date(seg.programDateTime),
      independent: seg.independent,
    };
    try {
      if (!seg.gap && !skip) {
        let inits = run.inits.get(rendition);
        if (!inits) run.inits.set(rendition, (inits = new Set()));
        if (!inits.has(seg.initUri)) {
          if (!seg.init) throw new Error(`init ${seg.initUri} is no longer in memory`);
          await this.#writer.put(run, assetKey(videoId, `${rendition}/${seg.initUri}`), toBuffer(seg.init), CONTENT_TYPES.mp4);
          inits.add(seg.initUri);
        }
        await this.#writer.put(run, assetKey(videoId, `${rendition}/${seg.uri}`), toBuffer(seg.bytes()), CONTENT_TYPES.m4s);
      }
    } catch (err) {
      this.counters.failedSegments++;
      this.#log.error(
        { err, stream: run.streamId, video: videoId, rendition, msn: seg.msn },
        'recording: a segment could not be stored in time; it is a gap in the recording',
      );
      row.gap = true;
      row.bytes = 0;
    }
    if (skip) {
      this.counters.failedSegments++;
      row.gap = true;
      row.bytes = 0;
    }
    try {
      if (!row.gap) {
        // Written again when a reconnect brought other codecs or another resolution: the asset lists the
        // last session's. Remembered only once written, so a failed write is tried again next segment.
        const info = describeRendition(rendition, seg.tracks);
        const key = JSON.stringify(info);
        if (run.described.get(rendition) !== key) {
          await this.#opts.catalog.videos.putRendition(videoId, { ...info, bandwidth: 0 });
          run.described.set(rendition, key);
        }
      }
      await this.#journal(videoId, row);
      if (!row.gap) {
        this.counters.segments++;
        this.counters.bytes += bytes;
      }
    } catch (err) {
      this.counters.failedSegments++;
      this.#log.error({ err, video: videoId, rendition, msn: seg.msn }, 'recording: could not journal a segment');
    }
  }

  /** Adds a row to the next journal batch; resolves once it is in the catalog. */
  #journal(videoId: string, segment: VideoSegmentRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#journalBatch.push({ videoId, segment, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!this.#journalTimer) this.#journalTimer = setTimeout(() => this.#flushJournal(), JOURNAL_BATCH_MS);
    });
  }

  #flushJournal(): void {
    this.#journalTimer = undefined;
    const batch = this.#journalBatch;
    this.#journalBatch = [];
    void this.#insertJournal(batch);
  }

  /** Inserts one batch of rows; while the catalog is away, again until it is back (or the recorder closes). */
  async #insertJournal(batch: JournalEntry[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        // Fenced by ownership: rows of a run another node continued are dropped (catalog/videos.ts).
        await this.#opts.catalog.videos.addSegments(batch, this.#opts.nodeId);
        if (attempt > 0)
          this.#log.info({ rows: batch.length, attempts: attempt + 1 }, 'recording: the catalog is back; journal rows written');
        batch.forEach((e) => e.done());
        return;
      } catch (err) {
        const away = isAppError(err) && err.code === 'E_UNAVAILABLE';
        if (!away || this.#closed) {
          batch.forEach((e) => e.done(err instanceof Error ? err : new Error('journal insert failed', { cause: err })));
          return;
        }
        if (attempt === 0) this.#log.warn({ err, rows: batch.length }, 'recording: the catalog is unavailable; journal rows wait for it');
        await sleep(Math.min(JOURNAL_RETRY_MAX_MS, 250 * 2 ** attempt));
      }
    }
  }

  // ---- finishing ----

  /** A run's end: an unrecorded run leaves the list; a recorded one becomes a VOD asset. */
  async #finish(video: VideoRecord, endedAt: number, why: 'ended' | 'closed'): Promise<void> {
    if (!video.recording) {
      if (!(await this.#opts.catalog.videos.delete(video.id, { onlyNode: this.#opts.nodeId }))) this.#leftTo(video.id);
      return;
    }
    const t0 = monotonicNow();
    if ((await this.#finalize(video.id)) === ELSEWHERE) return;
    this.counters.lastFinalizeWorkMs = monotonicNow() - t0;
    this.counters.lastFinalizeMs = monotonicNow() - endedAt;
    this.#log.info({ video: video.id, stream: video.streamId, why, ms: this.counters.lastFinalizeMs }, 'recording: VOD asset ready');
  }

  /**
   * Turns a recorded run into a VOD asset: playlists over its journaled segments, a poster, its duration;
   * then type 'vod', status 'ready'. A run with no complete segment is removed (nothing to play).
   */
  async finalize(videoId: string): Promise<VideoRecord | undefined> {
    const done = await this.#finalize(videoId);
    return done === ELSEWHERE ? undefined : done;
  }

  /** The run went on on another node, which adopted its video: it is that node's to finish. */
  #leftTo(videoId: string): void {
    this.#log.info({ video: videoId }, 'recording: the run continues on another node; its video is left to that node');
  }

  /**
   * finalize(), each change made only while the video is this node's: ELSEWHERE when another node adopted
   * it (before or during the finalizing), which then finishes it; what was written here is overwritten then.
   */
  async #finalize(videoId: string): Promise<VideoRecord | undefined | typeof ELSEWHERE> {
    const { catalog, store, nodeId } = this.#opts;
    const onlyNode = { onlyNode: nodeId };
    const found = await catalog.videos.get(videoId);
    if (!found) return undefined;
    const video = await catalog.videos.update(
      videoId,
      { type: 'vod', status: 'processing', endedAt: found.endedAt ?? new Date() },
      onlyNode,
    );
    if (!video) {
      if (!(await catalog.videos.get(videoId))) return undefined;
      this.#leftTo(videoId);
      return ELSEWHERE;
    }
    const segments = await catalog.videos.segments(videoId);
    const byRendition = new Map<string, VideoSegmentRecord[]>();
    for (const s of segments) {
      let list = byRendition.get(s.rendition);
      if (!list) byRendition.set(s.rendition, (list = []));
      list.push(s);
    }
    const renditions = video.renditions
      .filter((r) => byRendition.has(r.name))
      .map((r) => ({
        info: { name: r.name, codecs: r.codecs, width: r.width, height: r.height, frameRate: r.frameRate },
        segments: byRendition.get(r.name)!,
      }));
    const published = await publishVod(store, videoId, renditions);
    if (published.renditions.length === 0) {
      this.#log.info({ video: videoId, stream: video.streamId }, 'recording: the run ended before a segment was complete; nothing to keep');
      if (await catalog.videos.delete(videoId, onlyNode)) {
        await store.deletePrefix(videoPrefix(videoId)).catch(() => {});
        return undefined;
      }
      if (!(await catalog.videos.get(videoId))) return undefined;
      this.#leftTo(videoId);
      return ELSEWHERE;
    }
    const thumbnail = await this.#poster(
      videoId,
      published.renditions[published.renditions.length - 1].name,
      byRendition,
      published.duration,
    );
    const ready = await catalog.videos.update(
      videoId,
      {
        type: 'vod',
        status: 'ready',
        progress: 100,
        duration: published.duration,
        // Each rendition says how many of its segments are EXT-X-GAP (storage failed or fell behind, or
        // the rendition was restarting), so the API shows what a recording is missing.
        renditions: published.renditions.map((r) => ({ ...r, gaps: byRendition.get(r.name)!.filter((s) => s.gap).length })),
        thumbnail,
      },
      onlyNode,
    );
    if (!ready && (await catalog.videos.get(videoId))) {
      // Adopted while it was being finalized: live again on the adopter, which finalizes it at the end.
      this.#leftTo(videoId);
      return ELSEWHERE;
    }
    this.counters.finalized++;
    // Deleted while it was being finalized: what was just written goes too.
    if (!ready) await store.deletePrefix(videoPrefix(videoId)).catch(() => {});
    return ready;
  }

  /** A poster from the lowest rendition (smallest to decode), from the segment at about a tenth of the way in. */
  async #poster(videoId: string, rendition: string, byRendition: Map<string, VideoSegmentRecord[]>, duration: number): Promise<boolean> {
    const ffmpeg = this.#opts.ffmpegPath;
    const media = (byRendition.get(rendition) ?? []).filter((s) => !s.gap);
    if (!ffmpeg || media.length === 0) return false;
    let at = 0;
    let pick = media[0];
    for (const s of media) {
      if (at >= duration / 10) break;
      pick = s;
      at += s.duration;
    }
    try {
      return await makePoster(this.#opts.store, ffmpeg, videoId, rendition, pick);
    } catch (err) {
      this.#log.warn({ err, video: videoId }, 'recording: no poster (FFmpeg could not decode a frame)');
      return false;
    }
  }

  /**
   * Finishes runs left open: this origin's from before its start (a crash, a kill), and other origins'
   * whose heartbeat stopped. Call it once before ingest starts (so no new run is among them); start()
   * repeats it. Resolves once they are listed; they are finalized in the background (close() waits).
   * Returns how many were found.
   */
  async recover(): Promise<number> {
    const stale = { msAgo: this.#opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS };
    const { catalog, nodeId } = this.#opts;
    // By run id too: a run whose video is being created or adopted here has no video id yet.
    const mine = new Set([...this.#runs.values()].map((r) => r.videoId));
    const myRuns = new Set(this.#runs.keys());
    const open = (await catalog.videos.abandonedRuns(nodeId, stale)).filter(
      (v) => !mine.has(v.id) && !(v.runId !== null && myRuns.has(v.runId)) && !this.#recovering.has(v.id),
    );
    for (const v of open) {
      this.#recovering.add(v.id);
      // Taken for this node first, atomically with the test: a run adopted since it was listed (another
      // node continues it and heartbeats it) is not finished here.
      const finish = async (): Promise<boolean> => {
        if (!(await catalog.videos.claimAbandoned(v.id, nodeId, stale))) return false;
        if (v.recording) return (await this.#finalize(v.id)) !== ELSEWHERE;
        return catalog.videos.delete(v.id, { onlyNode: nodeId });
      };
      void this.#track(
        finish()
          .then(
            (finished) =>
              finished
                ? this.#log.info({ video: v.id, stream: v.streamId, node: v.nodeId }, 'recording: finished a run left open')
                : this.#leftTo(v.id),
            (err: unknown) => this.#log.error({ err, video: v.id }, 'recording: could not finish a run left open'),
          )
          .finally(() => this.#recovering.delete(v.id)),
      );
    }
    return open.length;
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#work.add(p);
    const done = () => this.#work.delete(p);
    p.then(done, done);
    return p;
  }

  /** Waits for writes and finalizations in flight (the packager closes first, which ends every run). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#writer.close();
    clearInterval(this.#timer);
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
  }
}

/** The same bytes as a Buffer, without a copy. */
function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

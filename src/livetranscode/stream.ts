import { once } from 'node:events';
import {
  decodeAmf0,
  FlvReader,
  FlvWriter,
  MediaAssembler,
  DEFAULT_ASSEMBLER_OPTIONS,
} from '../flv/index.js';
import { newId, rungsFor, type LadderRung, type Logger, type MediaFrame, type TrackSet } from '../core/index.js';
import { SpeedMeter, ProgressParser, Supervisor, type ChildHandle, type ExitInfo } from '../process/index.js';
import { rungStreamId, type Publisher, type Reader, type StreamHub } from '../stream/index.js';
import { buildFfmpegArgs, FIRST_RUNG_FD, PROGRESS_FD } from './args.js';
import { LoadGovernor, type GovernorOptions, type LoadSample } from './governor.js';
import type { RungStatus, TranscodeCounters, TranscodeState, TranscodeStatus } from './types.js';

export interface StreamTranscodeOptions {
  readonly streamId: string;
  readonly ladder: readonly LadderRung[];
  readonly reader: Reader;
  readonly rungHub: StreamHub;
  readonly logger: Logger;
  readonly ffmpegPath: string;
  readonly x264Preset: string;
  readonly vaapiDevice: string;
  readonly readyTimeoutMs: number;
  readonly governor: GovernorOptions;
  readonly counters: TranscodeCounters;
  /** Fraction of the machine's CPU time that was idle lately (0..1), for restoring dropped rungs. */
  readonly cpuIdle: () => number | undefined;
  /** Whether this stream may run an FFmpeg now (TRANSCODE_MAX_STREAMS counts the ones running). */
  readonly admit: (self: StreamTranscode) => boolean;
}

/** Largest FLV tag read back from FFmpeg (one encoded frame). */
const MAX_TAG_BYTES = 16 * 1024 * 1024;
/** FFmpeg that reports no progress for this long is judged as not keeping up. */
const STALL_MS = 2000;
/** Source audio kept for a rung that starts producing, so its first segment has its audio (ticks). */
const AUDIO_REPLAY_TICKS = 3 * 90_000;
/** Waiting for FFmpeg to take more input longer than this means it is stuck; the frame is dropped. */
const DRAIN_WAIT_MS = 2000;

/** One FFmpeg child's pipes and the rung sessions it feeds. */
interface Run {
  /** The supervisor this child belongs to: a stopped supervisor's late events touch only its own run. */
  readonly sup: Supervisor;
  readonly handle: ChildHandle;
  readonly writer: FlvWriter;
  readonly rungs: readonly LadderRung[];
  readonly publishers: Map<string, Publisher>;
  readonly producing: Set<string>;
  /** A new FFmpeg starts decoding at a keyframe: frames before it are not written. */
  needKeyframe: boolean;
  lastWrittenMs: number;
  /** When FFmpeg last reported progress (spawn time until it does). */
  lastProgressAt: number;
  /** When a frame was last written to FFmpeg. */
  lastWriteAt: number;
  /** The source's latest audio frames, replayed to a rung when its first video frame comes out. */
  recentAudio: MediaFrame[];
  /** Rungs that have their first video frame out and get every source audio frame as it comes. */
  readonly audioFed: Set<string>;
  /** Per rung: the source time (ms after the writer's base) of the last frame it produced. */
  readonly lastOutputMs: Map<string, number>;
  ended: boolean;
}

/**
 * The ladder of one live stream: reads the source from the hub, feeds one supervised FFmpeg (FLV on
 * stdin), reads one FLV pipe per rung and publishes each rung to the rung hub, where the packager picks
 * it up like any stream. A new source session (reconnect) gets a new FFmpeg; a crash is restarted with
 * backoff; when FFmpeg cannot keep up in real time the most expensive rung is dropped and later restored.
 */
export class StreamTranscode {
  readonly #o: StreamTranscodeOptions;
  readonly #log: Logger;
  readonly #governor: LoadGovernor;
  readonly #meter = new SpeedMeter();
  #tracks: TrackSet | undefined;
  #sourceSession = '';
  #supervisor: Supervisor | undefined;
  #run: Run | undefined;
  /** Rungs dropped for lack of CPU, most recent last. */
  #dropped: LadderRung[] = [];
  #everPublished = new Set<string>();
  #state: TranscodeState = 'idle';
  #lastError: string | undefined;
  #restarts = 0;
  /** A source session is running (FFmpeg has something to transcode). */
  #inSession = false;
  /** The event loop is stopping a child: nothing else may start one meanwhile. */
  #busy = false;
  /** This session waits for a TRANSCODE_MAX_STREAMS slot. */
  #waitingForSlot = false;
  #closed = false;
  #done: Promise<void>;

  constructor(opts: StreamTranscodeOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ stream: opts.streamId, module: 'transcode' });
    this.#governor = new LoadGovernor(opts.governor);
    this.#done = this.#loop();
  }

  /** The rungs this source gets (the ladder below the source's size), the dropped ones excluded. */
  #activeRungs(): LadderRung[] {
    const v = this.#tracks?.video;
    if (!v) return [];
    const dropped = new Set(this.#dropped.map((r) => r.name));
    return rungsFor(this.#o.ladder, v).filter((r) => !dropped.has(r.name));
  }

  async #loop(): Promise<void> {
    for await (const ev of this.#o.reader) {
      if (this.#closed) break;
      try {
        if (ev.type === 'session-start') {
          this.#inSession = false;
          await this.#stopChildSerialized();
          this.#tracks = ev.tracks;
          this.#sourceSession = ev.sessionId;
          this.#dropped = [];
          this.#inSession = true;
          this.#startChild();
        } else if (ev.type === 'frame') {
          await this.#write(ev.frame);
        } else if (ev.type === 'session-end') {
          this.#inSession = false;
          this.#waitingForSlot = false;
          await this.#stopChildSerialized();
          this.#state = 'idle';
        } else if (ev.type === 'stream-end') {
          break;
        }
      } catch (err) {
        this.#log.error({ err, event: ev.type }, 'transcoder failed on an event');
      }
    }
    this.#inSession = false;
    await this.#stopChildSerialized();
    for (const name of this.#everPublished) this.#o.rungHub.end(rungStreamId(this.#o.streamId, name), 'source stream ended');
    this.#state = 'stopped';
  }

  async #stopChildSerialized(): Promise<void> {
    this.#busy = true;
    try {
      await this.#stopChild();
    } finally {
      this.#busy = false;
    }
  }

  /** An FFmpeg of this stream is running or being restarted. */
  get hasChild(): boolean {
    return this.#supervisor !== undefined;
  }

  #startChild(): void {
    if (this.#supervisor || !this.#inSession || this.#closed) return;
    const tracks = this.#tracks;
    if (!tracks?.video) {
      this.#state = 'idle';
      this.#lastError = 'the source has no video';
      return;
    }
    if (this.#activeRungs().length === 0) {
      this.#state = 'idle';
      this.#lastError = undefined;
      this.#log.info({ height: tracks.video.height }, 'no rung of the ladder is below the source; serving the source only');
      return;
    }
    if (!this.#o.admit(this)) {
      if (!this.#waitingForSlot) {
        this.#o.counters.overLimit++;
        this.#log.warn('TRANSCODE_MAX_STREAMS ladders are running: serving the source only until one ends');
      }
      this.#waitingForSlot = true;
      this.#state = 'idle';
      this.#lastError = 'TRANSCODE_MAX_STREAMS ladders are running; waiting for a slot';
      return;
    }
    this.#waitingForSlot = false;
    this.#lastError = undefined;
    this.#state = 'starting';
    const sup: Supervisor = new Supervisor({
      name: 'ffmpeg',
      command: this.#o.ffmpegPath,
      args: () =>
        buildFfmpegArgs({
          rungs: this.#activeRungs(),
          source: { width: tracks.video!.width, height: tracks.video!.height, frameRate: tracks.video!.frameRate },
          x264Preset: this.#o.x264Preset,
          vaapiDevice: this.#o.vaapiDevice,
        }),
      logger: this.#log,
      extraFds: 1 + this.#o.ladder.length,
      readyTimeoutMs: this.#o.readyTimeoutMs,
      backoff: { initialMs: 500, maxMs: 10_000, factor: 2 },
      maxStartFailures: 3,
      onStart: (h) => this.#onStart(sup, h),
      onExit: (info) => this.#onExit(sup, info),
    });
    this.#supervisor = sup;
    sup.start();
  }

  async #stopChild(): Promise<void> {
    const sup = this.#supervisor;
    this.#supervisor = undefined;
    if (!sup) return;
    await sup.stop();
    if (this.#run?.sup === sup) this.#endRun(this.#run, 'transcoder stopped');
  }

  #onStart(sup: Supervisor, handle: ChildHandle): void {
    if (sup !== this.#supervisor) {
      // A supervisor being stopped spawned once more: that child has no place here.
      process.kill(handle.pid, 'SIGKILL');
      return;
    }
    const tracks = this.#tracks!;
    const rungs = this.#activeRungs();
    const run: Run = {
      sup,
      handle,
      writer: new FlvWriter(),
      rungs,
      publishers: new Map(),
      producing: new Set(),
      needKeyframe: true,
      lastWrittenMs: 0,
      lastProgressAt: Date.now(),
      lastWriteAt: 0,
      recentAudio: [],
      audioFed: new Set(),
      lastOutputMs: new Map(),
      ended: false,
    };
    this.#run = run;
    this.#governor.runStarted(Date.now());
    this.#meter.reset();
    handle.stdin.on('error', () => {}); // EPIPE when FFmpeg dies: its exit is what we act on
    // Video only: each rung gets the source's audio frames from here (see #feedAudio).
    handle.stdin.write(run.writer.header({ video: tracks.video }));

    const progress = new ProgressParser();
    handle.extra[PROGRESS_FD - 3].on('data', (chunk: Buffer) => {
      for (const p of progress.push(chunk)) this.#onProgress(run, p.outTimeUs);
    });
    rungs.forEach((rung, i) => {
      const id = rungStreamId(this.#o.streamId, rung.name);
      const pub = this.#o.rungHub.publish(id, { sessionId: newId(), protocol: 'transcode', remoteAddress: 'ffmpeg', sourceSessionId: this.#sourceSession }, () => {});
      this.#everPublished.add(rung.name);
      run.publishers.set(rung.name, pub);
      const flv = new FlvReader({ maxTagBytes: MAX_TAG_BYTES });
      const assembler = new MediaAssembler(
        {
          setTracks: (t) => pub.setTracks({ video: t.video, audio: tracks.audio }),
          write: (f) => {
            // FFmpeg ran with -copyts on timestamps relative to the writer's base: add it back.
            const base = run.writer.base ?? 0;
            pub.write({ ...f, dts: f.dts + base, pts: f.pts + base });
            run.lastOutputMs.set(rung.name, f.dts / 90);
            if (!run.audioFed.has(rung.name)) {
              // From its first video frame on, the rung gets the source's audio; the audio of the last
              // seconds first (the packager drops what is older than the rung's first keyframe).
              run.audioFed.add(rung.name);
              for (const a of run.recentAudio) pub.write(a);
            }
            if (!run.producing.has(rung.name)) {
              run.producing.add(rung.name);
              if (run.producing.size === run.rungs.length) {
                handle.markReady();
                this.#state = 'running';
              }
            }
          },
        },
        DEFAULT_ASSEMBLER_OPTIONS,
      );
      handle.extra[FIRST_RUNG_FD - 3 + i].on('data', (chunk: Buffer) => {
        if (run.ended) return;
        try {
          for (const tag of flv.push(chunk)) {
            if (tag.type === 9) assembler.video(tag.timestamp, tag.body);
            else if (tag.type === 18) assembler.metadata(decodeAmf0(tag.body)[1]);
          }
        } catch (err) {
          // Our own FFmpeg wrote something we cannot read: kill it (it counts as a crash, so restarts back
          // off) rather than publish garbage. Once per child.
          if (run.ended) return;
          this.#log.error({ err, rung: rung.name }, 'unreadable FLV from FFmpeg; killing it');
          this.#endRun(run, 'unreadable output');
          try {
            process.kill(handle.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      });
    });
  }

  #onProgress(run: Run, outTimeUs: number | undefined): void {
    if (outTimeUs === undefined || run !== this.#run) return;
    const now = Date.now();
    run.lastProgressAt = now;
    // FFmpeg's out_time has an arbitrary origin with -copyts: only its rate of change is used.
    this.#meter.add(now, outTimeUs);
    this.#judge(now, { speed: this.#meter.speed(), lagMs: this.#lag(run) });
  }

  /** Feed the governor; when it says FFmpeg cannot keep up, drop the most expensive rung. */
  #judge(now: number, sample: LoadSample): void {
    const { speed, lagMs } = sample;
    if (this.#governor.sample(now, sample)) {
      const active = this.#activeRungs();
      // The most expensive rung: the most pixels per second.
      const victim = [...active].sort((a, b) => b.height * b.maxFrameRate - a.height * a.maxFrameRate)[0];
      if (!victim) return;
      this.#dropped.push(victim);
      this.#o.counters.rungsDropped++;
      this.#log.warn({ rung: victim.name, speed, lagMs }, 'FFmpeg cannot keep up in real time: dropping the most expensive rung');
      this.#o.rungHub.end(rungStreamId(this.#o.streamId, victim.name), 'dropped: not enough CPU');
      this.#everPublished.delete(victim.name);
      if (active.length > 1) this.#supervisor?.restartNow(`dropping rung ${victim.name}`);
      else void this.#stopChild().then(() => (this.#state = 'degraded'));
    }
  }

  /** Called every second: judge an FFmpeg that went silent; bring a dropped rung back when the CPU allows. */
  tick(now: number): void {
    const run = this.#run;
    // FFmpeg reports progress twice a second while it has input; one that is given frames but says nothing
    // for 2 s is stuck (or starved of CPU so badly it cannot even report): that counts as not keeping up.
    // (A source that pauses stops FFmpeg's reports too; that is not FFmpeg's fault.)
    if (run && !run.ended && now - run.lastProgressAt > STALL_MS && now - run.lastWriteAt < 1000) {
      this.#judge(now, { speed: 0, lagMs: this.#lag(run) });
    }
    if (this.#closed || !this.#inSession || this.#busy) return;
    if (this.#waitingForSlot) return this.#startChild();
    if (this.#dropped.length === 0) return;
    if (!this.#governor.canRestore(now, this.#o.cpuIdle(), this.#run !== undefined)) return;
    const back = this.#dropped.pop()!;
    this.#governor.restored(now);
    this.#o.counters.rungsRestored++;
    this.#log.info({ rung: back.name }, 'CPU headroom again: restoring a dropped rung');
    if (this.#supervisor) this.#supervisor.restartNow(`restoring rung ${back.name}`);
    else this.#startChild();
  }

  /** How far the slowest rung's output is behind what FFmpeg was given, in ms of media time. */
  #lag(run: Run): number | undefined {
    if (run.needKeyframe || run.lastOutputMs.size < run.rungs.length) return undefined;
    return Math.max(0, Math.round(run.lastWrittenMs - Math.min(...run.lastOutputMs.values())));
  }

  async #write(frame: MediaFrame): Promise<void> {
    const run = this.#run;
    if (!run || run.ended) return;
    if (frame.track === 'audio') return this.#feedAudio(run, frame);
    const stdin = run.handle.stdin;
    if (stdin.destroyed || !stdin.writable) return;
    if (run.needKeyframe) {
      if (!frame.keyframe) return;
      run.needKeyframe = false;
    }
    const tag = run.writer.frame(frame, this.#tracks!.video!.codec);
    run.lastWrittenMs = Math.max(run.lastWrittenMs, (frame.dts - (run.writer.base ?? frame.dts)) / 90);
    run.lastWriteAt = Date.now();
    if (stdin.write(tag)) return;
    // FFmpeg is not taking input as fast as it comes: wait (the hub reader queues, then drops to the next
    // keyframe) rather than buffer without bound here.
    const timer = AbortSignal.timeout(DRAIN_WAIT_MS);
    await once(stdin, 'drain', { signal: timer }).catch(() => {});
  }

  /**
   * Source audio goes straight to every rung that is producing (the same frames as the source rendition,
   * on the same clock as the rungs' video, which FFmpeg wrote with the source's timestamps), and is kept
   * for a few seconds for rungs still starting.
   */
  #feedAudio(run: Run, frame: MediaFrame): void {
    for (const name of run.audioFed) run.publishers.get(name)?.write(frame);
    const recent = run.recentAudio;
    if (run.audioFed.size === run.rungs.length) {
      recent.length = 0; // every rung is fed: nothing more to replay
      return;
    }
    recent.push(frame);
    let old = 0;
    while (old < recent.length && frame.dts - recent[old].dts > AUDIO_REPLAY_TICKS) old++;
    if (old > 0) recent.splice(0, old);
  }

  #onExit(sup: Supervisor, info: ExitInfo): void {
    const run = this.#run;
    if (run?.sup === sup) this.#endRun(run, `ffmpeg ${info.kind}: ${info.reason}`);
    if (info.kind === 'stopped' || sup !== this.#supervisor) return;
    this.#restarts++;
    this.#o.counters.exits++;
    const last = info.stderrTail.filter((l) => !/^\s*$/.test(l)).slice(-3).join(' | ');
    this.#lastError = `${info.reason}${last ? `: ${last}` : ''}`;
    if (info.kind === 'died') this.#o.counters.crashes++;
    // The supervisor restarts with backoff, or gives up after repeated start failures.
    queueMicrotask(() => {
      if (sup !== this.#supervisor) return;
      if (sup.state !== 'failed') {
        this.#state = 'restarting';
        return;
      }
      // It will not start: the stream is its source alone. The rungs' streams end, so players are not
      // kept waiting for them (they stay out of the multivariant playlist).
      this.#state = 'failed';
      this.#supervisor = undefined; // no child, no slot
      this.#log.error({ reason: this.#lastError }, 'FFmpeg failed to start repeatedly: serving the source only');
      for (const name of this.#everPublished) this.#o.rungHub.end(rungStreamId(this.#o.streamId, name), 'transcoder failed');
      this.#everPublished.clear();
    });
    this.#log.warn({ kind: info.kind, code: info.code, signal: info.signal, stderr: info.stderrTail.slice(-5) }, 'FFmpeg exited');
  }

  /** The run's rung sessions end (their playlists continue with a gap, then a discontinuity). */
  #endRun(run: Run | undefined, reason: string): void {
    if (!run || run.ended) return;
    run.ended = true;
    for (const pub of run.publishers.values()) pub.close(reason);
    if (this.#run === run) this.#run = undefined;
  }

  status(rungHub: StreamHub): TranscodeStatus {
    const sup = this.#supervisor;
    const all = this.#tracks?.video ? rungsFor(this.#o.ladder, this.#tracks.video) : [];
    const dropped = new Set(this.#dropped.map((r) => r.name));
    const rungs: RungStatus[] = all.map((r) => {
      const live = rungHub.status(rungStreamId(this.#o.streamId, r.name));
      const tracks = live?.tracks?.video;
      return {
        name: r.name,
        height: r.height,
        width: tracks?.width,
        encoder: r.encoder,
        targetBitrateKbps: r.videoBitrateKbps,
        state: dropped.has(r.name) ? 'dropped' : this.#run?.producing.has(r.name) ? 'running' : 'starting',
        fps: live?.state === 'live' ? live.fps : 0,
        bitrateKbps: live?.state === 'live' ? live.bitrateKbps : 0,
      };
    });
    return {
      state: this.#state,
      pid: sup?.pid,
      speed: this.#meter.speed(),
      lagMs: this.#run ? this.#lag(this.#run) : undefined,
      restarts: this.#restarts,
      lastError: this.#lastError,
      droppedRungs: [...dropped],
      rungs,
    };
  }

  /** Resolves when the source stream ended and FFmpeg is gone. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Stop FFmpeg and end the rung streams. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#o.reader.close();
    await this.#done;
  }
}

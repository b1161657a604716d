import { newId, type LadderRung, type Logger, type MediaFrame, type TrackSet } from '../core/index.js';
import { SpeedMeter, Supervisor, type ChildHandle, type ExitInfo } from '../process/index.js';
import { rungStreamId, type Publisher, type RungStreamId, type Reader, type StreamHub } from '../stream/index.js';
import { buildFfmpegArgs } from './args.js';
import { FrameHold, LadderFit } from './fit.js';
import { LoadGovernor, type GovernorOptions, type LoadSample } from './governor.js';
import { closeRun, feedAudio, judgedLag, openRun, runLag, writeVideo, type Run } from './run.js';
import type { RungStatus, TranscodeCounters, TranscodeState, TranscodeStatus } from './types.js';

export interface StreamLadderOptions {
  readonly streamId: string;
  readonly ladder: readonly LadderRung[];
  /** The stream's own ladder: kept as it is (with warnings). Otherwise it is fitted to the source's bitrate. */
  readonly custom: boolean;
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
  readonly admit: (self: StreamLadder) => boolean;
  /** Each FFmpeg start's outcome: it works (every rung produces), or it never started (and why). */
  readonly onFfmpeg?: (works: boolean, reason?: string) => void;
}

/** FFmpeg that reports no progress for this long is judged as not keeping up. */
const STALL_MS = 2000;
/**
 * After the supervisor gave up (FFmpeg never started, repeatedly), a new one is tried this long later, then
 * twice as long each time up to FAILED_RETRY_MAX_MS: an FFmpeg that was removed or broken and is back (a
 * package upgrade) brings the rungs back without a republish, and one that stays broken costs three
 * spawns per retry, not a crash loop.
 */
const FAILED_RETRY_MS = 10_000;
const FAILED_RETRY_MAX_MS = 300_000;

/**
 * The ladder of one live stream: reads the source from the hub, feeds one supervised FFmpeg (FLV on
 * stdin), reads one FLV pipe per rung and publishes each rung to the rung hub, where the packager picks
 * it up like any stream. A new source session (reconnect) gets a new FFmpeg; a crash is restarted with
 * backoff; when FFmpeg cannot keep up in real time the most expensive rung is dropped and later restored.
 */
export class StreamLadder {
  readonly #o: StreamLadderOptions;
  readonly #log: Logger;
  readonly #governor: LoadGovernor;
  readonly #meter = new SpeedMeter();
  #tracks: TrackSet | undefined;
  #sourceSession = '';
  #supervisor: Supervisor | undefined;
  #run: Run | undefined;
  /** Rungs dropped for lack of CPU, most recent last. */
  #dropped: LadderRung[] = [];
  /** The session's ladder fitted to the source's bitrate (undefined before a session with video). */
  #fit: LadderFit | undefined;
  /** Source frames kept until an FFmpeg takes them: before the first plan, and across the re-plan's restart. */
  #hold: FrameHold | undefined;
  /**
   * Rung streams published while the first seconds are measured, before FFmpeg runs: a player's first
   * multivariant playlist waits for the rungs it knows of. The run that starts takes them over.
   */
  readonly #early = new Map<string, Publisher>();
  #everPublished = new Set<string>();
  #state: TranscodeState = 'idle';
  #lastError: string | undefined;
  #restarts = 0;
  /** When the supervisor last gave up, and how many retries since ('failed' state only). */
  #failedAt = 0;
  #failedRetries = 0;
  /** A source session is running (FFmpeg has something to transcode). */
  #inSession = false;
  /** The event loop is stopping a child: nothing else may start one meanwhile. */
  #busy = false;
  /** This session waits for a TRANSCODE_MAX_STREAMS slot. */
  #waitingForSlot = false;
  #closed = false;
  #done: Promise<void>;

  constructor(opts: StreamLadderOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ stream: opts.streamId, module: 'transcode' });
    this.#governor = new LoadGovernor(opts.governor);
    this.#done = this.#loop();
  }

  /** The rungs of the plan for this source (the ladder below it, fitted), the dropped ones excluded. */
  #activeRungs(): LadderRung[] {
    const plan = this.#fit?.plan;
    if (!plan) return [];
    const dropped = new Set(this.#dropped.map((r) => r.name));
    return plan.rungs.filter((r) => !dropped.has(r.name));
  }

  async #loop(): Promise<void> {
    for await (const ev of this.#o.reader) {
      if (this.#closed) break;
      try {
        if (ev.type === 'session-start') {
          this.#inSession = false;
          this.#endHold('new source session');
          await this.#stopChildSerialized();
          this.#tracks = ev.tracks;
          this.#sourceSession = ev.sessionId;
          this.#dropped = [];
          this.#failedRetries = 0;
          this.#inSession = true;
          this.#beginSession();
        } else if (ev.type === 'frame') {
          await this.#onFrame(ev.frame);
        } else if (ev.type === 'session-end') {
          this.#inSession = false;
          this.#waitingForSlot = false;
          this.#endHold('source session ended');
          await this.#stopChildSerialized();
          this.#state = 'idle';
        } else {
          break; // stream-end
        }
      } catch (err) {
        this.#log.error({ err, event: ev.type }, 'transcoder failed on an event');
      }
    }
    this.#inSession = false;
    this.#endHold('source stream ended');
    await this.#stopChildSerialized();
    for (const name of this.#everPublished) this.#o.rungHub.end(this.#rungId(name), 'source stream ended');
    this.#state = 'stopped';
  }

  /**
   * A new source session: fit the ladder to it. A default ladder waits for the first seconds of the
   * source (held, not lost) so that no rung is encoded at more bits than the source is worth: the
   * packager's BANDWIDTH is the peak of a rung's segments, and a player's ranking of the rungs with it.
   */
  #beginSession(): void {
    const video = this.#tracks?.video;
    this.#fit = video ? new LadderFit(this.#o.ladder, video, { custom: this.#o.custom }) : undefined;
    if (this.#fit?.phase !== 'measuring') return this.#startChild();
    this.#hold = new FrameHold(undefined);
    this.#state = 'starting';
    this.#lastError = undefined;
    for (const r of this.#fit.candidates) this.#early.set(r.name, this.#publishRung(r.name));
  }

  /** Route one source frame: measure it, hold it while no FFmpeg may take it, else write it. */
  async #onFrame(frame: MediaFrame): Promise<void> {
    if (frame.track === 'video' && this.#fit) {
      const step = this.#fit.video(frame);
      if (step === 'plan') this.#applyFirstPlan();
      else if (step === 'replan') this.#applyReplan();
    }
    const hold = this.#hold;
    if (hold) {
      const run = this.#run;
      if (!run || run.ended || run === hold.after) return hold.push(frame);
      // An FFmpeg is taking frames again: what was held goes first, in order, from its keyframe.
      this.#hold = undefined;
      for (const f of hold.take()) await this.#write(f);
      run.backlogUntilMs = run.lastWrittenMs;
    }
    await this.#write(frame);
  }

  #applyFirstPlan(): void {
    const fit = this.#fit!;
    const plan = fit.plan!;
    this.#log.info(
      {
        sourceVideoKbps: fit.sourceKbps,
        rungs: plan.rungs.map((r) => `${r.name}@${r.videoBitrateKbps}`),
        omitted: plan.omitted,
        warnings: plan.warnings,
      },
      "ladder fitted to the source's first seconds",
    );
    const keep = new Set(plan.rungs.map((r) => r.name));
    for (const [name, pub] of this.#early) {
      if (keep.has(name)) continue;
      this.#early.delete(name);
      pub.close('left out of the ladder');
      this.#endRung(name, 'left out of the ladder at this source bitrate');
    }
    this.#startChild();
    if (this.#run) return;
    // No FFmpeg takes the frames (every rung left out, no slot, no spawn): the announced rungs end, so
    // the first multivariant playlist is not kept waiting for them. A later start publishes them anew.
    this.#hold = undefined;
    for (const [name, pub] of this.#early) {
      pub.close('transcoder not running');
      this.#endRung(name, 'transcoder not running');
    }
    this.#early.clear();
  }

  /**
   * The settled plan differs from the running one: rungs it leaves out end (like a dropped rung, players
   * on them move to another), and FFmpeg restarts once with the new rungs. The source is held from this
   * keyframe until the new FFmpeg takes it, so the rungs lose no frame across the restart.
   */
  #applyReplan(): void {
    const fit = this.#fit!;
    const plan = fit.plan!;
    this.#log.info(
      { sourceVideoKbps: fit.sourceKbps, rungs: plan.rungs.map((r) => `${r.name}@${r.videoBitrateKbps}`), omitted: plan.omitted },
      "the source's bitrate settled away from the first estimate: refitting the ladder (one FFmpeg restart)",
    );
    const keep = new Set(plan.rungs.map((r) => r.name));
    for (const name of [...this.#everPublished])
      if (!keep.has(name)) this.#endRung(name, 'left out of the ladder at the settled source bitrate');
    this.#dropped = this.#dropped.filter((r) => keep.has(r.name));
    if (!this.#supervisor) {
      // No FFmpeg because the first plan had no rung: start one if this plan has. (Not after a failed
      // start, nor with every rung dropped for lack of CPU, nor while waiting for a slot.)
      if (this.#state === 'idle' && !this.#waitingForSlot && this.#activeRungs().length > 0) this.#startChild();
      return;
    }
    if (this.#activeRungs().length === 0) {
      void this.#stopChild().then(() => (this.#state = 'idle'));
      return;
    }
    this.#hold = new FrameHold(this.#run);
    this.#supervisor.restartNow('refitting the ladder to the settled source bitrate');
  }

  /** Publish a rung's stream to the rung hub (the packager adds it to the stream's renditions). */
  /** The id a rung of this stream's ladder stands under in the rung hub. */
  #rungId(rung: string): RungStreamId {
    return rungStreamId({ streamId: this.#o.streamId, rung });
  }

  #publishRung(name: string): Publisher {
    const id = this.#rungId(name);
    const pub = this.#o.rungHub.publish(
      id,
      { sessionId: newId(), protocol: 'transcode', remoteAddress: 'ffmpeg', sourceSessionId: this.#sourceSession },
      () => {},
    );
    this.#everPublished.add(name);
    return pub;
  }

  /** A rung's stream ends (its playlist goes on with gaps; it leaves the multivariant playlist). */
  #endRung(name: string, reason: string): void {
    this.#o.rungHub.end(this.#rungId(name), reason);
    this.#everPublished.delete(name);
  }

  /** Forget held frames; the rungs announced for this session's first plan close like a run's rungs. */
  #endHold(reason: string): void {
    this.#hold = undefined;
    for (const pub of this.#early.values()) pub.close(reason);
    this.#early.clear();
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
    // The first plan is not made yet: FFmpeg starts with it (#applyFirstPlan).
    if (this.#fit?.phase === 'measuring') return;
    if (this.#activeRungs().length === 0) {
      this.#state = 'idle';
      this.#lastError = undefined;
      const leftOut = (this.#fit?.plan?.omitted.length ?? 0) > 0;
      this.#log.info(
        { height: tracks.video.height, sourceVideoKbps: this.#fit?.sourceKbps },
        leftOut
          ? 'every rung below the source is left out at its bitrate; serving the source only'
          : 'no rung of the ladder is below the source; serving the source only',
      );
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
      handle.kill();
      return;
    }
    const run: Run = openRun(sup, handle, this.#activeRungs(), this.#tracks!, {
      publisher: (rung) => {
        // A rung announced while the first seconds were measured is taken over; any other is published now.
        const pub = this.#early.get(rung.name) ?? this.#publishRung(rung.name);
        this.#early.delete(rung.name);
        return pub;
      },
      progress: (outTimeUs) => this.#onProgress(run, outTimeUs),
      allProducing: () => {
        handle.markReady();
        this.#state = 'running';
        this.#failedRetries = 0;
        this.#o.onFfmpeg?.(true);
      },
      unreadable: (err, rung) => {
        // Our own FFmpeg wrote something we cannot read: kill it (it counts as a crash, so restarts back
        // off) rather than publish garbage. Once per child.
        this.#log.error({ err, rung: rung.name }, 'unreadable FLV from FFmpeg; killing it');
        this.#endRun(run, 'unreadable output');
        handle.kill();
      },
    });
    this.#run = run;
    this.#governor.runStarted(performance.now());
    this.#meter.reset();
  }

  #onProgress(run: Run, outTimeUs: number | undefined): void {
    if (outTimeUs === undefined || run !== this.#run) return;
    const now = performance.now();
    run.lastProgressAt = now;
    // FFmpeg's out_time has an arbitrary origin with -copyts: only its rate of change is used.
    this.#meter.add(now, outTimeUs);
    this.#judge(now, { speed: this.#meter.speed(), lagMs: judgedLag(run) });
  }

  /** Feed the governor; when it says FFmpeg cannot keep up, drop the most expensive rung. */
  #judge(now: number, sample: LoadSample): void {
    const { speed, lagMs } = sample;
    if (this.#governor.sample(now, sample)) {
      const active = this.#activeRungs();
      // The most expensive rung: the most pixels per second.
      const victim = [...active].sort((a, b) => b.height * b.maxFrameRate - a.height * a.maxFrameRate).at(0);
      if (!victim) return;
      this.#dropped.push(victim);
      this.#o.counters.rungsDropped++;
      this.#log.warn({ rung: victim.name, speed, lagMs }, 'FFmpeg cannot keep up in real time: dropping the most expensive rung');
      this.#endRung(victim.name, 'dropped: not enough CPU');
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
      this.#judge(now, { speed: 0, lagMs: judgedLag(run) });
    }
    if (this.#closed || !this.#inSession || this.#busy) return;
    if (this.#state === 'failed') {
      const wait = Math.min(FAILED_RETRY_MS * 2 ** this.#failedRetries, FAILED_RETRY_MAX_MS);
      if (now - this.#failedAt < wait) return;
      this.#failedRetries++;
      this.#log.info({ retry: this.#failedRetries, afterMs: wait }, 'trying FFmpeg again after it failed to start');
      const why = this.#lastError;
      this.#startChild();
      // Until this try works, the status keeps saying why the last one did not.
      this.#lastError ??= why;
      return;
    }
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

  async #write(frame: MediaFrame): Promise<void> {
    const run = this.#run;
    if (!run || run.ended) return;
    if (frame.track === 'audio') return feedAudio(run, frame);
    await writeVideo(run, frame, this.#tracks!.video!.codec);
  }

  #onExit(sup: Supervisor, info: ExitInfo): void {
    const run = this.#run;
    if (run?.sup === sup) this.#endRun(run, `ffmpeg ${info.kind}: ${info.reason}`);
    if (info.kind === 'stopped' || sup !== this.#supervisor) return;
    this.#restarts++;
    this.#o.counters.exits++;
    const last = info.stderrTail
      .filter((l) => !/^\s*$/.test(l))
      .slice(-3)
      .join(' | ');
    this.#lastError = `${info.reason}${last ? `: ${last}` : ''}`;
    if (info.kind === 'died') this.#o.counters.crashes++;
    if (info.kind === 'never-started') this.#o.onFfmpeg?.(false, this.#lastError);
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
      this.#failedAt = performance.now();
      this.#supervisor = undefined; // no child, no slot
      this.#log.error({ reason: this.#lastError }, 'FFmpeg failed to start repeatedly: serving the source only');
      for (const name of this.#everPublished) this.#o.rungHub.end(this.#rungId(name), 'transcoder failed');
      this.#everPublished.clear();
    });
    this.#log.warn({ kind: info.kind, code: info.code, signal: info.signal, stderr: info.stderrTail.slice(-5) }, 'FFmpeg exited');
  }

  /** The run's rung sessions end (their playlists continue with a gap, then a discontinuity). */
  #endRun(run: Run | undefined, reason: string): void {
    if (!run) return;
    closeRun(run, reason);
    if (this.#run === run) this.#run = undefined;
  }

  status(rungHub: StreamHub): TranscodeStatus {
    const sup = this.#supervisor;
    const fit = this.#fit;
    // While measuring: the rungs the source may get, at the ladder's bitrates.
    const all = fit ? (fit.plan?.rungs ?? fit.candidates) : [];
    const ladderKbps = new Map(this.#o.ladder.map((r) => [r.name, r.videoBitrateKbps]));
    const dropped = new Set(this.#dropped.map((r) => r.name));
    const rungs: RungStatus[] = all.map((r) => {
      const live = rungHub.status(this.#rungId(r.name));
      const tracks = live?.tracks?.video;
      return {
        name: r.name,
        height: r.height,
        width: tracks?.width,
        encoder: r.encoder,
        targetBitrateKbps: r.videoBitrateKbps,
        ladderBitrateKbps: ladderKbps.get(r.name) ?? r.videoBitrateKbps,
        state: dropped.has(r.name) ? 'dropped' : this.#run?.producing.has(r.name) ? 'running' : 'starting',
        fps: live?.state === 'live' ? live.fps : 0,
        bitrateKbps: live?.state === 'live' ? live.bitrateKbps : 0,
      };
    });
    return {
      state: this.#state,
      pid: sup?.pid,
      speed: this.#meter.speed(),
      lagMs: this.#run ? runLag(this.#run) : undefined,
      restarts: this.#restarts,
      lastError: this.#lastError,
      droppedRungs: [...dropped],
      rungs,
      fit: fit && { state: fit.phase, custom: fit.custom, sourceVideoKbps: fit.sourceKbps, omittedRungs: fit.plan?.omitted ?? [] },
      warnings: fit?.plan?.warnings ?? [],
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

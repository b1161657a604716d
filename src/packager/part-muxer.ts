/**
 * The part muxer: the frames buffered for the part in progress, and how they become one CMAF fragment
 * (an audio run continues the last one, so the audio timeline has no gap and no overlap).
 */
import { TIMESCALE, type MediaFrame, type TrackSet } from '../core/index.js';
import { buildFragment, buildInitSegment, type CmafSample, type CmafTrack, type FragmentTrack } from './cmaf/index.js';

const VIDEO_ID = 1;
const AUDIO_ID = 2;

/** One part's fragment, and which buffered frames went into it. */
export interface MuxedPart {
  /** The fragment; undefined when no frame was taken. */
  readonly bytes: Uint8Array | undefined;
  /** Decode time of the part's first video (or, without video, audio) frame; undefined if it has none. */
  readonly firstDts: number | undefined;
  readonly independent: boolean;
  /** Decode times of the cut-driving frames taken. */
  readonly driverTimes: readonly number[];
}

export class PartMuxer {
  #tracks: TrackSet = {};
  #video: MediaFrame[] = [];
  #audio: MediaFrame[] = [];
  #fragmentSeq = 0;
  /** Nominal duration of one audio frame, in ticks (0 without audio). */
  #audioDur = 0;
  /** End of the last audio run, in the audio track's timescale; the next run continues from it. */
  #audioEnd: number | undefined;

  /** A new publish session with these tracks; returns its init segment. */
  startSession(tracks: TrackSet): Uint8Array {
    this.#tracks = tracks;
    this.#audioDur = tracks.audio ? this.#nominalAudioTicks() : 0;
    this.#audioEnd = undefined;
    return buildInitSegment(this.#cmafTracks());
  }

  /** Nominal duration of one audio frame of this session, in ticks (0 without audio). */
  get audioFrameTicks(): number {
    return this.#audioDur;
  }

  /** A frame (on the timeline) for the part in progress. */
  add(frame: MediaFrame): void {
    (frame.track === 'video' ? this.#video : this.#audio).push(frame);
  }

  /** The buffered frames that drive cuts: video, or audio without video. */
  get drivers(): readonly MediaFrame[] {
    return this.#tracks.video ? this.#video : this.#audio;
  }

  /** Decode times of the buffered cut-driving frames (a new array). */
  driverTimes(): number[] {
    return this.drivers.map((f) => f.dts);
  }

  clear(): void {
    this.#video = [];
    this.#audio = [];
  }

  /**
   * Mux the buffered frames before `end` (every one with `flush`) into one fragment ending at `end`. Audio
   * frames go by their own decode time, before `audioEnd` (default `end`): a rung cuts at its own keyframe,
   * which may lie a few ms from the source's cut, and its audio is split where the source's was.
   */
  take(end: number, flush = false, audioEnd = end): MuxedPart {
    const tracks: FragmentTrack[] = [];
    const taken = flush ? -1 : this.#video.findIndex((f) => f.dts >= end);
    const video = taken < 0 ? this.#video : this.#video.slice(0, taken);
    let firstDts: number | undefined;
    let independent = true;
    if (this.#tracks.video && video.length > 0) {
      const samples: CmafSample[] = video.map((f, i) => {
        const next = i + 1 < video.length ? video[i + 1].dts : end;
        return { duration: next - f.dts, data: f.data, keyframe: f.keyframe, compositionOffset: f.pts - f.dts };
      });
      firstDts = video[0].dts;
      independent = video[0].keyframe;
      tracks.push({ id: VIDEO_ID, baseMediaDecodeTime: firstDts, samples });
      this.#video = this.#video.slice(video.length);
    }
    const audio = this.#audio;
    const take = flush ? audio.length : audio.findIndex((f) => f.dts >= audioEnd);
    const count = take < 0 ? audio.length : take;
    if (this.#tracks.audio && count > 0) {
      const rate = this.#tracks.audio.codec === 'opus' ? 48_000 : this.#tracks.audio.sampleRate;
      const toRate = (t: number) => Math.round((t * rate) / TIMESCALE);
      const nominal = toRate(this.#audioDur);
      const samples: CmafSample[] = [];
      const first = toRate(audio[0].dts);
      const base = this.#audioEnd !== undefined && Math.abs(first - this.#audioEnd) < nominal / 2 ? this.#audioEnd : first;
      for (let i = 0; i < count; i++) {
        // The run continues the last one when its first frame is within half a frame of that run's end
        // (whose last frame got the nominal duration), so the audio timeline has no gap and no overlap.
        const cur = i === 0 ? base : toRate(audio[i].dts);
        const nextFrame = audio.at(i + 1);
        const dur = nextFrame ? toRate(nextFrame.dts) - cur : nominal;
        samples.push({ duration: dur > 0 ? dur : nominal, data: audio[i].data, keyframe: true, compositionOffset: 0 });
      }
      if (!this.#tracks.video) firstDts = audio[0].dts;
      tracks.push({ id: AUDIO_ID, baseMediaDecodeTime: base, samples });
      this.#audioEnd = base + samples.reduce((sum, x) => sum + x.duration, 0);
      this.#audio = audio.slice(count);
    }
    const drivers = this.#tracks.video ? video : audio.slice(0, count);
    return {
      bytes: tracks.length > 0 ? buildFragment(++this.#fragmentSeq, tracks) : undefined,
      firstDts,
      independent,
      driverTimes: drivers.map((f) => f.dts),
    };
  }

  #nominalAudioTicks(): number {
    const a = this.#tracks.audio;
    if (!a) return 0;
    const samples = a.codec === 'opus' ? 960 : 1024;
    return (samples * TIMESCALE) / (a.codec === 'opus' ? 48_000 : a.sampleRate);
  }

  #cmafTracks(): CmafTrack[] {
    const out: CmafTrack[] = [];
    if (this.#tracks.video) out.push({ id: VIDEO_ID, info: this.#tracks.video, timescale: TIMESCALE });
    const a = this.#tracks.audio;
    if (a) out.push({ id: AUDIO_ID, info: a, timescale: a.codec === 'opus' ? 48_000 : a.sampleRate });
    return out;
  }
}

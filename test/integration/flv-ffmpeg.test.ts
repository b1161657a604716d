import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER, TIMESCALE, type LadderRung, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { decodeAmf0, FlvReader, FlvWriter, MediaAssembler } from '../../src/flv/index.js';
import { buildFfmpegArgs } from '../../src/livetranscode/index.js';

const dir = mkdtempSync(join(tmpdir(), 'livepack-flv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ClipOptions {
  readonly size: string;
  /** Frame rate as FFmpeg takes it: "30", "60000/1001". */
  readonly rate: string;
  readonly seconds: number;
  /** Keyframe interval in frames. */
  readonly gop: number;
  readonly bframes: number;
}

/** An FLV clip from the real FFmpeg: H.264 test pattern and a 48 kHz AAC sine. */
function ffmpegClip(o: ClipOptions): Buffer {
  const r = spawnSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${o.size}:rate=${o.rate}`],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(o.seconds)],
      ...['-c:v', 'libx264', '-preset', o.bframes ? 'veryfast' : 'ultrafast', '-g', String(o.gop), '-bf', String(o.bframes)],
      ...['-c:a', 'aac', '-f', 'flv', 'pipe:1'],
    ],
    { maxBuffer: 256 << 20 },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed (${r.status}): ${r.stderr.toString()}`);
  return r.stdout;
}

interface Parsed {
  readonly tracks: TrackSet[];
  readonly frames: MediaFrame[];
}

/** FLV bytes -> tracks and frames, the way the server reads FFmpeg's output. */
function parse(flv: Buffer): Parsed {
  const out: Parsed = { tracks: [], frames: [] };
  const asm = new MediaAssembler(
    { setTracks: (t) => out.tracks.push(t), write: (f) => out.frames.push(f) },
    { maxBufferedFrames: 300, maxBufferedTicks: 2 * TIMESCALE, now: () => 0 },
  );
  for (const tag of new FlvReader({ maxTagBytes: 1 << 24 }).push(flv)) {
    if (tag.type === 9) asm.video(tag.timestamp, tag.body);
    else if (tag.type === 8) asm.audio(tag.timestamp, tag.body);
    else if (tag.type === 18) asm.metadata(decodeAmf0(tag.body)[1]);
  }
  return out;
}

/**
 * A source as the transcoder writes it to FFmpeg: from the first video keyframe on (StreamLadder
 * skips what comes before), through FlvWriter.
 */
function source(
  clip: Buffer,
  retime?: (f: MediaFrame, i: number) => MediaFrame,
): { tracks: TrackSet; frames: MediaFrame[]; flv: Buffer; base: number } {
  const p = parse(clip);
  expect(p.tracks).toHaveLength(1);
  const tracks = p.tracks[0];
  let frames = p.frames.slice(p.frames.findIndex((f) => f.track === 'video' && f.keyframe));
  if (retime) frames = frames.map(retime);
  const writer = new FlvWriter();
  const parts = [writer.header(tracks)];
  for (const f of frames) parts.push(writer.frame(f, f.track === 'video' ? tracks.video!.codec : 'aac'));
  return { tracks, frames, flv: Buffer.concat(parts), base: writer.base! };
}

interface ProbeStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  nb_read_frames?: string;
}

function ffprobe(
  file: string,
  extra: string[] = ['-count_frames', '-show_streams'],
): { streams: ProbeStream[]; packets?: { pts: number; dts: number }[] } {
  const r = spawnSync('ffprobe', ['-v', 'error', ...extra, '-of', 'json', file], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`ffprobe failed (${r.status}): ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString());
}

const byType = (streams: ProbeStream[], type: string) => streams.filter((s) => s.codec_type === type);
const ms = (ticks: number) => Math.round(ticks / 90);

describe('FlvWriter output read by the real FFmpeg', () => {
  it.each([0, 2])('a 2 s clip (%i B-frames): ffprobe finds H.264 320x240 and AAC and decodes every frame', (bframes) => {
    const src = source(ffmpegClip({ size: '320x240', rate: '30', seconds: 2, gop: 30, bframes }));
    const file = join(dir, `writer-${bframes}.flv`);
    writeFileSync(file, src.flv);
    const { streams } = ffprobe(file);
    const [video] = byType(streams, 'video');
    const [audio] = byType(streams, 'audio');
    expect(video).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
    expect(Number(video.nb_read_frames)).toBe(src.frames.filter((f) => f.track === 'video').length);
    expect(Number(video.nb_read_frames)).toBeGreaterThanOrEqual(59);
    expect(audio).toMatchObject({ codec_name: 'aac', sample_rate: '48000', channels: 1 });
    expect(Number(audio.nb_read_frames)).toBe(src.frames.filter((f) => f.track === 'audio').length);
  });

  it('FFmpeg reads the decode and presentation times that were written (B-frames: composition offsets)', () => {
    const src = source(ffmpegClip({ size: '320x240', rate: '30', seconds: 2, gop: 30, bframes: 2 }));
    const file = join(dir, 'writer-times.flv');
    writeFileSync(file, src.flv);
    const { packets } = ffprobe(file, ['-select_streams', 'v', '-show_entries', 'packet=pts,dts']);
    const video = src.frames.filter((f) => f.track === 'video');
    expect(video.some((f) => f.pts > f.dts)).toBe(true);
    expect(packets!.map((p) => [p.dts, p.pts])).toEqual(video.map((f) => [ms(f.dts - src.base), ms(f.pts - src.base)]));
  });
});

interface LadderRun {
  readonly code: number | null;
  readonly stderr: string;
  readonly progress: string;
  /** What FFmpeg wrote to pipe:4, pipe:5, ... */
  readonly rungs: Buffer[];
}

/** Runs FFmpeg with the transcoder's arguments: FLV on stdin, progress on fd 3, one FLV per rung on fd 4... */
function runLadder(args: string[], rungCount: number, input: Buffer): Promise<LadderRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', args, {
      stdio: ['pipe', 'ignore', 'pipe', ...Array.from({ length: 1 + rungCount }, () => 'pipe' as const)],
    });
    const collected: Buffer[][] = Array.from({ length: child.stdio.length }, () => []);
    child.stdio.forEach((s, fd) => {
      if (fd >= 2) s?.on('data', (c: Buffer) => collected[fd].push(c));
    });
    child.stdin!.on('error', () => {}); // EPIPE if FFmpeg dies early: its exit code tells
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = (fd: number) => Buffer.concat(collected[fd]).toString();
      resolve({ code, stderr: text(2), progress: text(3), rungs: collected.slice(4).map((c) => Buffer.concat(c)) });
    });
    child.stdin!.end(input);
  });
}

const videoOf = (p: Parsed) => p.frames.filter((f) => f.track === 'video');
const keyTimes = (frames: readonly MediaFrame[], base = 0) => frames.filter((f) => f.keyframe).map((f) => ms(f.dts - base));

describe('buildFfmpegArgs run by the real FFmpeg', () => {
  const rungs = DEFAULT_LADDER.filter((r) => r.name === '480p' || r.name === '360p');

  it('1280x720 30 fps with audio -> 480p on pipe:4 and 360p on pipe:5, video only, FLV that FFmpeg and our reader take', async () => {
    const src = source(ffmpegClip({ size: '1280x720', rate: '30', seconds: 2, gop: 30, bframes: 0 }));
    const args = buildFfmpegArgs({ rungs, source: { width: 1280, height: 720, frameRate: 30 }, x264Preset: 'ultrafast', vaapiDevice: '' });
    const run = await runLadder(args, rungs.length, src.flv);
    expect(run.code, run.stderr).toBe(0);
    expect(run.progress).toMatch(/^progress=end$/m);
    expect(run.rungs).toHaveLength(2);

    const srcVideo = src.frames.filter((f) => f.track === 'video');
    const want = [
      { width: 854, height: 480 },
      { width: 640, height: 360 },
    ];
    run.rungs.forEach((flv, i) => {
      expect(flv.subarray(0, 3).toString('latin1')).toBe('FLV');
      const file = join(dir, `rung-${i}.flv`);
      writeFileSync(file, flv);
      const { streams } = ffprobe(file);
      const [video] = byType(streams, 'video');
      expect(video).toMatchObject({ codec_name: 'h264', ...want[i] });
      expect(Number(video.nb_read_frames)).toBe(srcVideo.length);
      // The source's audio is not copied through FFmpeg: the transcoder adds it to the rungs itself.
      expect(byType(streams, 'audio')).toEqual([]);

      // What the server reads back: same size, no B-frames, keyframes where the source has them.
      const got = parse(flv);
      expect(got.tracks[0].video).toMatchObject({ codec: 'h264', ...want[i] });
      const v = videoOf(got);
      expect(v.every((f) => f.pts === f.dts)).toBe(true);
      expect(keyTimes(v)).toEqual(keyTimes(srcVideo, src.base));
      expect(keyTimes(v)).toEqual([0, 1000]);
      expect(got.tracks[0].audio).toBeUndefined();
      expect(got.frames.filter((f) => f.track === 'audio')).toEqual([]);
      expect(src.frames.some((f) => f.track === 'audio')).toBe(true);
    });
  });

  it('a source without audio: rungs without audio', async () => {
    const clip = source(ffmpegClip({ size: '640x360', rate: '30', seconds: 1, gop: 30, bframes: 0 }));
    const writer = new FlvWriter();
    const video = clip.frames.filter((f) => f.track === 'video');
    const input = Buffer.concat([writer.header({ video: clip.tracks.video }), ...video.map((f) => writer.frame(f, 'h264'))]);
    const rung = DEFAULT_LADDER.find((r) => r.name === '360p')!;
    const args = buildFfmpegArgs({
      rungs: [{ ...rung, height: 240 }],
      source: { width: 640, height: 360, frameRate: 30 },
      x264Preset: 'ultrafast',
      vaapiDevice: '',
    });
    const run = await runLadder(args, 1, input);
    expect(run.code, run.stderr).toBe(0);
    const got = parse(run.rungs[0]);
    expect(got.tracks[0]).toMatchObject({ video: { width: 426, height: 240 } });
    expect(got.tracks[0].audio).toBeUndefined();
    expect(videoOf(got)).toHaveLength(video.length);
  });

  it('a 60 fps source is reduced to 30 fps and keeps its keyframes', async () => {
    const src = source(ffmpegClip({ size: '640x360', rate: '60', seconds: 2, gop: 60, bframes: 0 }));
    const rung: LadderRung = { name: '240p', height: 240, videoBitrateKbps: 400, maxFrameRate: 30, encoder: 'libx264' };
    const args = buildFfmpegArgs({
      rungs: [rung],
      source: { width: 640, height: 360, frameRate: 60 },
      x264Preset: 'ultrafast',
      vaapiDevice: '',
    });
    expect(args.join(' ')).toContain("select='key+not(mod(n,2))'");
    const run = await runLadder(args, 1, src.flv);
    expect(run.code, run.stderr).toBe(0);
    const v = videoOf(parse(run.rungs[0]));
    expect(v.length).toBeGreaterThanOrEqual(59);
    expect(v.length).toBeLessThanOrEqual(61);
    expect(keyTimes(v)).toEqual(
      keyTimes(
        src.frames.filter((f) => f.track === 'video'),
        src.base,
      ),
    );
  });
});

// Two cases that once failed: frames re-stamped on a guessed frame-rate grid (fixed by -enc_time_base -1),
// and a 59.94 fps source capped at 30 fps losing its keyframes (fixed by keeping every n-th frame and every
// keyframe with their own timestamps).
describe('buildFfmpegArgs run by the real FFmpeg: source timestamps and keyframes survive', () => {
  const rung = (height: number): LadderRung => ({
    name: `${height}p`,
    height,
    videoBitrateKbps: 300,
    maxFrameRate: 30,
    encoder: 'libx264',
  });
  let jittered: { want: number[]; got: number[] };
  let ntsc: { want: number[]; got: number[] };

  beforeAll(async () => {
    // A 30 fps source whose frames come up to 8 ms early or late, as from a real camera or network encoder.
    let seed = 7;
    const jitter = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 16 - 8;
    const a = source(ffmpegClip({ size: '640x360', rate: '30', seconds: 2, gop: 30, bframes: 0 }), (f, i) => {
      if (f.track !== 'video' || i === 0) return f;
      const dts = f.dts + Math.round(jitter()) * 90;
      return { ...f, dts, pts: dts };
    });
    // 59.94 fps with an odd GOP: a keyframe every 59 frames (OBS's 1 s interval at 59.94), for 20 s. Keeping
    // every second frame alone would miss every other keyframe.
    const b = source(ffmpegClip({ size: '320x180', rate: '60000/1001', seconds: 20, gop: 59, bframes: 0 }));
    const [ra, rb] = await Promise.all([
      runLadder(
        buildFfmpegArgs({
          rungs: [rung(240)],
          source: { width: 640, height: 360, frameRate: 30 },
          x264Preset: 'ultrafast',
          vaapiDevice: '',
        }),
        1,
        a.flv,
      ),
      runLadder(
        buildFfmpegArgs({
          rungs: [rung(144)],
          source: { width: 320, height: 180, frameRate: 59.94 },
          x264Preset: 'ultrafast',
          vaapiDevice: '',
        }),
        1,
        b.flv,
      ),
    ]);
    for (const r of [ra, rb]) if (r.code !== 0) throw new Error(`ffmpeg exited with ${r.code}: ${r.stderr}`);
    const aVideo = a.frames.filter((f) => f.track === 'video');
    jittered = { want: aVideo.map((f) => ms(f.dts - a.base)), got: videoOf(parse(ra.rungs[0])).map((f) => ms(f.dts)) };
    if (jittered.got.length !== aVideo.length) throw new Error(`${jittered.got.length} rung frames for ${aVideo.length}`);
    ntsc = {
      want: keyTimes(
        b.frames.filter((f) => f.track === 'video'),
        b.base,
      ),
      got: keyTimes(videoOf(parse(rb.rungs[0]))),
    };
    if (ntsc.want.length !== 21) throw new Error(`source keyframes ${ntsc.want.join()}`);
  });

  it('rung frames keep the source timestamps (-copyts) when the source frame rate jitters', () => {
    expect(jittered.got).toEqual(jittered.want);
  });

  it('a 59.94 fps source reduced to the 30 fps cap keeps every source keyframe, at its time', () => {
    expect(ntsc.got).toEqual(ntsc.want);
  });
});

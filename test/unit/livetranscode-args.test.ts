import { describe, expect, it } from 'vitest';
import { DEFAULT_LADDER, type LadderRung } from '../../src/core/index.js';
import { buildFfmpegArgs } from '../../src/livetranscode/index.js';
import { FIRST_RUNG_FD, PROGRESS_FD } from '../../src/livetranscode/args.js';

const rung = (name: string): LadderRung => DEFAULT_LADDER.find((r) => r.name === name)!;
const R480 = rung('480p');
const R360 = rung('360p');
const SOURCE = { width: 1280, height: 720, frameRate: 30 };

function build(over: { rungs?: readonly LadderRung[]; source?: Partial<typeof SOURCE> } = {}): string[] {
  return buildFfmpegArgs({
    rungs: over.rungs ?? [R480, R360],
    source: { ...SOURCE, ...over.source },
    x264Preset: 'superfast',
    vaapiDevice: '/dev/dri/renderD129',
  });
}

/** The value following `flag` (the first occurrence at or after `from`). */
function valueOf(args: readonly string[], flag: string, from = 0): string | undefined {
  const i = args.indexOf(flag, from);
  return i < 0 ? undefined : args[i + 1];
}

/** Everything before the first output's options (global and input options). */
function inputPart(args: readonly string[]): string[] {
  return args.slice(0, args.indexOf('-map'));
}

/** The options of each output, in order: from its first -map to its pipe:N. */
function outputs(args: readonly string[]): string[][] {
  const out: string[][] = [];
  let start = args.indexOf('-map');
  for (let i = start; i < args.length; i++) {
    if (/^pipe:\d+$/.test(args[i]) && args[i - 1] !== '-i' && args[i - 1] !== '-progress') {
      out.push(args.slice(start, i + 1));
      start = i + 1;
    }
  }
  return out;
}

/** filter_complex as label -> chain, e.g. { v0: 'scale=-2:480' } (from `[sN]chain[vN]` parts). */
function chains(args: readonly string[]): Record<string, string> {
  const graph = valueOf(args, '-filter_complex') ?? '';
  const out: Record<string, string> = {};
  for (const part of graph.split(';')) {
    const m = /^\[(?:0:v|s\d+)\]([^[]+)\[(v\d+)\]$/.exec(part);
    if (m) out[m[2]] = m[1];
  }
  return out;
}

describe('buildFfmpegArgs: a 1280x720 30 fps source with audio, 480p + 360p', () => {
  const args = build();
  const outs = outputs(args);

  it('writes progress to pipe:3 and one FLV output per rung to pipe:4 and pipe:5', () => {
    expect(PROGRESS_FD).toBe(3);
    expect(FIRST_RUNG_FD).toBe(4);
    expect(valueOf(args, '-progress')).toBe('pipe:3');
    expect(outs).toHaveLength(2);
    expect(outs.map((o) => o.at(-1))).toEqual(['pipe:4', 'pipe:5']);
    for (const o of outs) expect(o.at(-3)).toBe('-f');
    for (const o of outs) expect(o.at(-2)).toBe('flv');
  });

  it('reads FLV from stdin, keeps the source timestamps (-copyts)', () => {
    const inp = inputPart(args);
    expect(valueOf(inp, '-f')).toBe('flv');
    expect(valueOf(inp, '-i')).toBe('pipe:0');
    expect(inp).toContain('-copyts');
    expect(inp).toContain('-nostdin');
    expect(args.filter((a) => a === '-i')).toHaveLength(1);
  });

  it('splits the decoded source once and scales each branch to its rung height', () => {
    const graph = valueOf(args, '-filter_complex')!;
    expect(graph.startsWith('[0:v]split=2[s0][s1];')).toBe(true);
    expect(chains(args)).toEqual({ v0: 'scale=-2:480', v1: 'scale=-2:360' });
  });

  it('output i takes the branch of rung i, with its bitrate, and no audio (the transcoder adds the source audio)', () => {
    const [o480, o360] = outs;
    expect(o480.slice(0, 3)).toEqual(['-map', '[v0]', '-c:v']);
    expect(o360.slice(0, 3)).toEqual(['-map', '[v1]', '-c:v']);
    expect(args).not.toContain('0:a');
    expect(args).not.toContain('-c:a');
    expect(valueOf(o480, '-b:v')).toBe('1400k');
    expect(valueOf(o480, '-maxrate')).toBe('1400k');
    expect(valueOf(o480, '-bufsize')).toBe('2800k');
    expect(valueOf(o360, '-b:v')).toBe('800k');
  });

  it('every output: libx264 with the preset, no B-frames, keyframes where the source has them', () => {
    for (const o of outs) {
      expect(valueOf(o, '-c:v')).toBe('libx264');
      expect(valueOf(o, '-preset')).toBe('superfast');
      expect(valueOf(o, '-tune')).toBe('zerolatency');
      expect(valueOf(o, '-bf')).toBe('0');
      expect(valueOf(o, '-force_key_frames')).toBe('source');
      expect(valueOf(o, '-sc_threshold')).toBe('0');
      expect(valueOf(o, '-fps_mode')).toBe('passthrough');
      expect(valueOf(o, '-flush_packets')).toBe('1');
    }
  });

  it('no frame-rate filter for a source at or under the cap, and no hardware device', () => {
    expect(args.join(' ')).not.toContain('select=');
    expect(args).not.toContain('-vaapi_device');
    expect(args.join(' ')).not.toContain('hwupload');
  });
});

describe('buildFfmpegArgs: other sources and encoders', () => {
  it('a 60 fps source is capped to the rung frame rate (30)', () => {
    // Every second frame and every keyframe, with their own timestamps (no re-stamping fps filter).
    expect(chains(build({ source: { frameRate: 60 } }))).toEqual({
      v0: "select='key+not(mod(n,2))',scale=-2:480",
      v1: "select='key+not(mod(n,2))',scale=-2:360",
    });
  });

  it('a 59.94 fps source is capped, a 30.3 fps one is not', () => {
    // 59.94 -> 29.97 by the same whole factor; see the keyframe tests in test/integration/flv-ffmpeg.test.ts.
    expect(chains(build({ source: { frameRate: 59.94 } })).v0).toBe("select='key+not(mod(n,2))',scale=-2:480");
    expect(chains(build({ source: { frameRate: 30.3 } })).v0).toBe('scale=-2:480');
  });

  it('a rung capped at 60 leaves a 60 fps source alone', () => {
    const r720 = rung('720p');
    const args = build({ rungs: [r720], source: { width: 1920, height: 1080, frameRate: 60 } });
    expect(valueOf(args, '-filter_complex')).toBe('[0:v]scale=-2:720[v0]');
  });

  it('portrait 720x1280: the rung height is the width', () => {
    expect(chains(build({ source: { width: 720, height: 1280 } }))).toEqual({ v0: 'scale=480:-2', v1: 'scale=360:-2' });
  });

  it('one rung: no split', () => {
    const args = build({ rungs: [R360] });
    expect(valueOf(args, '-filter_complex')).toBe('[0:v]scale=-2:360[v0]');
    expect(outputs(args).map((o) => o.at(-1))).toEqual(['pipe:4']);
  });

  it('four rungs go to pipes 4..7 in ladder order', () => {
    const args = build({ rungs: DEFAULT_LADDER, source: { width: 3840, height: 2160 } });
    const outs = outputs(args);
    expect(outs.map((o) => o.at(-1))).toEqual(['pipe:4', 'pipe:5', 'pipe:6', 'pipe:7']);
    expect(outs.map((o) => valueOf(o, '-b:v'))).toEqual(['5000k', '2800k', '1400k', '800k']);
    expect(chains(args)).toEqual({ v0: 'scale=-2:1080', v1: 'scale=-2:720', v2: 'scale=-2:480', v3: 'scale=-2:360' });
  });

  it('h264_vaapi: the device before the input, hwupload only in the VAAPI rung', () => {
    const args = build({ rungs: [{ ...R480, encoder: 'h264_vaapi' }, R360] });
    const inp = inputPart(args);
    expect(valueOf(inp, '-vaapi_device')).toBe('/dev/dri/renderD129');
    expect(inp.indexOf('-vaapi_device')).toBeLessThan(inp.indexOf('-i'));
    expect(chains(args)).toEqual({ v0: 'scale=-2:480,format=nv12,hwupload', v1: 'scale=-2:360' });
    const [vaapi, x264] = outputs(args);
    expect(valueOf(vaapi, '-c:v')).toBe('h264_vaapi');
    expect(valueOf(vaapi, '-bf')).toBe('0');
    expect(valueOf(vaapi, '-force_key_frames')).toBe('source');
    expect(valueOf(x264, '-c:v')).toBe('libx264');
  });

  it('h264_nvenc: low-latency preset, no B-frames, forced keyframes as IDR, no hardware device flag', () => {
    const args = build({ rungs: [{ ...R480, encoder: 'h264_nvenc' }] });
    const [o] = outputs(args);
    expect(valueOf(o, '-c:v')).toBe('h264_nvenc');
    expect(valueOf(o, '-preset')).toBe('p4');
    expect(valueOf(o, '-tune')).toBe('ll');
    expect(valueOf(o, '-bf')).toBe('0');
    expect(valueOf(o, '-forced-idr')).toBe('1');
    expect(valueOf(o, '-force_key_frames')).toBe('source');
    expect(valueOf(o, '-b:v')).toBe('1400k');
    expect(o).not.toContain('-sc_threshold'); // a libx264 option
    expect(args).not.toContain('-vaapi_device');
  });

  it('h264_qsv: forced keyframes as IDR, no B-frames', () => {
    const [o] = outputs(build({ rungs: [{ ...R360, encoder: 'h264_qsv' }] }));
    expect(valueOf(o, '-c:v')).toBe('h264_qsv');
    expect(valueOf(o, '-forced_idr')).toBe('1');
    expect(valueOf(o, '-bf')).toBe('0');
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError, type TrackInfo } from '../../src/core/index.js';
import { buildFragment, buildInitSegment, type CmafSample, type CmafTrack, type FragmentTrack } from '../../src/packager/cmaf/index.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const AVCC_640x360 = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const ASC_44100_STEREO = hex('1210');

const workDir = mkdtempSync(join(tmpdir(), 'cmaf-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------ box reader

interface Box {
  type: string;
  start: number;
  size: number;
  /** offset of the payload (after the 8-byte header) */
  body: number;
  children: Box[];
}

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'dinf', 'stbl', 'mvex', 'moof', 'traf']);
/** Where children start inside boxes that have fields before them. */
const CHILD_OFFSET: Record<string, number> = { stsd: 8, dref: 8, avc1: 78, hvc1: 78, av01: 78, mp4a: 28, Opus: 28 };

function parseBoxes(buf: Uint8Array, start = 0, end = buf.length): Box[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Box[] = [];
  let pos = start;
  while (pos < end) {
    expect(end - pos).toBeGreaterThanOrEqual(8);
    const size = dv.getUint32(pos);
    const type = Buffer.from(buf.subarray(pos + 4, pos + 8)).toString('latin1');
    expect(size).toBeGreaterThanOrEqual(8);
    expect(pos + size).toBeLessThanOrEqual(end);
    const box: Box = { type, start: pos, size, body: pos + 8, children: [] };
    const childOffset = CONTAINERS.has(type) ? 0 : CHILD_OFFSET[type];
    if (childOffset !== undefined) box.children = parseBoxes(buf, pos + 8 + childOffset, pos + size);
    out.push(box);
    pos += size;
  }
  expect(pos).toBe(end); // sizes add up exactly
  return out;
}

function find(boxes: Box[], path: string): Box {
  let cur: Box | undefined;
  let list = boxes;
  for (const type of path.split('/')) {
    cur = list.find((b) => b.type === type);
    if (!cur) throw new Error(`no ${type} in ${path}`);
    list = cur.children;
  }
  return cur!;
}

const types = (boxes: Box[]) => boxes.map((b) => b.type);
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

// ------------------------------------------------------------------------------------ structure

const videoInfo: TrackInfo = { kind: 'video', codec: 'h264', codecPrivate: AVCC_640x360, width: 640, height: 360, frameRate: 30 };
const audioInfo: TrackInfo = { kind: 'audio', codec: 'aac', codecPrivate: ASC_44100_STEREO, sampleRate: 44100, channels: 2 };

describe('buildInitSegment', () => {
  const init = buildInitSegment([
    { id: 1, info: videoInfo, timescale: 90000 },
    { id: 2, info: audioInfo, timescale: 44100 },
  ]);
  const boxes = parseBoxes(init);
  const dv = view(init);

  it('is ftyp + moov with a trak per track and a trex per track', () => {
    expect(types(boxes)).toEqual(['ftyp', 'moov']);
    expect(Buffer.from(init.subarray(8, 12)).toString('latin1')).toBe('iso6');
    const brands = Buffer.from(init.subarray(16, boxes[0].size)).toString('latin1');
    expect(brands).toBe('iso6cmfcisommp41');
    expect(types(boxes[1].children)).toEqual(['mvhd', 'trak', 'trak', 'mvex']);
    const mvex = find(boxes, 'moov/mvex');
    expect(mvex.children.map((b) => dv.getUint32(b.body + 4))).toEqual([1, 2]);
    const [vtrak, atrak] = boxes[1].children.filter((b) => b.type === 'trak');
    expect(types(vtrak.children)).toEqual(['tkhd', 'mdia']);
    expect(types(find(vtrak.children, 'mdia').children)).toEqual(['mdhd', 'hdlr', 'minf']);
    expect(types(find(vtrak.children, 'mdia/minf').children)).toEqual(['vmhd', 'dinf', 'stbl']);
    expect(types(find(atrak.children, 'mdia/minf').children)).toEqual(['smhd', 'dinf', 'stbl']);
    expect(types(find(vtrak.children, 'mdia/minf/stbl').children)).toEqual(['stsd', 'stts', 'stsc', 'stsz', 'stco']);
    expect(dv.getUint32(find(vtrak.children, 'mdia/mdhd').body + 12)).toBe(90000);
    expect(dv.getUint32(find(atrak.children, 'mdia/mdhd').body + 12)).toBe(44100);
    const tkhd = find(vtrak.children, 'tkhd');
    expect(dv.getUint32(tkhd.body + 12)).toBe(1);
    expect([dv.getUint32(tkhd.body + 76), dv.getUint32(tkhd.body + 80)]).toEqual([640 << 16, 360 << 16]);
  });

  it('carries avcC verbatim in avc1 with the picture size', () => {
    const avc1 = find(boxes, 'moov/trak/mdia/minf/stbl/stsd/avc1');
    expect([dv.getUint16(avc1.body + 24), dv.getUint16(avc1.body + 26)]).toEqual([640, 360]);
    const avcC = find(avc1.children, 'avcC');
    expect(init.subarray(avcC.body, avcC.start + avcC.size)).toEqual(AVCC_640x360);
  });

  it('writes an esds whose descriptor lengths match their contents', () => {
    const atrak = boxes[1].children.filter((b) => b.type === 'trak')[1];
    const mp4a = find(atrak.children, 'mdia/minf/stbl/stsd/mp4a');
    expect(dv.getUint16(mp4a.body + 16)).toBe(2); // channelcount
    expect(dv.getUint32(mp4a.body + 24)).toBe(44100 * 65536);
    const esds = find(mp4a.children, 'esds');
    const end = esds.start + esds.size;
    // walk the descriptors: tag, expandable size, payload
    const readDescriptor = (pos: number) => {
      const tag = init[pos++];
      let size = 0;
      let b: number;
      do {
        b = init[pos++];
        size = size * 128 + (b & 0x7f);
      } while (b & 0x80);
      return { tag, body: pos, end: pos + size };
    };
    const es = readDescriptor(esds.body + 4);
    expect(es.tag).toBe(3);
    expect(es.end).toBe(end);
    const dcd = readDescriptor(es.body + 3);
    expect(dcd.tag).toBe(4);
    expect(init[dcd.body]).toBe(0x40);
    expect(init[dcd.body + 1]).toBe(0x15);
    const dsi = readDescriptor(dcd.body + 13);
    expect(dsi.tag).toBe(5);
    expect(dsi.end).toBe(dcd.end);
    expect(init.subarray(dsi.body, dsi.end)).toEqual(ASC_44100_STEREO);
    const sl = readDescriptor(dcd.end);
    expect([sl.tag, sl.end, init[sl.body]]).toEqual([6, end, 2]);
  });

  it('writes Opus + dOps from an OpusHead, and hvc1 / av01 entries', () => {
    const opusHead = hex('4f707573486561640102380180bb00000000' + '00');
    const opus = buildInitSegment([
      { id: 1, info: { kind: 'audio', codec: 'opus', codecPrivate: opusHead, sampleRate: 48000, channels: 2 }, timescale: 48000 },
    ]);
    const dOps = find(parseBoxes(opus), 'moov/trak/mdia/minf/stbl/stsd/Opus/dOps');
    expect(Buffer.from(opus.subarray(dOps.body, dOps.start + dOps.size)).toString('hex')).toBe(
      '0002013800 00bb80 0000 00'.replace(/ /g, ''),
    );
    for (const [codec, entry, config] of [
      ['h265', 'hvc1', 'hvcC'],
      ['av1', 'av01', 'av1C'],
    ] as const) {
      const seg = buildInitSegment([
        { id: 3, info: { kind: 'video', codec, codecPrivate: hex('0102'), width: 320, height: 240, frameRate: 0 }, timescale: 90000 },
      ]);
      expect(find(parseBoxes(seg), `moov/trak/mdia/minf/stbl/stsd/${entry}/${config}`).size).toBe(10);
    }
  });

  it('rejects bad track lists', () => {
    expect(() => buildInitSegment([])).toThrow(AppError);
    expect(() =>
      buildInitSegment([
        { id: 1, info: videoInfo, timescale: 90000 },
        { id: 1, info: audioInfo, timescale: 44100 },
      ]),
    ).toThrow(AppError);
    expect(() => buildInitSegment([{ id: 1, info: videoInfo, timescale: 0 }])).toThrow(AppError);
  });
});

describe('buildFragment', () => {
  const sample = (n: number, fill: number, keyframe: boolean, compositionOffset = 0): CmafSample => ({
    duration: 3000,
    data: new Uint8Array(n).fill(fill),
    keyframe,
    compositionOffset,
  });
  const video: FragmentTrack = {
    id: 1,
    baseMediaDecodeTime: 2 ** 33 + 5, // needs tfdt version 1
    samples: [sample(100, 1, true, 6000), sample(37, 2, false, -3000), sample(5, 3, false, 0)],
  };
  const audio: FragmentTrack = { id: 2, baseMediaDecodeTime: 44100, samples: [sample(20, 4, true), sample(21, 5, true)] };
  const frag = buildFragment(7, [video, audio]);
  const dv = view(frag);
  const boxes = parseBoxes(frag);

  it('is one moof + one mdat whose sizes add up', () => {
    expect(types(boxes)).toEqual(['moof', 'mdat']);
    expect(types(boxes[0].children)).toEqual(['mfhd', 'traf', 'traf']);
    expect(dv.getUint32(find(boxes, 'moof/mfhd').body + 4)).toBe(7);
    expect(boxes[1].size).toBe(8 + 100 + 37 + 5 + 20 + 21);
    for (const traf of boxes[0].children.slice(1)) expect(types(traf.children)).toEqual(['tfhd', 'tfdt', 'trun']);
  });

  it('writes tfhd default-base-is-moof, tfdt v1 and trun v1 fields per sample', () => {
    const [vtraf, atraf] = boxes[0].children.slice(1);
    const tfhd = find(vtraf.children, 'tfhd');
    expect(dv.getUint32(tfhd.body)).toBe(0x020000);
    expect(dv.getUint32(tfhd.body + 4)).toBe(1);
    const tfdt = find(vtraf.children, 'tfdt');
    expect(frag[tfdt.body]).toBe(1);
    expect(dv.getBigUint64(tfdt.body + 4)).toBe(2n ** 33n + 5n);
    expect(dv.getBigUint64(find(atraf.children, 'tfdt').body + 4)).toBe(44100n);
    const trun = find(vtraf.children, 'trun');
    expect(dv.getUint32(trun.body)).toBe(0x01000f01);
    expect(dv.getUint32(trun.body + 4)).toBe(3);
    const rows = [0, 1, 2].map((i) => {
      const at = trun.body + 12 + 16 * i;
      return [dv.getUint32(at), dv.getUint32(at + 4), dv.getUint32(at + 8), dv.getInt32(at + 12)];
    });
    expect(rows).toEqual([
      [3000, 100, 0x02000000, 6000],
      [3000, 37, 0x01010000, -3000],
      [3000, 5, 0x01010000, 0],
    ]);
  });

  it('points every trun data offset at that track’s bytes in the mdat', () => {
    const moof = boxes[0];
    for (const [i, traf] of boxes[0].children.slice(1).entries()) {
      const track = [video, audio][i];
      const trun = find(traf.children, 'trun');
      let pos = moof.start + dv.getInt32(trun.body + 8);
      for (const s of track.samples) {
        expect(frag.subarray(pos, pos + s.data.length)).toEqual(s.data);
        pos += s.data.length;
      }
    }
    expect(moof.start + dv.getInt32(find(boxes[0].children[1].children, 'trun').body + 8)).toBe(boxes[1].body);
  });

  it('accepts an empty run and rejects bad input', () => {
    expect(types(parseBoxes(buildFragment(1, [{ id: 1, baseMediaDecodeTime: 0, samples: [] }])))).toEqual(['moof', 'mdat']);
    expect(() => buildFragment(-1, [video])).toThrow(AppError);
    expect(() => buildFragment(1, [])).toThrow(AppError);
    expect(() => buildFragment(1, [{ ...video, baseMediaDecodeTime: -1 }])).toThrow(AppError);
    expect(() => buildFragment(1, [{ ...video, samples: [{ ...video.samples[0], duration: 1.5 }] }])).toThrow(AppError);
    expect(() => buildFragment(1, [{ ...video, samples: [{ ...video.samples[0], compositionOffset: 2 ** 31 }] }])).toThrow(AppError);
  });
});

// ------------------------------------------------------------------------------------ real decoders

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

interface Probe {
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  nb_read_frames: string;
  duration: string;
}

/** ffprobe the file, and decode it completely: stderr must stay empty. */
function probeAndDecode(file: string): Probe[] {
  const json = execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-count_frames', '-of', 'json', file]).toString();
  const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  expect(decode.stderr).toBe('');
  expect(decode.status).toBe(0);
  return (JSON.parse(json) as { streams: Probe[] }).streams;
}

interface Frame {
  dts: number; // in the track timescale
  cts: number;
  key: boolean;
  data: Uint8Array;
}

/** Just enough FLV: AVC and AAC tags, sequence headers apart. Timestamps to 90 kHz. */
function demuxFlv(buf: Buffer) {
  expect(buf.toString('latin1', 0, 3)).toBe('FLV');
  const out = { avcC: new Uint8Array(0), asc: new Uint8Array(0), video: [] as Frame[], audio: [] as Frame[] };
  let pos = buf.readUInt32BE(5) + 4;
  while (pos + 11 <= buf.length) {
    const type = buf[pos];
    const size = buf.readUIntBE(pos + 1, 3);
    const ms = buf.readUIntBE(pos + 4, 3) + buf[pos + 7] * 2 ** 24;
    const data = buf.subarray(pos + 11, pos + 11 + size);
    pos += 11 + size + 4;
    if (type === 9 && (data[0] & 0x0f) === 7) {
      if (data[1] === 0) out.avcC = Uint8Array.from(data.subarray(5));
      else if (data[1] === 1)
        out.video.push({ dts: ms * 90, cts: data.readIntBE(2, 3) * 90, key: data[0] >> 4 === 1, data: data.subarray(5) });
    } else if (type === 8 && data[0] >> 4 === 10) {
      if (data[1] === 0) out.asc = Uint8Array.from(data.subarray(2));
      else out.audio.push({ dts: ms, cts: 0, key: true, data: data.subarray(2) });
    }
  }
  return out;
}

/** Samples from frames with known dts; the last sample repeats the previous duration. */
function toSamples(frames: Frame[]): CmafSample[] {
  return frames.map((f, i) => ({
    duration: i + 1 < frames.length ? frames[i + 1].dts - f.dts : i > 0 ? f.dts - frames[i - 1].dts : 3000,
    data: f.data,
    keyframe: f.key,
    compositionOffset: f.cts,
  }));
}

/** Cuts video at keyframes; each fragment takes the other track's samples up to the same time. */
function fragment(video: CmafSample[], videoStart: number, other?: { samples: CmafSample[]; timescale: number }): FragmentTrack[][] {
  const frags: FragmentTrack[][] = [];
  let vTime = videoStart;
  let oTime = 0;
  let oIndex = 0;
  for (let i = 0; i < video.length;) {
    let j = i + 1;
    while (j < video.length && !video[j].keyframe) j++;
    const run = video.slice(i, j);
    const tracks: FragmentTrack[] = [{ id: 1, baseMediaDecodeTime: vTime, samples: run }];
    vTime += run.reduce((a, s) => a + s.duration, 0);
    if (other) {
      const start = oIndex;
      const limit = j < video.length ? (vTime / 90000) * other.timescale : Infinity;
      while (oIndex < other.samples.length && oTime < limit) oTime += other.samples[oIndex++].duration;
      tracks.push({
        id: 2,
        baseMediaDecodeTime: oTime - other.samples.slice(start, oIndex).reduce((a, s) => a + s.duration, 0),
        samples: other.samples.slice(start, oIndex),
      });
    }
    frags.push(tracks);
    i = j;
  }
  return frags;
}

function writeMovie(name: string, tracks: CmafTrack[], frags: FragmentTrack[][]): string {
  const file = join(workDir, name);
  const parts = [buildInitSegment(tracks), ...frags.map((f, i) => buildFragment(i + 1, f))];
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

describe('decoder acceptance (ffprobe / ffmpeg)', () => {
  it.each([
    ['baseline', 640, 360, 44100, 2],
    ['high', 1280, 720, 48000, 1],
  ] as const)('H.264 %s %dx%d + AAC %d Hz x%d from FLV', (profile, width, height, rate, channels) => {
    const flv = join(workDir, `${profile}.flv`);
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${width}x${height}:rate=30`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=${rate}`,
      '-t',
      '2',
      '-c:v',
      'libx264',
      '-profile:v',
      profile,
      '-g',
      '15',
      '-keyint_min',
      '15',
      '-sc_threshold',
      '0',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-ac',
      String(channels),
      '-f',
      'flv',
      flv,
    ]);
    const src = demuxFlv(readFileSync(flv));
    expect(src.video.length).toBe(60);
    if (profile === 'high') expect(src.video.some((f) => f.cts > 0)).toBe(true); // B-frames: composition offsets
    const audio = src.audio.map((f) => ({ duration: 1024, data: f.data, keyframe: true, compositionOffset: 0 }));
    const frags = fragment(toSamples(src.video), src.video[0].dts, { samples: audio, timescale: rate });
    expect(frags.length).toBe(4);
    const file = writeMovie(
      `${profile}.mp4`,
      [
        { id: 1, info: { kind: 'video', codec: 'h264', codecPrivate: src.avcC, width, height, frameRate: 30 }, timescale: 90000 },
        { id: 2, info: { kind: 'audio', codec: 'aac', codecPrivate: src.asc, sampleRate: rate, channels }, timescale: rate },
      ],
      frags,
    );

    const [v, a] = probeAndDecode(file);
    expect(v).toMatchObject({ codec_name: 'h264', width, height, nb_read_frames: '60' });
    expect(Math.abs(Number(v.duration) - 2)).toBeLessThanOrEqual(1 / 30);
    // Every packet keeps its decode and presentation time (composition offsets for B-frames).
    const packets = execFileSync('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v',
      '-show_entries',
      'packet=dts,pts',
      '-of',
      'csv=p=0',
      file,
    ]);
    expect(packets.toString().trim().split('\n')).toEqual(src.video.map((f) => `${f.dts + f.cts},${f.dts}`));
    expect(a).toMatchObject({ codec_name: 'aac', sample_rate: String(rate), channels, nb_read_frames: String(audio.length) });
    expect(Math.abs(Number(a.duration) - (audio.length * 1024) / rate)).toBeLessThanOrEqual(1024 / rate);
  });

  it('H.265 (Annex B, lengths rewritten) + Opus (Ogg) decode', () => {
    const raw = join(workDir, 'in.hevc');
    const ogg = join(workDir, 'in.ogg');
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=640x360:rate=30',
      '-t',
      '1',
      '-c:v',
      'libx265',
      '-x265-params',
      'bframes=0:keyint=15:min-keyint=15:scenecut=0:info=0:log-level=error',
      '-f',
      'hevc',
      raw,
    ]);
    ffmpeg(['-i', raw, '-c', 'copy', '-tag:v', 'hvc1', '-f', 'mp4', join(workDir, 'hevc.mp4')]);
    ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '1', '-ac', '2', '-c:a', 'libopus', '-f', 'ogg', ogg]);
    const hvcC = configBox(readFileSync(join(workDir, 'hevc.mp4')), 'hvcC');
    const video = hevcAccessUnits(readFileSync(raw));
    expect(video.length).toBe(30);
    const opus = demuxOggOpus(readFileSync(ogg));
    const frags = fragment(toSamples(video), 0, { samples: opus.packets, timescale: 48000 });
    const file = writeMovie(
      'hevc-opus.mp4',
      [
        { id: 1, info: { kind: 'video', codec: 'h265', codecPrivate: hvcC, width: 640, height: 360, frameRate: 30 }, timescale: 90000 },
        { id: 2, info: { kind: 'audio', codec: 'opus', codecPrivate: opus.head, sampleRate: 48000, channels: 2 }, timescale: 48000 },
      ],
      frags,
    );
    const [v, a] = probeAndDecode(file);
    expect(v).toMatchObject({ codec_name: 'hevc', width: 640, height: 360, nb_read_frames: '30' });
    expect(a).toMatchObject({ codec_name: 'opus', sample_rate: '48000', channels: 2 });
  });

  it('AV1 (OBU stream) decodes', () => {
    const raw = join(workDir, 'in.obu');
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=640x360:rate=30',
      '-t',
      '1',
      '-c:v',
      'libsvtav1',
      '-preset',
      '12',
      '-g',
      '15',
      '-f',
      'obu',
      raw,
    ]);
    ffmpeg(['-i', raw, '-c', 'copy', '-f', 'mp4', join(workDir, 'av1.mp4')]);
    const av1C = configBox(readFileSync(join(workDir, 'av1.mp4')), 'av1C');
    const video = av1TemporalUnits(readFileSync(raw));
    expect(video.length).toBe(30);
    const file = writeMovie(
      'av1-out.mp4',
      [{ id: 1, info: { kind: 'video', codec: 'av1', codecPrivate: av1C, width: 640, height: 360, frameRate: 30 }, timescale: 90000 }],
      fragment(toSamples(video), 0),
    );
    const [v] = probeAndDecode(file);
    expect(v).toMatchObject({ codec_name: 'av1', width: 640, height: 360, nb_read_frames: '30' });
  });
});

// ------------------------------------------------------------------------------------ tiny demuxers

/** Payload of the first box of this type in an MP4 file written by FFmpeg. */
function configBox(mp4: Buffer, type: string): Uint8Array {
  const at = mp4.indexOf(type, 0, 'latin1');
  expect(at).toBeGreaterThan(4);
  return Uint8Array.from(mp4.subarray(at + 4, at - 4 + mp4.readUInt32BE(at - 4)));
}

function splitAnnexB(buf: Buffer): Buffer[] {
  const nals: Buffer[] = [];
  let start = -1;
  for (let i = 0; i + 3 <= buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) {
      if (start >= 0) nals.push(buf.subarray(start, buf[i - 1] === 0 ? i - 1 : i));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0) nals.push(buf.subarray(start));
  return nals;
}

const lengthPrefixed = (nals: Buffer[]) =>
  Buffer.concat(nals.flatMap((n) => [Buffer.from([0, 0, 0, 0].map((_, k) => (n.length >>> (24 - 8 * k)) & 0xff)), n]));

/** Access units from an HEVC Annex B stream (no B-frames: dts = pts, 30 fps); parameter sets out of band. */
function hevcAccessUnits(buf: Buffer): Frame[] {
  const aus: Buffer[][] = [];
  let cur: Buffer[] = [];
  let hasVcl = false;
  for (const nal of splitAnnexB(buf)) {
    const type = (nal[0] >> 1) & 0x3f;
    const vcl = type < 32;
    if (hasVcl && ((type >= 32 && type <= 35) || type === 39 || (vcl && nal[2] & 0x80))) {
      aus.push(cur);
      cur = [];
      hasVcl = false;
    }
    hasVcl ||= vcl;
    if (type < 32 || type === 39) cur.push(nal);
  }
  if (cur.length) aus.push(cur);
  return aus.map((nals, i) => ({
    dts: i * 3000,
    cts: 0,
    key: nals.some((n) => ((n[0] >> 1) & 0x3f) >= 16 && ((n[0] >> 1) & 0x3f) <= 23),
    data: lengthPrefixed(nals),
  }));
}

/** Temporal units from a low-overhead AV1 stream; temporal delimiters dropped, sequence header = key. */
function av1TemporalUnits(buf: Buffer): Frame[] {
  const tus: Buffer[][] = [];
  let pos = 0;
  while (pos < buf.length) {
    const header = buf[pos];
    const ext = header & 0x04 ? 1 : 0;
    let size = 0;
    let p = pos + 1 + ext;
    for (let k = 0; ; k++) {
      const b = buf[p++];
      size += (b & 0x7f) * 2 ** (7 * k);
      if (!(b & 0x80)) break;
    }
    const obu = buf.subarray(pos, p + size);
    const type = (header >> 3) & 0x0f;
    if (type === 2) tus.push([]);
    else tus[tus.length - 1].push(obu);
    pos = p + size;
  }
  return tus.map((obus, i) => ({ dts: i * 3000, cts: 0, key: obus.some((o) => ((o[0] >> 3) & 0x0f) === 1), data: Buffer.concat(obus) }));
}

/** OpusHead and audio packets (with durations from the TOC byte, RFC 6716 3.1) from an Ogg file. */
function demuxOggOpus(buf: Buffer): { head: Uint8Array; packets: CmafSample[] } {
  const packets: Buffer[] = [];
  let partial: Buffer[] = [];
  for (let pos = 0; pos < buf.length;) {
    expect(buf.toString('latin1', pos, pos + 4)).toBe('OggS');
    const segments = buf[pos + 26];
    let data = pos + 27 + segments;
    for (let s = 0; s < segments; s++) {
      const lace = buf[pos + 27 + s];
      partial.push(buf.subarray(data, data + lace));
      data += lace;
      if (lace < 255) {
        packets.push(Buffer.concat(partial));
        partial = [];
      }
    }
    pos = data;
  }
  const frameSamples = (config: number) =>
    config < 12 ? [480, 960, 1920, 2880][config % 4] : config < 16 ? [480, 960][config % 2] : [120, 240, 480, 960][config % 4];
  const audio = packets.slice(2).map((p) => {
    const count = [1, 2, 2, p[1] & 0x3f][p[0] & 3];
    return { duration: count * frameSamples(p[0] >> 3), data: p, keyframe: true, compositionOffset: 0 };
  });
  return { head: Uint8Array.from(packets[0]), packets: audio };
}

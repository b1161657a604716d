import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AppError,
  parseAudioSpecificConfig,
  parseAvcDecoderConfig,
  type Logger,
  type MediaFrame,
  type TrackSet,
} from '../../src/core/index.js';
import { DEFAULT_RTMP_LIMITS, RtmpServer } from '../../src/ingest/rtmp/index.js';
import { StreamHub, type Reader, type StreamEvent } from '../../src/stream/index.js';

const FFMPEG = '/usr/bin/ffmpeg';
const FFPROBE = '/usr/bin/ffprobe';
const GST = 'gst-launch-1.0';
const KEYS: Record<string, string> = { 'key-a': 'stream-a', 'key-b': 'stream-b' };

interface LogLine {
  level: string;
  obj: unknown;
  msg?: string;
}

function captureLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (obj: unknown, msg?: string) => lines.push({ level, obj, msg });
  const l: Logger = { child: () => l, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return l;
}

let hub: StreamHub;
let server: RtmpServer;
let port: number;
let logs: LogLine[];
const children = new Set<ChildProcess>();

beforeEach(async () => {
  logs = [];
  const logger = captureLogger(logs);
  hub = new StreamHub({ graceMs: 5000, readerQueueFrames: 10_000, logger });
  server = new RtmpServer({
    host: '127.0.0.1',
    port: 0,
    limits: DEFAULT_RTMP_LIMITS,
    hub,
    logger,
    authorize: async (app, key) => {
      const id = KEYS[key];
      if (app !== 'live' || !id) throw new AppError('E_STREAM_KEY_INVALID', 'unknown stream key');
      return { streamId: id };
    },
  });
  ({ port } = await server.start());
});

afterEach(async () => {
  await Promise.all([...children].map(stop));
  await server.close();
  hub.close();
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.stderr?.resume(); // never let a full pipe block the child
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited(child);
}

function ffmpeg(key: string, url = `rtmp://127.0.0.1:${port}/live/${key}`, videoCodec = 'libx264'): ChildProcess {
  const args = ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30'];
  args.push('-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '30');
  if (videoCodec === 'libx264') args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30');
  else args.push('-c:v', videoCodec);
  args.push('-c:a', 'aac', '-f', 'flv');
  args.push(url);
  return track(spawn(FFMPEG, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
}

function gstreamer(key: string): ChildProcess {
  const pipeline =
    'videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=30 ! h264parse ! flvmux streamable=true name=m ' +
    `audiotestsrc is-live=true ! voaacenc ! aacparse ! m. m. ! rtmp2sink location=rtmp://127.0.0.1:${port}/live/${key}`;
  return track(spawn(GST, ['-q', ...pipeline.split(' ')], { stdio: ['ignore', 'ignore', 'pipe'] }));
}

/** Subscribes as soon as the stream goes live, so the reader sees the session from its first event. */
function readerFor(streamId: string): Promise<Reader> {
  return new Promise((resolve) => {
    const on = (id: string) => {
      if (id !== streamId) return;
      hub.off('stream-start', on);
      resolve(hub.subscribe(id, 'test'));
    };
    hub.on('stream-start', on);
  });
}

async function next(reader: Reader, ms = 15_000): Promise<StreamEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no stream event within ${ms} ms`)), ms);
  });
  try {
    const ev = await Promise.race([reader.next(), timeout]);
    if (!ev) throw new Error('reader ended');
    return ev;
  } finally {
    clearTimeout(timer);
  }
}

async function sessionStart(reader: Reader): Promise<{ sessionId: string; tracks: TrackSet }> {
  for (;;) {
    const ev = await next(reader);
    if (ev.type === 'session-start') return ev;
  }
}

/** Reads frames of the current session until `videoFrames` video frames arrived. */
async function frames(reader: Reader, videoFrames: number): Promise<MediaFrame[]> {
  const out: MediaFrame[] = [];
  let video = 0;
  while (video < videoFrames) {
    const ev = await next(reader);
    if (ev.type !== 'frame') throw new Error(`unexpected ${ev.type} while reading frames`);
    out.push(ev.frame);
    if (ev.frame.track === 'video') video++;
  }
  return out;
}

function expectIncreasing(list: MediaFrame[], kind: 'video' | 'audio'): void {
  const dts = list.filter((f) => f.track === kind).map((f) => f.dts);
  expect(dts.length).toBeGreaterThan(1);
  for (let i = 1; i < dts.length; i++) expect(dts[i]).toBeGreaterThan(dts[i - 1]);
}

/** Rewrites the received frames as Annex B H.264 and ADTS AAC and asks ffprobe to decode them. */
async function probe(tracks: TrackSet, list: MediaFrame[]): Promise<{ video: Record<string, unknown>; audio: Record<string, unknown> }> {
  const dir = mkdtempSync(join(tmpdir(), 'rtmp-ingest-'));
  try {
    const start = Buffer.of(0, 0, 0, 1);
    const avc = parseAvcDecoderConfig(tracks.video!.codecPrivate);
    const h264: Buffer[] = [...avc.sps, ...avc.pps].flatMap((n) => [start, Buffer.from(n)]);
    const asc = parseAudioSpecificConfig(tracks.audio!.codecPrivate);
    const freqIndex = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000].indexOf(asc.sampleRate);
    const aac: Buffer[] = [];
    for (const f of list) {
      const d = Buffer.from(f.data);
      if (f.track === 'video') {
        for (let p = 0; p < d.length;) {
          const len = d.readUInt32BE(p);
          h264.push(start, d.subarray(p + 4, p + 4 + len));
          p += 4 + len;
        }
      } else {
        const len = d.length + 7;
        const h = Buffer.from([
          0xff,
          0xf1,
          ((asc.objectType - 1) << 6) | (freqIndex << 2) | (asc.channels >> 2),
          ((asc.channels & 3) << 6) | (len >> 11),
          (len >> 3) & 0xff,
          ((len & 7) << 5) | 0x1f,
          0xfc,
        ]);
        aac.push(h, d);
      }
    }
    writeFileSync(join(dir, 'v.h264'), Buffer.concat(h264));
    writeFileSync(join(dir, 'a.aac'), Buffer.concat(aac));
    const run = async (file: string) => {
      const args = [
        '-v',
        'error',
        '-count_frames',
        '-show_entries',
        'stream=codec_name,width,height,sample_rate,nb_read_frames',
        '-of',
        'json',
        join(dir, file),
      ];
      const { stdout } = await promisify(execFile)(FFPROBE, args);
      return (JSON.parse(stdout) as { streams: Record<string, unknown>[] }).streams[0];
    };
    return { video: await run('v.h264'), audio: await run('a.aac') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once('close', () => resolve());
  });
}

describe('RTMP ingest with real publishers', () => {
  it('FFmpeg: h264 640x360 + AAC tracks, keyframes, increasing dts, frames a decoder accepts', async () => {
    const reader = readerFor('stream-a');
    ffmpeg('key-a');
    const r = await reader;
    const { tracks } = await sessionStart(r);
    expect(tracks.video).toMatchObject({ kind: 'video', codec: 'h264', width: 640, height: 360, frameRate: 30 });
    expect(tracks.audio).toMatchObject({ kind: 'audio', codec: 'aac' });
    expect([44_100, 48_000]).toContain(tracks.audio!.sampleRate);
    const list = await frames(r, 65);
    const video = list.filter((f) => f.track === 'video');
    expect(video[0].keyframe).toBe(true);
    expect(video.filter((f) => f.keyframe).length).toBeGreaterThanOrEqual(2);
    for (const f of video) expect(f.pts).toBeGreaterThanOrEqual(f.dts);
    expectIncreasing(list, 'video');
    expectIncreasing(list, 'audio');
    const probed = await probe(tracks, list);
    expect(probed.video).toMatchObject({ codec_name: 'h264', width: 640, height: 360, nb_read_frames: String(video.length) });
    expect(probed.audio).toMatchObject({ codec_name: 'aac', sample_rate: String(tracks.audio!.sampleRate) });
    expect(Number(probed.audio.nb_read_frames)).toBe(list.length - video.length);
    expect(server.counters).toMatchObject({ badInput: 0, authFailures: 0, unsupportedCodec: 0, activeConnections: 1 });
    expect(server.counters.bytesIn).toBeGreaterThan(10_000);
  });

  it('GStreamer rtmp2sink: h264 + AAC tracks and frames', async () => {
    const reader = readerFor('stream-b');
    gstreamer('key-b');
    const r = await reader;
    const { tracks } = await sessionStart(r);
    expect(tracks.video).toMatchObject({ codec: 'h264', width: 320, height: 240 });
    expect(tracks.audio).toMatchObject({ codec: 'aac', sampleRate: 44_100 });
    const list = await frames(r, 40);
    expect(list.find((f) => f.track === 'video')?.keyframe).toBe(true);
    expectIncreasing(list, 'video');
    expectIncreasing(list, 'audio');
    expect(server.counters.badInput).toBe(0);
  });

  it('a wrong stream key: FFmpeg fails and the auth failure counter rises', async () => {
    let started = false;
    hub.on('stream-start', () => (started = true));
    const code = await exited(ffmpeg('not-a-key'));
    expect(code).not.toBe(0);
    expect(server.counters.authFailures).toBe(1);
    expect(started).toBe(false);
    expect(logs.filter((l) => l.level === 'warn' && /stream key/.test(l.msg ?? ''))).toHaveLength(1);
  });

  it('an unsupported codec (Sorenson H.263): FFmpeg is refused and the codec counter rises', async () => {
    const code = await exited(ffmpeg('key-a', undefined, 'flv'));
    expect(code).not.toBe(0);
    expect(server.counters).toMatchObject({ unsupportedCodec: 1, badInput: 0 });
    expect(logs.filter((l) => l.level === 'warn' && /unsupported codec/.test(l.msg ?? ''))).toHaveLength(1);
  });

  it('garbage on other sockets does not disturb a publishing stream', async () => {
    const reader = readerFor('stream-a');
    ffmpeg('key-a');
    const r = await reader;
    await sessionStart(r);
    await frames(r, 10);

    // One peer that is not RTMP at all, one that handshakes and then sends a broken chunk stream.
    const junk = net.connect(port, '127.0.0.1', () => junk.write(Buffer.concat([Buffer.of(0xaa), randomBytes(5000)])));
    const broken = net.connect(port, '127.0.0.1', () => {
      // fmt 1 on a chunk stream that never had a type 0 header, then noise.
      broken.write(Buffer.concat([Buffer.of(3), randomBytes(1536), randomBytes(1536), Buffer.of(0x45), randomBytes(4000)]));
    });
    for (const s of [junk, broken]) {
      s.on('error', () => {});
      s.resume(); // read (and drop) what the server sends, so its FIN is seen
    }
    await Promise.all([closed(junk), closed(broken)]);
    expect(server.counters.badInput).toBe(2);
    expect(logs.filter((l) => /bad input/.test(l.msg ?? ''))).toHaveLength(2);

    const after = await frames(r, 30);
    expectIncreasing(after, 'video');
    expectIncreasing(after, 'audio');
  });

  it('a second publisher with the same key takes over and the first connection is closed', async () => {
    const reader = readerFor('stream-a');
    const first = ffmpeg('key-a');
    const r = await reader;
    const one = await sessionStart(r);
    await frames(r, 5);
    ffmpeg('key-a');
    // The first session ends (frames of it may still be queued before the end event).
    for (;;) {
      const ev = await next(r);
      if (ev.type === 'session-end') {
        expect(ev).toMatchObject({ sessionId: one.sessionId, reason: 'takeover' });
        break;
      }
    }
    const two = await sessionStart(r);
    expect(two.sessionId).not.toBe(one.sessionId);
    const list = await frames(r, 10);
    expectIncreasing(list, 'video');
    const code = await Promise.race([exited(first), new Promise((resolve) => setTimeout(() => resolve('still running'), 15_000))]);
    expect(code).not.toBe('still running');
    expect(code).not.toBe(0);
    expect(hub.counters.takeovers).toBe(1);
  });
});

describe('RTMPS', () => {
  it('FFmpeg publishes over TLS on its own port', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmps-'));
    try {
      const args = [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
      ];
      await promisify(execFile)('openssl', [...args, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      const withTls = new RtmpServer({
        host: '127.0.0.1',
        port: 0,
        tls: { port: 0, cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
        limits: DEFAULT_RTMP_LIMITS,
        hub,
        logger: captureLogger(logs),
        authorize: async (_app, key) => ({ streamId: `tls-${key}` }),
      });
      const ports = await withTls.start();
      try {
        expect(ports.tlsPort).toBeGreaterThan(0);
        expect(ports.tlsPort).not.toBe(ports.port);
        let protocol: string | undefined;
        hub.once('session-start', (_id, info) => (protocol = info.protocol));
        const reader = readerFor('tls-k');
        ffmpeg('k', `rtmps://127.0.0.1:${ports.tlsPort}/live/k`);
        const r = await reader;
        const { tracks } = await sessionStart(r);
        expect(tracks.video).toMatchObject({ codec: 'h264', width: 640, height: 360 });
        expect(protocol).toBe('rtmps');
        expectIncreasing(await frames(r, 10), 'video');
        // A peer that speaks no TLS on the RTMPS port is counted and closed; the stream goes on.
        const junk = net.connect(ports.tlsPort!, '127.0.0.1', () => junk.write(randomBytes(3000)));
        junk.on('error', () => {});
        junk.resume();
        await closed(junk);
        expect(withTls.counters.badInput).toBe(1);
        expectIncreasing(await frames(r, 5), 'video');
      } finally {
        await Promise.all([...children].map(stop));
        await withTls.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

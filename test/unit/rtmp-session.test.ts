import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError, silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import type { PublishInfo, Publisher } from '../../src/stream/index.js';
import { decodeAmf0, encodeAmf0, encodeAmf0EcmaArray, type AmfValue } from '../../src/flv/index.js';
import { ChunkParser, encodeMessage, MessageType, type RtmpMessage } from '../../src/ingest/rtmp/chunk.js';
import { HANDSHAKE_SIZE } from '../../src/ingest/rtmp/handshake.js';
import { RtmpSession, type SessionTransport } from '../../src/ingest/rtmp/session.js';
import { DEFAULT_RTMP_LIMITS, newCounters, type RtmpLimits } from '../../src/ingest/rtmp/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const AVC_C = hex('0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800');
const NALS = hex('00000005 6588840021 00000002 0601');

class FakeTransport implements SessionTransport {
  remoteAddress = '198.51.100.7';
  writableLength = 0;
  out: Buffer[] = [];
  closes = 0;
  paused = false;
  write(d: Buffer) {
    this.out.push(d);
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  close() {
    this.closes++;
  }
  /** Messages the server sent, after S0+S1+S2. */
  messages(): RtmpMessage[] {
    const all = Buffer.concat(this.out);
    return new ChunkParser({ maxChunkSize: 1 << 20, maxMessageSize: 1 << 24, maxChunkStreams: 64 }).push(
      all.subarray(1 + 2 * HANDSHAKE_SIZE),
    );
  }
  commands(): AmfValue[][] {
    return this.messages()
      .filter((m) => m.type === MessageType.commandAmf0)
      .map((m) => decodeAmf0(m.payload));
  }
}

class FakePublisher implements Publisher {
  closed = false;
  reason: string | undefined;
  tracks: TrackSet[] = [];
  frames: MediaFrame[] = [];
  constructor(
    readonly streamId: string,
    readonly sessionId: string,
    readonly info: PublishInfo,
    readonly kick: (reason: string) => void,
  ) {}
  setTracks(t: TrackSet) {
    if (!this.closed) this.tracks.push(t);
  }
  write(f: MediaFrame) {
    if (!this.closed) this.frames.push(f);
  }
  close(reason: string) {
    if (this.closed) return;
    this.closed = true;
    this.reason = reason;
  }
}

class FakeHub {
  publishers: FakePublisher[] = [];
  publish(streamId: string, info: PublishInfo, kick: (reason: string) => void): Publisher {
    const p = new FakePublisher(streamId, info.sessionId, info, kick);
    this.publishers.push(p);
    return p;
  }
}

interface Setup {
  session: RtmpSession;
  t: FakeTransport;
  hub: FakeHub;
  counters: ReturnType<typeof newCounters>;
  auth: [string, string, string][];
}

function setup(limits: RtmpLimits = DEFAULT_RTMP_LIMITS, authorize?: (app: string, key: string) => Promise<{ streamId: string }>): Setup {
  const t = new FakeTransport();
  const hub = new FakeHub();
  const counters = newCounters();
  const auth: [string, string, string][] = [];
  const session = new RtmpSession({
    transport: t,
    protocol: 'rtmp',
    limits,
    counters,
    hub,
    logger: silentLogger,
    authorize:
      authorize ??
      (async (app, key, remote) => {
        auth.push([app, key, remote]);
        if (key !== 'good') throw new AppError('E_STREAM_KEY_INVALID', 'no such key');
        return { streamId: 'stream-1' };
      }),
  });
  return { session, t, hub, counters, auth };
}

const flush = () => new Promise((r) => setImmediate(r));

// ---- a client, as bytes -----------------------------------------------------------------------
const hello = () => Buffer.concat([Buffer.of(3), randomBytes(HANDSHAKE_SIZE), randomBytes(HANDSHAKE_SIZE)]);
const cmd = (values: AmfValue[], streamId = 0): RtmpMessage => ({
  csid: 3,
  type: 20,
  streamId,
  timestamp: 0,
  payload: encodeAmf0(...values),
});
const wire = (msgs: RtmpMessage[], chunkSize = 128) => Buffer.concat(msgs.map((m) => encodeMessage(m, chunkSize)));
const video = (ts: number, body: Buffer): RtmpMessage => ({ csid: 6, type: 9, streamId: 1, timestamp: ts, payload: body });
const audio = (ts: number, body: Buffer): RtmpMessage => ({ csid: 4, type: 8, streamId: 1, timestamp: ts, payload: body });
const connect = (extra: Record<string, AmfValue> = {}) => cmd(['connect', 1, { app: 'live', tcUrl: 'rtmp://127.0.0.1/live', ...extra }]);
const preamble = (key = 'good') => [
  connect(),
  cmd(['releaseStream', 2, null, key]),
  cmd(['FCPublish', 3, null, key]),
  cmd(['createStream', 4, null]),
  cmd(['publish', 5, null, key, 'live'], 1),
];
const metadata = (): RtmpMessage => ({
  csid: 4,
  type: 18,
  streamId: 1,
  timestamp: 0,
  payload: Buffer.concat([
    encodeAmf0('@setDataFrame', 'onMetaData'),
    encodeAmf0EcmaArray({ width: 640, height: 360, framerate: 30, videocodecid: 7, audiocodecid: 10 }),
  ]),
});
const media = (): RtmpMessage[] => [
  metadata(),
  video(0, Buffer.concat([hex('1700000000'), AVC_C])),
  audio(0, hex('af001190')),
  video(0, Buffer.concat([hex('1701000000'), NALS])),
  audio(21, hex('af012110')),
  video(33, Buffer.concat([hex('2701000021'), NALS])),
];

/** A whole publish as a client sends it. */
function publishBytes(key = 'good'): Buffer {
  const setChunk: RtmpMessage = { csid: 2, type: 1, streamId: 0, timestamp: 0, payload: hex('00001000') };
  return Buffer.concat([hello(), wire([setChunk]), wire([...preamble(key), ...media()], 4096)]);
}

describe('RTMP session: publish', () => {
  it('runs connect / createStream / publish and delivers tracks and frames', async () => {
    const { session, t, hub, auth } = setup();
    session.feed(hello());
    expect(Buffer.concat(t.out).length).toBe(1 + 2 * HANDSHAKE_SIZE);
    expect(session.handshakeDone).toBe(true);
    session.feed(wire([connect({ fourCcList: ['hvc1', 'av01'] })]));
    const [result] = t.commands();
    expect(result).toEqual([
      '_result',
      1,
      expect.objectContaining({ fmsVer: expect.any(String), capabilities: 31, fourCcList: ['avc1', 'hvc1', 'av01'] }),
      expect.objectContaining({ level: 'status', code: 'NetConnection.Connect.Success' }),
    ]);
    const control = t.messages().map((m) => m.type);
    expect(control.slice(0, 2)).toEqual([MessageType.windowAckSize, MessageType.setPeerBandwidth]);
    // Set Chunk Size is applied (and consumed) by the parser that reads our output.
    const reader = new ChunkParser({ maxChunkSize: 1 << 20, maxMessageSize: 1 << 24, maxChunkStreams: 64 });
    reader.push(Buffer.concat(t.out).subarray(1 + 2 * HANDSHAKE_SIZE));
    expect(reader.chunkSize).toBe(4096);

    session.feed(wire(preamble('good?token=abc').slice(1)));
    expect(auth).toEqual([['live', 'good', '198.51.100.7']]);
    await flush();
    const cmds = t.commands();
    expect(cmds.find((c) => c[0] === 'onFCPublish')).toBeDefined();
    expect(cmds.find((c) => c[0] === '_result' && c[1] === 4)).toEqual(['_result', 4, null, 1]);
    const streamBegin = t.messages().find((m) => m.type === MessageType.userControl);
    expect(streamBegin?.payload).toEqual(hex('0000 00000001'));
    const status = t.messages().find((m) => m.type === 20 && decodeAmf0(m.payload)[0] === 'onStatus');
    expect(status?.streamId).toBe(1);
    expect(decodeAmf0(status!.payload)[3]).toMatchObject({ level: 'status', code: 'NetStream.Publish.Start' });
    expect(hub.publishers).toHaveLength(1);
    const pub = hub.publishers[0];
    expect(pub.streamId).toBe('stream-1');
    expect(pub.info).toMatchObject({ protocol: 'rtmp', remoteAddress: '198.51.100.7' });

    session.feed(wire(media()));
    expect(pub.tracks).toHaveLength(1);
    expect(pub.tracks[0].video).toMatchObject({ codec: 'h264', width: 640, height: 360, frameRate: 30 });
    expect(pub.tracks[0].audio).toMatchObject({ codec: 'aac', sampleRate: 48_000, channels: 2 });
    expect(pub.frames.map((f) => [f.track, f.dts, f.pts, f.keyframe])).toEqual([
      ['video', 0, 0, true],
      ['audio', 21 * 90, 21 * 90, true],
      ['video', 33 * 90, 66 * 90, false],
    ]);

    session.feed(wire([cmd(['FCUnpublish', 6, null, 'good']), cmd(['deleteStream', 7, null, 1])]));
    expect(pub.closed).toBe(true);
    expect(pub.reason).toBe('unpublished');
    expect(session.closed).toBe(false);
    session.close('connection closed');
    expect(t.closes).toBe(1);
  });

  it('holds messages that arrive while authorize() runs and processes them in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { session, t, hub } = setup(DEFAULT_RTMP_LIMITS, async () => {
      await gate;
      return { streamId: 's' };
    });
    session.feed(Buffer.concat([hello(), wire([...preamble(), ...media()])]));
    expect(t.paused).toBe(true);
    expect(hub.publishers).toHaveLength(0);
    release();
    await flush();
    expect(t.paused).toBe(false);
    expect(hub.publishers[0].frames).toHaveLength(3);
  });

  it('accepts commands and metadata sent as AMF3 messages (type 17 / 15)', async () => {
    const { session, t, hub } = setup();
    const amf3 = (m: RtmpMessage, type: number): RtmpMessage => ({ ...m, type, payload: Buffer.concat([Buffer.of(0), m.payload]) });
    session.feed(Buffer.concat([hello(), wire(preamble().map((m) => amf3(m, 17)))]));
    await flush();
    expect(t.commands().some((c) => c[0] === '_result' && c[1] === 1)).toBe(true);
    session.feed(wire([amf3(metadata(), 15), ...media().slice(1)]));
    expect(hub.publishers[0].tracks[0].video?.width).toBe(640);
  });

  it('answers PingRequest with PingResponse and acknowledges the window the client set', () => {
    const { session, t } = setup();
    const ping: RtmpMessage = { csid: 2, type: 4, streamId: 0, timestamp: 0, payload: hex('0006 01020304') };
    const win: RtmpMessage = { csid: 2, type: 5, streamId: 0, timestamp: 0, payload: hex('00000400') }; // 1024
    const first = Buffer.concat([hello(), wire([ping, win])]);
    session.feed(first);
    const pong = t.messages().find((m) => m.type === 4);
    expect(pong?.payload).toEqual(hex('0007 01020304'));
    // The sequence number is every byte received so far, handshake included.
    const ack = () =>
      t
        .messages()
        .filter((m) => m.type === MessageType.acknowledgement)
        .map((m) => m.payload.readUInt32BE(0));
    expect(ack()).toEqual([first.length]);
    const small = wire([{ csid: 3, type: 19, streamId: 0, timestamp: 0, payload: Buffer.alloc(500) }]);
    session.feed(small);
    expect(ack()).toEqual([first.length]); // less than a window since the last one
    session.feed(small);
    expect(ack()).toEqual([first.length, first.length + 2 * small.length]);
  });

  it('is closed by the hub kick (takeover)', async () => {
    const { session, t, hub } = setup();
    session.feed(Buffer.concat([hello(), wire(preamble())]));
    await flush();
    hub.publishers[0].kick('taken over by a new publisher');
    expect(session.closed).toBe(true);
    expect(t.closes).toBe(1);
  });

  it('closes the publisher with the reason when the connection goes away', async () => {
    const { session, hub } = setup();
    session.feed(Buffer.concat([hello(), wire(preamble())]));
    await flush();
    session.close('connection closed');
    expect(hub.publishers[0].reason).toBe('connection closed');
  });
});

describe('RTMP session: refusals', () => {
  it('wrong stream key: onStatus BadName, authFailures, closed, nothing published', async () => {
    const { session, t, hub, counters } = setup();
    session.feed(Buffer.concat([hello(), wire(preamble('nope'))]));
    await flush();
    const status = t.commands().find((c) => c[0] === 'onStatus');
    expect(status?.[3]).toMatchObject({ level: 'error', code: 'NetStream.Publish.BadName', description: expect.any(String) });
    expect(counters.authFailures).toBe(1);
    expect(session.closed).toBe(true);
    expect(t.closes).toBe(1);
    expect(hub.publishers).toHaveLength(0);
  });

  it('an app other than "live" is rejected at connect', () => {
    const { session, t, counters } = setup();
    session.feed(Buffer.concat([hello(), wire([cmd(['connect', 1, { app: 'admin' }])])]));
    expect(t.commands()[0]).toEqual(['_error', 1, null, expect.objectContaining({ code: 'NetConnection.Connect.Rejected' })]);
    expect(counters.authFailures).toBe(1);
    expect(session.closed).toBe(true);
  });

  it('an unsupported codec refuses the publish: counter, onStatus error, closed', async () => {
    const { session, t, hub, counters } = setup();
    session.feed(Buffer.concat([hello(), wire(preamble())]));
    await flush();
    session.feed(wire([video(0, hex('1400000000'))])); // On2 VP6
    expect(counters.unsupportedCodec).toBe(1);
    expect(counters.badInput).toBe(0);
    const err = t.commands().find((c) => c[0] === 'onStatus' && (c[3] as { level: string }).level === 'error');
    expect(err?.[3]).toMatchObject({ description: expect.stringContaining('VP6') });
    expect(session.closed).toBe(true);
    expect(hub.publishers[0].closed).toBe(true);
  });

  it('play is refused (ingest only)', () => {
    const { session, t } = setup();
    session.feed(Buffer.concat([hello(), wire([connect(), cmd(['createStream', 2, null]), cmd(['play', 3, null, 'x'], 1)])]));
    expect(t.commands().find((c) => c[0] === 'onStatus')?.[3]).toMatchObject({ level: 'error', code: 'NetStream.Play.Failed' });
    expect(session.closed).toBe(true);
  });

  it('a message over maxMessageSize closes the connection as bad input', () => {
    const { session, counters } = setup({ ...DEFAULT_RTMP_LIMITS, maxMessageSize: 1000 });
    session.feed(Buffer.concat([hello(), wire([video(0, Buffer.alloc(2000))])]));
    expect(counters.badInput).toBe(1);
    expect(session.closed).toBe(true);
  });

  it('a Set Chunk Size over the limit closes the connection as bad input', () => {
    const { session, counters } = setup({ ...DEFAULT_RTMP_LIMITS, maxChunkSize: 4096 });
    session.feed(Buffer.concat([hello(), wire([{ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: hex('00010000') }])]));
    expect(counters.badInput).toBe(1);
    expect(session.closed).toBe(true);
  });

  it('a bad C0 closes the connection as bad input', () => {
    const { session, counters, t } = setup();
    session.feed(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(counters.badInput).toBe(1);
    expect(t.closes).toBe(1);
    session.feed(Buffer.from('more')); // ignored after close
    expect(counters.badInput).toBe(1);
  });

  it('a peer that does not read our replies is cut off', () => {
    const { session, t, counters } = setup();
    session.feed(hello());
    t.writableLength = 2 * 1024 * 1024;
    session.feed(wire([{ csid: 2, type: 4, streamId: 0, timestamp: 0, payload: hex('0006 00000001') }]));
    expect(counters.badInput).toBe(1);
    expect(session.closed).toBe(true);
  });
});

describe('RTMP session: fuzz', () => {
  const valid = publishBytes();
  const limits: RtmpLimits = { ...DEFAULT_RTMP_LIMITS, maxMessageSize: 64 * 1024, maxChunkSize: 8192 };
  const bound = 2 * limits.maxMessageSize + 64 + 2 * limits.maxMessageSize;

  function mutate(src: Buffer): Buffer {
    const b = Buffer.from(src);
    const n = 1 + Math.floor(Math.random() * 8);
    for (let i = 0; i < n; i++) {
      // Mostly after the handshake, where the interesting parsers are.
      const pos = Math.random() < 0.9 ? 3073 + Math.floor(Math.random() * (b.length - 3073)) : Math.floor(Math.random() * b.length);
      b[pos] = Math.random() < 0.5 ? Math.floor(Math.random() * 256) : b[pos] ^ (1 << Math.floor(Math.random() * 8));
    }
    const cut = Math.random() < 0.2 ? Math.floor(Math.random() * b.length) : b.length;
    return b.subarray(0, cut);
  }

  async function run(bytes: Buffer): Promise<Setup> {
    const s = setup(limits);
    let off = 0;
    while (off < bytes.length) {
      const n = 1 + Math.floor(Math.random() * 700);
      expect(() => s.session.feed(bytes.subarray(off, off + n))).not.toThrow();
      expect(s.session.bufferedBytes).toBeLessThanOrEqual(bound);
      off += n;
    }
    await flush();
    return s;
  }

  it('a valid publish works with random split points', async () => {
    for (let i = 0; i < 50; i++) {
      const s = await run(valid);
      expect(s.session.closed).toBe(false);
      expect(s.hub.publishers[0].frames).toHaveLength(3);
    }
  });

  it('thousands of mutated publishes never throw, and close only with a counted reason', async () => {
    let closed = 0;
    for (let i = 0; i < 3000; i++) {
      const s = await run(mutate(valid));
      const c = s.counters;
      if (s.session.closed) {
        closed++;
        expect(
          c.badInput + c.authFailures + c.unsupportedCodec + (s.t.commands().some((x) => x[0] === 'onStatus') ? 1 : 0),
        ).toBeGreaterThan(0);
        expect(s.t.closes).toBe(1);
        for (const p of s.hub.publishers) expect(p.closed).toBe(true);
      }
      for (const p of s.hub.publishers) {
        for (const f of p.frames) {
          expect(Number.isFinite(f.dts) && Number.isFinite(f.pts) && f.pts >= f.dts).toBe(true);
          expect(f.data).toBeInstanceOf(Uint8Array);
        }
      }
      s.session.close('done');
    }
    expect(closed).toBeGreaterThan(100);
  });

  it('thousands of random byte streams after a valid handshake never throw', async () => {
    for (let i = 0; i < 2000; i++) {
      const junk = randomBytes(Math.floor(Math.random() * 3000));
      if (junk.length > 0 && Math.random() < 0.5) junk[0] &= 0x3f; // fmt 0 more often
      const s = await run(Buffer.concat([hello(), junk]));
      if (s.session.closed) expect(s.counters.badInput + s.counters.authFailures).toBeGreaterThan(0);
    }
  });
});

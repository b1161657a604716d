import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppError, TIMESCALE, silentLogger, type MediaFrame, type TrackKind, type TrackSet } from '../../src/core/index.js';
import { StreamHub, TimestampRepair, type PublishInfo, type Reader, type StreamEvent } from '../../src/stream/index.js';

const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: Uint8Array.of(1, 0x42, 0xc0, 0x1e), width: 640, height: 360, frameRate: 30 },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: Uint8Array.of(0x11, 0x90), sampleRate: 48_000, channels: 2 },
};
const AUDIO_ONLY: TrackSet = { audio: TRACKS.audio };

const info = (sessionId: string): PublishInfo => ({ sessionId, protocol: 'rtmp', remoteAddress: '127.0.0.1' });

function frame(n: number, opts: { track?: TrackKind; keyframe?: boolean; dts?: number; pts?: number } = {}): MediaFrame {
  const track = opts.track ?? 'video';
  const dts = opts.dts ?? n * 3000;
  return {
    track,
    dts,
    pts: opts.pts ?? dts,
    keyframe: opts.keyframe ?? track === 'audio',
    data: Uint8Array.of(n & 0xff, 1, 2, 3),
    wallClock: 1_700_000_000_000 + n,
  };
}

/** A next() that did not settle during a drain is kept and reused, so no event is lost to it. */
const pendingNext = new WeakMap<Reader, Promise<StreamEvent | undefined>>();
function nextOf(reader: Reader): Promise<StreamEvent | undefined> {
  const p = pendingNext.get(reader) ?? reader.next();
  pendingNext.delete(reader);
  return p;
}

/** Everything a reader has queued right now: stops when next() does not settle before the event loop turns. */
async function drain(reader: Reader): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for (;;) {
    const p = nextOf(reader);
    const next = await Promise.race([p, new Promise<'empty'>((r) => setImmediate(() => r('empty')))]);
    if (next === 'empty') {
      pendingNext.set(reader, p);
      return out;
    }
    if (next === undefined) return out;
    out.push(next);
  }
}

/** A compact view of events: 'start:<session>', 'f<byte0>', 'end:<session>:<reason>', 'stream-end:<reason>'. */
function describeEvents(events: StreamEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'session-start':
        return `start:${e.sessionId}`;
      case 'frame':
        return `f${e.frame.data[0]}`;
      case 'session-end':
        return `end:${e.sessionId}:${e.reason}`;
      case 'stream-end':
        return `stream-end:${e.reason}`;
    }
  });
}

let hubs: StreamHub[] = [];
function makeHub(opts: { graceMs?: number; unpublishGraceMs?: number; readerQueueFrames?: number } = {}): StreamHub {
  const hub = new StreamHub({
    graceMs: opts.graceMs ?? 50,
    unpublishGraceMs: opts.unpublishGraceMs,
    readerQueueFrames: opts.readerQueueFrames ?? 16,
    logger: silentLogger,
  });
  hubs.push(hub);
  return hub;
}

afterEach(() => {
  for (const h of hubs) h.close();
  hubs = [];
  vi.useRealTimers();
});

describe('StreamHub: publish and subscribe', () => {
  it('gives a reader subscribed at stream-start the session-start, then frames in order', async () => {
    const hub = makeHub();
    const readers: Reader[] = [];
    const events: string[] = [];
    hub.on('stream-start', (id) => {
      events.push(`stream-start:${id}`);
      readers.push(hub.subscribe(id, 'early'));
    });
    hub.on('session-start', (id, i) => events.push(`session-start:${id}:${i.sessionId}`));
    const pub = hub.publish('s1', info('a'), () => {});
    expect(events).toEqual(['stream-start:s1', 'session-start:s1:a']);
    expect(pub.streamId).toBe('s1');
    expect(pub.sessionId).toBe('a');
    pub.setTracks(TRACKS);
    for (let i = 0; i < 5; i++) pub.write(frame(i, { keyframe: i === 0 }));
    const got = await drain(readers[0]);
    expect(describeEvents(got)).toEqual(['start:a', 'f0', 'f1', 'f2', 'f3', 'f4']);
    const start = got[0] as Extract<StreamEvent, { type: 'session-start' }>;
    expect(start.tracks).toBe(TRACKS);
    expect((got[3] as Extract<StreamEvent, { type: 'frame' }>).frame.dts).toBe(6000);

    const st = hub.status('s1')!;
    expect(st).toMatchObject({
      streamId: 's1',
      state: 'live',
      sessionId: 'a',
      protocol: 'rtmp',
      remoteAddress: '127.0.0.1',
      frames: 5,
      bytes: 20,
      sessions: 1,
      repairedTimestamps: 0,
    });
    expect(st.tracks).toBe(TRACKS);
    expect(hub.list().map((s) => s.streamId)).toEqual(['s1']);
    expect(hub.counters).toMatchObject({ frames: 5, bytes: 20, sessions: 1, takeovers: 0 });
  });

  it('gives a late joiner the running session-start first, then only new frames', async () => {
    const hub = makeHub();
    const pub = hub.publish('s1', info('a'), () => {});
    pub.setTracks(TRACKS);
    pub.write(frame(0, { keyframe: true }));
    pub.write(frame(1));
    const late = hub.subscribe('s1', 'late');
    pub.write(frame(2));
    pub.write(frame(3, { keyframe: true }));
    expect(describeEvents(await drain(late))).toEqual(['start:a', 'f2', 'f3']);
  });

  it('refuses a reader for a stream that is not live', () => {
    const hub = makeHub();
    expect(() => hub.subscribe('nope', 'r')).toThrowError(expect.objectContaining({ code: 'E_STREAM_NOT_LIVE' }));
  });

  it('delivers to a reader that is already waiting', async () => {
    const hub = makeHub();
    const pub = hub.publish('s1', info('a'), () => {});
    const reader = hub.subscribe('s1', 'r');
    const first = reader.next();
    pub.setTracks(TRACKS);
    pub.write(frame(0, { keyframe: true }));
    expect((await first)?.type).toBe('session-start');
    expect(describeEvents(await drain(reader))).toEqual(['f0']);
  });
});

describe('StreamHub: slow readers', () => {
  it('drops and counts frames past readerQueueFrames without slowing the publisher, then resumes at a keyframe', async () => {
    const hub = makeHub({ readerQueueFrames: 16 });
    const pub = hub.publish('s1', info('a'), () => {});
    const slow = hub.subscribe('s1', 'slow');
    const fast = hub.subscribe('s1', 'fast');
    pub.setTracks(TRACKS);
    const fastSeen: string[] = [];
    expect(describeEvents([(await fast.next())!])).toEqual(['start:a']);
    // Keyframes at 0 and 30: the slow reader overflows at frame 16 and skips to frame 30.
    for (let i = 0; i < 40; i++) {
      pub.write(frame(i, { keyframe: i % 30 === 0 }));
      fastSeen.push(...describeEvents([(await fast.next())!]));
    }
    expect(fastSeen).toEqual(Array.from({ length: 40 }, (_, i) => `f${i}`));
    expect(fast.dropped).toBe(0);
    // 16 queued + the one that overflowed + 13 until the keyframe.
    expect(slow.dropped).toBe(30);
    expect(hub.droppedFrames('s1')).toBe(30);
    expect(hub.status('s1')!.frames).toBe(40);
    const got = describeEvents(await drain(slow));
    expect(got).toEqual(['start:a', ...Array.from({ length: 10 }, (_, i) => `f${30 + i}`)]);
    // The drops reach the hub's counter (for /metrics) by the time the reader is gone.
    slow.close();
    expect(hub.counters.readerDrops).toBe(30);
  });

  it('never drops control events', async () => {
    const hub = makeHub({ readerQueueFrames: 16 });
    const pub = hub.publish('s1', info('a'), () => {});
    const slow = hub.subscribe('s1', 'slow');
    pub.setTracks(TRACKS);
    for (let i = 0; i < 20; i++) pub.write(frame(i, { keyframe: i === 0 }));
    pub.close('gone');
    const pub2 = hub.publish('s1', info('b'), () => {});
    pub2.setTracks(TRACKS);
    pub2.write(frame(50, { keyframe: false }));
    pub2.write(frame(51, { keyframe: true }));
    // A new session resets the wait for a keyframe: its frames are delivered from the start.
    expect(describeEvents(await drain(slow))).toEqual(['start:a', 'end:a:gone', 'start:b', 'f50', 'f51']);
    expect(slow.dropped).toBe(17 + 3);
  });

  it('resumes an audio-only stream after a drop (audio frames are its random access points)', async () => {
    const hub = makeHub({ readerQueueFrames: 16 });
    const pub = hub.publish('s1', info('a'), () => {});
    const slow = hub.subscribe('s1', 'slow');
    pub.setTracks(AUDIO_ONLY);
    for (let i = 0; i < 20; i++) pub.write(frame(i, { track: 'audio', dts: i * 1920 }));
    expect(slow.dropped).toBe(17);
    const got = describeEvents(await drain(slow));
    // The frames after the overflowing one are delivered: an audio-only stream has no video keyframe to wait for.
    expect(got).toEqual(['start:a', 'f17', 'f18', 'f19']);
  });

  it('stops delivering to a closed reader and forgets it', async () => {
    const hub = makeHub({ readerQueueFrames: 16 });
    const pub = hub.publish('s1', info('a'), () => {});
    const reader = hub.subscribe('s1', 'r');
    pub.setTracks(TRACKS);
    expect(describeEvents(await drain(reader))).toEqual(['start:a']);
    const pending = nextOf(reader);
    reader.close();
    reader.close();
    expect(await pending).toBeUndefined();
    expect(reader.closed).toBe(true);
    for (let i = 0; i < 40; i++) pub.write(frame(i, { keyframe: i === 0 }));
    expect(reader.dropped).toBe(0);
    expect(hub.droppedFrames('s1')).toBe(0);
    expect(await reader.next()).toBeUndefined();
  });
});

describe('StreamHub: sessions and lifecycle', () => {
  it("reports what each session delivered, not the stream's running total", () => {
    const hub = makeHub();
    const ends: Array<[string, number, number]> = [];
    hub.on('session-end', (_id, i, _reason, st) => ends.push([i.sessionId, st.frames, st.bytes]));
    const a = hub.publish('s1', info('a'), () => {});
    a.setTracks(TRACKS);
    for (let i = 0; i < 3; i++) a.write(frame(i, { keyframe: i === 0 }));
    const b = hub.publish('s1', info('b'), () => {}); // takes over
    b.setTracks(TRACKS);
    for (let i = 0; i < 2; i++) b.write(frame(i, { keyframe: i === 0 }));
    b.close('gone');
    const size = frame(0, { keyframe: true }).data.byteLength;
    expect(ends).toEqual([
      ['a', 3, 3 * size],
      ['b', 2, 2 * size],
    ]);
    expect(hub.status('s1')!.frames).toBe(5);
    hub.close();
  });

  it('lets a second publisher take over: the first is kicked, readers see session-end(takeover) then the new session', async () => {
    const hub = makeHub();
    const log: string[] = [];
    hub.on('stream-start', (id) => log.push(`stream-start:${id}`));
    hub.on('session-start', (_id, i) => log.push(`session-start:${i.sessionId}`));
    hub.on('session-end', (_id, i, reason) => log.push(`session-end:${i.sessionId}:${reason}`));
    const kickA = vi.fn((reason: string) => log.push(`kick-a:${reason}`));
    const kickB = vi.fn();
    const a = hub.publish('s1', info('a'), kickA);
    a.setTracks(TRACKS);
    const reader = hub.subscribe('s1', 'r');
    a.write(frame(0, { keyframe: true }));
    const b = hub.publish('s1', info('b'), kickB);
    expect(kickA).toHaveBeenCalledTimes(1);
    expect(kickB).not.toHaveBeenCalled();
    expect(log).toEqual([
      'stream-start:s1',
      'session-start:a',
      'session-end:a:takeover',
      'kick-a:taken over by a new publisher',
      'session-start:b',
    ]);
    expect(a.closed).toBe(true);
    a.write(frame(1, { keyframe: true })); // ignored: no longer the publisher
    a.close('late close'); // ignored
    b.setTracks(TRACKS);
    b.write(frame(2, { keyframe: true }));
    expect(describeEvents(await drain(reader))).toEqual(['start:a', 'f0', 'end:a:takeover', 'start:b', 'f2']);
    expect(hub.status('s1')).toMatchObject({ state: 'live', sessionId: 'b', sessions: 2, frames: 2 });
    expect(hub.counters.takeovers).toBe(1);
    expect(kickA).toHaveBeenCalledTimes(1);
  });

  it('waits graceMs for a publisher that left: one that returns in time continues the stream', async () => {
    vi.useFakeTimers();
    const hub = makeHub({ graceMs: 50 });
    const ends: string[] = [];
    let starts = 0;
    hub.on('stream-end', (id, reason) => ends.push(`${id}:${reason}`));
    hub.on('stream-start', () => starts++);
    const a = hub.publish('s1', info('a'), () => {});
    a.setTracks(TRACKS);
    const reader = hub.subscribe('s1', 'r');
    a.close('connection lost');
    a.close('again');
    expect(a.closed).toBe(true);
    expect(hub.status('s1')).toMatchObject({ state: 'reconnecting', sessionId: 'a' });
    vi.advanceTimersByTime(49);
    expect(ends).toEqual([]);
    const b = hub.publish('s1', info('b'), () => {});
    b.setTracks(TRACKS);
    expect(hub.status('s1')).toMatchObject({ state: 'live', sessionId: 'b', sessions: 2 });
    vi.advanceTimersByTime(10_000);
    expect(ends).toEqual([]);
    expect(starts).toBe(1);
    expect(hub.status('s1')?.state).toBe('live');
    vi.useRealTimers();
    expect(describeEvents(await drain(reader))).toEqual(['start:a', 'end:a:connection lost', 'start:b']);
  });

  it('ends the stream when no publisher returns within graceMs and releases it', async () => {
    const hub = makeHub({ graceMs: 50 });
    const pub = hub.publish('s1', info('a'), () => {});
    pub.setTracks(TRACKS);
    pub.write(frame(0, { keyframe: true }));
    const reader = hub.subscribe('s1', 'r');
    const ended = once(hub, 'stream-end');
    const t0 = performance.now();
    pub.close('connection lost');
    expect(await ended).toEqual(['s1', 'publisher did not return']);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
    const got: StreamEvent[] = [];
    for await (const ev of reader) got.push(ev);
    expect(describeEvents(got)).toEqual(['start:a', 'end:a:connection lost', 'stream-end:publisher did not return']);
    expect(reader.closed).toBe(true);
    expect(hub.status('s1')).toBeUndefined();
    expect(hub.list()).toEqual([]);
    expect(hub.droppedFrames('s1')).toBe(0);
    expect(() => hub.subscribe('s1', 'r2')).toThrowError(AppError);
    // The same id can go live again, from scratch.
    let restarted = 0;
    hub.on('stream-start', () => restarted++);
    hub.publish('s1', info('c'), () => {});
    expect(restarted).toBe(1);
    expect(hub.status('s1')).toMatchObject({ sessionId: 'c', sessions: 1, frames: 0 });
  });

  it('ends the stream at once when its publisher unpublishes, while a drop still waits graceMs', async () => {
    const hub = makeHub({ graceMs: 60_000 });
    const pub = hub.publish('s1', info('a'), () => {});
    pub.setTracks(TRACKS);
    const reader = hub.subscribe('s1', 'r');
    const ends: string[] = [];
    hub.on('stream-end', (id, why) => ends.push(`${id}:${why}`));
    pub.close('unpublished', 'unpublished');
    // Synchronously: the show is over when the encoder says so.
    expect(ends).toEqual(['s1:publisher stopped']);
    expect(hub.status('s1')).toBeUndefined();
    const got: StreamEvent[] = [];
    for await (const ev of reader) got.push(ev);
    expect(describeEvents(got)).toEqual(['start:a', 'end:a:unpublished', 'stream-end:publisher stopped']);
    // A new publish is a new stream run.
    let starts = 0;
    hub.on('stream-start', () => starts++);
    const again = hub.publish('s1', info('b'), () => {});
    expect(starts).toBe(1);
    again.close('connection lost');
    expect(hub.status('s1')?.state).toBe('reconnecting');
    expect(ends).toEqual(['s1:publisher stopped']);
    hub.close();
  });

  it('waits unpublishGraceMs after a clean stop when it is set, and a returning publisher continues', () => {
    vi.useFakeTimers();
    const hub = makeHub({ graceMs: 60_000, unpublishGraceMs: 5_000 });
    const ends: string[] = [];
    hub.on('stream-end', (id, why) => ends.push(`${id}:${why}`));
    hub.publish('s1', info('a'), () => {}).close('unpublished', 'unpublished');
    vi.advanceTimersByTime(4_000);
    expect(hub.status('s1')?.state).toBe('reconnecting');
    hub.publish('s1', info('b'), () => {}).close('unpublished', 'unpublished');
    vi.advanceTimersByTime(4_999);
    expect(ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(ends).toEqual(['s1:publisher stopped']);
    hub.close();
    vi.useRealTimers();
  });

  it('kick() disconnects the publisher and starts the grace period', async () => {
    const hub = makeHub({ graceMs: 50 });
    const kick = vi.fn();
    const sessionEnds: string[] = [];
    hub.on('session-end', (_id, i, reason) => sessionEnds.push(`${i.sessionId}:${reason}`));
    const pub = hub.publish('s1', info('a'), kick);
    expect(hub.kick('s1', 'operator')).toBe(true);
    expect(kick).toHaveBeenCalledWith('operator');
    expect(pub.closed).toBe(true);
    expect(sessionEnds).toEqual(['a:operator']);
    expect(hub.status('s1')?.state).toBe('reconnecting');
    expect(hub.kick('s1', 'again')).toBe(false);
    expect(hub.kick('unknown', 'x')).toBe(false);
    expect(kick).toHaveBeenCalledTimes(1);
    expect(await once(hub, 'stream-end')).toEqual(['s1', 'publisher did not return']);
  });

  it('end() kicks the publisher, tells readers and forgets the stream', async () => {
    const hub = makeHub();
    const kick = vi.fn();
    const log: string[] = [];
    hub.on('session-end', (_id, i, reason) => log.push(`session-end:${i.sessionId}:${reason}`));
    hub.on('stream-end', (id, reason) => log.push(`stream-end:${id}:${reason}`));
    const pub = hub.publish('s1', info('a'), kick);
    pub.setTracks(TRACKS);
    const reader = hub.subscribe('s1', 'r');
    hub.end('s1', 'deleted');
    expect(kick).toHaveBeenCalledWith('deleted');
    expect(pub.closed).toBe(true);
    expect(log).toEqual(['session-end:a:deleted', 'stream-end:s1:deleted']);
    pub.write(frame(0, { keyframe: true }));
    pub.close('late');
    expect(hub.status('s1')).toBeUndefined();
    const got: StreamEvent[] = [];
    for await (const ev of reader) got.push(ev);
    expect(describeEvents(got)).toEqual(['start:a', 'end:a:deleted', 'stream-end:deleted']);
    hub.end('s1', 'twice');
    expect(log).toHaveLength(2);
  });

  it('close() ends every stream once, kicks publishers, and refuses new ones', () => {
    const hub = makeHub();
    const kicks = [vi.fn(), vi.fn()];
    const ends: string[] = [];
    hub.on('stream-end', (id, reason) => ends.push(`${id}:${reason}`));
    hub.publish('s1', info('a'), kicks[0]);
    const p2 = hub.publish('s2', info('b'), kicks[1]);
    p2.close('left'); // s2 is in its grace period
    hub.close();
    hub.close();
    expect(ends.sort()).toEqual(['s1:server shutting down', 's2:server shutting down']);
    expect(kicks[0]).toHaveBeenCalledWith('server shutting down');
    expect(kicks[1]).not.toHaveBeenCalled();
    expect(hub.list()).toEqual([]);
    expect(() => hub.publish('s3', info('c'), () => {})).toThrowError(expect.objectContaining({ code: 'E_CLOSED' }));
  });
});

describe('TimestampRepair', () => {
  const V = TIMESCALE / 30;

  function repairAll(frames: MediaFrame[]) {
    const repairs: Array<[string, TrackKind, number, number]> = [];
    const r = new TimestampRepair((kind, track, from, to) => repairs.push([kind, track, from, to]));
    return { out: frames.map((f) => r.repair(f)), repairs };
  }

  it('passes small jitter through unchanged (the same frame objects)', () => {
    const frames = [0, 2970, 6030, 9000, 11970, 15030].map((dts, i) => frame(i, { dts, pts: dts + 6000 }));
    const { out, repairs } = repairAll(frames);
    expect(repairs).toEqual([]);
    out.forEach((f, i) => expect(f).toBe(frames[i]));
  });

  it('clamps a small step backwards to just after the previous frame, once', () => {
    const dts = [0, V, 2 * V, 2 * V - 1000, 3 * V, 4 * V];
    const { out, repairs } = repairAll(dts.map((d, i) => frame(i, { dts: d, pts: d + 2 * V })));
    expect(out.map((f) => f.dts)).toEqual([0, V, 2 * V, 2 * V + 1, 3 * V, 4 * V]);
    // pts keeps its offset from dts.
    expect(out[3].pts).toBe(2 * V + 1 + 2 * V);
    expect(repairs).toEqual([['backwards', 'video', 2 * V - 1000, 2 * V + 1]]);
  });

  it('clamps an equal dts', () => {
    const { out, repairs } = repairAll([frame(0, { dts: 0 }), frame(1, { dts: 0 })]);
    expect(out.map((f) => f.dts)).toEqual([0, 1]);
    expect(repairs).toHaveLength(1);
  });

  it('rebases a large step backwards (timestamps restarting) one frame after the previous one', () => {
    const dts = [900_000, 900_000 + V, 900_000 + 2 * V, 0, V, 2 * V];
    const { out, repairs } = repairAll(dts.map((d, i) => frame(i, { dts: d, pts: d + V })));
    expect(out.map((f) => f.dts)).toEqual([0, 1, 2, 3, 4, 5].map((i) => 900_000 + i * V));
    expect(out.map((f) => f.pts - f.dts)).toEqual(Array(6).fill(V));
    expect(repairs).toEqual([['backwards', 'video', 0, 900_000 + 3 * V]]);
  });

  it('rebases a forward jump over five seconds and shifts later frames with it', () => {
    const jump = 20 * TIMESCALE;
    const dts = [0, V, 2 * V, 2 * V + jump, 3 * V + jump, 4 * V + jump];
    const input = dts.map((d, i) => frame(i, { dts: d, pts: d + 2 * V }));
    const { out, repairs } = repairAll(input);
    expect(out.map((f) => f.dts)).toEqual([0, V, 2 * V, 3 * V, 4 * V, 5 * V]);
    expect(out.map((f) => f.pts - f.dts)).toEqual(Array(6).fill(2 * V));
    expect(repairs).toEqual([['jump', 'video', 2 * V + jump, 3 * V]]);
    // Only the timestamps change.
    expect(out[3]).toEqual({ ...input[3], dts: 3 * V, pts: 5 * V });
    expect(out[3].data).toBe(input[3].data);
  });

  it('keeps a forward gap of up to five seconds', () => {
    const { out, repairs } = repairAll([frame(0, { dts: 0 }), frame(1, { dts: 5 * TIMESCALE })]);
    expect(out[1].dts).toBe(5 * TIMESCALE);
    expect(repairs).toEqual([]);
  });

  it('repairs each track on its own, with the audio frame spacing as the fallback step', () => {
    const { out, repairs } = repairAll([
      frame(0, { dts: 0 }),
      frame(1, { track: 'audio', dts: 0 }),
      frame(2, { track: 'audio', dts: 10 * TIMESCALE }),
      frame(3, { dts: V }),
    ]);
    expect(out.map((f) => f.dts)).toEqual([0, 0, 1920, V]);
    expect(repairs).toEqual([['jump', 'audio', 10 * TIMESCALE, 1920]]);
  });

  it('is applied by the hub, which counts repairs', async () => {
    const hub = makeHub();
    const pub = hub.publish('s1', info('a'), () => {});
    pub.setTracks(TRACKS);
    const reader = hub.subscribe('s1', 'r');
    pub.write(frame(0, { dts: 3000, keyframe: true }));
    pub.write(frame(1, { dts: 6000 }));
    pub.write(frame(2, { dts: 5000 }));
    const frames = (await drain(reader)).filter((e) => e.type === 'frame').map((e) => e.frame.dts);
    expect(frames).toEqual([3000, 6000, 6001]);
    expect(hub.status('s1')!.repairedTimestamps).toBe(1);
    expect(hub.counters.timestampRepairs).toBe(1);
  });
});

describe('StreamHub: key revocation', () => {
  it('refuses a publish whose key check began before the key was revoked, and accepts later ones', () => {
    let now = 1_000;
    const hub = new StreamHub({ graceMs: 50, readerQueueFrames: 16, logger: silentLogger, monotonic: () => now });
    hubs.push(hub);
    const kick = vi.fn();
    const a = hub.publish('s1', { ...info('a'), authorizedAt: 990 }, kick);
    now = 2_000;
    hub.revoke('s1', { kick: false, reason: 'stream key rotated' });
    expect(kick).not.toHaveBeenCalled(); // the current publisher stays unless asked
    expect(a.closed).toBe(false);
    // B's key check started at 1 500, before the rotation at 2 000: refused like a wrong key.
    let err: unknown;
    try {
      hub.publish('s1', { ...info('b'), authorizedAt: 1_500 }, () => {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('E_STREAM_KEY_INVALID');
    expect(hub.status('s1')!.sessionId).toBe('a');
    // C checked the new key after the rotation.
    now = 2_100;
    hub.publish('s1', { ...info('c'), authorizedAt: 2_050 }, () => {});
    expect(hub.status('s1')!.sessionId).toBe('c');
    expect(kick).toHaveBeenCalledTimes(1); // taken over by c
  });

  it('kicks the current publisher when asked', () => {
    const hub = makeHub();
    const kick = vi.fn();
    const a = hub.publish('s1', info('a'), kick);
    hub.revoke('s1', { kick: true, reason: 'stream key rotated' });
    expect(kick).toHaveBeenCalledWith('stream key rotated');
    expect(a.closed).toBe(true);
  });
});

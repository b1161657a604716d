/**
 * Publishers that take a stream and never send a frame: they must not keep it alive. The stream waits
 * graceMs from when its last publisher that delivered media left, however many silent ones come and go.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { StreamHub, type PublishInfo } from '../../src/stream/index.js';

const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: Uint8Array.of(1, 0x42, 0xc0, 0x1e), width: 640, height: 360, frameRate: 30 },
};
const info = (sessionId: string): PublishInfo => ({ sessionId, protocol: 'rtmp', remoteAddress: '127.0.0.1' });
const frame = (n: number): MediaFrame => ({
  track: 'video',
  dts: n * 3000,
  pts: n * 3000,
  keyframe: n === 0,
  data: Uint8Array.of(n & 0xff, 1, 2, 3),
  wallClock: 1_700_000_000_000 + n,
});

afterEach(() => {
  vi.useRealTimers();
});

function setup(graceMs = 1000) {
  vi.useFakeTimers();
  const hub = new StreamHub({ graceMs, readerQueueFrames: 100, logger: silentLogger, clock: { now: () => Date.now() } });
  const ends: Array<{ at: number; reason: string }> = [];
  const t0 = Date.now();
  hub.on('stream-end', (_id, reason) => ends.push({ at: Date.now() - t0, reason }));
  return { hub, ends, elapsed: () => Date.now() - t0 };
}

describe('StreamHub: publishers that send no frame', () => {
  it('a silent takeover of a live publisher: the stream ends graceMs after the takeover, not after the silent one left', () => {
    const { hub, ends } = setup(1000);
    const a = hub.publish('s1', info('a'), () => {});
    a.setTracks(TRACKS);
    a.write(frame(0));
    vi.advanceTimersByTime(100);
    const silent = hub.publish('s1', info('silent'), () => {}); // t = 100: a is kicked
    expect(a.closed).toBe(true);
    vi.advanceTimersByTime(600);
    silent.close('no media'); // t = 700: dropped by its ingest's media timeout
    expect(hub.status('s1')?.state).toBe('reconnecting');
    vi.advanceTimersByTime(399);
    expect(ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(ends).toEqual([{ at: 1100, reason: 'publisher did not return' }]);
    hub.close();
  });

  it('silent publishers one after another cannot keep a waiting stream alive', () => {
    const { hub, ends } = setup(1000);
    const a = hub.publish('s1', info('a'), () => {});
    a.setTracks(TRACKS);
    a.write(frame(0));
    a.close('connection lost'); // t = 0: the wait begins
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(150);
      hub.publish('s1', info(`silent-${i}`), () => {}).close('no media');
    }
    expect(ends).toEqual([]);
    vi.advanceTimersByTime(250);
    expect(ends).toEqual([{ at: 1000, reason: 'publisher did not return' }]);
    hub.close();
  });

  it('a silent one that leaves after the wait has run out ends the stream at once', () => {
    const { hub, ends } = setup(1000);
    const a = hub.publish('s1', info('a'), () => {});
    a.write(frame(0));
    vi.advanceTimersByTime(10);
    const silent = hub.publish('s1', info('silent'), () => {});
    vi.advanceTimersByTime(5000);
    expect(ends).toEqual([]); // a publisher holds the stream meanwhile
    silent.close('no media');
    expect(ends).toEqual([{ at: 5010, reason: 'publisher did not return' }]);
  });

  it('a publisher that delivers frames starts a new wait when it leaves, as before', () => {
    const { hub, ends } = setup(1000);
    const a = hub.publish('s1', info('a'), () => {});
    a.write(frame(0));
    a.close('connection lost');
    vi.advanceTimersByTime(500);
    const b = hub.publish('s1', info('b'), () => {});
    b.write(frame(1));
    vi.advanceTimersByTime(2000);
    b.close('connection lost'); // t = 2500
    vi.advanceTimersByTime(999);
    expect(ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(ends).toEqual([{ at: 3500, reason: 'publisher did not return' }]);
  });
});

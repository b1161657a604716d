import { describe, expect, it } from 'vitest';
import { ProgressParser, SpeedMeter, parseEncoders } from '../../src/process/index.js';

// Two blocks as FFmpeg 5.1 prints them with `-progress pipe:1` (the first before any speed is known).
const TWO_BLOCKS =
  [
    'frame=1',
    'fps=0.00',
    'stream_0_0_q=-0.0',
    'bitrate=N/A',
    'total_size=N/A',
    'out_time_us=100000',
    'out_time_ms=100000',
    'out_time=00:00:00.100000',
    'dup_frames=0',
    'drop_frames=0',
    'speed=N/A',
    'progress=continue',
    'frame=75',
    'fps=24.93',
    'stream_0_0_q=28.0',
    'bitrate= 312.4kbits/s',
    'total_size=117220',
    'out_time_us=3000000',
    'out_time_ms=3000000',
    'out_time=00:00:03.000000',
    'dup_frames=2',
    'drop_frames=5',
    'speed=0.997x',
    'progress=end',
  ].join('\n') + '\n';

const FIRST = {
  frame: 1,
  fps: 0,
  outTimeUs: 100_000,
  speed: undefined,
  dropFrames: 0,
  dupFrames: 0,
  totalSizeBytes: undefined,
  progress: 'continue',
};
const SECOND = {
  frame: 75,
  fps: 24.93,
  outTimeUs: 3_000_000,
  speed: 0.997,
  dropFrames: 5,
  dupFrames: 2,
  totalSizeBytes: 117_220,
  progress: 'end',
};

describe('ProgressParser', () => {
  it('parses whole blocks, N/A as undefined', () => {
    expect(new ProgressParser().push(Buffer.from(TWO_BLOCKS))).toEqual([FIRST, SECOND]);
  });

  it('gives the same blocks whatever the chunking', () => {
    for (const size of [1, 2, 3, 7, 13, 64]) {
      const p = new ProgressParser();
      const out = [];
      const bytes = Buffer.from(TWO_BLOCKS);
      for (let i = 0; i < bytes.length; i += size) out.push(...p.push(bytes.subarray(i, i + size)));
      expect(out, `chunks of ${size}`).toEqual([FIRST, SECOND]);
    }
  });

  it('returns nothing until progress= closes a block', () => {
    const p = new ProgressParser();
    expect(p.push('frame=10\nfps=5\nspeed=1.5x\n')).toEqual([]);
    expect(p.push('progress=contin')).toEqual([]);
    expect(p.push('ue\r\n')).toEqual([expect.objectContaining({ frame: 10, fps: 5, speed: 1.5, progress: 'continue' })]);
  });

  it('does not carry values from one block to the next', () => {
    const p = new ProgressParser();
    p.push('frame=10\nspeed=2x\nprogress=continue\n');
    expect(p.push('frame=11\nprogress=continue\n')).toEqual([expect.objectContaining({ frame: 11, speed: undefined })]);
  });

  it('drops overlong lines, split or not, and keeps parsing after them', () => {
    const p = new ProgressParser({ maxLineLength: 32 });
    const long = `frame=${'9'.repeat(100)}`;
    expect(p.push(`${long.slice(0, 50)}`)).toEqual([]);
    expect(p.push(`${long.slice(50)}\nframe=3\nprogress=continue\n${long}\nframe=4\nprogress=end\n`)).toEqual([
      expect.objectContaining({ frame: 3, progress: 'continue' }),
      expect.objectContaining({ frame: 4, progress: 'end' }),
    ]);
    expect(p.droppedLines).toBe(2);
  });

  it('ignores garbage lines and values', () => {
    const p = new ProgressParser();
    expect(p.push('hello\n=x\nframe=abc\nfps=\nprogress=continue\n')).toEqual([
      expect.objectContaining({ frame: undefined, fps: undefined, progress: 'continue' }),
    ]);
  });
});

describe('SpeedMeter', () => {
  it('is undefined until two samples span wall time', () => {
    const m = new SpeedMeter();
    expect(m.speed()).toBeUndefined();
    m.add(1000, 0);
    expect(m.speed()).toBeUndefined();
    m.add(1000, 500_000);
    expect(m.speed()).toBeUndefined();
    m.add(1500, 500_000);
    expect(m.speed()).toBe(1);
  });

  it('measures over the last window only, not since the start', () => {
    const m = new SpeedMeter({ windowMs: 3000 });
    // 60 s at real time, sampled every 500 ms...
    let wall = 0;
    let out = 0;
    m.add(wall, out);
    while (wall < 60_000) m.add((wall += 500), (out += 500_000));
    expect(m.speed()).toBeCloseTo(1, 6);
    // ...then 3 s at half speed: the cumulative figure would still read about 0.97.
    for (let i = 0; i < 6; i++) m.add((wall += 500), (out += 250_000));
    expect(m.speed()).toBeCloseTo(0.5, 6);
  });

  it('starts over when output time goes back (FFmpeg restarted)', () => {
    const m = new SpeedMeter();
    m.add(0, 10_000_000);
    m.add(1000, 11_000_000);
    m.add(2000, 0);
    expect(m.speed()).toBeUndefined();
    m.add(3000, 2_000_000);
    expect(m.speed()).toBe(2);
  });

  it('keeps at most maxSamples', () => {
    const m = new SpeedMeter({ windowMs: 1e9, maxSamples: 3 });
    for (let i = 0; i < 10; i++) m.add(i * 1000, i * i * 1_000_000);
    // Only samples 7..9 remain: (81 - 49) s of output over 2 s.
    expect(m.speed()).toBe(16);
  });
});

describe('parseEncoders', () => {
  it('reads names after the legend only', () => {
    const text = [
      'Encoders:',
      ' V..... = Video',
      ' A..... = Audio',
      ' ------',
      ' V....D libx264              libx264 H.264 / AVC (codec h264)',
      ' A....D aac                  AAC (Advanced Audio Coding)',
      ' VFS..D mpeg4                MPEG-4 part 2',
      '',
    ].join('\n');
    expect([...parseEncoders(text)]).toEqual(['libx264', 'aac', 'mpeg4']);
  });
});

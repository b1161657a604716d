import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/index.js';
import { ffmpegEncoders, findFfmpeg } from '../../src/process/index.js';

const dir = mkdtempSync(join(tmpdir(), 'livepack-ffmpeg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake ffmpeg: a shell script, executable or not. */
function fake(name: string, executable: boolean): string {
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\nexit 0\n');
  chmodSync(path, executable ? 0o755 : 0o644);
  return path;
}

describe('findFfmpeg', () => {
  it('finds the installed ffmpeg on PATH', () => {
    const path = findFfmpeg();
    expect(path).toMatch(/\/ffmpeg$/);
  });

  it('prefers FFMPEG_PATH', () => {
    const path = fake('my-ffmpeg', true);
    expect(findFfmpeg({ FFMPEG_PATH: path, PATH: process.env.PATH })).toBe(path);
  });

  it('rejects an FFMPEG_PATH that is not executable, naming the setting', () => {
    const path = fake('not-exec', false);
    expect(() => findFfmpeg({ FFMPEG_PATH: path })).toThrow(AppError);
    expect(() => findFfmpeg({ FFMPEG_PATH: path })).toThrow(/FFMPEG_PATH=.*not-exec is not an executable file/);
    expect(() => findFfmpeg({ FFMPEG_PATH: dir })).toThrow(/FFMPEG_PATH/);
  });

  it('searches PATH in order and skips non-executable files and empty entries', () => {
    fake('ffmpeg', false); // in dir itself: not executable
    const empty = mkdtempSync(join(dir, 'empty-'));
    const found = join(mkdtempSync(join(dir, 'bin-')), 'ffmpeg');
    writeFileSync(found, '#!/bin/sh\n');
    chmodSync(found, 0o755);
    expect(findFfmpeg({ PATH: ['', dir, empty, dirname(found), '/usr/bin'].join(':') })).toBe(found);
  });

  it('throws a clear error when nothing is found', () => {
    expect(() => findFfmpeg({ PATH: dir })).toThrow(/FFmpeg not found: set FFMPEG_PATH/);
    expect(() => findFfmpeg({ PATH: '' })).toThrow(expect.objectContaining({ code: 'E_CONFIG_INVALID' }));
  });
});

describe('ffmpegEncoders', () => {
  it('lists the real encoders, cached per path', async () => {
    const path = findFfmpeg();
    const encoders = await ffmpegEncoders(path);
    expect(encoders.has('aac')).toBe(true);
    expect(encoders.has('rawvideo')).toBe(true);
    expect(encoders.has('nosuchencoder')).toBe(false);
    expect(encoders.has('=')).toBe(false); // the legend is not read as a name
    expect(await ffmpegEncoders(path)).toBe(encoders);
  });

  it('rejects with AppError when the binary cannot run, and does not cache the failure', async () => {
    const missing = join(dir, 'missing-ffmpeg');
    await expect(ffmpegEncoders(missing)).rejects.toThrow(/missing-ffmpeg -encoders failed/);
    const p1 = ffmpegEncoders(missing);
    await p1.catch(() => {});
    const p2 = ffmpegEncoders(missing);
    await p2.catch(() => {});
    expect(p2).not.toBe(p1);
  });
});

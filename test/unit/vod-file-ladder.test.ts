import { describe, expect, it } from 'vitest';
import { buildFileArgs, encodeTimeoutMs, planFileRungs, rungFrameRate } from '../../src/vod/uploads/file-ladder.js';
import { fromFfmpegBanner, fromFfprobeJson, lastReason, parseRate } from '../../src/vod/uploads/probe.js';

const names = (rungs: { name: string; videoBitrateKbps: number }[]) => rungs.map((r) => `${r.name}@${r.videoBitrateKbps}`);

describe('planFileRungs', () => {
  it('puts the top rung at the source height, capped at 1080, with the default rungs below it', () => {
    expect(names(planFileRungs({ width: 1920, height: 1080 }))).toEqual(['1080p@5000', '720p@2800', '480p@1400', '360p@800']);
    expect(names(planFileRungs({ width: 3840, height: 2160 }))).toEqual(['1080p@5000', '720p@2800', '480p@1400', '360p@800']);
    expect(names(planFileRungs({ width: 854, height: 480 }))).toEqual(['480p@1400', '360p@800']);
    expect(names(planFileRungs({ width: 640, height: 360 }))).toEqual(['360p@800']);
  });

  it('uses the short side of a portrait video', () => {
    expect(names(planFileRungs({ width: 720, height: 1280 }))).toEqual(['720p@2800', '480p@1400', '360p@800']);
  });

  it('scales the bitrate of an in-between top rung by pixels from the rung above, with a floor', () => {
    expect(names(planFileRungs({ width: 1000, height: 406 }))).toEqual(['406p@1002', '360p@800']);
    expect(names(planFileRungs({ width: 853, height: 481 }))).toEqual(['480p@1400', '360p@800']);
    expect(names(planFileRungs({ width: 160, height: 120 }))).toEqual(['120p@150']);
  });

  it('encodes every rung with libx264 and keeps the rung frame rate caps', () => {
    const rungs = planFileRungs({ width: 1920, height: 1080 }, [
      { name: 'hd', height: 720, videoBitrateKbps: 3000, maxFrameRate: 30, encoder: 'h264_nvenc' },
    ]);
    expect(rungs).toEqual([
      { name: '1080p', height: 1080, videoBitrateKbps: 3000 * (1080 / 720) ** 2, maxFrameRate: 30, encoder: 'libx264' },
      { name: 'hd', height: 720, videoBitrateKbps: 3000, maxFrameRate: 30, encoder: 'libx264' },
    ]);
  });
});

describe('rungFrameRate', () => {
  const rung = (maxFrameRate: number) => ({ name: 'x', height: 360, videoBitrateKbps: 800, maxFrameRate, encoder: 'libx264' as const });
  it('divides by a whole factor down to the cap', () => {
    expect(rungFrameRate(60, rung(30))).toBe(30);
    expect(rungFrameRate(60000 / 1001, rung(30))).toBeCloseTo(29.97, 2);
    expect(rungFrameRate(25, rung(30))).toBe(25);
    expect(rungFrameRate(120, rung(30))).toBe(30);
    expect(rungFrameRate(0, rung(30))).toBe(0);
  });
});

describe('buildFileArgs', () => {
  it('decodes once, splits, and writes one FLV per rung with keyframes forced every 2 s', () => {
    const probe = {
      duration: 30,
      videoDuration: 30,
      video: { index: 0, codec: 'h264', width: 1280, height: 720, frameRate: 60 },
      audio: { index: 1, codec: 'aac', channels: 6, sampleRate: 44100 },
    };
    const args = buildFileArgs({ input: '/in/x.mov', probe, rungs: planFileRungs(probe.video).slice(0, 2), x264Preset: 'veryfast' });
    const rung = (size: string, kbps: number, max: number, fd: number) => [
      '-map',
      size,
      '-map',
      '0:1',
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-b:v',
      `${kbps}k`,
      '-maxrate',
      `${max}k`,
      '-bufsize',
      `${2 * kbps}k`,
      '-g',
      '100000',
      '-keyint_min',
      '1',
      '-sc_threshold',
      '0',
      '-force_key_frames',
      'expr:gte(t,n_forced*2)',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      '-ac',
      '2',
      '-ar',
      '48000',
      '-max_muxing_queue_size',
      '4096',
      '-flvflags',
      'no_duration_filesize',
      '-f',
      'flv',
      `pipe:${fd}`,
    ];
    expect(args).toEqual([
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'level+warning',
      '-nostats',
      '-progress',
      'pipe:3',
      '-stats_period',
      '1',
      '-format_whitelist',
      'mov,matroska,flv,mpegts,avi,mpeg,asf,mxf,ogg',
      '-protocol_whitelist',
      'file',
      '-i',
      '/in/x.mov',
      '-filter_complex',
      '[0:0]split=2[s0][s1];[s0]scale=-2:720,format=yuv420p[v0];[s1]fps=30.000000,scale=-2:480,format=yuv420p[v1]',
      ...rung('[v0]', 2800, 4200, 4),
      ...rung('[v1]', 1400, 2100, 5),
    ]);
  });

  it('maps no audio for a silent video and scales a portrait one on its width', () => {
    const probe = {
      duration: 5,
      videoDuration: 5,
      video: { index: 2, codec: 'hevc', width: 360, height: 640, frameRate: 30 },
      audio: undefined,
    };
    const args = buildFileArgs({ input: 'in.mp4', probe, rungs: planFileRungs(probe.video), x264Preset: 'fast' });
    expect(args.slice(args.indexOf('-filter_complex'), args.indexOf('-filter_complex') + 2)).toEqual([
      '-filter_complex',
      '[0:2]scale=360:-2,format=yuv420p[v0]',
    ]);
    expect(args.join(' ')).not.toMatch(/-c:a|0:1/);
  });
});

describe('encodeTimeoutMs', () => {
  const limits = { maxDurationSeconds: 6 * 3600, timeoutFactor: 10 };
  it('allows timeoutFactor times the duration plus two minutes', () => {
    expect(encodeTimeoutMs(30, limits)).toBe(120_000 + 300_000);
  });
  it('gives a file that does not say how long it is the allowance of the longest accepted file', () => {
    expect(encodeTimeoutMs(0, limits)).toBe(120_000 + 6 * 3600 * 10_000);
    expect(encodeTimeoutMs(0, { maxDurationSeconds: 60, timeoutFactor: 2 })).toBe(120_000 + 120_000);
  });
});

describe('probe parsing', () => {
  it('parses rates', () => {
    expect(parseRate('30000/1001')).toBeCloseTo(29.97, 2);
    expect(parseRate('25/1')).toBe(25);
    expect(parseRate('0/0')).toBe(0);
    expect(parseRate(undefined)).toBe(0);
    expect(parseRate('garbage')).toBe(0);
  });

  it('reads ffprobe JSON: skips cover art, turns a rotated video upright', () => {
    const r = fromFfprobeJson({
      streams: [
        { index: 0, codec_type: 'video', codec_name: 'mjpeg', width: 600, height: 600, disposition: { attached_pic: 1 } },
        { index: 1, codec_type: 'audio', codec_name: 'mp3', channels: 2, sample_rate: '44100' },
        {
          index: 2,
          codec_type: 'video',
          codec_name: 'h264',
          width: 1920,
          height: 1080,
          avg_frame_rate: '30000/1001',
          side_data_list: [{ rotation: -90 }],
        },
      ],
      format: { duration: '12.5' },
    });
    expect(r.duration).toBe(12.5);
    expect(r.videoDuration).toBe(0); // the file says nothing of the video stream's own length
    expect(r.video).toEqual({ index: 2, codec: 'h264', width: 1080, height: 1920, frameRate: 30000 / 1001 });
    expect(r.audio).toEqual({ index: 1, codec: 'mp3', channels: 2, sampleRate: 44100 });
    expect(
      fromFfprobeJson({ streams: [{ index: 0, codec_type: 'audio', codec_name: 'aac' }], format: { duration: '3' } }).video,
    ).toBeUndefined();
  });

  it("takes the video stream's own duration apart from the container's (audio may run on)", () => {
    const video = { index: 0, codec_type: 'video', codec_name: 'h264', width: 640, height: 360 };
    const audio = { index: 1, codec_type: 'audio', codec_name: 'aac', duration: '10.0' };
    const mp4 = fromFfprobeJson({ streams: [{ ...video, duration: '4.0' }, audio], format: { duration: '10.0' } });
    expect([mp4.duration, mp4.videoDuration]).toEqual([10, 4]);
    // Matroska: a DURATION tag per stream instead.
    const mkv = fromFfprobeJson({ streams: [{ ...video, tags: { DURATION: '00:01:02.500000000' } }, audio], format: { duration: '70' } });
    expect([mkv.duration, mkv.videoDuration]).toEqual([70, 62.5]);
    // A browser's MediaRecorder WebM: no duration anywhere.
    const webm = fromFfprobeJson({ streams: [{ ...video, codec_name: 'vp8' }], format: {} });
    expect([webm.duration, webm.videoDuration]).toEqual([0, 0]);
    // No stream duration, but nothing besides the video: the container's is the video's.
    const silent = fromFfprobeJson({ streams: [video], format: { duration: '8.5' } });
    expect([silent.duration, silent.videoDuration]).toEqual([8.5, 8.5]);
  });

  it('says why a file was refused, without the paths of this server', () => {
    const input = '/srv/livepack/data/uploads/AbC123';
    const refused = [
      "[hls @ 0x55d0c2a4f2c0] Format not on whitelist 'mov,matroska,flv,mpegts,avi,mpeg,asf,mxf,ogg'",
      `${input}: Invalid argument`,
    ].join('\n');
    expect(lastReason(refused, input)).toBe('its format (hls) is not a video container this server accepts');
    const moov = [
      `[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5599d9e3c600] moov atom not found`,
      `${input}: Invalid data found when processing input`,
    ].join('\n');
    expect(lastReason(moov, input)).toBe('Invalid data found when processing input (moov atom not found)');
    const elsewhere = `[mov @ 0x1] could not open ${input}.part and /srv/livepack/data/uploads/other`;
    expect(lastReason(elsewhere, input)).toBe('could not open the file.part and ./other');
  });

  it("reads the stream summary of `ffmpeg -i` (FFmpeg 5.1's words)", () => {
    const banner = [
      "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'rot.mp4':",
      '  Metadata:',
      '    major_brand     : isom',
      '  Duration: 00:01:02.50, start: 0.000000, bitrate: 314 kb/s',
      '  Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 854x480 [SAR 1:1 DAR 427:240], 248 kb/s, 29.97 fps, 29.97 tbr, 15360 tbn (default)',
      '    Metadata:',
      '      handler_name    : VideoHandler',
      '      vendor_id       : [0][0][0][0]',
      '      encoder         : Lavc59.37.100 libx264',
      '    Side data:',
      '      displaymatrix: rotation of 90.00 degrees',
      '  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, 5.1, fltp, 96 kb/s (default)',
      'At least one output file must be specified',
    ].join('\n');
    expect(fromFfmpegBanner(banner)).toEqual({
      duration: 62.5,
      videoDuration: 0, // audio too: the banner's duration may be the audio's
      video: { index: 0, codec: 'h264', width: 480, height: 854, frameRate: 29.97 },
      audio: { index: 1, codec: 'aac', channels: 6, sampleRate: 48000 },
    });
  });
});

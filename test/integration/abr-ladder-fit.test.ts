import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, run } from '../../harness/processes.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

type Segment = ReturnType<typeof parseMediaPlaylist>['segments'][number];

/**
 * A lean source gets a lean ladder: FFmpeg publishes 1280x720 at 800 kb/s (ffmpegPublish's rate), and the
 * default ladder's 480p (1400 kb/s) and 360p (800 kb/s) are fitted below it, so BANDWIDTH rises with
 * resolution and stock hls.js ranks the source on top. Beside it: a custom ladder keeps its bitrate and
 * is warned about, and a source whose first seconds are leaner than the rest gets its ladder re-planned
 * once, with one FFmpeg restart.
 */
describe('ABR ladder fitted to the source', () => {
  let srv: TestServer;
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-fit-'));
  const publishers: Array<ReturnType<typeof ffmpegPublish>> = [];
  let lean: { id: string; streamKey: string };
  let custom: { id: string; streamKey: string };
  let ramp: { id: string; streamKey: string };
  /** ramp's 360p bitrate in its first plan (seen while the fit is "estimated"). */
  let firstPlanKbps: number | undefined;
  /** The first media sequence number of lean's rungs after the ladder settled. */
  let settledMsn = 0;

  const get = (id: string, path: string) => fetch(`${srv.base}/live/${id}/${path}`);
  const segments = async (id: string, rung: string): Promise<Segment[]> =>
    parseMediaPlaylist(await (await get(id, `${rung}/index.m3u8`)).text()).segments;
  const transcode = async (id: string) => (await srv.api('GET', `/api/v1/streams/${id}/live`)).json?.transcode;

  /** Video kb/s of segments as ffprobe reads them (init + segments joined into one file). */
  const videoKbps = async (rung: string, segs: Segment[]): Promise<number> => {
    const parts = [Buffer.from(await (await get(lean.id, `${rung}/${segs[0].map}`)).arrayBuffer())];
    for (const s of segs) parts.push(Buffer.from(await (await get(lean.id, `${rung}/${s.uri}`)).arrayBuffer()));
    const file = join(tmp, `${rung}.mp4`);
    writeFileSync(file, Buffer.concat(parts));
    const pk = await run('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v',
      '-show_entries',
      'packet=size,pts_time',
      '-of',
      'csv=p=0',
      file,
    ]);
    expect(pk.code, pk.stderr).toBe(0);
    const packets = pk.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(',').map(Number));
    const pts = packets.map(([t]) => t);
    const seconds = Math.max(...pts) - Math.min(...pts) + 1 / 30;
    return (packets.reduce((n, [, size]) => n + size, 0) * 8) / seconds / 1000;
  };

  beforeAll(async () => {
    // No rung shedding while other test files load the machine (it has its own test).
    srv = await startTestServer({ TRANSCODE_SLOW_SECONDS: '600' });
    lean = (await srv.api('POST', '/api/v1/streams', { name: 'lean source' })).json;
    // A 240p rung asking for twice the video a 300 kb/s 360p source has.
    custom = (await srv.api('POST', '/api/v1/streams', { name: 'custom', ladder: [{ height: 240, videoBitrateKbps: 600 }] })).json;
    publishers.push(ffmpegPublish(srv.rtmpUrl(lean.streamKey), { size: '1280x720', fps: 30 }));
    publishers.push(ffmpegPublish(srv.rtmpUrl(custom.streamKey), { size: '640x360', fps: 30, extraArgs: ['-b:v', '300k'] }));
    // 854x480 (one rung, 360p) at constant quality, three quarters of the picture flat grey for the first
    // 2 s: about 440 kb/s then, 800 after (x264 with a bitrate target would make up for the lean start).
    ramp = (await srv.api('POST', '/api/v1/streams', { name: 'ramp' })).json;
    const lean2s = "drawbox=x=0:y=0:w=iw:h=ih*0.75:color=gray:t=fill:enable='lt(t,2)'";
    publishers.push(ffmpegPublish(srv.rtmpUrl(ramp.streamKey), { size: '854x480', fps: 30, extraArgs: ['-crf', '40', '-vf', lean2s] }));
    await until(
      async () => {
        const [a, b, c] = [await transcode(lean.id), await transcode(custom.id), await transcode(ramp.id)];
        if (c?.fit?.state === 'estimated' && c.rungs[0]) firstPlanKbps ??= c.rungs[0].targetBitrateKbps;
        return [a, b, c].every((t) => t?.fit?.state === 'settled' && t.state === 'running');
      },
      30_000,
      100,
    );
    settledMsn = parseMediaPlaylist(await (await get(lean.id, 'source/index.m3u8')).text()).nextMsn;
    // Two whole segments of every rung encoded with the settled plan.
    await until(
      async () => {
        for (const r of ['source', '480p', '360p'])
          if ((await segments(lean.id, r)).filter((s) => !s.gap && s.msn >= settledMsn).length < 2) return false;
        return true;
      },
      20_000,
      250,
    );
  });

  afterAll(async () => {
    await Promise.all(publishers.map((p) => kill(p)));
    await srv?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('fits the default ladder below the source and says so in the status', async () => {
    const t = await transcode(lean.id);
    expect(t.fit).toMatchObject({ state: 'settled', custom: false, omittedRungs: [] });
    expect(t.warnings).toEqual([]);
    // ffmpegPublish's -b:v 800k: x264 lands within a few per cent of it over whole GOPs.
    const src: number = t.fit.sourceVideoKbps;
    expect(src).toBeGreaterThan(600);
    expect(src).toBeLessThan(1100);
    expect(t.rungs.map((r: { name: string; ladderBitrateKbps: number }) => `${r.name}@${r.ladderBitrateKbps}`)).toEqual([
      '480p@1400',
      '360p@800',
    ]);
    // src x (480/720)^1.5 and src x (360/720)^1.5, from the first seconds: the settled bitrate re-plans
    // only if it moves a rung by more than 20 %.
    const caps = { '480p': src * (480 / 720) ** 1.5, '360p': src * (360 / 720) ** 1.5 };
    for (const r of t.rungs as Array<{ name: '480p' | '360p'; targetBitrateKbps: number }>) {
      expect(
        r.targetBitrateKbps / caps[r.name],
        `${r.name}: ${r.targetBitrateKbps} kb/s for a cap of ${caps[r.name]}`,
      ).toBeGreaterThanOrEqual(0.8);
      expect(r.targetBitrateKbps / caps[r.name], `${r.name}: ${r.targetBitrateKbps} kb/s for a cap of ${caps[r.name]}`).toBeLessThanOrEqual(
        1.2,
      );
    }
  });

  it('offers a multivariant playlist whose BANDWIDTH rises with resolution', async () => {
    const text = await (await get(lean.id, 'master.m3u8')).text();
    const variants = [...text.matchAll(/#EXT-X-STREAM-INF:([^\n]+)\n([^\n]+)/g)].map((m) => ({
      uri: m[2],
      height: Number(/RESOLUTION=\d+x(\d+)/.exec(m[1])![1]),
      bandwidth: Number(/BANDWIDTH=(\d+)/.exec(m[1])![1]),
    }));
    expect(variants.map((v) => v.uri)).toEqual(['source/index.m3u8', '480p/index.m3u8', '360p/index.m3u8']);
    expect(variants.map((v) => v.height)).toEqual([720, 480, 360]);
    const bw = variants.map((v) => v.bandwidth);
    expect(bw[1], `BANDWIDTH ${bw.join(' > ')}`).toBeLessThan(bw[0]);
    expect(bw[2], `BANDWIDTH ${bw.join(' > ')}`).toBeLessThan(bw[1]);
  });

  it("encodes every rung below the source's bitrate, as ffprobe measures the segments served", async () => {
    const t = await transcode(lean.id);
    const measured: Record<string, number> = {};
    for (const rung of ['source', '480p', '360p']) {
      const segs = (await segments(lean.id, rung)).filter((s) => !s.gap && s.msn >= settledMsn).slice(0, 2);
      measured[rung] = await videoKbps(rung, segs);
    }
    const summary = JSON.stringify(measured);
    expect(measured['480p'], summary).toBeLessThan(measured.source);
    expect(measured['360p'], summary).toBeLessThan(measured['480p']);
    // And near what each was asked for (capped VBR: at most its target, give or take a GOP's rounding).
    for (const r of t.rungs as Array<{ name: string; targetBitrateKbps: number }>) {
      expect(measured[r.name], `${r.name} against ${r.targetBitrateKbps} kb/s: ${summary}`).toBeGreaterThan(r.targetBitrateKbps * 0.6);
      expect(measured[r.name], `${r.name} against ${r.targetBitrateKbps} kb/s: ${summary}`).toBeLessThan(r.targetBitrateKbps * 1.25);
    }
  });

  it("re-plans once when the bitrate settles away from the first seconds' (one FFmpeg restart, the rung goes on)", async () => {
    const t = await transcode(ramp.id);
    expect(t.fit).toMatchObject({ state: 'settled', custom: false, omittedRungs: [] });
    expect(t.rungs).toMatchObject([{ name: '360p', ladderBitrateKbps: 800, state: 'running' }]);
    const settled: number = t.rungs[0].targetBitrateKbps;
    expect(firstPlanKbps, 'the first plan was seen').toBeDefined();
    expect(settled / firstPlanKbps!, `360p: ${firstPlanKbps} kb/s at first, ${settled} settled`).toBeGreaterThan(1.2);
    expect(settled).toBe(Math.round(t.fit.sourceVideoKbps * (360 / 480) ** 1.5));
    // The restart was asked for: not counted as an FFmpeg failure.
    expect(t.restarts).toBe(0);
    // Once: one discontinuity where the new FFmpeg took over; the playlist went on through it.
    const pl = await segments(ramp.id, '360p');
    expect(pl.filter((s) => s.discontinuity)).toHaveLength(1);
    const after = pl.findIndex((s) => s.discontinuity);
    expect(pl.slice(after + 1).filter((s) => !s.gap).length).toBeGreaterThanOrEqual(1);
    // The source was held across the restart: no gap (one only if the restart took longer than a
    // segment, as it may on a starved machine; the last run listed 0 1 2 3(discontinuity) 4, all 2 s).
    expect(pl.filter((s) => s.gap).length, pl.map((s) => `${s.msn}${s.gap ? 'gap' : ''}`).join(' ')).toBeLessThanOrEqual(1);
  });

  it("keeps a custom ladder's bitrate above the source, with a warning in the status", async () => {
    const t = await transcode(custom.id);
    expect(t.fit).toMatchObject({ state: 'settled', custom: true, omittedRungs: [] });
    expect(t.rungs).toMatchObject([{ name: '240p', targetBitrateKbps: 600, ladderBitrateKbps: 600, state: 'running' }]);
    expect(t.fit.sourceVideoKbps).toBeLessThan(600);
    expect(t.warnings).toEqual([expect.stringMatching(/^rung "240p" is set to 600 kb\/s, more than the source's \d+ kb\/s of video/)]);
  });
});

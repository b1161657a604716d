import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { newTotals, parseLivePlaylist, runViewer } from '../../harness/llhls-viewer.js';

/**
 * The soak's simulated viewer must see what goes wrong, or a green soak means nothing: these feed it
 * scripted playlists (a stand-in origin: the real one is what the soak itself loads) that skip ahead, a GAP
 * segment and a failing part, and check that it counts them.
 */

const T0 = Date.parse('2026-11-24T00:00:00.000Z');

/** A live playlist with segments msn0..msn0+n-1 of `parts` parts of 0.2 s each, then `tail` parts. */
function playlist(msn0: number, n: number, tail: number, o: { gapMsn?: number; lateMsn?: number; discontinuity?: boolean } = {}): string {
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:9',
    '#EXT-X-TARGETDURATION:1',
    '#EXT-X-PART-INF:PART-TARGET=0.2',
    `#EXT-X-MEDIA-SEQUENCE:${msn0}`,
  ];
  lines.push('#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6');
  lines.push('#EXT-X-MAP:URI="init.mp4"');
  const parts = (msn: number, count: number) => {
    for (let i = 0; i < count; i++) lines.push(`#EXT-X-PART:DURATION=0.2,URI="p${msn}.${i}.m4s"`);
  };
  for (let m = msn0; m < msn0 + n; m++) {
    if (m === o.lateMsn && o.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(T0 + m * 1000 + (o.lateMsn !== undefined && m >= o.lateMsn ? 400 : 0)).toISOString()}`);
    parts(m, 5);
    if (m === o.gapMsn) lines.push('#EXT-X-GAP');
    lines.push('#EXTINF:1.0,', `s${m}.m4s`);
  }
  const last = msn0 + n;
  if (last === o.lateMsn && o.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
  lines.push(
    `#EXT-X-PROGRAM-DATE-TIME:${new Date(T0 + last * 1000 + (o.lateMsn !== undefined && last >= o.lateMsn ? 400 : 0)).toISOString()}`,
  );
  parts(last, tail);
  lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p${last}.${tail}.m4s"`);
  return lines.join('\n') + '\n';
}

describe('parseLivePlaylist', () => {
  it('numbers parts by segment, times them from PDT, and finds the hint and GAP segments', () => {
    const pl = parseLivePlaylist(playlist(10, 2, 3, { gapMsn: 11 }));
    expect(pl.parts.map((p) => `${p.msn}.${p.index}`)).toEqual([
      '10.0',
      '10.1',
      '10.2',
      '10.3',
      '10.4',
      '11.0',
      '11.1',
      '11.2',
      '11.3',
      '11.4',
      '12.0',
      '12.1',
      '12.2',
    ]);
    expect(pl.parts[0].availableAt).toBe(T0 + 10_000 + 200);
    expect(pl.parts[12].availableAt).toBe(T0 + 12_000 + 600);
    expect(pl.preloadHint).toBe('p12.3.m4s');
    expect(pl.gapMsns).toEqual([11]);
    expect(pl.ended).toBe(false);
  });

  it('continues the media sequence after EXT-X-SKIP', () => {
    const text = playlist(10, 2, 1).replace('#EXT-X-MAP:URI="init.mp4"', '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4');
    expect(parseLivePlaylist(text).parts[0].msn).toBe(14);
  });
});

describe('runViewer', () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  /** Serve `answers` in turn for playlist requests (the last one repeats); parts answer 200 unless `badPart`. */
  async function origin(answers: string[], badPart?: string): Promise<{ url: string; playlistRequests: string[] }> {
    const playlistRequests: string[] = [];
    server = http.createServer((req, res) => {
      const path = req.url!.split('?')[0];
      if (path.endsWith('.m3u8')) {
        playlistRequests.push(req.url!);
        const body = answers[Math.min(playlistRequests.length - 1, answers.length - 1)];
        // The last answer stands for "nothing new": held a little, as a blocking reload would be.
        setTimeout(() => res.end(body), playlistRequests.length > answers.length ? 50 : 0);
      } else if (path.endsWith(badPart ?? '-')) {
        res.statusCode = 404;
        res.end();
      } else res.end('part');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/live/x/source/index.m3u8`, playlistRequests };
  }

  async function watch(url: string, ms: number) {
    const totals = newTotals();
    const stop = new AbortController();
    const t = setTimeout(() => stop.abort(), ms);
    await runViewer(url, stop.signal, totals);
    clearTimeout(t);
    return totals;
  }

  it('asks for the part after the last one listed, and sees no gap in a continuous stream', async () => {
    const o = await origin([playlist(10, 2, 1), playlist(10, 2, 2), playlist(10, 2, 3)]);
    const totals = await watch(o.url, 400);
    expect(o.playlistRequests[0]).toBe('/live/x/source/index.m3u8');
    expect(o.playlistRequests[1]).toBe('/live/x/source/index.m3u8?_HLS_msn=12&_HLS_part=1');
    expect(o.playlistRequests[2]).toBe('/live/x/source/index.m3u8?_HLS_msn=12&_HLS_part=2');
    expect(totals.gaps).toBe(0);
    expect(totals.errors).toBe(0);
    expect(totals.partsFetched).toBeGreaterThanOrEqual(3);
  });

  it('counts parts it never got to see as a gap', async () => {
    // The answer after 12.0 starts at segment 14: 12.1 to 13.4 were never listed to this viewer.
    const o = await origin([playlist(10, 2, 1), playlist(14, 2, 1)]);
    expect((await watch(o.url, 300)).gaps).toBe(1);
  });

  it('counts a hole in media time as a gap, but not across a discontinuity', async () => {
    // Segment 12 starts 400 ms after segment 11 ended: two parts of media are missing.
    const hole = await origin([playlist(10, 1, 4), playlist(10, 2, 2, { lateMsn: 12 })]);
    expect((await watch(hole.url, 300)).gaps).toBe(1);
    await new Promise<void>((r) => server!.close(() => r()));
    const session = await origin([playlist(10, 1, 4), playlist(10, 2, 2, { lateMsn: 12, discontinuity: true })]);
    expect((await watch(session.url, 300)).gaps).toBe(0);
  });

  it('counts a PDT correction of parts it already saw apart, not as a gap', async () => {
    // The second answer lists the same parts 30 ms earlier (a session's first segment, its PDT anchor refined).
    const earlier = (text: string) =>
      text.replace(
        /#EXT-X-PROGRAM-DATE-TIME:(\S+)/g,
        (_m, d: string) => `#EXT-X-PROGRAM-DATE-TIME:${new Date(Date.parse(d) - 30).toISOString()}`,
      );
    const o = await origin([playlist(10, 2, 1), earlier(playlist(10, 2, 2)), earlier(playlist(10, 2, 3))]);
    const totals = await watch(o.url, 300);
    expect(totals.gaps).toBe(0);
    expect(totals.pdtCorrections).toBe(1);
    expect(totals.pdtCorrectionMaxMs).toBe(30);
  });

  it('counts an EXT-X-GAP segment once', async () => {
    const o = await origin([playlist(10, 2, 1), playlist(10, 2, 2, { gapMsn: 11 }), playlist(10, 2, 3, { gapMsn: 11 })]);
    expect((await watch(o.url, 300)).gaps).toBe(1);
  });

  it('counts a part the origin fails to serve as an error', async () => {
    const o = await origin([playlist(10, 2, 1), playlist(10, 2, 2)], 'p12.1.m4s');
    const totals = await watch(o.url, 300);
    expect(totals.errors).toBeGreaterThanOrEqual(1);
    expect(totals.lastErrors.join('\n')).toContain('404 part p12.1.m4s');
  });
});

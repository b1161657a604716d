import http from 'node:http';
import { sleepUnless } from '../../harness/sleep.js';

/**
 * A playlist client that reloads like hls.js in low-latency mode: after each answer it asks for the part
 * after the last one listed (`_HLS_msn=M&_HLS_part=P`), which the server holds until that part exists.
 *
 * For every answer it records how late the answer came after the part could first have been served:
 *
 *   delay = (time the whole answer arrived)
 *         - (PROGRAM-DATE-TIME of the part's segment + the part's offset in the segment + the part's duration)
 *
 * PROGRAM-DATE-TIME is the server's ingest wall clock of the segment's first sample, so the subtrahend is the
 * ingest instant of the first sample after the part: the moment the packager can close the part. The delay
 * therefore covers packaging, waking the held request, rendering and sending the playlist, plus any
 * jitter of frame arrival relative to the session's first keyframe (which anchors PDT). Client and server
 * share one clock (same host), so no clock offset enters.
 */

export interface PartRef {
  readonly msn: number;
  readonly index: number;
  /** Wall clock (ms) by which the part's last sample was ingested: PDT + offset + duration. */
  readonly availableAt: number;
}

export interface BlockingSample {
  readonly msn: number;
  readonly part: number;
  readonly sentAt: number;
  readonly arrivedAt: number;
  readonly availableAt: number;
  /** arrivedAt - availableAt, ms. */
  readonly delayMs: number;
  /** The request went out before the part existed, so the server had to hold it. */
  readonly held: boolean;
}

export interface BlockingStats {
  readonly samples: BlockingSample[];
  requests: number;
  errors: number;
  /** Answers that did not contain the part asked for (a hold that timed out, a gap). */
  missing: number;
}

/** Every part a media playlist lists, with the instant it became complete at ingest. */
export function listParts(text: string): { parts: PartRef[]; ended: boolean } {
  const parts: PartRef[] = [];
  let msn = 0;
  let pdt = Number.NaN;
  let offsetMs = 0;
  let index = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-SKIP:SKIPPED-SEGMENTS=')) msn += Number(line.slice(29));
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      pdt = Date.parse(line.slice(25));
      offsetMs = 0;
      index = 0;
    } else if (line.startsWith('#EXT-X-PART:')) {
      const duration = Number(/DURATION=([\d.]+)/.exec(line)?.[1]) * 1000;
      offsetMs += duration;
      parts.push({ msn, index: index++, availableAt: pdt + offsetMs });
    } else if (line.length > 0 && !line.startsWith('#')) {
      msn++;
      index = 0;
    }
  }
  return { parts, ended: text.includes('#EXT-X-ENDLIST') };
}

function get(agent: http.Agent, url: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const sleep = sleepUnless;

/** Run the reload loop on `playlistUrl` until `signal` aborts or the playlist ends. */
export async function runBlockingClient(playlistUrl: string, signal: AbortSignal, stats: BlockingStats): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let last: PartRef | undefined;
    while (!signal.aborted) {
      if (!last) {
        // (Re)synchronise with a plain request, as a player does on start.
        const res = await get(agent, playlistUrl, signal);
        stats.requests++;
        const { parts, ended } = listParts(res.body);
        if (ended) return;
        if (res.status !== 200 || parts.length === 0) {
          stats.errors++;
          await sleep(200, signal);
          continue;
        }
        last = parts[parts.length - 1];
        continue;
      }
      // Ask for the next part; the server treats a part index past the segment's last part as part 0 of the
      // next segment (RFC 8216bis 6.2.5.2), so the answer holds whichever of the two comes next.
      const want = { msn: last.msn, part: last.index + 1 };
      const sentAt = Date.now();
      const res = await get(agent, `${playlistUrl}?_HLS_msn=${want.msn}&_HLS_part=${want.part}`, signal);
      const arrivedAt = Date.now();
      stats.requests++;
      if (res.status !== 200) {
        stats.errors++;
        last = undefined;
        await sleep(200, signal);
        continue;
      }
      const { parts, ended } = listParts(res.body);
      if (ended) return;
      const got =
        parts.find((p) => p.msn === want.msn && p.index === want.part) ?? parts.find((p) => p.msn === want.msn + 1 && p.index === 0);
      if (!got || !Number.isFinite(got.availableAt)) {
        stats.missing++;
        last = parts[parts.length - 1];
        continue;
      }
      stats.samples.push({
        msn: got.msn,
        part: got.index,
        sentAt,
        arrivedAt,
        availableAt: got.availableAt,
        delayMs: arrivedAt - got.availableAt,
        held: sentAt < got.availableAt,
      });
      last = parts[parts.length - 1];
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    agent.destroy();
  }
}

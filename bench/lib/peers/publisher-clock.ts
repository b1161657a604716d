import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { track } from '../../../harness/processes.js';
import type { Publisher } from '../synthetic.js';
import { nowMs } from './http-bytes.js';

/**
 * A publisher that also tells when it sends what: the same command as bench/lib/synthetic.ts
 * startPublisher (`ffmpeg -re -stream_loop -1 -i file -c copy -f flv url`) plus `-progress pipe:1
 * -stats_period 0.1`, so that every 100 ms FFmpeg reports `out_time_us`, the media time it has written to
 * the RTMP socket so far.
 *
 * With -re, FFmpeg releases the packet of media time t at wall time C + t, C being when its pacing clock
 * started. A report that arrives at wall time w saying out_time t therefore bounds C from above
 * (C <= w - t); the smallest w - t over all reports is the estimate. It is late by how long the report took
 * to reach us after the packet was written (a pipe write, well under a ms when the bench's CPU is not
 * saturated) plus the muxer's interleaving wait for the other track (under one packet, <= 33 ms here).
 */
export interface ClockedPublisher extends Publisher {
  /** Estimated wall time (ms since the epoch) at which media time 0 was sent; undefined before the first report. */
  mediaZeroAtMs(): number | undefined;
  /** How many progress reports were read. */
  reports(): number;
}

export function startClockedPublisher(file: string, url: string, opts: { taskset?: string } = {}): ClockedPublisher {
  const ff = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostats',
    '-progress',
    'pipe:1',
    '-stats_period',
    '0.1',
    '-re',
    '-stream_loop',
    '-1',
    '-i',
    file,
    '-c',
    'copy',
    '-f',
    'flv',
    url,
  ];
  const [cmd, args] = opts.taskset ? ['taskset', ['-c', opts.taskset, 'ffmpeg', ...ff]] : ['ffmpeg', ff];
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })) as ClockedPublisher;
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.stderrText = () => err;
  let zero: number | undefined;
  let count = 0;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const at = nowMs();
    if (!line.startsWith('out_time_us=')) return;
    const us = Number(line.slice(12));
    // "N/A" before the first packet, and 0 while only headers went out.
    if (!Number.isFinite(us) || us <= 0) return;
    count++;
    const c = at - us / 1000;
    if (zero === undefined || c < zero) zero = c;
  });
  child.mediaZeroAtMs = () => zero;
  child.reports = () => count;
  return child;
}

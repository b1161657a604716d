import { execFile } from 'node:child_process';
import net from 'node:net';
import { allStats, treeOf } from '../cpu.js';
import { rssOf } from '../../../harness/processes.js';

/** What one stream of a server under test is published to and watched at. */
export interface PeerStream {
  readonly publishUrl: string;
  /** Media playlist, for servers that do HLS. */
  readonly playlistUrl?: string;
  /** HTTP-FLV, for servers that do it instead of HLS. */
  readonly flvUrl?: string;
}

/** A server under test, started as its own process tree pinned to the server CPU. */
export interface PeerServer {
  readonly name: string;
  readonly version: string;
  /** The command line it runs with. */
  readonly command: string;
  /** The settings that matter for the figures, in a sentence. */
  readonly settings: string;
  /** Root of its process tree (CPU and RSS are summed over the tree). */
  readonly pid: number;
  /** What it serves: LL-HLS (fMP4 parts), plain HLS, or no HLS at all. */
  readonly hls: 'll-hls' | 'hls' | 'none';
  /** Makes `n` streams ready for publishing (ours creates them through its API). */
  prepareStreams(n: number): Promise<PeerStream[]>;
  alive(): boolean;
  /** The last lines it logged, for error messages. */
  logTail(): string;
  /** Stops it and waits for its whole tree. Idempotent. */
  close(): Promise<void>;
}

/** Resident memory of a process tree (e.g. nginx master + workers), bytes. */
export function treeRss(root: number): number {
  return treeOf(root, allStats()).reduce((a, s) => a + (rssOf(s.pid) ?? 0), 0);
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`${what} exited before it listened on port ${port}`);
    if (Date.now() > end) throw new Error(`${what}: nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run a command for its output (stdout + stderr); undefined when it cannot run. */
export function outputOf(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve(err ? undefined : `${stdout}${stderr}`.trim()));
  });
}

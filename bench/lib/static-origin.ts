import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { freePort, track } from '../../harness/processes.js';
import type { StaticSnapshot } from './static-viewer.js';
import { nginxTempPaths } from './nginx-conf.js';

/**
 * The static floor of the fan-out bench: a snapshot of a live media playlist and of everything it lists,
 * written to disk under the same paths, and nginx serving it.
 */

export interface SnapshotFiles {
  /** The playlist's path (as on our origin, e.g. /live/<id>/source/index.m3u8). */
  readonly playlistPath: string;
  /** The parts' paths, in playlist order. */
  readonly partPaths: string[];
  readonly files: number;
  readonly bytes: number;
}

function getBuffer(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${res.statusCode} from ${url}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
  });
}

/** The URIs a media playlist lists: init segments (EXT-X-MAP), parts (EXT-X-PART) and segments. */
function listedUris(playlist: string): { init: string[]; parts: string[]; segments: string[] } {
  const out = { init: [] as string[], parts: [] as string[], segments: [] as string[] };
  for (const line of playlist.split('\n')) {
    const uri = /URI="([^"]+)"/.exec(line)?.[1];
    if (line.startsWith('#EXT-X-MAP:') && uri) out.init.push(uri);
    else if (line.startsWith('#EXT-X-PART:') && uri) out.parts.push(uri);
    else if (line.length > 0 && !line.startsWith('#')) out.segments.push(line.trim());
  }
  return out;
}

/**
 * Download the media playlist at `mediaUrl` (a plain request: no blocking, no delta) and every init
 * segment, part and segment it lists into `root`, keeping their URL paths. The preload-hinted part does
 * not exist yet and is not fetched; the playlist is kept as it was, hint included.
 */
export async function snapshotPlaylist(mediaUrl: string, root: string): Promise<SnapshotFiles> {
  const playlistUrl = new URL(mediaUrl);
  const text = (await getBuffer(playlistUrl.toString())).toString('utf8');
  const uris = listedUris(text);
  const save = (path: string, body: Buffer) => {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
    return body.length;
  };
  let bytes = save(playlistUrl.pathname, Buffer.from(text));
  const all = [...new Set([...uris.init, ...uris.parts, ...uris.segments])];
  for (const uri of all) {
    const url = new URL(uri, playlistUrl);
    bytes += save(url.pathname, await getBuffer(url.toString()));
  }
  return {
    playlistPath: playlistUrl.pathname,
    partPaths: uris.parts.map((u) => new URL(u, playlistUrl).pathname),
    files: all.length + 1,
    bytes,
  };
}

export interface Nginx {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly base: string;
  readonly command: string;
  stderrText(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** nginx.conf for serving `root` on 127.0.0.1:`port`, everything it writes kept under `prefix`. */
function nginxConf(prefix: string, root: string, port: number): string {
  return `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
worker_rlimit_nofile 16384;
events {
  worker_connections 8192;
}
http {
  access_log off;
  ${nginxTempPaths(prefix)}
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  # Saves an open() and fstat() per request, as any tuned static origin would.
  open_file_cache max=1000 inactive=60s;
  types {
    application/vnd.apple.mpegurl m3u8;
    video/mp4 mp4 m4s;
  }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location ~ \\.m3u8$ { add_header Cache-Control no-cache; }
    location / { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
`;
}

/**
 * Start nginx (one worker, in the foreground) pinned to `cpuList` serving `root`, with its config and
 * files in `prefix`; resolves once `probePath` answers 200.
 */
export async function startNginx(opts: {
  nginxPath: string;
  prefix: string;
  root: string;
  cpuList: string;
  probePath: string;
  signal: AbortSignal;
}): Promise<Nginx> {
  const port = await freePort();
  mkdirSync(opts.prefix, { recursive: true });
  const conf = join(opts.prefix, 'nginx.conf');
  writeFileSync(conf, nginxConf(opts.prefix, opts.root, port));
  // nginx started as root reads files as "nobody": a mkdtemp directory (0700) would answer 403.
  // (The caller keeps the directories above `root` searchable.)
  chmodSync(opts.root, 0o755);
  const args = ['-c', opts.cpuList, opts.nginxPath, '-p', opts.prefix, '-c', conf];
  const child = track(spawn('taskset', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.on('error', (e) => (stderr += `\n${e.message}`));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const base = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (!alive()) return resolve();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  const deadline = Date.now() + 10_000;
  let lastProbe = '';
  for (;;) {
    if (opts.signal.aborted || !alive() || Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start: ${stderr.trim() || `not ready within 10 s (${lastProbe})`}`);
    }
    const ok = await getBuffer(base + opts.probePath).then(
      () => true,
      (err: Error) => ((lastProbe = err.message), false),
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, pid: child.pid!, base, command: `taskset ${args.join(' ')}`, stderrText: () => stderr, alive, stop };
}

/** What a static viewer needs to replay `snap` from `base`. */
export function staticSnapshot(base: string, snap: SnapshotFiles, partTargetMs: number): StaticSnapshot {
  return { playlistUrl: base + snap.playlistPath, partUrls: snap.partPaths.map((p) => base + p), partTargetMs };
}

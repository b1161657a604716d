import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, track } from '../../../harness/processes.js';
import { waitForPort, type PeerServer } from './peer.js';

/**
 * node-media-server (the dev dependency) run by its own bin/app.js with a generated config: RTMP and
 * HTTP(-FLV) on free loopback ports, no webadmin, no API (no auth.jwt section), no auth, no recording, no
 * notify hook. Its config has no empty secret, so app.js never writes the file back.
 */
export async function startNms(repoRoot: string, dir: string, cpus: string): Promise<PeerServer> {
  const home = join(repoRoot, 'node_modules', 'node-media-server');
  const app = join(home, 'bin', 'app.js');
  if (!existsSync(app)) throw new Error(`${app} not found: run npm ci (node-media-server is a dev dependency)`);
  const version = (JSON.parse(readFileSync(join(home, 'package.json'), 'utf8')) as { version: string }).version;
  const [rtmpPort, httpPort] = [await freePort(), await freePort()];
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config = {
    bind: '127.0.0.1',
    rtmp: { port: rtmpPort },
    http: { port: httpPort },
    webadmin: { enable: false },
    store: { path: join(dir, 'data') },
    record: { auto: false },
    notify: { url: '' },
  };
  const confFile = join(dir, 'nms.json');
  writeFileSync(confFile, JSON.stringify(config, null, 2));
  const args = ['-c', cpus, process.execPath, app, '-c', confFile, '--no-admin'];
  // taskset execs node: the child's pid is the server's.
  const child = track(spawn('taskset', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  const keep = (d: Buffer) => (log = (log + d.toString()).slice(-6000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const alive = () => child.exitCode === null && child.signalCode === null;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      if (!alive()) return resolve();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => (clearTimeout(t), resolve()));
      child.kill('SIGTERM');
    }));
  try {
    await waitForPort(rtmpPort, 15_000, alive, 'node-media-server');
    await waitForPort(httpPort, 15_000, alive, 'node-media-server');
  } catch (err) {
    await close();
    throw new Error(`${(err as Error).message}: ${log.trim().slice(-1000)}`, { cause: err });
  }
  return {
    name: 'node-media-server',
    version,
    command: `taskset ${args.join(' ')}`,
    settings:
      'RTMP ingest, HTTP-FLV out (it has no HLS), its GOP cache for new viewers, logging at its built-in debug level (to a pipe the bench reads)',
    pid: child.pid!,
    hls: 'none',
    async prepareStreams(n) {
      return Array.from({ length: n }, (_, i) => ({
        publishUrl: `rtmp://127.0.0.1:${rtmpPort}/live/s${i}`,
        flvUrl: `http://127.0.0.1:${httpPort}/live/s${i}.flv`,
      }));
    },
    alive,
    logTail: () => log.trim().slice(-1500),
    close,
  };
}

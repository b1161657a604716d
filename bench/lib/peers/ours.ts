import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../../../harness/http.js';
import { startServerProcess } from '../../../harness/server-process.js';
import { pinTree } from '../cpu.js';
import type { PeerServer, PeerStream } from './peer.js';

const API_TOKEN = 'bench-token-0123456789abcdef';

/**
 * livepack as its own process (harness/server-process.ts), default LL-HLS settings, pinned to `cpus` once
 * it is ready (taskset -a -p on every thread of its process tree; the start-up itself is not measured).
 */
export async function startOurs(repoRoot: string, dataDir: string, signal: AbortSignal, cpus: string): Promise<PeerServer> {
  const server = await startServerProcess(repoRoot, dataDir, API_TOKEN, signal);
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= server.stop(15_000).then(() => undefined));
  try {
    await pinTree(server.pid, cpus);
  } catch (err) {
    await close();
    throw err;
  }
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };

  async function createStream(name: string): Promise<PeerStream> {
    const r = await request('POST', `${server.base}/api/v1/streams`, {
      headers: auth,
      body: JSON.stringify({ name, profile: 'passthrough' }),
    });
    if (r.status !== 201) throw new Error(`creating stream ${name} answered ${r.status}: ${r.body}`);
    const s = JSON.parse(r.body) as { id: string; streamKey: string };
    return {
      publishUrl: `rtmp://127.0.0.1:${server.rtmpPort}/live/${s.streamKey}`,
      // The passthrough stream's only rendition (README, "Watching").
      playlistUrl: `${server.base}/live/${s.id}/source/index.m3u8`,
    };
  }

  return {
    name: 'livepack (ours)',
    version,
    command: `${server.command}, then taskset -a -p -c ${cpus} on its tree`,
    settings: 'defaults: LL-HLS, CMAF fMP4, 2 s segments, 0.2 s parts, PART-HOLD-BACK 0.6 s; streams with profile "passthrough"',
    pid: server.pid,
    hls: 'll-hls',
    async prepareStreams(n) {
      const out: PeerStream[] = [];
      for (let i = 0; i < n; i++) out.push(await createStream(`peers-${i}`));
      return out;
    },
    alive: server.alive,
    logTail: () => server.stderrText().trim().slice(-1500),
    close,
  };
}

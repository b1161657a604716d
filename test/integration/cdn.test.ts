import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * deploy/nginx.conf (the CDN edge of docker-compose.yml) in front of a real origin on loopback: the same
 * file, with only the upstream address, the listen port and the paths rewritten for this machine.
 */
describe('nginx edge from deploy/nginx.conf', () => {
  let srv: TestServer;
  let nginx: ChildProcess | undefined;
  let edge = '';
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  let id = '';
  const dir = mkdtempSync(join(tmpdir(), 'livepack-nginx-'));

  beforeAll(async () => {
    srv = await startTestServer();
    const s = (await srv.api('POST', '/api/v1/streams', { name: 'cdn' })).json;
    id = s.id;
    publisher = ffmpegPublish(srv.rtmpUrl(s.streamKey));
    await until(async () => (await fetch(`${srv.base}/live/${id}/master.m3u8`)).status === 200, 20_000, 200);
    const port = await freePort();
    chmodSync(dir, 0o777);
    const conf = readFileSync(new URL('../../deploy/nginx.conf', import.meta.url), 'utf8')
      .replace(/( *server origin-\d+:8080[^;]*;\n)+/, `    server 127.0.0.1:${srv.httpPort};\n`)
      .replace('listen 80;', `listen 127.0.0.1:${port};`)
      .replace('/var/cache/nginx/livepack', join(dir, 'cache'))
      .replace('worker_processes auto;', `worker_processes 1;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'error.log')} warn;`)
      .replace(
        'http {',
        `http {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;`,
      );
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    edge = `http://127.0.0.1:${port}`;
    await until(async () => (await fetch(`${edge}/healthz`)).status === 200, 10_000, 100);
  });

  afterAll(async () => {
    await kill(publisher);
    await kill(nginx, 'SIGTERM');
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the live stream through the edge and caches immutable objects', async () => {
    const master = await fetch(`${edge}/live/${id}/master.m3u8`);
    expect(master.status).toBe(200);
    expect(await master.text()).toContain('source/index.m3u8');
    const text = await (await fetch(`${edge}/live/${id}/source/index.m3u8`)).text();
    const pl = parseMediaPlaylist(text);
    const part = pl.parts[pl.parts.length - 1];
    const first = await fetch(`${edge}/live/${id}/source/${part.uri}`);
    expect(first.status).toBe(200);
    const bytes = Buffer.from(await first.arrayBuffer());
    const second = await fetch(`${edge}/live/${id}/source/${part.uri}`);
    expect(second.headers.get('x-cache-status')).toBe('HIT');
    expect(Buffer.from(await second.arrayBuffer()).equals(bytes)).toBe(true);
    // A plain reload always goes to the origin.
    const plain = await fetch(`${edge}/live/${id}/source/index.m3u8`);
    expect(plain.headers.get('x-cache-status')).toBe('BYPASS');
    await plain.text();
  });

  it('passes blocking playlist requests through and collapses identical ones', async () => {
    const pl = parseMediaPlaylist(await (await fetch(`${edge}/live/${id}/source/index.m3u8`)).text());
    const target = `${edge}/live/${id}/source/index.m3u8?_HLS_msn=${pl.nextMsn + 1}&_HLS_part=0`;
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 5 }, () => fetch(target)));
    expect(Date.now() - t0).toBeLessThan(8000);
    const statuses = answers.map((a) => a.headers.get('x-cache-status'));
    for (const a of answers) expect(a.status).toBe(200);
    const texts = await Promise.all(answers.map((a) => a.text()));
    for (const t of texts) expect(parseMediaPlaylist(t).nextMsn).toBeGreaterThanOrEqual(pl.nextMsn + 1);
    // One went to the origin, the others waited for its answer.
    expect(statuses.filter((s) => s === 'MISS').length).toBe(1);
  });

  it('holds a preload-hinted part at the edge until the origin has it', async () => {
    const pl = parseMediaPlaylist(await (await fetch(`${edge}/live/${id}/source/index.m3u8`)).text());
    expect(pl.hint).toBeDefined();
    const res = await fetch(`${edge}/live/${id}/source/${pl.hint}`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
  });
});

/**
 * The cluster topology of docker-compose.yml as processes on loopback: ingest nodes, origins and a worker
 * (each `npm start` as its own process, sharing one Redis, one PostgreSQL catalog and one media directory),
 * and Debian's nginx in front of the origins with deploy/nginx.conf (its upstreams pointed at the origins'
 * ports). For trying the cluster on one machine (`npm run cluster:local`) and for the tests and benches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from './http.js';
import { freePort, kill, track } from './processes.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

export interface LocalClusterOptions {
  readonly repoRoot: string;
  /** Everything the nodes and nginx write goes below it (the nodes share its media folder). */
  readonly dir: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly databaseUrl: string;
  readonly apiToken: string;
  readonly playbackTokenSecret: string;
  readonly signal: AbortSignal;
  readonly ingest?: number;
  readonly origins?: number;
  readonly workers?: number;
  /** More environment for every node (e.g. RECONNECT_GRACE_MS). */
  readonly env?: Record<string, string>;
  /** nginx's access log (default none): the file and a log_format for it (e.g. with $upstream_cache_status). */
  readonly accessLog?: { readonly file: string; readonly format: string };
}

export interface LocalCluster {
  readonly ingest: readonly ServerProcess[];
  readonly origins: readonly ServerProcess[];
  readonly workers: readonly ServerProcess[];
  /** nginx in front of the origins: where viewers (and the API) go. */
  readonly edge: string;
  stop(): Promise<void>;
}

/** deploy/nginx.conf with its upstreams, listen address and paths pointed at this machine. */
export function localNginxConf(
  repoRoot: string,
  dir: string,
  port: number,
  origins: readonly number[],
  accessLog?: LocalClusterOptions['accessLog'],
): string {
  const log = accessLog
    ? `log_format livepack_bench '${accessLog.format}';\n  access_log ${accessLog.file} livepack_bench;`
    : 'access_log off;';
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/${k};`).join('\n');
  return readFileSync(join(repoRoot, 'deploy', 'nginx.conf'), 'utf8')
    .replace(/( *server origin-\d+:8080[^;]*;\n)+/, origins.map((p) => `    server 127.0.0.1:${p} max_fails=2 fail_timeout=5s;\n`).join(''))
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replace('/var/cache/nginx/livepack', join(dir, 'cache'))
    .replace('worker_processes auto;', `worker_processes 1;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'error.log')} warn;`)
    .replace('http {', `http {\n  ${log}\n${temp}`);
}

export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const started: ServerProcess[] = [];
  let nginx: ChildProcess | undefined;
  const stop = async () => {
    await kill(nginx, 'SIGTERM');
    await Promise.all(started.map((s) => s.stop(15_000)));
  };
  try {
    const common = {
      REDIS_URL: o.redisUrl,
      REDIS_PREFIX: o.redisPrefix,
      DATABASE_URL: o.databaseUrl,
      PLAYBACK_TOKEN_SECRET: o.playbackTokenSecret,
      STORAGE_SHARED: 'true',
      // nginx on loopback forwards the client's address (deploy/nginx.conf).
      TRUST_PROXY: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...o.env,
    };
    const node = async (roles: string, name: string) => {
      const s = await startServerProcess(o.repoRoot, join(o.dir, 'data'), o.apiToken, o.signal, {
        ...common,
        NODE_ROLES: roles,
        NODE_ID: name,
      });
      started.push(s);
      return s;
    };
    // One at a time: the first applies the catalog's migrations.
    const origins: ServerProcess[] = [];
    for (let i = 1; i <= (o.origins ?? 2); i++) origins.push(await node('origin', `origin-${i}`));
    const ingest: ServerProcess[] = [];
    for (let i = 1; i <= (o.ingest ?? 2); i++) ingest.push(await node('ingest', `ingest-${i}`));
    const workers: ServerProcess[] = [];
    for (let i = 1; i <= (o.workers ?? 1); i++) workers.push(await node('worker', `worker-${i}`));

    const nginxDir = join(o.dir, 'nginx');
    mkdirSync(nginxDir, { recursive: true });
    // nginx started as root runs its workers as nobody: they must reach their cache below `dir` (a mkdtemp
    // folder is 0700).
    chmodSync(o.dir, 0o755);
    const port = await freePort();
    writeFileSync(
      join(nginxDir, 'nginx.conf'),
      localNginxConf(
        o.repoRoot,
        nginxDir,
        port,
        origins.map((s) => s.httpPort),
        o.accessLog,
      ),
    );
    nginx = track(spawn('nginx', ['-p', nginxDir, '-c', join(nginxDir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' }));
    const edge = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (
      !(await request('GET', `${edge}/healthz`, { timeoutMs: 1000 }).then(
        (r) => r.status === 200,
        () => false,
      ))
    ) {
      if (Date.now() > deadline) throw new Error(`nginx did not answer at ${edge} (see ${join(nginxDir, 'error.log')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ingest, origins, workers, edge, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

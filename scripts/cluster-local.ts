/**
 * `npm run cluster:local [-- --smoke]`: the docker-compose topology as processes on this machine (2 ingest
 * nodes, 2 origins, 1 upload worker, nginx in front of the origins), on the machine's Redis and PostgreSQL:
 * REDIS_URL (default redis://127.0.0.1:6379) with its own prefix, and a database of its own on the server of
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; the database `livepack_cluster_local` is
 * created there if missing and kept; a smoke run uses one of its own and drops it). Prints where to
 * publish and where to watch, and runs until Ctrl-C.
 *
 * With --smoke it publishes FFmpeg's test picture to the first ingest node for a few seconds, checks that
 * the stream plays through nginx from both origins, and stops (exit code 0 when it did).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalCluster, type LocalCluster } from '../harness/cluster.js';
import { ffmpegPublish } from '../harness/ffmpeg-publish.js';
import { request } from '../harness/http.js';
import { createDatabase, dropDatabase } from '../harness/postgres.js';
import { kill, killTracked, withoutPassword } from '../harness/processes.js';
import { deleteKeysWithPrefix } from '../harness/redis.js';

const ROOT = join(import.meta.dirname, '..');
async function api(cluster: LocalCluster, token: string, method: string, path: string, body?: unknown) {
  const res = await request(method, cluster.edge + path, {
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: JSON.parse(res.body || 'null') as Record<string, unknown> };
}

async function smoke(cluster: LocalCluster, token: string): Promise<void> {
  const created = await api(cluster, token, 'POST', '/api/v1/streams', { name: 'cluster smoke', profile: 'passthrough' });
  if (created.status !== 201) throw new Error(`creating a stream answered ${created.status}`);
  const { id, streamKey } = created.json as { id: string; streamKey: string };
  const publisher = ffmpegPublish(`rtmp://127.0.0.1:${cluster.ingest[0].rtmpPort}/live/${streamKey}`);
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const viaEdge = await request('GET', `${cluster.edge}/live/${id}/source/index.m3u8`);
      if (viaEdge.status === 200 && viaEdge.body.includes('#EXT-X-PART:')) break;
      if (Date.now() > deadline) throw new Error(`the stream did not play through nginx: ${viaEdge.status} ${viaEdge.body.slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // Each origin serves it, whichever nginx picked.
    for (const o of cluster.origins) {
      const r = await request('GET', `${o.base}/live/${id}/master.m3u8`);
      if (r.status !== 200) throw new Error(`origin ${o.base} answered ${r.status} for the multivariant playlist`);
    }
    console.log(`smoke: stream ${id} published to ingest-1 plays through nginx and from every origin`);
  } finally {
    await kill(publisher, 'SIGINT');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false } } });
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redisPrefix = `livepack-local-${randomBytes(3).toString('hex')}:`;
  const pgServer = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  // A smoke run leaves nothing behind: its database is its own and dropped; a run to try things keeps one.
  const dbName = values.smoke ? `livepack_cluster_smoke_${randomBytes(4).toString('hex')}` : 'livepack_cluster_local';
  const databaseUrl = await createDatabase(pgServer, dbName, { ifMissing: true });
  const dir = mkdtempSync(join(tmpdir(), 'livepack-cluster-'));
  const apiToken = randomBytes(24).toString('base64url');
  const stop = new AbortController();
  let cluster: LocalCluster | undefined;
  const finish = async (code: number) => {
    stop.abort();
    await cluster?.stop();
    await deleteKeysWithPrefix(redisUrl, redisPrefix).catch(() => undefined);
    if (values.smoke) await dropDatabase(pgServer, dbName).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    killTracked();
    process.exit(code);
  };
  process.once('SIGINT', () => void finish(0));
  process.once('SIGTERM', () => void finish(0));
  try {
    cluster = await startLocalCluster({
      repoRoot: ROOT,
      dir,
      redisUrl,
      redisPrefix,
      databaseUrl,
      apiToken,
      playbackTokenSecret: randomBytes(32).toString('base64url'),
      signal: stop.signal,
    });
  } catch (err) {
    console.error(`cluster:local could not start: ${err instanceof Error ? err.message : String(err)}`);
    return finish(1);
  }
  const ingest = cluster.ingest.map((s, i) => `  ingest-${i + 1}: rtmp://127.0.0.1:${s.rtmpPort}/live/<streamKey>`).join('\n');
  const origins = cluster.origins.map((s, i) => `  origin-${i + 1}: ${s.base}`).join('\n');
  console.log(`cluster:local is up (Redis ${withoutPassword(redisUrl)}, prefix ${redisPrefix}; catalog ${dbName}; files under ${dir})
publish to either ingest node:
${ingest}
watch and drive it through nginx: ${cluster.edge} (the player: ${cluster.edge}/watch/<id>)
origins behind it:
${origins}
API token: ${apiToken}
  create a stream: curl -X POST -H "Authorization: Bearer ${apiToken}" -H 'content-type: application/json' -d '{"name":"mine"}' ${cluster.edge}/api/v1/streams
Ctrl-C stops every process.`);
  if (!values.smoke) return;
  try {
    await smoke(cluster, apiToken);
    await finish(0);
  } catch (err) {
    console.error(`smoke FAILED: ${err instanceof Error ? err.message : String(err)}`);
    await finish(1);
  }
}

await main();

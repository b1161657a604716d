import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, SETTINGS } from '../../src/config/index.js';

/**
 * docker-compose.yml cannot run here (no Docker engine), so it is kept true in two ways: Compose's own
 * schema check (`docker-compose config`, which needs no daemon), and every livepack node's environment read
 * by the server's own configuration, its ports against the settings.
 */
const ROOT = new URL('../../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', ROOT), 'utf8'), { merge: true }) as {
  services: Record<string, { build?: string; environment?: Record<string, string>; ports?: string[] }>;
};
const nodes = Object.entries(compose.services).filter(([, s]) => s.build === '.');
/** Variables a node reads that are not livepack settings (the AWS SDK's credentials). */
const NOT_SETTINGS = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

describe('docker-compose.yml', () => {
  it('passes Compose’s schema check', () => {
    const which = spawnSync('which', ['docker-compose']);
    // .ci/run installs Debian's docker-compose; a developer machine without it still runs the checks below.
    if (which.status !== 0 && process.env.CI !== 'true') return;
    execFileSync('docker-compose', ['config', '-q'], { cwd: ROOT });
  });

  it('runs 2 ingest nodes, 2 origins and a worker behind nginx, with PostgreSQL, Redis and MinIO', () => {
    const roles = nodes.map(([, s]) => s.environment?.NODE_ROLES).sort();
    expect(roles).toEqual(['ingest', 'ingest', 'origin', 'origin', 'worker']);
    for (const name of ['cdn', 'postgres', 'redis', 'minio']) expect(compose.services[name], name).toBeDefined();
    const nginx = readFileSync(new URL('deploy/nginx.conf', ROOT), 'utf8');
    for (const [name, s] of nodes) if (s.environment?.NODE_ROLES === 'origin') expect(nginx).toContain(`server ${name}:8080`);
  });

  it('gives every node settings the server accepts, and publishes the ports it listens on', () => {
    const known = new Set<string>(SETTINGS.map((s) => s.env));
    for (const [name, s] of nodes) {
      const env = s.environment ?? {};
      for (const k of Object.keys(env)) if (!NOT_SETTINGS.has(k)) expect(known.has(k), `${name}: ${k} is not a setting`).toBe(true);
      const config = loadConfig(env);
      const roles = new Set(config.node.roles);
      // Published ports are "host:container"; the container side is what the node listens on.
      const inside = (s.ports ?? []).map((p) => Number(p.split(':').at(-1)));
      if (roles.has('ingest')) expect(inside).toContain(config.rtmp.port);
      for (const port of inside) expect([config.rtmp.port, config.server.httpPort], `${name}: ${port}`).toContain(port);
      // Several nodes: shared storage and catalog, one set of secrets.
      expect(config.storage.s3?.bucket, name).toBe('livepack');
      expect(config.catalog.databaseUrl, name).toBeDefined();
      expect(config.coord.redisUrl, name).toBeDefined();
    }
    const secrets = new Set(nodes.map(([, s]) => `${s.environment?.API_TOKEN} ${s.environment?.PLAYBACK_TOKEN_SECRET}`));
    expect(secrets.size).toBe(1);
  });
});

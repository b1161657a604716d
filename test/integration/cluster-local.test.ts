import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * `npm run cluster:local -- --smoke` as a user runs it: 2 ingest nodes, 2 origins, a worker and nginx on
 * loopback, on the machine's Redis (a prefix of its own, deleted after) and PostgreSQL (a database of its own,
 * dropped after). A stream published to the first ingest node plays through nginx and from both origins.
 */
const ROOT = join(import.meta.dirname, '..', '..');

describe('npm run cluster:local', () => {
  it('starts the topology, says where to publish and watch, and a stream plays through nginx from every origin', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/cluster-local.ts', '--smoke'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 150_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    expect(out).toMatch(/ingest-1: rtmp:\/\/127\.0\.0\.1:\d+\/live\/<streamKey>/);
    expect(out).toMatch(/ingest-2: rtmp:\/\/127\.0\.0\.1:\d+\/live\/<streamKey>/);
    expect(out).toMatch(/watch and drive it through nginx: http:\/\/127\.0\.0\.1:\d+/);
    expect(out, out).toContain('plays through nginx and from every origin');
    expect(code, out).toBe(0);
  }, 180_000);
});

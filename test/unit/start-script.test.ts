import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// scripts/start.sh run with a stand-in `node` first on PATH, which prints what it was started with.
const script = new URL('../../scripts/start.sh', import.meta.url).pathname;
const bin = mkdtempSync(join(tmpdir(), 'livepack-start-'));
writeFileSync(join(bin, 'node'), '#!/bin/sh\necho "LD_PRELOAD=${LD_PRELOAD:-}"\necho "MMAP=${MALLOC_MMAP_THRESHOLD_:-}"\necho "ARGS=$*"\n');
chmodSync(join(bin, 'node'), 0o755);
afterAll(() => rmSync(bin, { recursive: true, force: true }));

function run(env: Record<string, string>) {
  const r = spawnSync('/bin/sh', [script], { env: { PATH: `${bin}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
  const line = (k: string) =>
    r.stdout
      .split('\n')
      .find((l) => l.startsWith(`${k}=`))
      ?.slice(k.length + 1);
  return { status: r.status, stderr: r.stderr, preload: line('LD_PRELOAD'), mmap: line('MMAP'), args: line('ARGS') };
}

// Debian's libjemalloc2 on this architecture (CI installs it); the auto cases below depend on it
const debianJemalloc = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'].find((p) =>
  existsSync(p),
);

describe('scripts/start.sh (npm start)', () => {
  it('starts node with the default flags, the server entry and the fixed mmap threshold', () => {
    const r = run({ ALLOCATOR: 'system' });
    expect(r.status).toBe(0);
    expect(r.args).toBe('--initial-old-space-size=128 --import tsx src/main.ts');
    expect(r.mmap).toBe('131072');
    expect(r.preload).toBe('');
  });

  it('NODE_FLAGS replaces the default flags; an operator-set threshold is kept', () => {
    const r = run({ ALLOCATOR: 'system', NODE_FLAGS: '--max-old-space-size=512 --inspect=127.0.0.1:0', MALLOC_MMAP_THRESHOLD_: '65536' });
    expect(r.args).toBe('--max-old-space-size=512 --inspect=127.0.0.1:0 --import tsx src/main.ts');
    expect(r.mmap).toBe('65536');
    // set and empty: no flags at all (bench:node-flags measures that against the default)
    expect(run({ ALLOCATOR: 'system', NODE_FLAGS: '' }).args).toBe('--import tsx src/main.ts');
  });

  it.runIf(debianJemalloc)('auto and jemalloc preload the installed jemalloc', () => {
    expect(run({}).preload).toBe(debianJemalloc);
    expect(run({ ALLOCATOR: 'jemalloc' }).preload).toBe(debianJemalloc);
  });

  it.runIf(debianJemalloc)('an LD_PRELOAD already set is left as it is', () => {
    expect(run({ LD_PRELOAD: '/nonexistent/libother.so' }).preload).toBe('/nonexistent/libother.so');
  });

  it('refuses an unknown ALLOCATOR with a clear error, before node starts', () => {
    const r = run({ ALLOCATOR: 'tcmalloc' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ALLOCATOR must be auto, jemalloc or system');
    expect(r.args).toBeUndefined();
  });

  it.runIf(!debianJemalloc)('ALLOCATOR=jemalloc without jemalloc installed refuses to start', () => {
    const r = run({ ALLOCATOR: 'jemalloc' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no libjemalloc.so.2 was found');
  });
});

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The one-minute smoke soak (bench/soak.ts) as CI runs it: 4 synthetic RTMP publishers, 40 simulated LL-HLS
 * viewers, publishers reconnecting every 20 s. It fails on any error, playlist gap or dead publisher, and
 * on heap left behind after the streams stop.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'livepack-soak-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runSoak(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/soak.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const t = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('smoke soak', () => {
  it('4 streams, 40 viewers, 1 minute: no error, no gap, memory back after the streams stop', async () => {
    const r = await runSoak(['--streams', '4', '--viewers', '40', '--minutes', '1', '--out', out], 200_000);
    const verdict = r.stdout.split('\n').find((l) => l.startsWith('soak '));
    expect(verdict, `${r.stdout}\n${r.stderr}`).toMatch(/^soak PASS/);
    expect(r.code).toBe(0);

    const json = readdirSync(out).find((f) => f.endsWith('.json'));
    expect(json).toBeDefined();
    const res = JSON.parse(readFileSync(join(out, json!), 'utf8'));
    expect(res.verdict.pass).toBe(true);
    expect(res.totals.errors).toBe(0);
    expect(res.totals.gaps).toBe(0);
    // Publishers did reconnect during the minute, and the viewers kept getting parts.
    expect(res.totals.churns).toBeGreaterThanOrEqual(2);
    expect(res.deliveryDelayMs.n).toBeGreaterThan(40 * 60);
    expect(res.reports.length).toBeGreaterThanOrEqual(1);
    expect(res.samples.length).toBeGreaterThanOrEqual(10);
    const png = join(out, json!.replace(/\.json$/, '.png'));
    expect(existsSync(png)).toBe(true);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  }, 240_000);

  it('refuses a bad command line with its usage', async () => {
    const r = await runSoak(['--streams', '0'], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--streams must be a whole number from 1 to 500');
    expect(r.stderr).toContain('usage: npm run soak');
  });
});

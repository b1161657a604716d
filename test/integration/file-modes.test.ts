import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Every file and folder under `dir` whose mode lets group or others in, as "0644 path". */
function openToOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const mode = statSync(path).mode & 0o777;
      if ((mode & 0o077) !== 0) found.push(`${mode.toString(8).padStart(4, '0')} ${relative(dir, path)}`);
      if (entry.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return found;
}

describe('files under DATA_DIR are private', () => {
  const dirs: string[] = [];
  let srv: TestServer | undefined;
  afterAll(async () => {
    await srv?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a fresh DATA_DIR (catalog, kept secrets, media) has nothing group or others can read', async () => {
    // A DATA_DIR that does not exist yet, under a folder that is open (as ./data under a home folder is).
    const parent = mkdtempSync(join(tmpdir(), 'livepack-modes-'));
    dirs.push(parent);
    // The DATA_DIR is kept (under `parent`) so it can be walked after the server stopped.
    chmodSync(parent, 0o755);
    const dataDir = join(parent, 'data');
    // No API_TOKEN and no PLAYBACK_TOKEN_SECRET: both are generated and kept in DATA_DIR.
    srv = await startTestServer({ DATA_DIR: dataDir, API_TOKEN: '' });
    const created = await srv.api('POST', '/api/v1/streams', { name: 'modes', visibility: 'private' });
    expect(created.status).toBe(201);
    // Files in storage, as a recording or a VOD's segments are written (with and without side metadata),
    // under the usual umask of 0022: the store's own modes hold without the server's umask.
    const storage = await import('../../src/storage/index.js');
    const store = new storage.FsStorage(join(dataDir, 'media'));
    const umask = process.umask(0o022);
    try {
      await store.put('vod/abc/v0/seg_1.m4s', Buffer.alloc(1000, 1), { contentType: 'video/iso.segment' });
      await store.put('vod/abc/master.m3u8', Buffer.from('#EXTM3U\n'));
    } finally {
      process.umask(umask);
      await store.close();
    }
    expect(statSync(join(dataDir, 'media', 'vod', 'abc', 'v0', 'seg_1.m4s')).mode & 0o777).toBe(0o600);

    const names = readdirSync(dataDir);
    expect(names).toEqual(expect.arrayContaining(['api-token', 'playback-secret', 'node-id', 'catalog', 'media']));
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'catalog')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'catalog', 'postgresql.conf')).mode & 0o777).toBe(0o600);
    expect(openToOthers(dataDir)).toEqual([]);
    // What PostgreSQL writes on the way out (statistics, the relation cache file) too.
    await srv.stop();
    srv = undefined;
    expect(openToOthers(dataDir)).toEqual([]);
  });

  it('a catalog folder open to others (0755, as older versions made it) stops start-up with the chmod to run', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'livepack-modes-'));
    dirs.push(dataDir);
    const catalog = join(dataDir, 'catalog');
    mkdirSync(catalog, { mode: 0o755 });
    chmodSync(catalog, 0o755);
    const start = startTestServer({ DATA_DIR: dataDir });
    await expect(start).rejects.toMatchObject({ code: 'E_CONFIG_INVALID' });
    await expect(start).rejects.toThrow(`the catalog directory ${catalog} has mode 0755`);
    await expect(start).rejects.toThrow(`chmod -R go= '${catalog}'`);
    // Nothing was written into it.
    expect(readdirSync(catalog)).toEqual([]);
  });
});

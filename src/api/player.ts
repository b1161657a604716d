import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

const here = dirname(fileURLToPath(import.meta.url));
const playerDir = join(here, '..', '..', 'player');

/** Files of the player, read once; hls.js is served from our own node_modules copy, never a public CDN. */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const require = createRequire(import.meta.url);
  const hlsPath = require.resolve('hls.js/dist/hls.min.js');
  // A Map, not an object: a name from the URL such as "constructor" or "__proto__" must find nothing.
  return new Map(
    Object.entries({
      'watch.html': { type: 'text/html; charset=utf-8', body: readFileSync(join(playerDir, 'watch.html')) },
      'index.html': { type: 'text/html; charset=utf-8', body: readFileSync(join(playerDir, 'index.html')) },
      'player.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(playerDir, 'player.js')) },
      'player.css': { type: 'text/css; charset=utf-8', body: readFileSync(join(playerDir, 'player.css')) },
      // The home page's script and the publish page's styles: files, not inline (security-headers.ts: CSP).
      'home.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(playerDir, 'home.js')) },
      'publish.css': { type: 'text/css; charset=utf-8', body: readFileSync(join(playerDir, 'publish.css')) },
      'hls.min.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(hlsPath) },
      'publish.html': { type: 'text/html; charset=utf-8', body: readFileSync(join(playerDir, 'publish.html')) },
      'publish.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(playerDir, 'publish.js')) },
    }),
  );
}

/** `publish`: serve the WHIP publish page at /publish (WebRTC ingest on). */
export function registerPlayerRoutes(app: FastifyInstance, opts: { publish?: boolean } = {}): void {
  const assets = loadAssets();
  const page = (name: string) => {
    const a = assets.get(name)!;
    return async (_req: unknown, res: FastifyReply) => res.type(a.type).header('cache-control', 'no-cache').send(a.body);
  };
  app.get('/', { schema: { hide: true } }, page('index.html'));
  app.get('/watch/:id', { schema: { hide: true } }, page('watch.html'));
  if (opts.publish) app.get('/publish', { schema: { hide: true } }, page('publish.html'));
  app.get<{ Params: { file: string } }>('/player/:file', { schema: { hide: true } }, async (req, res) => {
    const a = assets.get(req.params.file);
    if (!a || req.params.file.endsWith('.html'))
      return res.code(404).send({ error: { code: 'E_NOT_FOUND', message: 'no such player file' } });
    return res.type(a.type).header('cache-control', 'public, max-age=300').send(a.body);
  });
}

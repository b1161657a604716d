import { launchBrowser, openPage, playerSnapshot } from '../test/helpers/browser.js';
import { ffmpegPublish, kill, startTestServer, until } from '../test/helpers/server.js';
const srv = await startTestServer({ TRANSCODE_SLOW_SECONDS: '600' });
const stream = (await srv.api('POST', '/api/v1/streams', { name: 'x' })).json;
const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '1280x720', fps: 30, gop: 60 });
await until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.transcode?.state === 'running', 20000);
const browser = await launchBrowser();
const { page } = await openPage(browser, `${srv.base}/watch/${stream.id}`);
page.on('response', (r) => { if (r.status() >= 400) console.log('[http]', r.status(), r.url()); });
await until(async () => { const s = await playerSnapshot(page); return s.currentTime > 0 && s.renditions.length === 3; }, 25000);
const st = () => page.evaluate(() => { const p = (window as any).__player; const v = p.video; const b = v.buffered; const r = []; for (let i = 0; i < b.length; i++) r.push([b.start(i).toFixed(2), b.end(i).toFixed(2)]); return { level: p.level, h: v.videoHeight, t: v.currentTime.toFixed(2), buf: r, err: p.errors.slice(-3) }; });
const heights = await page.evaluate(() => (window as any).__player.hls.levels.map((l: any) => l.height));
for (const h of [360, 480, 720, 360, 720]) {
  await page.selectOption('#quality', String(heights.indexOf(h)));
  for (let i = 0; i < 8; i++) { await new Promise((r) => setTimeout(r, 500)); console.log(h, JSON.stringify(await st())); }
}
for (const n of ['source', '480p']) console.log((await (await fetch(`${srv.base}/live/${stream.id}/${n}/index.m3u8`)).text()).split('\n').slice(-14).join('\n'));
await browser.close(); await kill(pub); await srv.stop();

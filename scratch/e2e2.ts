import { launchBrowser, openPage, playerSnapshot } from '../test/helpers/browser.js';
import { ffmpegPublish, kill, startTestServer, until } from '../test/helpers/server.js';
const srv = await startTestServer({ TRANSCODE_SLOW_SECONDS: '600' });
const stream = (await srv.api('POST', '/api/v1/streams', { name: 'x' })).json;
const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '1280x720', fps: 30, gop: 60 });
await until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.transcode?.state === 'running', 20000);
const browser = await launchBrowser();
const { page } = await openPage(browser, `${srv.base}/watch/${stream.id}`);
await until(async () => { const s = await playerSnapshot(page); return s.currentTime > 0 && s.renditions.length === 3; }, 25000);
await new Promise((r) => setTimeout(r, 3000));
const heights = await page.evaluate(() => (window as any).__player.hls.levels.map((l: any) => l.height));
const errs = () => page.evaluate(() => (window as any).__player.errors.filter((e: any) => e.details === 'bufferStalledError').length);
const base = await errs();
let stalls = 0;
for (const h of [360, 480, 720, 360, 720, 480]) {
  const before = await errs();
  await page.selectOption('#quality', String(heights.indexOf(h)));
  await new Promise((r) => setTimeout(r, 3500));
  const after = await errs();
  if (after > before) stalls++;
}
console.log('RESULT stalled switches', stalls, 'of 6; stalls before switching', base, 'mode', process.env.MODE);
await browser.close(); await kill(pub); await srv.stop();

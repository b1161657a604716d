import { startTestServer, ffmpegPublish, kill, until } from '../test/helpers/server.js';
const s = await startTestServer({});
const r = await s.api('POST', '/api/v1/streams', { name: 'a' });
const id = r.json.id; const key = r.json.streamKey;
const pub = ffmpegPublish(s.rtmpUrl(key), { size: '1280x720', fps: 30, gop: 60 });
for (let i = 0; i < 10; i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const j = (await s.api('GET', `/api/v1/streams/${id}/live`)).json;
  console.log(i, JSON.stringify({ st: j?.transcode?.state, speed: j?.transcode?.speed, lag: j?.transcode?.lagMs }));
}
await kill(pub);
await s.stop();

import { startTestServer, ffmpegPublish, kill, until } from '../test/helpers/server.js';
const s = await startTestServer({});
const r = await s.api('POST', '/api/v1/streams', { name: 'a', profile: 'abr' });
const id = r.json.id; const key = r.json.streamKey ?? r.json.key;
const pub = ffmpegPublish(s.rtmpUrl(key), { size: '1280x720', fps: 30, gop: 60 });
for (let i = 0; i < 4; i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const res = await fetch(`${s.base}/live/${id}/master.m3u8`);
  const st = await s.api('GET', `/api/v1/streams/${id}`);
  console.log(i, res.status, (await res.text()));
}
for (const n of ['source', '480p', '360p']) {
  const t = await (await fetch(`${s.base}/live/${id}/${n}/index.m3u8`)).text();
  console.log(n, t.split('\n').filter((l) => /MEDIA-SEQUENCE|PROGRAM-DATE|EXTINF|GAP|DISCONT|MAP/.test(l)).slice(0, 14).join('\n'));
}
await kill(pub);
await s.stop();

import { startTestServer, ffmpegPublish, kill, until } from '../test/helpers/server.js';
const s = await startTestServer({});
const r = await s.api('POST', '/api/v1/streams', { name: 'a' });
const id = r.json.id; const key = r.json.streamKey;
const pub = ffmpegPublish(s.rtmpUrl(key), { size: '1280x720', fps: 30, gop: 60 });
const st = await until(async () => { const j = (await s.api('GET', `/api/v1/streams/${id}/live`)).json; return j?.transcode?.state === 'running' && j; });
console.log(JSON.stringify(st.transcode));
await new Promise((r) => setTimeout(r, 5000));
process.kill(st.transcode.pid, 'SIGKILL');
const statuses: Record<string, number> = {};
for (let i = 0; i < 40; i++) {
  for (const n of ['source', '480p', '360p']) { const res = await fetch(`${s.base}/live/${id}/${n}/index.m3u8`); statuses[res.status] = (statuses[res.status] ?? 0) + 1; await res.text(); }
  await new Promise((r) => setTimeout(r, 250));
}
console.log(statuses);
const st2 = (await s.api('GET', `/api/v1/streams/${id}/live`)).json;
console.log(JSON.stringify(st2.transcode));
for (const n of ['source', '480p']) {
  const t = await (await fetch(`${s.base}/live/${id}/${n}/index.m3u8`)).text();
  console.log(n, t.split('\n').filter((l) => /MEDIA-SEQUENCE|PROGRAM-DATE|EXTINF|GAP|DISCONT|MAP/.test(l)).join('\n'));
}
console.log((await (await fetch(`${s.base}/metrics`)).text()).split('\n').filter(l => /transcode|rung|gap/.test(l) && !l.startsWith('#')).join('\n'));
await kill(pub);
await s.stop();

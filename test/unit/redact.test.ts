import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { REDACTED, redactingLogger, redactMessages, redactText, redactUrl, redactValue } from '../../src/core/index.js';

const KEY = 'sk_AbCdEfGhIjKlMnOpQrStUvWxYz012345';
const TOKEN = `s.stream1.1800000000.${'Q'.repeat(42)}A`;

/** A pino logger whose lines land in `lines` (one parsed object each). */
function captured() {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, base: pino({ level: 'trace', hooks: { logMethod: redactMessages } }, dest) };
}

describe('redactText', () => {
  it('takes secrets out of query strings, token paths, RTMP and service URLs and auth headers', () => {
    const cases: [string, string][] = [
      [`/publish?key=${KEY}`, `/publish?key=${REDACTED}`],
      [`/watch/abc?x=1&token=${TOKEN}&y=2`, `/watch/abc?x=1&token=${REDACTED}&y=2`],
      ['/a?access_token=abc&streamKey=def&stream_key=ghi', `/a?access_token=${REDACTED}&streamKey=${REDACTED}&stream_key=${REDACTED}`],
      ['/s3?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/x', `/s3?X-Amz-Signature=${REDACTED}&X-Amz-Credential=${REDACTED}`],
      [`/t/${TOKEN}/live/stream1/master.m3u8`, `/t/${REDACTED}/live/stream1/master.m3u8`],
      [`rtmp://127.0.0.1:1935/live/${KEY}`, `rtmp://127.0.0.1:1935/live/${REDACTED}`],
      ['rtmps://host/live/anykey?x', `rtmps://host/live/${REDACTED}?x`],
      ['redis://:hunter2@redis:6379/0', `redis://${REDACTED}@redis:6379/0`],
      ['postgres://app:pw@db/livepack', `postgres://${REDACTED}@db/livepack`],
      ['Authorization: Bearer abc.def-ghi', `Authorization: Bearer ${REDACTED}`],
      [`unknown stream key ${KEY}`, `unknown stream key sk_${REDACTED}`],
      [`token ${TOKEN} refused`, `token s.stream1.1800000000.${REDACTED} refused`],
    ];
    for (const [input, want] of cases) expect(redactText(input), input).toBe(want);
  });

  it('leaves what is not a secret as it was', () => {
    for (const text of [
      '/live/stream1/master.m3u8?_HLS_msn=12&_HLS_part=3',
      '/vod/abc/v0/seg_12.m4s',
      'storage: put vod/abc/init.mp4',
      'http://127.0.0.1:8080/watch/abc',
      'rtmp listening',
    ])
      expect(redactText(text)).toBe(text);
  });

  it('sees through percent-encoding of a request URL', () => {
    expect(redactUrl('/watch/abc?to%6Ben=secret1')).toBe(`/watch/abc?token=${REDACTED}`);
    expect(redactUrl(`/%74/${TOKEN}/live/x/y.m3u8`)).toBe(`/t/${REDACTED}/live/x/y.m3u8`);
    expect(redactUrl('/live/x/y.m3u8?_HLS_msn=1')).toBe('/live/x/y.m3u8?_HLS_msn=1');
    expect(redactUrl('/bad%zz?key=s3cret')).toBe(`/bad%zz?key=${REDACTED}`);
  });

  it('replaces secret-named fields and walks plain objects and arrays', () => {
    const out = redactValue({
      headers: { authorization: 'Bearer x', 'content-type': 'json' },
      streamKey: KEY,
      apiToken: 'abc',
      secretAccessKey: 'aws',
      playbackTokenSecret: 'p',
      key: 'vod/abc/seg.m4s',
      urls: [`rtmp://h/live/${KEY}`],
    });
    expect(out).toEqual({
      headers: { authorization: REDACTED, 'content-type': 'json' },
      streamKey: REDACTED,
      apiToken: REDACTED,
      secretAccessKey: REDACTED,
      playbackTokenSecret: REDACTED,
      key: 'vod/abc/seg.m4s',
      urls: [`rtmp://h/live/${REDACTED}`],
    });
  });
});

describe('redactingLogger', () => {
  it('redacts logged fields, errors (message, stack, cause) and string messages', () => {
    const { lines, base } = captured();
    const log = redactingLogger(base).child({ module: 'test' });
    log.info({ url: `/publish?key=${KEY}`, headers: { authorization: `Bearer ${KEY}` } }, 'one');
    const err = new Error(`could not reach redis://:hunter2@r:6379 for /t/${TOKEN}/live/a/b`, { cause: new Error(`key ${KEY}`) });
    log.error({ err }, 'two');
    log.warn(`publish refused for rtmp://h/live/${KEY}`);
    const text = lines.join('\n');
    for (const secret of [KEY, TOKEN, 'hunter2']) expect(text).not.toContain(secret);
    expect(lines).toHaveLength(3);
    const [one, two, three] = lines.map((l) => JSON.parse(l));
    expect(one.url).toBe(`/publish?key=${REDACTED}`);
    expect(one.module).toBe('test');
    // pino's err serializer appends the cause's message.
    expect(two.err.message).toBe(`could not reach redis://${REDACTED}@r:6379 for /t/${REDACTED}/live/a/b: key sk_${REDACTED}`);
    expect(two.err.type).toBe('Error');
    expect(three.msg).toBe(`publish refused for rtmp://h/live/${REDACTED}`);
  });

  it("keeps secrets out of fastify's request log (its own req serializer is replaced)", async () => {
    const { lines, base } = captured();
    const app = Fastify({ loggerInstance: redactingLogger(base) });
    app.get('/watch/:id', async () => 'page');
    app.get('/t/:token/live/:id/*', async () => 'playlist');
    try {
      await app.inject({ url: `/publish?key=${KEY}`, headers: { authorization: `Bearer ${KEY}` } });
      await app.inject({ url: `/watch/abc?token=${TOKEN}` });
      await app.inject({ url: `/t/${TOKEN}/live/stream1/master.m3u8` });
    } finally {
      await app.close();
    }
    const text = lines.join('\n');
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(TOKEN);
    const urls = lines.map((l) => JSON.parse(l).req?.url).filter(Boolean);
    expect(urls).toEqual([`/publish?key=${REDACTED}`, `/watch/abc?token=${REDACTED}`, `/t/${REDACTED}/live/stream1/master.m3u8`]);
  });
});

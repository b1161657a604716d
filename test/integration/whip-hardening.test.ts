import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * WHIP against abuse by someone holding one stream key, or none: offers with one key cannot fill
 * WEBRTC_MAX_SESSIONS for every other stream (one pending session per stream, offers per key per minute),
 * the key is checked before the body is read, wrong keys hold the address that sends them, and an ICE ufrag
 * of 5,000 characters is refused. Real server on loopback; the offers are real (libdatachannel answers
 * them) but nobody connects, which is exactly the flood's shape.
 */

// A minimal valid WebRTC offer: ICE cannot complete (nobody listens), so its session stays pending.
const offer = (ufrag = 'abcd') =>
  [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
    'm=video 9 UDP/TLS/RTP/SAVPF 102',
    'c=IN IP4 0.0.0.0',
    'a=mid:0',
    'a=sendonly',
    'a=rtcp-mux',
    'a=setup:actpass',
    `a=ice-ufrag:${ufrag}`,
    'a=ice-pwd:0123456789012345678901',
    'a=rtpmap:102 H264/90000',
    'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    'a=ssrc:1111 cname:x',
    '',
  ].join('\r\n');

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** POST /whip over node:http, so the source address can be chosen (127.0.0.2 is loopback too on Linux). */
function postOffer(srv: TestServer, key: string | undefined, body: string, localAddress = '127.0.0.1'): Promise<Answer> {
  const url = new URL('/whip', srv.base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/sdp', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
    req.end(body);
  });
}

const errorOf = (a: Answer) => (JSON.parse(a.body) as { error: { code: string; message: string } }).error;

describe('WHIP hardening', () => {
  let srv: TestServer;
  let streams: Array<{ id: string; streamKey: string }>;
  const sessionsOf = async (id: string) =>
    (await srv.api('GET', `/api/v1/streams/${id}/webrtc`)).json.sessions as Array<{ sessionId: string; state: string }>;

  beforeAll(async () => {
    // The offer rate is raised here so the flood below meets the pending rule alone; the rate has its case.
    srv = await startTestServer({ WEBRTC_OFFERS_PER_KEY_PER_MINUTE: '200', AUTH_FAILURE_LIMIT: '5' });
    streams = [];
    for (const name of ['flood-a', 'other-b', 'rate-c', 'ufrag-d', 'race-e']) {
      streams.push((await srv.api('POST', '/api/v1/streams', { name, profile: 'passthrough' })).json);
    }
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('110 offers with one key leave one pending session for it, and another stream still gets 201', async () => {
    const [a, b] = streams;
    const statuses: number[] = [];
    for (let i = 0; i < 110; i++) statuses.push((await postOffer(srv, a.streamKey, offer())).status);
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
    const pending = await sessionsOf(a.id);
    expect(pending).toHaveLength(1);
    expect(pending[0].state).toBe('connecting');
    expect(srv.webrtc!.counters.pendingReplaced).toBeGreaterThanOrEqual(109);
    expect(srv.webrtc!.size).toBe(1);
    const other = await postOffer(srv, b.streamKey, offer());
    expect(other.status).toBe(201);
    expect(other.headers.location).toMatch(/^\/whip\/[\w-]{16}$/);
    expect(await sessionsOf(b.id)).toHaveLength(1);
    // The offer that replaced the others is still the one kept: its session URL answers PATCH.
    expect((await sessionsOf(a.id))[0].sessionId).toBe(pending[0].sessionId);
  }, 60_000);

  it('offers over WEBRTC_OFFERS_PER_KEY_PER_MINUTE get 429, Retry-After and E_RATE_LIMITED; other keys are untouched', async () => {
    const [, b, c] = streams;
    const statuses: number[] = [];
    let refused: Answer | undefined;
    for (let i = 0; i < 205; i++) {
      const r = await postOffer(srv, c.streamKey, 'v=0\r\n'); // admitted or not before the body matters
      statuses.push(r.status);
      if (r.status === 429) refused ??= r;
    }
    // 200 offers are taken (the body is nonsense: 400), the rest refused before their body is looked at.
    expect(statuses.filter((s) => s === 400)).toHaveLength(200);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
    expect(Number(refused!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused!.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(errorOf(refused!)).toEqual({ code: 'E_RATE_LIMITED', message: expect.stringMatching(/too many WHIP offers for this stream/) });
    expect(srv.webrtc!.counters.offersRateLimited).toBe(5);
    expect((await postOffer(srv, b.streamKey, offer())).status).toBe(201);
  }, 60_000);

  it('offers for one stream at once leave one session, one of those answered (409 only if replaced while answering)', async () => {
    const e = streams[4];
    const answers = await Promise.all(Array.from({ length: 8 }, () => postOffer(srv, e.streamKey, offer())));
    for (const a of answers) expect([201, 409]).toContain(a.status);
    for (const a of answers.filter((x) => x.status === 409)) expect(errorOf(a).code).toBe('E_CONFLICT');
    const left = await sessionsOf(e.id);
    expect(left).toHaveLength(1);
    expect(answers.map((a) => a.headers.location)).toContain(`/whip/${left[0].sessionId}`);
  });

  it('refuses a 5,000-character ICE ufrag with 400 and a clear message', async () => {
    const r = await postOffer(srv, streams[3].streamKey, offer('u'.repeat(5000)));
    expect(r.status).toBe(400);
    expect(errorOf(r)).toEqual({ code: 'E_VALIDATION', message: expect.stringMatching(/a=ice-ufrag must be 4 to 256 .*5000 characters/) });
    expect(await sessionsOf(streams[3].id)).toHaveLength(0);
  });

  it('answers 401 without a key before reading the body: oversized bodies, and bodies that never come', async () => {
    const big = offer() + 'a=x:' + 'y'.repeat(200_000) + '\r\n';
    const none = await postOffer(srv, undefined, big);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(errorOf(none).code).toBe('E_UNAUTHORIZED');
    // A right key with the same body is what meets the size limit.
    expect((await postOffer(srv, streams[3].streamKey, big)).status).toBe(413);
    // Headers announcing 100 kB that never follow: only an answer from the headers alone can arrive.
    const head = await new Promise<string>((resolve, reject) => {
      const url = new URL(srv.base);
      const sock = connect({ host: url.hostname, port: Number(url.port) });
      let text = '';
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no answer before the body; got ${JSON.stringify(text)}`));
      }, 3000);
      sock.on('data', (d) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n')) {
          clearTimeout(t);
          sock.destroy();
          resolve(text);
        }
      });
      sock.on('error', reject);
      sock.write('POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 100000\r\n\r\n');
    });
    expect(head).toMatch(/^HTTP\/1\.1 401 /);
  });

  it('wrong keys hold their address after AUTH_FAILURE_LIMIT (429, Retry-After), even with a right key; other addresses go on', async () => {
    const before = srv.webrtc!.counters.authFailures;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await postOffer(srv, `sk_wrong_${i}`, offer(), '127.0.0.2')).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    expect(srv.webrtc!.counters.authFailures - before).toBe(5);
    const held = await postOffer(srv, streams[1].streamKey, offer(), '127.0.0.2');
    expect(held.status).toBe(429);
    expect(Number(held.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(errorOf(held)).toEqual({ code: 'E_RATE_LIMITED', message: expect.stringMatching(/too many wrong stream keys/) });
    expect(srv.webrtc!.counters.authRefused).toBe(4);
    expect(srv.webrtc!.authFailures.counters).toEqual({ failures: 5, refused: 4 });
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/^livepack_auth_failures_total\{surface="whip"\} 5$/m);
    expect(metrics).toMatch(/^livepack_auth_refused_total\{surface="whip"\} 4$/m);
    // The limit is per address: 127.0.0.1 is not held.
    expect((await postOffer(srv, streams[1].streamKey, offer())).status).toBe(201);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/** Where the server's log lines and its console output (the first-start banner) go in this test. */
class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** Runs `fn` with what it prints with console.log (the first-start banner) also copied into `into`. */
async function copyingConsole<T>(into: Capture, fn: () => Promise<T>): Promise<T> {
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    into.text += args.map(String).join(' ') + '\n';
  });
  try {
    return await fn();
  } finally {
    spy.mockRestore();
  }
}

const exited = (p: ReturnType<typeof ffmpegPublish>) =>
  p.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => p.once('exit', () => resolve()));

/**
 * A whole server's life with every kind of secret in play (operator token generated at first start, the
 * default stream's key, a stream key published with over RTMP by FFmpeg, a wrong key, a playback token in
 * /t/ and ?token= forms, /publish?key=, a wrong API token), its log at debug captured: none of those
 * strings may appear in any log line, nor in the console output that is not a terminal.
 */
describe('secrets never reach the log', () => {
  const log = new Capture();
  const banner = new Capture();
  const secrets: Record<string, string> = {};
  let srv: TestServer;
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;

  beforeAll(async () => {
    srv = await copyingConsole(banner, () =>
      startTestServer({ API_TOKEN: '', CREATE_DEFAULT_STREAM: 'true', TEST_LOG_LEVEL: 'debug' }, { log }),
    );
    secrets.apiToken = readFileSync(join(srv.dataDir, 'api-token'), 'utf8').trim();
    secrets.playbackSecret = readFileSync(join(srv.dataDir, 'playback-secret'), 'utf8').trim();
  });
  afterAll(async () => {
    publisher?.kill('SIGKILL');
    await srv?.stop();
  });

  it('a private stream published over RTMP and watched with a playback token leaves no secret in the log', async () => {
    expect(srv.apiToken).toBe(secrets.apiToken);
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'secret', profile: 'passthrough', visibility: 'private' });
    secrets.streamKey = stream.streamKey;

    // A wrong key first: FFmpeg is refused (and exits).
    secrets.wrongKey = 'sk_wrongwrongwrongwrongwrongwrong0';
    const refused = ffmpegPublish(srv.rtmpUrl(secrets.wrongKey), { seconds: 5 });
    await exited(refused);
    expect(refused.exitCode).not.toBe(0);

    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 30 });
    const live = await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=live`)).json.items[0], 15_000);
    const { json: minted } = await srv.api('POST', `/api/v1/videos/${live.id}/playback-token`, {});
    secrets.playbackToken = minted.token;
    const token: string = minted.token;

    // Tokenised playback: the master playlist, a media playlist and a part, all under /t/<token>/.
    const masterUrl = `${srv.base}/t/${token}/live/${stream.id}/master.m3u8`;
    const master = await until(async () => {
      const res = await fetch(masterUrl);
      return res.status === 200 && (await res.text());
    }, 15_000);
    const mediaUrl = new URL(
      master.split('\n').find((l) => l && !l.startsWith('#'))!,
      masterUrl,
    ).href;
    expect(mediaUrl).toContain(`/t/${token}/`);
    const media = await (await fetch(mediaUrl)).text();
    const partUri = /#EXT-X-PART:[^\n]*URI="([^"]+)"/.exec(media)![1];
    expect((await fetch(new URL(partUri, mediaUrl))).status).toBe(200);
    // A 4xx under a token is logged too (a request the server refused).
    expect((await fetch(`${srv.base}/t/${token}/live/${stream.id}/nope/index.m3u8`)).status).toBeGreaterThanOrEqual(400);
    // One spelling only: the same token with its dots percent-encoded is refused.
    const encoded = await fetch(`${srv.base}/t/${token.replaceAll('.', '%2E')}/live/${stream.id}/master.m3u8`);
    expect(encoded.status).toBe(403);
    expect((await encoded.json()).error.code).toBe('E_FORBIDDEN');

    // The watch page with ?token=, the publish page with ?key=, a 404 carrying both.
    expect((await fetch(`${srv.base}/watch/${stream.id}?token=${token}`)).status).toBe(200);
    await fetch(`${srv.base}/publish?key=${stream.streamKey}`);
    await fetch(`${srv.base}/no/such/page?token=${token}&key=${stream.streamKey}`);

    // A wrong operator token, in the header and in the query.
    secrets.wrongApiToken = 'wrong-operator-token-0123456789';
    const wrong = await fetch(`${srv.base}/api/v1/streams?access_token=${secrets.wrongApiToken}`, {
      headers: { authorization: `Bearer ${secrets.wrongApiToken}` },
    });
    expect(wrong.status).toBe(401);

    publisher.kill('SIGINT');
    await exited(publisher);
    publisher = undefined;
    await srv.stop();

    // No secret in the log, and what a person needs is still there (requests, the publish).
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThan(16);
      expect(log.text.includes(secret), `${name} in the log`).toBe(false);
      expect(log.text.includes(encodeURIComponent(secret)), `${name} (encoded) in the log`).toBe(false);
      expect(banner.text.includes(secret), `${name} in the console output`).toBe(false);
    }
    // The signature of the token alone (the part that is secret) does not appear either.
    expect(log.text).not.toContain(token.split('.')[3]);
    expect(log.text).toContain('rtmp publish started');
    expect(log.text).toContain('rtmp publish refused: invalid stream key');
    expect(log.text).toContain(`/watch/${stream.id}?token=[REDACTED]`);
    expect(log.text).toContain('/publish?key=[REDACTED]');
    // Stdout is not a terminal here: the banner says where the secrets are instead of printing them.
    expect(banner.text).toContain('not printed: stdout is not a terminal');
    expect(banner.text).not.toMatch(/sk_[A-Za-z0-9_-]{32}/);
  });
});

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page, Response as PageResponse } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { launchPublisherBrowser } from '../../harness/whip-clients.js';
import { SWAGGER_UI_STYLE_HASH } from '../../src/api/security-headers.js';
import { playerSnapshot } from '../helpers/watch-page.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * The pages under their security headers (src/api/security-headers.ts), in headless Chromium with a fake
 * camera: /, /watch/<id> playing a live stream FFmpeg publishes, /publish going live over WHIP, /docs
 * rendering Swagger UI. Each page works, reports no CSP violation (securitypolicyviolation events and
 * console messages), and carries the headers it should; /publish refuses to be framed, /watch may be.
 */

interface Watched {
  readonly page: Page;
  readonly response: PageResponse;
  readonly pageErrors: Error[];
  /** Console lines that speak of a blocked resource or a policy. */
  readonly cspConsole: string[];
  /** securitypolicyviolation events seen in the page. */
  violations(): Promise<string[]>;
}

/** Directive name -> value of a Content-Security-Policy header. */
function parseCsp(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), values.join(' '));
  }
  return out;
}

describe('security headers on the pages (headless Chromium)', () => {
  let srv: TestServer;
  let browser: Browser;
  let live: { id: string; streamKey: string };
  let whipStream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const contexts: BrowserContext[] = [];
  const closers: (() => Promise<void>)[] = [];

  /** A fresh context whose page records CSP violations from its first script on, then loads `path`. */
  const open = async (path: string): Promise<Watched> => {
    const context = await browser.newContext();
    contexts.push(context);
    await context.addInitScript(() => {
      const seen: string[] = [];
      (window as any).__cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
    });
    const page = await context.newPage();
    const pageErrors: Error[] = [];
    const cspConsole: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e));
    page.on('console', (m) => {
      if (/content security policy|refused to|permissions policy/i.test(m.text())) cspConsole.push(m.text());
    });
    const response = await page.goto(srv.base + path, { waitUntil: 'load', timeout: 15_000 });
    expect(response, path).not.toBeNull();
    return {
      page,
      response: response!,
      pageErrors,
      cspConsole,
      violations: () => page.evaluate(() => (window as any).__cspViolations as string[]),
    };
  };

  const expectClean = async (w: Watched) => {
    expect(await w.violations()).toEqual([]);
    expect(w.cspConsole).toEqual([]);
    expect(w.pageErrors).toEqual([]);
  };

  /** Headers every page has; `frameAncestors` and `devices` are the per-page ones. */
  const expectPageHeaders = (w: Watched, frameAncestors: string, devices: 'self' | 'none', styleSrc = "'self'") => {
    const h = w.response.headers();
    expect(h['content-type']).toMatch(/^text\/html/);
    expect(h['x-content-type-options']).toBe('nosniff');
    expect(h['referrer-policy']).toBe('no-referrer');
    expect(h['cross-origin-opener-policy']).toBe('same-origin');
    const csp = parseCsp(h['content-security-policy']);
    expect(csp.get('default-src')).toBe("'self'");
    expect(csp.get('script-src')).toBe("'self'");
    expect(csp.get('style-src')).toBe(styleSrc);
    expect(csp.get('object-src')).toBe("'none'");
    expect(csp.get('base-uri')).toBe("'none'");
    expect(csp.get('media-src')).toMatch(/^'self' blob:/);
    expect(csp.get('img-src')).toMatch(/^'self' data: blob:/);
    expect(csp.get('connect-src')).toMatch(/^'self'/);
    expect(csp.get('frame-ancestors')).toBe(frameAncestors);
    expect(h['content-security-policy']).not.toMatch(/unsafe-(inline|eval)/);
    const pp = h['permissions-policy'];
    expect(pp).toContain(devices === 'self' ? 'camera=(self)' : 'camera=()');
    expect(pp).toContain(devices === 'self' ? 'microphone=(self)' : 'microphone=()');
  };

  const allowsCamera = (page: Page) => page.evaluate(() => (document as any).featurePolicy?.allowsFeature('camera') as boolean | undefined);

  beforeAll(async () => {
    srv = await startTestServer({ LIVE_THUMBNAIL_INTERVAL_MS: '2000', RECONNECT_GRACE_MS: '3000' });
    const created = await srv.api('POST', '/api/v1/streams', { name: 'headers-live', profile: 'passthrough' });
    expect(created.status).toBe(201);
    live = created.json;
    const second = await srv.api('POST', '/api/v1/streams', { name: 'headers-whip', profile: 'passthrough' });
    expect(second.status).toBe(201);
    whipStream = second.json;
    publisher = ffmpegPublish(srv.rtmpUrl(live.streamKey), { size: '640x360', fps: 30, gop: 30 });
    [browser] = await Promise.all([
      launchPublisherBrowser(),
      until(async () => (await srv.api('GET', `/api/v1/streams/${live.id}/live`)).status === 200, 15_000, 100),
    ]);
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    for (const close of closers) await close();
    await browser?.close().catch(() => {});
    await kill(publisher);
    await srv?.stop();
  });

  it('/watch/<id> plays the live stream (hls.js, MSE blob, worker) with no CSP violation; may be framed', async () => {
    const w = await open(`/watch/${live.id}`);
    const first = await until(
      async () => {
        const s = await playerSnapshot(w.page);
        return s.currentTime > 0 && !s.paused ? s : undefined;
      },
      20_000,
      100,
    );
    const later = await until(
      async () => {
        const s = await playerSnapshot(w.page);
        return s.currentTime - first.currentTime >= 2 ? s : undefined;
      },
      10_000,
      100,
    );
    expect(later.errors.filter((e) => e.fatal)).toEqual([]);
    expect(later.badge).toBe('LIVE');
    await expectClean(w);
    expectPageHeaders(w, '*', 'none');
    expect(w.response.headers()['x-frame-options']).toBeUndefined();
    expect(await allowsCamera(w.page)).toBe(false);

    // The media answers keep their CORS and caching headers, with nosniff and a CSP that allows nothing.
    const master = await fetch(`${srv.base}/live/${live.id}/master.m3u8`);
    expect(master.status).toBe(200);
    expect(master.headers.get('access-control-allow-origin')).toBe('*');
    expect(master.headers.get('cache-control')).toBeTruthy();
    expect(master.headers.get('x-content-type-options')).toBe('nosniff');
    expect(master.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
  });

  it('/ lists the live stream and loads its thumbnail (script from /player/home.js) with no CSP violation', async () => {
    const w = await open('/');
    const img = w.page.locator('#live li img');
    const width = await until(
      async () => ((await img.count()) > 0 ? img.first().evaluate((i: HTMLImageElement) => (i.complete ? i.naturalWidth : 0)) : 0),
      20_000,
      200,
    );
    expect(width).toBe(640);
    await expectClean(w);
    expectPageHeaders(w, "'none'", 'none');
    expect(w.response.headers()['x-frame-options']).toBe('DENY');
    expect(await allowsCamera(w.page)).toBe(false);
  });

  it('/publish goes live over WHIP with the camera (allowed there only) and no CSP violation', async () => {
    const w = await open('/publish');
    for (const sel of ['#key', '#camera', '#mic', '#resolution', '#bitrate', '#start', '#stop', '#preview']) {
      expect(await w.page.locator(sel).count(), sel).toBe(1);
    }
    // publish.css applies (it was an inline <style>): the start button is red.
    expect(await w.page.locator('#start').evaluate((b) => getComputedStyle(b).backgroundColor)).toBe('rgb(208, 25, 42)');
    expectPageHeaders(w, "'none'", 'self');
    expect(w.response.headers()['x-frame-options']).toBe('DENY');
    expect(await allowsCamera(w.page)).toBe(true);

    await w.page.fill('#key', whipStream.streamKey);
    await w.page.selectOption('#resolution', '640x360');
    await w.page.click('#start');
    const state = () => w.page.evaluate(() => ({ state: (window as any).__publisher.state, errors: (window as any).__publisher.errors }));
    const s = await until(
      async () => {
        const got = await state();
        return got.state === 'live' ? got : undefined;
      },
      20_000,
      200,
    );
    expect(s.errors).toEqual([]);
    await until(async () => (await srv.api('GET', `/api/v1/streams/${whipStream.id}/live`)).status === 200, 15_000, 200);
    await w.page.click('#stop');
    await until(async () => (await state()).state === 'idle', 10_000, 100);
    await expectClean(w);
  });

  it('/docs renders Swagger UI with the API operations and no CSP violation', async () => {
    const w = await open('/docs');
    await w.page.waitForSelector('#swagger-ui .opblock', { timeout: 15_000 });
    expect(await w.page.locator('#swagger-ui .info .title').innerText()).toMatch(/livepack API/);
    expect(await w.page.locator('#swagger-ui .opblock').count()).toBeGreaterThan(5);
    await expectClean(w);
    // Swagger UI's logo <style>, allowed by its hash (src/api/security-headers.ts), not by 'unsafe-inline'.
    expectPageHeaders(w, "'none'", 'none', `'self' ${SWAGGER_UI_STYLE_HASH}`);
    expect(w.response.headers()['x-frame-options']).toBe('DENY');
  });

  it('another site may frame /watch/<id> but not /publish (clickjacking)', async () => {
    // Another origin: a page of a second server on loopback (another port), framing both pages.
    const embedder = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><iframe id="watch" src="${srv.base}/watch/${live.id}"></iframe>` +
          `<iframe id="publish" src="${srv.base}/publish?key=${whipStream.streamKey}"></iframe>`,
      );
    });
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          embedder.closeAllConnections();
          embedder.close(() => resolve());
        }),
    );
    await new Promise<void>((resolve) => embedder.listen(0, '127.0.0.1', resolve));
    const embedderBase = `http://127.0.0.1:${(embedder.address() as AddressInfo).port}`;
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    const refused: string[] = [];
    page.on('console', (m) => {
      if (/refused to frame/i.test(m.text())) refused.push(m.text());
    });
    await page.goto(`${embedderBase}/`, { waitUntil: 'load', timeout: 15_000 });
    const frameOf = (path: string) => page.frames().find((f) => f.url().startsWith(`${srv.base}${path}`));
    // The watch page loads and runs in the frame.
    const watch = await until(async () => frameOf('/watch/'), 10_000, 100);
    await until(async () => (await watch.locator('#video').count()) === 1, 10_000, 100);
    // The publish page does not: the browser refuses it (frame-ancestors 'none') and shows its error page.
    const publish = await until(
      async () => (await (await page.locator('#publish').elementHandle())?.contentFrame()) ?? undefined,
      10_000,
      100,
    );
    await until(async () => publish.url() !== '' && publish.url() !== 'about:blank', 10_000, 100);
    expect(publish.url()).not.toContain('/publish');
    expect(await publish.locator('#key').count()).toBe(0);
    // Chromium says why (the message names the directive), when it logs it where the page sees it.
    for (const line of refused) expect(line).toMatch(/frame-ancestors 'none'/);
  });
});

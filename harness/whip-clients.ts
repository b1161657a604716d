/**
 * Real WHIP publishers for tests and the WHIP bench: headless Chromium with a fake camera and microphone on
 * the /publish page, and Debian's simple-whip-client (`whip-client`, GStreamer webrtcbin).
 *
 * Both are kept on 127.0.0.1: Chromium gathers loopback candidates with --allow-loopback-in-peer-connection,
 * the server binds ICE to HOST (127.0.0.1 in tests) and ignores candidates of other addresses. libnice (under
 * whip-client) never gathers loopback, so a small LD_PRELOAD shim (below) makes it see 127.0.0.1 only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.js';

/** Chromium flags for publishing: fake devices, no permission prompt, loopback ICE candidates. */
export const PUBLISH_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
] as const;

/** Chromium that can publish; `y4m` replaces the fake camera's picture with a file (looped). */
export function launchPublisherBrowser(opts: { y4m?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...PUBLISH_ARGS, ...(opts.y4m ? [`--use-file-for-fake-video-capture=${opts.y4m}`] : [])],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    timeout: 30_000,
  });
}

export interface PublishPage {
  readonly page: Page;
  readonly pageErrors: Error[];
  state(): Promise<{
    state: string;
    location: string | null;
    errors: string[];
    stats: Record<string, number | string> | null;
    codec: string | null;
  }>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

/** Opens /publish, fills in the key and goes live (returns once the page says it is connecting or live). */
export async function publishFromPage(
  browser: Browser,
  base: string,
  key: string,
  opts: { resolution?: string; bitrateKbps?: number } = {},
): Promise<PublishPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors: Error[] = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.goto(`${base}/publish`, { waitUntil: 'load', timeout: 15_000 });
  await page.fill('#key', key);
  if (opts.resolution) await page.selectOption('#resolution', opts.resolution);
  if (opts.bitrateKbps) await page.fill('#bitrate', String(opts.bitrateKbps));
  await page.click('#start');
  const state = () =>
    page.evaluate(() => {
      const p = (window as any).__publisher;
      return { state: p.state, location: p.location, errors: p.errors, stats: p.stats, codec: p.codec };
    });
  return {
    page,
    pageErrors,
    state,
    stop: async () => {
      await page.click('#stop');
    },
    close: () => context.close().catch(() => {}),
  };
}

const SHIM_SOURCE = String.raw`
/* LD_PRELOAD shim for Debian 12's simple-whip-client (test use only).
 * 1. whip-client links libsoup 2.4 while GStreamer's webrtc/nice plugins pull in libsoup 3 (through
 *    libgupnp-igd); libsoup 3 aborts at load when it sees libsoup 2 symbols. UPnP is never used here, so
 *    its check is answered "not loaded".
 * 2. libnice gathers host candidates on every interface but loopback; tests keep ICE on 127.0.0.1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
typedef int gboolean; typedef void *gpointer; typedef struct _GModule GModule; typedef struct _GList GList;
extern GList *g_list_append(GList *, void *);
extern char *g_strdup(const char *);
gboolean g_module_symbol(GModule *module, const char *name, gpointer *symbol) {
  static gboolean (*real)(GModule *, const char *, gpointer *);
  if (!real) real = (gboolean (*)(GModule *, const char *, gpointer *))dlsym(RTLD_NEXT, "g_module_symbol");
  if (name && (!strcmp(name, "soup_uri_new") || !strcmp(name, "soup_date_new") || !strcmp(name, "soup_message_headers_get"))) {
    if (symbol) *symbol = 0;
    return 0;
  }
  return real(module, name, symbol);
}
GList *nice_interfaces_get_local_ips(gboolean include_loopback) {
  (void)include_loopback;
  return g_list_append(0, g_strdup("127.0.0.1"));
}
`;

/** Builds the shim once per machine (gcc); undefined when gcc is missing. */
export function whipClientShim(): string | undefined {
  const dir = join(tmpdir(), 'livepack-whip-shim');
  const so = join(dir, 'shim-v1.so');
  if (existsSync(so)) return so;
  try {
    mkdirSync(dir, { recursive: true });
    const src = join(dir, 'shim-v1.c');
    writeFileSync(src, SHIM_SOURCE);
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', `${so}.tmp`, src, '-ldl'], { stdio: 'pipe', timeout: 60_000 });
    execFileSync('mv', [`${so}.tmp`, so]);
    return so;
  } catch {
    return undefined;
  }
}

/** Whether Debian's simple-whip-client is installed (its binary is `whip-client`). */
export function hasWhipClient(): boolean {
  return existsSync('/usr/bin/whip-client');
}

export interface WhipClientOptions {
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  readonly bitrateKbps?: number;
  /** Keyframe interval in frames. */
  readonly gop?: number;
  readonly audio?: boolean;
  /** Candidates in the offer (-n) instead of trickled with PATCH. */
  readonly noTrickle?: boolean;
}

/**
 * Debian's simple-whip-client publishing a GStreamer test picture (x264, constrained baseline, RTP mode 1)
 * and a test tone (Opus). Its output is kept for failure messages.
 */
export function whipClientPublish(url: string, token: string, opts: WhipClientOptions = {}): ChildProcess & { output: () => string } {
  const shim = whipClientShim();
  if (!shim) throw new Error('gcc is needed to build the whip-client shim');
  const w = opts.width ?? 640;
  const h = opts.height ?? 360;
  const fps = opts.fps ?? 30;
  const video =
    `videotestsrc is-live=true pattern=smpte ! video/x-raw,width=${w},height=${h},framerate=${fps}/1 ! videoconvert ! queue ! ` +
    `x264enc tune=zerolatency speed-preset=ultrafast bitrate=${opts.bitrateKbps ?? 800} key-int-max=${opts.gop ?? fps} ! ` +
    'video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=96 ssrc=2 aggregate-mode=zero-latency ! queue ! ' +
    'application/x-rtp,media=video,encoding-name=H264,payload=96';
  const audio =
    'audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! ' +
    'application/x-rtp,media=audio,encoding-name=OPUS,payload=111';
  const args = [
    '-u',
    url,
    '-t',
    token,
    '-l',
    '3',
    '-o',
    ...(opts.noTrickle ? ['-n'] : []),
    '-V',
    video,
    ...(opts.audio === false ? [] : ['-A', audio]),
  ];
  const child = spawn('whip-client', args, {
    env: { ...process.env, LD_PRELOAD: shim, G_DEBUG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: () => string };
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 40_000) out = out.slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.output = () => out;
  return child;
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { loadConfig } from '../../src/config/index.js';
import { startServer, type RunningServer, type ServerDeps } from '../../src/main.js';
import { pino, type DestinationStream } from 'pino';

export interface TestServer extends RunningServer {
  readonly base: string;
  readonly dataDir: string;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  rtmpUrl(key: string): string;
  stop(): Promise<void>;
}

/**
 * A whole server on 127.0.0.1 with ports chosen by the OS and a fresh DATA_DIR. `opts.log` receives the
 * server's log lines (JSON, from level TEST_LOG_LEVEL, else info) instead of stdout; `opts.deps` replaces
 * parts of the server (its wall clock).
 */
export async function startTestServer(
  env: Record<string, string> = {},
  opts: { log?: DestinationStream; deps?: ServerDeps } = {},
): Promise<TestServer> {
  const dataDir = env.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'livepack-test-'));
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    RTMP_PORT: '0',
    DATA_DIR: dataDir,
    API_TOKEN: 'test-token-0123456789abcdef',
    CREATE_DEFAULT_STREAM: 'false',
    LOG_LEVEL: 'silent',
    ...env,
  });
  // TEST_LOG_LEVEL (in the environment, or in `env` for one server) shows the server's log.
  const level = env.TEST_LOG_LEVEL ?? process.env.TEST_LOG_LEVEL ?? (opts.log ? 'info' : 'silent');
  const logger = opts.log ? pino({ level }, opts.log) : pino({ level });
  const server = await startServer(config, logger, opts.deps);
  const base = `http://127.0.0.1:${server.httpPort}`;
  return {
    ...server,
    get shutdownStep() {
      return server.shutdownStep;
    },
    base,
    dataDir,
    async api(method, path, body) {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${server.apiToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : undefined };
    },
    rtmpUrl: (key) => `rtmp://127.0.0.1:${server.rtmpPort}/live/${key}`,
    async stop() {
      // A shutdown slower than its bounded steps allow names the step it is stuck in.
      const slow = setTimeout(() => console.warn(`[test server] shutdown still in step "${server.shutdownStep}" after 12 s`), 12_000);
      await server.close();
      clearTimeout(slow);
      if (!env.DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Poll `fn` until it returns a truthy value (for state that has no event to await from outside). */
export async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  stepMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${last instanceof Error ? String(last) : inspect(last)}` : ''}`);
}

/** Parse the tags of a media playlist that matter to tests. */
export function parseMediaPlaylist(text: string) {
  const lines = text.trim().split('\n');
  const num = (tag: string) => {
    const l = lines.find((x) => x.startsWith(tag));
    return l ? Number(l.slice(tag.length)) : undefined;
  };
  const segments: { uri: string; duration: number; msn: number; discontinuity: boolean; gap: boolean; pdt?: string; map?: string }[] = [];
  const parts: { uri: string; duration: number; independent: boolean; msn: number }[] = [];
  let msn = num('#EXT-X-MEDIA-SEQUENCE:') ?? 0;
  const skipped = num('#EXT-X-SKIP:SKIPPED-SEGMENTS=') ?? 0;
  msn += skipped;
  let disc = false;
  let gap = false;
  let pdt: string | undefined;
  let map: string | undefined;
  let pendingDuration = 0;
  for (const l of lines) {
    if (l === '#EXT-X-DISCONTINUITY') disc = true;
    else if (l === '#EXT-X-GAP') gap = true;
    else if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = l.slice(25);
    else if (l.startsWith('#EXT-X-MAP:URI=')) map = /URI="([^"]+)"/.exec(l)![1];
    else if (l.startsWith('#EXT-X-PART:')) {
      const m = /DURATION=([\d.]+),URI="([^"]+)"/.exec(l)!;
      parts.push({ uri: m[2], duration: Number(m[1]), independent: l.includes('INDEPENDENT=YES'), msn });
    } else if (l.startsWith('#EXTINF:')) pendingDuration = Number(l.slice(8).split(',')[0]);
    else if (!l.startsWith('#') && l.length > 0) {
      segments.push({ uri: l, duration: pendingDuration, msn, discontinuity: disc, gap, pdt, map });
      msn++;
      disc = false;
      gap = false;
    }
  }
  const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)?.[1];
  return {
    lines,
    targetDuration: num('#EXT-X-TARGETDURATION:'),
    mediaSequence: num('#EXT-X-MEDIA-SEQUENCE:') ?? 0,
    partTarget: Number(/PART-TARGET=([\d.]+)/.exec(text)?.[1]),
    segments,
    parts,
    hint,
    ended: text.includes('#EXT-X-ENDLIST'),
    nextMsn: msn,
  };
}

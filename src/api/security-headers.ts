import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/*
 * Security headers on every answer of the HTTP server (issue 15, finding 5). Two hooks:
 *
 * - onRequest sets the baseline on the raw response, so that it reaches every answer, including the ones a
 *   route writes itself (tus uploads hijack the reply): `X-Content-Type-Options: nosniff`,
 *   `Referrer-Policy: no-referrer`, a Content-Security-Policy that allows nothing (`default-src 'none'`: a
 *   JSON, playlist or segment answer opened as a document runs nothing and cannot be framed) and a
 *   Permissions-Policy that denies camera, microphone and geolocation. Headers a route sets itself win
 *   (writeHead's headers take precedence over setHeader's); CORS and caching headers are left alone.
 * - onSend gives an HTML answer (a page: /, /watch/<id>, /publish, /docs) the policy that page passes:
 *   scripts and styles from this origin only (no inline code; the pages load theirs from /player/), media
 *   and images also from blob: (hls.js plays through MSE blob URLs) and from the origin of PUBLIC_BASE_URL
 *   (playback URLs may name a CDN), workers from blob: (hls.js runs its demuxer in a blob worker), and
 *   `Cross-Origin-Opener-Policy: same-origin`. /docs (Swagger UI) also allows the hash of its one inline style.
 *
 * Framing: /watch/<id> may be embedded by any site (`frame-ancestors *`: an embedded player is a use, and the
 * page has nothing to click that acts for the viewer). Every other page refuses framing (`'none'`, and
 * `X-Frame-Options: DENY` for old browsers): /publish most of all, since a framed publish page with a
 * prefilled `?key=` could be clicked into going live with the visitor's camera. Only /publish may ask for
 * the camera and the microphone (`camera=(self), microphone=(self)`).
 *
 * `no-referrer` is enough for every page: nothing on the server reads Referer, and the only effect on the
 * pages' own requests is that a same-origin POST (WHIP, beacons) carries `Origin: null`, which nothing checks.
 */

export interface SecurityHeadersOptions {
  /** PUBLIC_BASE_URL: its origin may serve media, images and playlists to the pages (a CDN). */
  readonly publicBaseUrl?: string;
}

const DENY_DEVICES = 'camera=(), microphone=(), geolocation=()';
const ALLOW_DEVICES = 'camera=(self), microphone=(self), geolocation=()';

/** Headers on every answer (set before the route runs; a route's own value wins). */
export const BASELINE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
  'permissions-policy': DENY_DEVICES,
};

/** The origin of `url` when it is an http(s) URL, else undefined. */
function originOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The one inline style Swagger UI (the standalone preset's top bar, @fastify/swagger-ui 6.1) inserts: the
 * `<style>` of its SVG logo, ".logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}". Allowed
 * by its hash on /docs only; a Swagger UI that inserts another fails test/e2e/security-headers.test.ts.
 */
export const SWAGGER_UI_STYLE_HASH = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='";

/** The Content-Security-Policy of a page; `frameAncestors` is the framing rule for that page. */
export function pageCsp(frameAncestors: string, mediaOrigin?: string, extraStyle?: string): string {
  const media = mediaOrigin ? ` ${mediaOrigin}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self'${extraStyle ? ` ${extraStyle}` : ''}`,
    "worker-src 'self' blob:",
    `img-src 'self' data: blob:${media}`,
    `media-src 'self' blob:${media}`,
    `connect-src 'self'${media}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
  ].join('; ');
}

type PageKind = 'watch' | 'publish' | 'docs' | 'other';

function pageKind(req: FastifyRequest): PageKind {
  const route = req.routeOptions.url;
  if (route === '/watch/:id') return 'watch';
  if (route === '/publish') return 'publish';
  if (route?.startsWith('/docs')) return 'docs';
  return 'other';
}

/** Installs both hooks on `app`; call it before any plugin or route is registered (hooks are encapsulated). */
export function installSecurityHeaders(app: FastifyInstance, opts: SecurityHeadersOptions = {}): void {
  const mediaOrigin = originOf(opts.publicBaseUrl);
  const csp = {
    watch: pageCsp('*', mediaOrigin),
    publish: pageCsp("'none'", mediaOrigin),
    docs: pageCsp("'none'", mediaOrigin, SWAGGER_UI_STYLE_HASH),
    other: pageCsp("'none'", mediaOrigin),
  } as const;

  app.addHook('onRequest', (_req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    for (const [name, value] of Object.entries(BASELINE_HEADERS)) reply.raw.setHeader(name, value);
    done();
  });

  app.addHook('onSend', (req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, p: unknown) => void) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('text/html')) {
      const kind = pageKind(req);
      // A route that chose its own value keeps it.
      const set = (name: string, value: string) => {
        const had = reply.getHeader(name);
        if (had === undefined || had === BASELINE_HEADERS[name]) reply.header(name, value);
      };
      set('content-security-policy', csp[kind]);
      set('permissions-policy', kind === 'publish' ? ALLOW_DEVICES : DENY_DEVICES);
      set('cross-origin-opener-policy', 'same-origin');
      if (kind !== 'watch') set('x-frame-options', 'DENY');
    }
    done(null, payload);
  });
}

/**
 * WHIP (RFC 9725): the HTTP side of WebRTC ingest. `POST /whip` with an SDP offer and the stream key as a
 * bearer token creates a session and answers 201 with the SDP answer and the session's URL; `PATCH` on that
 * URL trickles ICE candidates; `DELETE` ends the publish. CORS lets a browser page on another origin publish.
 *
 * The session URL carries a random 96-bit id: knowing it is what allows PATCH and DELETE (the key is not
 * asked again), like a WHIP resource URL in MediaMTX and OvenMediaEngine.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError } from '../core/index.js';
import { MAX_SDP_BYTES, RetryLaterError, type Admission, type WebRtcIngest } from '../ingest/webrtc/index.js';

/** What the WHIP routes use of the WebRTC ingest: publishers admitted, sessions created, patched, removed by id. */
export type WhipIngest = Pick<WebRtcIngest, 'iceServers' | 'admit' | 'create' | 'patch' | 'etag' | 'remove'>;

export interface WhipRoutesOptions {
  readonly ingest: WhipIngest;
  /** Path prefix of the endpoint; sessions live under it. */
  readonly path?: string;
}

const SDP = 'application/sdp';
const FRAG = 'application/trickle-ice-sdpfrag';

/** RFC 9725 4.6: ICE servers as Link headers, `<stun:host:port>; rel="ice-server"`, TURN with credentials. */
export function iceServerLinks(servers: readonly string[]): string[] {
  return servers.map((s) => {
    const m = /^(turns?):(?:([^:@]*):([^@]*)@)?(.+)$/.exec(s);
    if (!m) return `<${s}>; rel="ice-server"`;
    const [, scheme, user, pass, rest] = m as Array<string | undefined>; // the credentials group is optional
    const creds = user !== undefined ? `; username="${user}"; credential="${pass}"; credential-type="password"` : '';
    return `<${scheme}:${rest}>; rel="ice-server"${creds}`;
  });
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

function contentType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** The body our SDP and sdpfrag parsers leave: a string, or nothing when the request had none. */
function textBody(body: unknown): string {
  return typeof body === 'string' ? body : '';
}

/** The stream key of a WHIP POST, checked (RFC 9725 4.1: "Bearer" token); the answer's headers say why not. */
async function admitOffer(ingest: WhipIngest, req: FastifyRequest, reply: FastifyReply): Promise<Admission> {
  const key = bearer(req);
  if (!key) {
    reply.header('www-authenticate', 'Bearer');
    throw new AppError('E_UNAUTHORIZED', 'send the stream key as Authorization: Bearer <streamKey>');
  }
  try {
    return await ingest.admit(key, req.ip);
  } catch (err) {
    if (err instanceof RetryLaterError) reply.header('retry-after', String(err.retryAfterSeconds));
    else if (isAppError(err) && err.code === 'E_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer error="invalid_token"');
    throw err;
  }
}

export async function registerWhipRoutes(app: FastifyInstance, opts: WhipRoutesOptions): Promise<void> {
  const base = opts.path ?? '/whip';
  const ingest = opts.ingest;
  await app.register(async (s) => {
    s.addContentTypeParser([SDP, FRAG], { parseAs: 'string', bodyLimit: MAX_SDP_BYTES }, (_req, body, done) => done(null, body));
    // CORS for browsers publishing from another origin (RFC 9725 4.5), on every answer, errors included.
    s.addHook('onSend', async (_req, reply, payload) => {
      reply.header('access-control-allow-origin', '*');
      reply.header('access-control-expose-headers', 'Location, ETag, Link, Accept-Patch, Content-Type');
      return payload;
    });
    const preflight = async (_req: FastifyRequest, reply: FastifyReply) => {
      // The ICE servers here too, so a client can configure its PeerConnection before it makes the offer.
      const links = iceServerLinks(ingest.iceServers);
      if (links.length) reply.header('link', links);
      return reply
        .code(204)
        .header('access-control-allow-methods', 'POST, PATCH, DELETE, OPTIONS')
        .header('access-control-allow-headers', 'Authorization, Content-Type, If-Match')
        .header('access-control-max-age', '86400')
        .header('accept-post', SDP)
        .send();
    };
    s.options(base, { schema: { hide: true } }, preflight);
    s.options(`${base}/:id`, { schema: { hide: true } }, preflight);

    // The key is checked in onRequest, from the headers alone: a request without a right key is answered
    // 401 (or 429) before a byte of its body is read, whatever its size or content type.
    const admitted = new WeakMap<FastifyRequest, Admission>();
    const admit = async (req: FastifyRequest, reply: FastifyReply) => {
      admitted.set(req, await admitOffer(ingest, req, reply));
    };
    s.post(base, { schema: { hide: true }, bodyLimit: MAX_SDP_BYTES, onRequest: admit }, async (req, reply) => {
      if (contentType(req) !== SDP) {
        return reply.code(415).send({ error: { code: 'E_VALIDATION', message: `a WHIP offer is sent as ${SDP}` } });
      }
      const admission = admitted.get(req);
      if (!admission) throw new AppError('E_INTERNAL', 'WHIP offer without an admission');
      const created = await ingest.create(textBody(req.body), admission, req.ip);
      const location = `${base}/${created.sessionId}`;
      const links = iceServerLinks(ingest.iceServers);
      if (links.length) reply.header('link', links);
      return reply
        .code(201)
        .type(SDP)
        .header('location', location)
        .header('etag', created.etag)
        .header('accept-patch', FRAG)
        .header('cache-control', 'no-store')
        .send(created.answer);
    });

    s.patch<{ Params: { id: string } }>(`${base}/:id`, { schema: { hide: true }, bodyLimit: MAX_SDP_BYTES }, async (req, reply) => {
      if (contentType(req) !== FRAG) {
        // RFC 9725 4.3.1: another content type "MUST" be refused with 415.
        return reply.code(415).send({ error: { code: 'E_VALIDATION', message: `a WHIP PATCH is sent as ${FRAG}` } });
      }
      const ifMatch = req.headers['if-match'];
      const out = ingest.patch(req.params.id, textBody(req.body), typeof ifMatch === 'string' ? ifMatch : undefined);
      if (out.kind === 'etag-mismatch') {
        return reply.code(412).send({ error: { code: 'E_CONFLICT', message: 'If-Match does not name the current ICE session' } });
      }
      if (out.kind === 'restart-unsupported') {
        // RFC 9725 4.3.1: a session that supports trickle ICE but not ICE restarts answers a restart with
        // 422. The client then starts a new session (POST), which takes the stream over without a gap.
        return reply
          .code(422)
          .send({ error: { code: 'E_VALIDATION', message: 'ICE restarts are not supported: start a new session (POST) instead' } });
      }
      return reply.code(204).header('etag', ingest.etag(req.params.id)).send();
    });

    s.delete<{ Params: { id: string } }>(`${base}/:id`, { schema: { hide: true } }, async (req, reply) => {
      ingest.remove(req.params.id);
      return reply.code(200).send();
    });
  });
}

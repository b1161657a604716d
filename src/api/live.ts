import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { capCacheControl, corsPreflight } from './playback.js';
import type { OriginResponse } from '../packager/index.js';

/** What the routes ask of the LL-HLS origin (packager/LiveOrigin): the answer to one request under /live/<id>/. */
export interface LiveOriginHandler {
  /** `signal` aborts a held (blocking) request when the client goes away. */
  handle(streamId: string, path: string, query: Record<string, string | undefined>, signal?: AbortSignal): Promise<OriginResponse>;
}

function send(reply: FastifyReply, res: OriginResponse, tokenSecondsLeft: number | undefined) {
  reply.code(res.status).headers(res.headers);
  const cacheControl = capCacheControl(res.headers['cache-control'], tokenSecondsLeft);
  if (cacheControl) reply.header('cache-control', cacheControl);
  const body = typeof res.body === 'string' ? res.body : Buffer.from(res.body.buffer, res.body.byteOffset, res.body.byteLength);
  return reply.send(body);
}

/**
 * /live/<id>/... and /t/<token>/live/<id>/... : the LL-HLS origin. `authorize` throws (403) when the
 * stream is private and the token does not open it. Held requests are released when the client goes away.
 */
export function registerLiveRoutes(
  app: FastifyInstance,
  origin: LiveOriginHandler,
  authorize?: (streamId: string, token: string | undefined) => Promise<number | undefined>,
): void {
  type Req = { Params: { id: string; token?: string; '*': string }; Querystring: Record<string, string | undefined> };
  const handler = async (req: FastifyRequest<Req>, reply: FastifyReply) => {
    const secondsLeft = authorize ? await authorize(req.params.id, req.params.token) : undefined;
    const ac = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) ac.abort();
    };
    reply.raw.on('close', onClose);
    try {
      const res = await origin.handle(req.params.id, req.params['*'], req.query, ac.signal);
      // A FastifyReply is thenable: returning it tells fastify the answer is sent; awaiting it would wait for the socket.
      // eslint-disable-next-line @typescript-eslint/return-await -- see above
      return send(reply, res, secondsLeft);
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/return-await -- as above: the reply is returned, not awaited
      if (ac.signal.aborted) return reply; // the client left; nothing to answer
      throw err;
    } finally {
      reply.raw.off('close', onClose);
    }
  };
  app.get<Req>('/live/:id/*', { schema: { hide: true }, logLevel: 'warn' }, handler);
  app.get<Req>('/t/:token/live/:id/*', { schema: { hide: true }, logLevel: 'warn' }, handler);
  app.options('/live/*', { schema: { hide: true }, logLevel: 'warn' }, corsPreflight);
}

import type { FastifyInstance, FastifyReply } from 'fastify';
import type { LiveOrigin, OriginResponse } from '../packager/index.js';

function send(reply: FastifyReply, res: OriginResponse) {
  reply.code(res.status).headers(res.headers);
  const body = typeof res.body === 'string' ? res.body : Buffer.from(res.body.buffer, res.body.byteOffset, res.body.byteLength);
  return reply.send(body);
}

/** /live/<id>/... : the LL-HLS origin. Held requests are released when the client goes away. */
export function registerLiveRoutes(app: FastifyInstance, origin: LiveOrigin): void {
  app.get<{ Params: { id: string; '*': string }; Querystring: Record<string, string | undefined> }>(
    '/live/:id/*',
    { schema: { hide: true }, logLevel: 'warn' },
    async (req, reply) => {
      const ac = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableEnded) ac.abort();
      };
      reply.raw.on('close', onClose);
      try {
        const res = await origin.handle(req.params.id, req.params['*'], req.query, ac.signal);
        return send(reply, res);
      } catch (err) {
        if (ac.signal.aborted) return reply; // the client left; nothing to answer
        throw err;
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );
  app.options('/live/*', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) =>
    reply
      .code(204)
      .headers({
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': 'range, if-none-match, if-modified-since',
        'access-control-max-age': '86400',
      })
      .send(),
  );
}

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LiveThumbnail } from '../vod/index.js';
import { capCacheControl } from './playback.js';
import { errorSchema, ID_PATTERN } from './schemas.js';

/** What the route reads: the last image cut of a live stream (vod/LiveThumbnails). */
export interface LiveThumbnailSource {
  get(streamId: string): LiveThumbnail | undefined;
}

export interface LiveThumbnailRouteDeps {
  readonly thumbnails: LiveThumbnailSource;
  /** The live playback check: throws E_FORBIDDEN unless the stream is not private or the token opens it. */
  readonly authorize: (streamId: string, token: string | undefined) => Promise<number | undefined>;
  /** Cache lifetime of an image, seconds: about half the refresh interval. */
  readonly maxAgeSeconds: number;
}

/** The path of a live stream's thumbnail, next to its playlists. */
export function liveThumbnailPath(streamId: string): string {
  return `/live/${streamId}/thumbnail.jpg`;
}

/**
 * GET /live/<id>/thumbnail.jpg and /t/<token>/live/<id>/thumbnail.jpg: the last thumbnail cut of a live
 * stream, from memory (a request never runs FFmpeg). Private streams need the same token as their
 * playback; 404 while there is none yet and once the stream ended.
 */
export function registerLiveThumbnailRoutes(app: FastifyInstance, deps: LiveThumbnailRouteDeps): void {
  type Req = { Params: { id: string; token?: string } };
  const handler = async (req: FastifyRequest<Req>, reply: FastifyReply) => {
    const { id, token } = req.params;
    // The access check comes first: a private stream's thumbnail does not even tell whether it exists.
    const secondsLeft = await deps.authorize(id, token);
    const image = deps.thumbnails.get(id);
    reply.header('access-control-allow-origin', '*');
    if (!image)
      return reply
        .code(404)
        .header('cache-control', 'no-store')
        .send({ error: { code: 'E_NOT_FOUND', message: `no thumbnail for live stream ${id}` } });
    reply
      .header('cache-control', capCacheControl(`public, max-age=${deps.maxAgeSeconds}`, secondsLeft))
      .header('etag', image.etag)
      .header('last-modified', new Date(image.cutAt).toUTCString());
    if (req.headers['if-none-match'] === image.etag) return reply.code(304).send();
    return reply.type(image.contentType).header('content-length', image.bytes.byteLength).send(image.bytes);
  };
  const id = { type: 'string', pattern: ID_PATTERN };
  const schema = {
    summary: "A live stream's current thumbnail (JPEG, refreshed about every 10 s from a keyframe of its lowest rendition)",
    description:
      'Served from memory: a request never runs FFmpeg. A private stream needs its playback token in the path, ' +
      '/t/<token>/live/<id>/thumbnail.jpg (403 otherwise). 404 before the first thumbnail is cut and once the stream has ended. ' +
      'Cache-Control max-age is half the refresh interval; If-None-Match gets 304.',
    tags: ['live'],
    params: { type: 'object', required: ['id'], properties: { id } },
    response: {
      200: { description: 'The JPEG', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } } },
      304: { description: 'Not modified (If-None-Match matched the ETag)', type: 'null' },
      403: errorSchema,
      404: errorSchema,
    },
  };
  app.get<Req>('/live/:id/thumbnail.jpg', { schema, logLevel: 'warn' }, handler);
  const tokenParams = { type: 'object', required: ['id', 'token'], properties: { id, token: { type: 'string', maxLength: 256 } } };
  app.get<Req>('/t/:token/live/:id/thumbnail.jpg', { schema: { ...schema, params: tokenParams, hide: true }, logLevel: 'warn' }, handler);
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isAppError } from '../core/index.js';
import { VISIBILITIES } from '../catalog/index.js';
import type { InitiateUpload } from '../vod/index.js';
import { MAX_DESCRIPTION_LENGTH, MAX_FILENAME_LENGTH, MAX_TITLE_LENGTH, MEDIA_EXTENSIONS } from '../vod/index.js';
import { requireToken } from './auth.js';
import { errorSchema } from './schemas.js';

/** What the upload routes ask of the uploads (vod/Uploads): create one, and hand tus requests over. */
export interface UploadHandler {
  /** Path the tus uploads live under, e.g. /api/v1/uploads. */
  readonly basePath: string;
  /** Creates the video and its upload; throws E_LIMIT_EXCEEDED for a declared size over the limit. */
  initiate(input: InitiateUpload): Promise<{ readonly id: string }>;
  /** Answers one tus request (HEAD, PATCH, OPTIONS) on the raw request and response. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export interface UploadRoutesDeps {
  readonly uploads: UploadHandler;
  readonly apiToken: string;
  readonly publicBaseUrl: string;
}

/**
 * Uploads: `POST /api/v1/videos/upload/initiate` creates the video and a tus 1.0 upload of the declared
 * size; the client sends the bytes to the returned `uploadUrl` with PATCH (Content-Type
 * application/offset+octet-stream, Upload-Offset), and after an interruption asks HEAD for the offset to
 * resume from. Everything needs the operator token except OPTIONS (tus discovery and CORS preflight,
 * which browsers send without credentials).
 */
export function registerUploadRoutes(app: FastifyInstance, deps: UploadRoutesDeps): void {
  const auth = requireToken(deps.apiToken);
  const base = deps.uploads.basePath;

  app.post<{ Body: InitiateUpload }>(
    '/api/v1/videos/upload/initiate',
    {
      onRequest: auth,
      schema: {
        summary: `Start an upload: creates the video (status "uploading") and a tus 1.0 upload at uploadUrl for exactly "size" bytes. Send them with PATCH (tus), then the video is packaged (status queued, processing, ready or failed). Accepted file types: ${MEDIA_EXTENSIONS.join(', ')}.`,
        tags: ['videos'],
        body: {
          type: 'object',
          required: ['title', 'size', 'filename'],
          additionalProperties: false,
          properties: {
            title: { type: 'string', description: `1 to ${MAX_TITLE_LENGTH} characters` },
            size: { type: 'integer', description: 'The file size in bytes (at most UPLOAD_MAX_BYTES)' },
            filename: {
              type: 'string',
              description: `The file's name (at most ${MAX_FILENAME_LENGTH} characters); its extension must be a video container's`,
            },
            description: { type: 'string', description: `At most ${MAX_DESCRIPTION_LENGTH} characters` },
            visibility: { type: 'string', enum: [...VISIBILITIES] },
          },
        },
        response: {
          201: { type: 'object', properties: { videoId: { type: 'string' }, uploadUrl: { type: 'string' } } },
          400: errorSchema,
          413: errorSchema,
          415: errorSchema,
        },
      },
    },
    async (req, reply) => {
      try {
        const video = await deps.uploads.initiate(req.body);
        return await reply.code(201).send({ videoId: video.id, uploadUrl: `${deps.publicBaseUrl}${base}/${video.id}` });
      } catch (err) {
        // E_LIMIT_EXCEEDED is 429 elsewhere (too many of something); a declared size over the limit is 413.
        if (isAppError(err) && err.code === 'E_LIMIT_EXCEEDED')
          return reply.code(413).send({ error: { code: err.code, message: err.message } });
        throw err;
      }
    },
  );

  // tus requests go to @tus/server untouched: the body is a stream of file bytes, never parsed or
  // buffered here (the parser below leaves it unread), and the reply is hijacked for tus to write.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/offset+octet-stream', (_req, _payload, done) => done(null));
    const tus = async (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      try {
        await deps.uploads.handle(req.raw, reply.raw);
      } catch (err) {
        req.log.error({ err }, 'tus request failed');
        if (!reply.raw.headersSent) reply.raw.writeHead(500).end();
        else reply.raw.destroy();
      }
    };
    scope.route({ method: ['HEAD', 'PATCH'], url: `${base}/:id`, onRequest: auth, schema: { hide: true }, handler: tus });
    scope.route({ method: 'OPTIONS', url: `${base}/:id`, schema: { hide: true }, handler: tus });
  });
}

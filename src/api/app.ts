import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { isAppError } from '../core/index.js';
import type { Catalog } from '../catalog/index.js';
import type { LiveTranscoder } from '../livetranscode/index.js';
import type { LiveOrigin, LivePackager } from '../packager/index.js';
import type { StreamHub } from '../stream/index.js';
import { requireToken } from './auth.js';
import { registerLiveRoutes } from './live.js';
import { buildMetrics, type MetricSources } from './metrics.js';
import { registerPlayerRoutes } from './player.js';
import { registerStreamRoutes } from './streams.js';

export interface AppDeps {
  readonly catalog: Catalog;
  readonly hub: StreamHub;
  readonly packager: LivePackager;
  /** Absent in tests that build the app without transcoding. */
  readonly transcoder?: LiveTranscoder;
  readonly origin: LiveOrigin;
  readonly apiToken: string;
  readonly publicBaseUrl: string;
  readonly publicRtmpUrl: string;
  readonly ingestCounters: MetricSources['ingest'];
  /** A pino logger for requests; none means no request logging. */
  readonly logger?: FastifyBaseLogger;
}

/** The HTTP face of the server: control API, origin, player, health, metrics, OpenAPI docs. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    // Blocking playlist requests are held for seconds; keep connections open between them.
    keepAliveTimeout: 65_000,
    requestTimeout: 60_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true } },
  });

  app.setErrorHandler((err, req, reply) => {
    if (isAppError(err)) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation) return reply.code(400).send({ error: { code: 'E_VALIDATION', message: e.message } });
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: { code: e.code ?? 'E_BAD_REQUEST', message: e.message } });
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'E_INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'E_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  await app.register(swagger, {
    openapi: {
      info: { title: 'livepack API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Control API: every route under /api/v1 needs the operator token.
  await app.register(async (api) => {
    api.addHook('onRequest', requireToken(deps.apiToken));
    registerStreamRoutes(api, deps);
  });

  registerLiveRoutes(app, deps.origin);
  registerPlayerRoutes(app);

  const registry = buildMetrics({ hub: deps.hub, packager: deps.packager, transcoder: deps.transcoder, ingest: deps.ingestCounters });
  app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
  app.get('/healthz', { schema: { summary: 'Liveness and a short summary', tags: ['health'] }, logLevel: 'warn' }, async () => ({
    status: 'ok',
    liveStreams: deps.hub.list().length,
    catalog: deps.catalog.kind,
  }));
  return app;
}

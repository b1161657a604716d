import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { AppError, isAppError } from '../core/index.js';
import { BASELINE_HEADERS } from './security-headers.js';

/*
 * One error shape for every 4xx and 5xx the HTTP server sends, ours and the framework's:
 * `{ "error": { "code": "E_...", "message": "..." } }`. Framework errors (bad URL, body too large, parser-level
 * 400/408/431) get a code by status and a fixed message: none of them echoes the URL or a header back.
 */

/** Our code for a framework error of each status. */
const CODE_BY_STATUS: Readonly<Partial<Record<number, string>>> = {
  400: 'E_BAD_REQUEST',
  401: 'E_UNAUTHORIZED',
  403: 'E_FORBIDDEN',
  404: 'E_NOT_FOUND',
  405: 'E_METHOD_NOT_ALLOWED',
  408: 'E_TIMEOUT',
  413: 'E_BODY_TOO_LARGE',
  414: 'E_URI_TOO_LONG',
  415: 'E_UNSUPPORTED_MEDIA_TYPE',
  429: 'E_LIMIT_EXCEEDED',
  431: 'E_HEADERS_TOO_LARGE',
};

/** Fastify's codes that mean "the JSON body is not JSON". */
const BAD_JSON = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** The answer to a framework (non-AppError) error of status < 500. */
function frameworkError(status: number, code: string | undefined): ErrorBody {
  if (code && BAD_JSON.has(code)) return { error: { code: 'E_BAD_JSON', message: 'the body is not valid JSON' } };
  // A code of ours (E_...) thrown with a statusCode by a route keeps its code.
  const ours = code?.startsWith('E_') ? code : undefined;
  return {
    error: { code: ours ?? CODE_BY_STATUS[status] ?? 'E_BAD_REQUEST', message: (STATUS_CODES[status] ?? 'Bad Request').toLowerCase() },
  };
}

/** The error handler, the not-found handler and the framework error hook, all answering in our shape. */
export function installErrorShape(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    if (isAppError(err)) {
      // An error that knows when to come back (a dependency away: E_UNAVAILABLE; E_RATE_LIMITED) says so in Retry-After.
      const retryAfter = (err as { retryAfterSeconds?: unknown }).retryAfterSeconds;
      if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation) return reply.code(400).send({ error: { code: 'E_VALIDATION', message: e.message } });
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      // Ours (E_...) keep their message; the framework's get a fixed one (some carry a header's value).
      const body = frameworkError(e.statusCode, e.code);
      const message = e.code?.startsWith('E_') ? e.message : body.error.message;
      return reply.code(e.statusCode).send({ error: { code: body.error.code, message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'E_INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'E_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );
}

/** Fastify's `frameworkErrors`: a URL that does not decode, a parameter too long (both would echo the URL). */
export function frameworkErrors(err: { statusCode?: number; code?: string }, _req: FastifyRequest, reply: FastifyReply): void {
  const status = err.statusCode ?? 400;
  void reply.code(status).send(frameworkError(status, err.code));
}

/** The security headers every answer carries (security-headers.ts), as raw header lines. */
const RAW_BASELINE = Object.entries(BASELINE_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('');

/**
 * Errors Node's HTTP parser meets before there is a request (headers too large: 431; headers or body too
 * slow: 408; malformed: 400): answered in our shape, with the security headers, on the raw socket, which is
 * then closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify(frameworkError(status, undefined));
  if (!socket.writable) return void socket.destroy();
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${RAW_BASELINE}Connection: close\r\n\r\n${body}`,
  );
  // A client that never reads its answer must not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * JSON bodies: bytes that are not UTF-8 are refused (E_BAD_JSON), not turned into U+FFFD and stored;
 * the rest is Fastify's own parser (which refuses __proto__ and constructor.prototype keys).
 */
export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      return done(new AppError('E_BAD_JSON', 'the body is not UTF-8'), undefined);
    }
    void parse(req, text, done);
  });
}

/**
 * Validators: querystrings, params and headers arrive as strings and are coerced to the schema's types
 * ("?limit=5" is 5); bodies are JSON and keep their types (`"size": true` is refused, not taken as 1).
 * Both compilers are Fastify's own (the copy Fastify depends on, so it moves in step with it).
 */
export function validatorSchemaController(ajvOptions: Record<string, unknown>): FastifyServerOptions['schemaController'] {
  const require = createRequire(createRequire(import.meta.url).resolve('fastify'));
  const { AjvCompiler } = require('@fastify/ajv-compiler') as { AjvCompiler: () => CompilerFactory };
  const factory = AjvCompiler();
  const buildValidator: CompilerFactory = (externalSchemas, serverOptions) => {
    const withCoercion = (coerceTypes: boolean) =>
      factory(externalSchemas, { ...serverOptions, customOptions: { ...serverOptions?.customOptions, ...ajvOptions, coerceTypes } });
    const coercing = withCoercion(true);
    const strict = withCoercion(false);
    return (route) => (route.httpPart === 'body' ? strict(route) : coercing(route));
  };
  return { compilersFactory: { buildValidator } } as FastifyServerOptions['schemaController'];
}

/** The shape of @fastify/ajv-compiler's factory, as used here. */
type CompilerFactory = (
  externalSchemas: unknown,
  options?: { readonly customOptions?: Record<string, unknown> },
) => (route: { readonly httpPart?: string }) => unknown;

/** The JSON schemas of the stream routes (streams.ts): what each takes and answers, and what /docs shows. */
import type { FastifySchema } from 'fastify';
import { LADDER_ENCODERS, LADDER_LIMITS, STREAM_PROFILES } from '../core/index.js';
import { VISIBILITIES } from '../catalog/index.js';
import { errorSchema, idParams } from './schemas.js';

const visibilitySchema = {
  type: 'string',
  enum: [...VISIBILITIES],
  description:
    '"public" (listed), "unlisted" (playable by URL, not listed) or "private" (needs a playback token). Recordings start with the stream\'s.',
} as const;

const liveSchema = {
  type: ['object', 'null'],
  properties: {
    state: { type: 'string', enum: ['live', 'reconnecting'] },
    protocol: { type: 'string' },
    remoteAddress: { type: 'string' },
    video: {
      type: ['object', 'null'],
      properties: { codec: { type: 'string' }, codecs: { type: 'string' }, width: { type: 'integer' }, height: { type: 'integer' } },
    },
    audio: {
      type: ['object', 'null'],
      properties: { codec: { type: 'string' }, codecs: { type: 'string' }, sampleRate: { type: 'integer' }, channels: { type: 'integer' } },
    },
    fps: { type: 'number' },
    bitrateKbps: { type: 'number' },
    uptimeSeconds: { type: 'number' },
    sessionUptimeSeconds: { type: 'number' },
    sessions: { type: 'integer' },
    repairedTimestamps: { type: 'integer' },
    transcode: {
      type: ['object', 'null'],
      description: 'The ABR ladder at work (null for passthrough, or when no FFmpeg is available)',
      properties: {
        state: { type: 'string', enum: ['idle', 'starting', 'running', 'restarting', 'degraded', 'failed', 'stopped'] },
        pid: { type: ['integer', 'null'] },
        speed: { type: ['number', 'null'], description: 'FFmpeg speed over the last seconds; 1 = real time' },
        lagMs: { type: ['number', 'null'] },
        restarts: { type: 'integer' },
        lastError: { type: ['string', 'null'] },
        droppedRungs: { type: 'array', items: { type: 'string' } },
        rungs: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              height: { type: 'integer' },
              width: { type: ['integer', 'null'] },
              encoder: { type: 'string' },
              targetBitrateKbps: {
                type: 'integer',
                description: "What FFmpeg encodes the rung at: the ladder's bitrate, capped to the source's (default ladder)",
              },
              ladderBitrateKbps: { type: 'integer', description: 'What the ladder says' },
              state: { type: 'string', enum: ['starting', 'running', 'dropped'] },
              fps: { type: 'number' },
              bitrateKbps: { type: 'number' },
            },
          },
        },
        fit: {
          type: ['object', 'null'],
          description: "The ladder fitted to the source's measured video bitrate (null before a session with video)",
          properties: {
            state: {
              type: 'string',
              enum: ['measuring', 'estimated', 'settled'],
              description:
                'measuring: the first seconds are measured before FFmpeg starts; estimated: fitted to them; settled: fitted to the settled bitrate, final for the session',
            },
            custom: { type: 'boolean', description: "The stream's own ladder: kept as it is, only warned about" },
            sourceVideoKbps: { type: ['integer', 'null'], description: "The source's video bitrate the plan is made for, over whole GOPs" },
            omittedRungs: {
              type: 'array',
              description: 'Rungs of the default ladder below the source that are not transcoded at its bitrate',
              items: { type: 'object', properties: { name: { type: 'string' }, reason: { type: 'string' } } },
            },
          },
        },
        warnings: {
          type: 'array',
          items: { type: 'string' },
          description: "About a custom ladder: a rung above the source's video bitrate, or not below the rung above it",
        },
      },
    },
  },
} as const;

const rungSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    height: { type: 'integer' },
    videoBitrateKbps: { type: 'integer' },
    maxFrameRate: { type: 'number' },
    encoder: { type: 'string', enum: [...LADDER_ENCODERS] },
  },
} as const;

/**
 * The ladder in a request body. No `type` on purpose: with the app's coerceTypes, `type: ['array', 'null']`
 * turns 0, false and "" into null, and a PATCH would silently reset the ladder. validateLadder judges
 * every value and names the rung and field it finds wrong.
 */
const ladderBodySchema = {
  description:
    `Transcoded rungs below the source (which is always the top rung): 1-${LADDER_LIMITS.maxRungs} objects ` +
    '{ name?, height, videoBitrateKbps, maxFrameRate? (60), encoder? ("libx264") }; stored highest first. ' +
    'null (or omitted on create) means the default ladder. Applies from the next start of the stream.',
  examples: [
    [
      { name: '720p', height: 720, videoBitrateKbps: 3000, maxFrameRate: 30, encoder: 'libx264' },
      { name: '360p', height: 360, videoBitrateKbps: 800 },
    ],
  ],
} as const;

const profileSchema = {
  type: 'string',
  enum: [...STREAM_PROFILES],
  description: '"abr": the source plus transcoded rungs of the ladder; "passthrough": the source only. Applies from the next start.',
} as const;

const streamSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    profile: { type: 'string', enum: [...STREAM_PROFILES] },
    ladder: {
      type: 'array',
      items: rungSchema,
      description: 'The effective ladder: the stream\'s own, else the default. Unused while the profile is "passthrough".',
    },
    customLadder: { type: 'boolean', description: "Whether `ladder` is the stream's own (false: the default ladder)." },
    record: { type: 'boolean' },
    visibility: { type: 'string', enum: [...VISIBILITIES] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    keyRotatedAt: { type: 'string', format: 'date-time' },
    streamKey: { type: 'string', description: 'Only in the answers to create and rotate-key; stored only as a hash.' },
    ingest: {
      type: 'object',
      properties: {
        rtmp: { type: 'string', description: 'Full publish URL with the key when the key is in this answer, else the server URL.' },
        rtmpServer: { type: 'string' },
        whip: { type: 'string' },
      },
    },
    playback: { type: 'object', properties: { hls: { type: 'string' }, watch: { type: 'string' } } },
    live: liveSchema,
  },
} as const;

/** One schema per route of registerStreamRoutes. */
export const streamRouteSchemas = {
  create: {
    summary: 'Create a stream; the answer holds its stream key (shown only here and on rotate-key)',
    tags: ['streams'],
    body: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 200 },
        profile: { ...profileSchema, default: 'abr' },
        record: { type: 'boolean', default: true, description: 'Record every live run as a VOD asset.' },
        visibility: visibilitySchema,
        ladder: ladderBodySchema,
      },
    },
    response: { 201: streamSchema, 400: errorSchema, 401: errorSchema },
  },
  list: {
    summary: 'List streams (oldest first), with live status',
    tags: ['streams'],
    querystring: {
      type: 'object',
      properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 }, cursor: { type: 'string', maxLength: 512 } },
    },
    response: {
      200: { type: 'object', properties: { items: { type: 'array', items: streamSchema }, nextCursor: { type: ['string', 'null'] } } },
    },
  },
  get: {
    summary: 'Get a stream with its live status',
    tags: ['streams'],
    params: idParams,
    response: { 200: streamSchema, 404: errorSchema },
  },
  update: {
    summary: 'Change a stream; profile and ladder apply from its next start (a live stream keeps its running ladder)',
    tags: ['streams'],
    params: idParams,
    body: {
      type: 'object',
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 200 },
        profile: profileSchema,
        record: { type: 'boolean', description: 'Record live runs as VOD assets; applies from the next start.' },
        visibility: visibilitySchema,
        ladder: ladderBodySchema,
      },
    },
    response: { 200: streamSchema, 400: errorSchema, 404: errorSchema },
  },
  live: {
    summary: 'Live status: codec, resolution, fps, bitrate, uptime, publisher address',
    tags: ['streams'],
    params: idParams,
    response: { 200: liveSchema, 404: errorSchema, 409: errorSchema },
  },
  sessions: {
    summary: 'Publish sessions of a stream, newest first',
    tags: ['streams'],
    params: idParams,
    querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } } },
  },
  rotateKey: {
    summary: 'Issue a new stream key; the old one stops working. With {"disconnect": true} the current publisher is also cut off.',
    tags: ['streams'],
    params: idParams,
    body: { type: ['object', 'null'], additionalProperties: false, properties: { disconnect: { type: 'boolean', default: false } } },
    response: { 200: streamSchema, 404: errorSchema },
  },
  disconnect: {
    summary: 'Disconnect the current publisher (it may reconnect with its key)',
    tags: ['streams'],
    params: idParams,
    response: { 409: errorSchema, 404: errorSchema },
  },
  delete: { summary: 'Delete a stream; a live one ends at once', tags: ['streams'], params: idParams, response: { 404: errorSchema } },
} satisfies Record<string, FastifySchema>;

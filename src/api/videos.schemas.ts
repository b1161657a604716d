/** The JSON schemas of the catalog and playback routes (videos.ts): what each takes and answers, and what /docs shows. */
import type { FastifySchema } from 'fastify';
import { MAX_PAGE_SIZE, VIDEO_STATUSES, VISIBILITIES } from '../catalog/index.js';
import { MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH } from '../vod/index.js';
import { MAX_TOKEN_TTL_SECONDS } from './playback-tokens.js';
import { errorSchema, ID_PATTERN, idParams } from './schemas.js';

const videoSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['live', 'vod'] },
    source: { type: 'string', enum: ['recording', 'upload'] },
    streamId: { type: ['string', 'null'] },
    title: { type: 'string' },
    description: { type: 'string' },
    visibility: { type: 'string', enum: [...VISIBILITIES] },
    status: { type: 'string', enum: [...VIDEO_STATUSES] },
    progress: { type: 'number', description: 'Percent of the packaging done (uploads)' },
    duration: { type: ['number', 'null'], description: 'Seconds' },
    renditions: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          width: { type: 'integer' },
          height: { type: 'integer' },
          frameRate: { type: 'number' },
          bandwidth: { type: 'integer' },
          averageBandwidth: { type: 'integer' },
          codecs: { type: 'string' },
          gaps: {
            type: 'integer',
            description:
              'Recordings: segments of this rendition listed as EXT-X-GAP (storage failed or fell behind, or the rendition was restarting)',
          },
        },
      },
    },
    thumbnailUrl: {
      type: ['string', 'null'],
      description:
        'VOD: the poster. Live run: the current thumbnail (/live/<streamId>/thumbnail.jpg, refreshed about every 10 s; null until the first is cut). Null for private videos (fetch those under /t/<token>/...).',
    },
    error: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    endedAt: { type: ['string', 'null'], format: 'date-time' },
    playback: {
      type: 'object',
      properties: { hls: { type: ['string', 'null'], description: 'Multivariant playlist; null until the video is playable' } },
    },
  },
} as const;

const listSchema = {
  type: 'object',
  properties: { items: { type: 'array', items: videoSchema }, nextCursor: { type: ['string', 'null'] } },
} as const;

/** One schema per route of registerVideoRoutes. */
export const videoRouteSchemas = {
  list: {
    summary: 'List videos, newest first: live runs and VOD assets. Without the operator token, public ones only.',
    tags: ['videos'],
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { type: 'string', enum: ['live', 'vod'] },
        status: { type: 'string', enum: [...VIDEO_STATUSES] },
        streamId: { type: 'string', pattern: ID_PATTERN },
        limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 },
        cursor: { type: 'string', maxLength: 512 },
      },
    },
    response: { 200: listSchema, 400: errorSchema },
  },
  search: {
    summary: 'Full-text search over titles and descriptions (web search syntax: "phrase", -word, or). Best match first.',
    tags: ['videos'],
    querystring: {
      type: 'object',
      required: ['q'],
      additionalProperties: false,
      properties: {
        q: { type: 'string', minLength: 1, maxLength: 200 },
        limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
      },
    },
    response: { 200: { type: 'object', properties: { items: { type: 'array', items: videoSchema } } }, 400: errorSchema },
  },
  get: {
    summary: 'One video: metadata, status, progress, duration, renditions, poster and playback URLs. Private ones need the operator token.',
    tags: ['videos'],
    params: idParams,
    response: { 200: videoSchema, 404: errorSchema },
  },
  update: {
    summary: 'Change title, description or visibility',
    tags: ['videos'],
    params: idParams,
    body: {
      type: 'object',
      additionalProperties: false,
      properties: {
        title: { type: 'string', minLength: 1, maxLength: MAX_TITLE_LENGTH },
        description: { type: 'string', maxLength: MAX_DESCRIPTION_LENGTH },
        visibility: { type: 'string', enum: [...VISIBILITIES] },
      },
    },
    response: { 200: videoSchema, 404: errorSchema },
  },
  delete: {
    summary: 'Delete a video and its files in storage. A run being recorded cannot be deleted until its stream ends.',
    tags: ['videos'],
    params: idParams,
    response: { 404: errorSchema, 409: errorSchema },
  },
  playbackToken: {
    summary: 'A signed playback token for one video (or the live stream of a live run); put it in the path: /t/<token>/...',
    tags: ['videos'],
    params: idParams,
    body: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { ttlSeconds: { type: 'integer', minimum: 10, maximum: MAX_TOKEN_TTL_SECONDS } },
    },
    response: {
      201: {
        type: 'object',
        properties: {
          token: { type: 'string' },
          expiresAt: { type: 'string', format: 'date-time' },
          playback: { type: 'object', properties: { hls: { type: 'string' } } },
        },
      },
      404: errorSchema,
    },
  },
  watch: {
    summary:
      'A player\'s progress and quality beacon: position, startup time, rebuffers, bitrate. One viewing session per viewerId, updated by each beacon. Public and unlisted videos need no token; a private one needs its playback token in "token" (403 otherwise). An unknown id is ignored (204), so beacons tell nothing about which ids exist. Bounded per address and per video: 429 with Retry-After past the bounds.',
    tags: ['videos'],
    params: idParams,
    body: {
      type: 'object',
      required: ['viewerId', 'position'],
      additionalProperties: false,
      properties: {
        viewerId: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$', description: 'Random id of one viewing session' },
        position: { type: 'number', minimum: 0, maximum: 1e7, description: 'Seconds into the video' },
        startupMs: { type: 'integer', minimum: 0, maximum: 600_000 },
        rebuffers: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        rebufferMs: { type: 'integer', minimum: 0, maximum: 1e9 },
        bitrateKbps: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        token: { type: 'string', minLength: 1, maxLength: 256, description: 'Playback token of a private video (or of its live stream)' },
      },
    },
    response: { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema },
  },
  views: {
    summary: 'Viewing history of a video: one entry per viewing session, most recent first',
    tags: ['videos'],
    params: idParams,
    querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 100 } } },
    response: { 404: errorSchema },
  },
} satisfies Record<string, FastifySchema>;

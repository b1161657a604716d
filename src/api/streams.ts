import type { FastifyInstance } from 'fastify';
import { AppError, codecString, hashSecret, newStreamKey, validateLadder } from '../core/index.js';
import type { LadderRung, StreamProfile } from '../core/index.js';
import { effectiveLadder } from '../catalog/index.js';
import type { Catalog, StreamRecord, Visibility } from '../catalog/index.js';
import type { TranscodeStatus } from '../livetranscode/index.js';
import type { LiveStatus } from '../stream/index.js';
import { streamRouteSchemas as schemas } from './streams.schemas.js';

/** What the stream routes read and change in the catalog. */
export type StreamCatalog = Pick<
  Catalog,
  'createStream' | 'getStream' | 'listStreams' | 'updateStream' | 'rotateStreamKey' | 'deleteStream' | 'listSessions'
>;

/** What the stream routes ask of the stream hub: live status, and cutting a publisher off. */
export interface LiveStreamControl {
  status(streamId: string): LiveStatus | undefined;
  /** Cuts the current publisher off; false when there is none. */
  kick(streamId: string, reason: string): boolean;
  /** The stream key no longer holds (rotated, stream deleted); with `kick` the current publisher is cut off too. */
  revoke(streamId: string, opts: { kick: boolean; reason: string }): void;
  /** Ends the stream now: its publisher is cut off, its readers told. */
  end(streamId: string, reason: string): void;
}

/** The ABR ladder at work for a live stream (the live transcoder). */
export interface TranscodeStatusSource {
  status(streamId: string): TranscodeStatus | undefined;
}

export interface StreamRoutesDeps {
  readonly catalog: StreamCatalog;
  readonly hub: LiveStreamControl;
  readonly transcoder?: TranscodeStatusSource;
  readonly publicBaseUrl: string;
  readonly publicRtmpUrl: string;
  /** A stream's visibility changed: playback caches forget it, its live run follows it. */
  readonly onVisibilityChange?: (streamId: string, visibility: Visibility) => Promise<void> | void;
}

function liveView(st: LiveStatus | undefined, now: number, transcode: TranscodeStatus | undefined) {
  if (!st) return null;
  const v = st.tracks?.video;
  const a = st.tracks?.audio;
  return {
    state: st.state,
    protocol: st.protocol,
    remoteAddress: st.remoteAddress,
    video: v ? { codec: v.codec, codecs: safeCodecString(v), width: v.width, height: v.height } : null,
    audio: a ? { codec: a.codec, codecs: safeCodecString(a), sampleRate: a.sampleRate, channels: a.channels } : null,
    fps: st.fps,
    bitrateKbps: st.bitrateKbps,
    uptimeSeconds: Math.round((now - st.liveSince) / 1000),
    sessionUptimeSeconds: Math.round((now - st.sessionSince) / 1000),
    sessions: st.sessions,
    repairedTimestamps: st.repairedTimestamps,
    transcode: transcode ? transcodeView(transcode) : null,
  };
}

function transcodeView(t: TranscodeStatus) {
  const fit = t.fit ? { ...t.fit, sourceVideoKbps: t.fit.sourceVideoKbps ?? null } : null;
  return { ...t, pid: t.pid ?? null, speed: t.speed ?? null, lagMs: t.lagMs ?? null, lastError: t.lastError ?? null, fit };
}

/** A ladder from a request body: undefined leaves it, null means the default, anything else is validated. */
function ladderInput(v: unknown): LadderRung[] | null | undefined {
  return v === undefined || v === null ? v : validateLadder(v);
}

function safeCodecString(t: Parameters<typeof codecString>[0]): string {
  try {
    return codecString(t);
  } catch {
    return t.codec;
  }
}

export function registerStreamRoutes(app: FastifyInstance, deps: StreamRoutesDeps): void {
  const { catalog, hub } = deps;
  const view = (s: StreamRecord, streamKey?: string) => ({
    id: s.id,
    name: s.name,
    profile: s.profile,
    ladder: effectiveLadder(s),
    customLadder: s.ladder !== null,
    record: s.record,
    visibility: s.visibility,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    keyRotatedAt: s.keyRotatedAt.toISOString(),
    ...(streamKey ? { streamKey } : {}),
    ingest: {
      rtmp: streamKey ? `${deps.publicRtmpUrl}/${streamKey}` : deps.publicRtmpUrl,
      rtmpServer: deps.publicRtmpUrl,
      whip: `${deps.publicBaseUrl}/whip`,
    },
    playback: { hls: `${deps.publicBaseUrl}/live/${s.id}/master.m3u8`, watch: `${deps.publicBaseUrl}/watch/${s.id}` },
    live: liveView(hub.status(s.id), Date.now(), deps.transcoder?.status(s.id)),
  });
  const mustGet = async (id: string) => {
    const s = await catalog.getStream(id);
    if (!s) throw new AppError('E_STREAM_NOT_FOUND', `no stream ${id}`);
    return s;
  };

  app.post<{ Body: { name: string; profile?: StreamProfile; record?: boolean; visibility?: Visibility; ladder?: unknown } }>(
    '/api/v1/streams',
    { schema: schemas.create },
    async (req, reply) => {
      const { name, profile = 'abr', record, visibility } = req.body;
      const ladder = ladderInput(req.body.ladder);
      const key = newStreamKey();
      const s = await catalog.createStream({ name, profile, record, visibility, ladder, keyHash: hashSecret(key) });
      req.log.info({ stream: s.id, name: s.name }, 'stream created');
      return reply.code(201).send(view(s, key));
    },
  );

  app.get<{ Querystring: { limit: number; cursor?: string } }>('/api/v1/streams', { schema: schemas.list }, async (req) => {
    const page = await catalog.listStreams({ limit: req.query.limit, cursor: req.query.cursor });
    return { items: page.items.map((s) => view(s)), nextCursor: page.nextCursor };
  });

  app.get<{ Params: { id: string } }>('/api/v1/streams/:id', { schema: schemas.get }, async (req) => view(await mustGet(req.params.id)));

  app.patch<{
    Params: { id: string };
    Body: { name?: string; profile?: StreamProfile; record?: boolean; visibility?: Visibility; ladder?: unknown };
  }>('/api/v1/streams/:id', { schema: schemas.update }, async (req) => {
    const { name, profile, record, visibility } = req.body;
    const ladder = ladderInput(req.body.ladder);
    const s = await catalog.updateStream(req.params.id, { name, profile, record, visibility, ladder });
    if (s && visibility !== undefined) await deps.onVisibilityChange?.(s.id, s.visibility);
    if (!s) throw new AppError('E_STREAM_NOT_FOUND', `no stream ${req.params.id}`);
    req.log.info({ stream: s.id, fields: Object.keys(req.body), live: hub.status(s.id) !== undefined }, 'stream updated');
    return view(s);
  });

  app.get<{ Params: { id: string } }>('/api/v1/streams/:id/live', { schema: schemas.live }, async (req) => {
    await mustGet(req.params.id);
    const live = liveView(hub.status(req.params.id), Date.now(), deps.transcoder?.status(req.params.id));
    if (!live) throw new AppError('E_STREAM_NOT_LIVE', `stream ${req.params.id} is not live`);
    return live;
  });

  app.get<{ Params: { id: string }; Querystring: { limit: number } }>(
    '/api/v1/streams/:id/sessions',
    { schema: schemas.sessions },
    async (req) => {
      await mustGet(req.params.id);
      const items = await catalog.listSessions(req.params.id, req.query.limit);
      return { items };
    },
  );

  app.post<{ Params: { id: string }; Body: { disconnect?: boolean } | undefined }>(
    '/api/v1/streams/:id/rotate-key',
    { schema: schemas.rotateKey },
    async (req) => {
      const key = newStreamKey();
      const s = await catalog.rotateStreamKey(req.params.id, hashSecret(key));
      if (!s) throw new AppError('E_STREAM_NOT_FOUND', `no stream ${req.params.id}`);
      hub.revoke(s.id, { kick: req.body?.disconnect === true, reason: 'stream key rotated' });
      req.log.info({ stream: s.id }, 'stream key rotated');
      return view(s, key);
    },
  );

  app.post<{ Params: { id: string } }>('/api/v1/streams/:id/disconnect', { schema: schemas.disconnect }, async (req, reply) => {
    await mustGet(req.params.id);
    if (!hub.kick(req.params.id, 'disconnected by operator'))
      throw new AppError('E_STREAM_NOT_LIVE', `stream ${req.params.id} has no publisher`);
    req.log.info({ stream: req.params.id }, 'publisher disconnected by operator');
    return reply.code(204).send();
  });

  app.delete<{ Params: { id: string } }>('/api/v1/streams/:id', { schema: schemas.delete }, async (req, reply) => {
    const ok = await catalog.deleteStream(req.params.id);
    if (!ok) throw new AppError('E_STREAM_NOT_FOUND', `no stream ${req.params.id}`);
    hub.revoke(req.params.id, { kick: false, reason: 'stream deleted' });
    hub.end(req.params.id, 'stream deleted');
    req.log.info({ stream: req.params.id }, 'stream deleted');
    return reply.code(204).send();
  });
}

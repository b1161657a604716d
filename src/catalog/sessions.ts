import type { Queryable } from './db.js';
import { checkLimit, toDate, toNumber } from './types.js';
import type { PublishSessionRecord } from './types.js';

interface SessionRow {
  id: string;
  stream_id: string;
  protocol: string;
  remote_address: string;
  started_at: Date | string;
  ended_at: Date | string | null;
  end_reason: string | null;
  bytes: string | number;
  frames: string | number;
}

const COLUMNS = 'id, stream_id, protocol, remote_address, started_at, ended_at, end_reason, bytes, frames';

function toSession(r: SessionRow): PublishSessionRecord {
  return {
    id: r.id,
    streamId: r.stream_id,
    protocol: r.protocol,
    remoteAddress: r.remote_address,
    startedAt: toDate(r.started_at),
    endedAt: r.ended_at === null ? null : toDate(r.ended_at),
    endReason: r.end_reason,
    bytes: toNumber(r.bytes),
    frames: toNumber(r.frames),
  };
}

/** An unknown streamId fails with E_CONFLICT (foreign key), a reused id with E_CONFLICT (primary key). */
export async function startSession(
  q: Queryable,
  s: { id: string; streamId: string; protocol: string; remoteAddress: string; startedAt: Date },
): Promise<void> {
  await q.query(`INSERT INTO publish_sessions (id, stream_id, protocol, remote_address, started_at) VALUES ($1, $2, $3, $4, $5)`, [
    s.id,
    s.streamId,
    s.protocol,
    s.remoteAddress,
    s.startedAt,
  ]);
}

/**
 * Records the end of a session once: a second end keeps the first. Returns false when no open session has
 * that id (never started, already ended, or its stream was deleted meanwhile).
 */
export async function endSession(
  q: Queryable,
  id: string,
  end: { endedAt: Date; reason: string; bytes: number; frames: number },
): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE publish_sessions SET ended_at = $2, end_reason = $3, bytes = $4, frames = $5
      WHERE id = $1 AND ended_at IS NULL RETURNING id`,
    [id, end.endedAt, end.reason, Math.round(end.bytes), Math.round(end.frames)],
  );
  return rows.length > 0;
}

/** Newest first. */
export async function listSessions(q: Queryable, streamId: string, limit: number): Promise<PublishSessionRecord[]> {
  checkLimit(limit);
  const { rows } = await q.query<SessionRow>(
    `SELECT ${COLUMNS} FROM publish_sessions WHERE stream_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`,
    [streamId, limit],
  );
  return rows.map(toSession);
}

import { AppError, newId, validateLadder } from '../core/index.js';
import type { LadderRung } from '../core/index.js';
import type { Queryable } from './db.js';
import { checkLimit, toDate, toNumber } from './types.js';
import type { NewStream, Page, StreamPatch, StreamProfile, StreamRecord, Visibility } from './types.js';

interface StreamRow {
  id: string;
  name: string;
  profile: StreamProfile;
  record: boolean;
  visibility: Visibility;
  ladder: LadderRung[] | string | null;
  created_at: Date | string;
  updated_at: Date | string;
  key_rotated_at: Date | string;
}

const COLUMNS = 'id, name, profile, record, visibility, ladder, created_at, updated_at, key_rotated_at';

/**
 * jsonb as either driver returns it: both pg and PGlite parse it (measured); a string, from a pool set up
 * with other type parsers, is tolerated as toDate tolerates one.
 */
function toLadder(v: StreamRow['ladder']): LadderRung[] | null {
  if (v === null) return null;
  return typeof v === 'string' ? (JSON.parse(v) as LadderRung[]) : v;
}

/**
 * The jsonb parameter for a ladder: checked (the catalog is the last gate before the column, whoever calls
 * it) and sorted, then sent as JSON text. pg would send a JS array as a PostgreSQL array literal.
 */
function ladderParam(ladder: readonly LadderRung[] | null | undefined): string | null {
  return ladder === undefined || ladder === null ? null : JSON.stringify(validateLadder(ladder));
}

function toStream(r: StreamRow): StreamRecord {
  return {
    id: r.id,
    name: r.name,
    profile: r.profile,
    record: r.record,
    visibility: r.visibility,
    ladder: toLadder(r.ladder),
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
    keyRotatedAt: toDate(r.key_rotated_at),
  };
}

/**
 * Keyset cursor: the (created_at, id) of the last row of a page, as base64url JSON. Opaque to callers;
 * timestamps are millisecond Dates written by us, so the round trip through a JS number is exact.
 */
function encodeCursor(s: StreamRecord): string {
  return Buffer.from(JSON.stringify({ t: s.createdAt.getTime(), id: s.id }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { t: Date; id: string } {
  const bad = (cause?: unknown) => new AppError('E_VALIDATION', 'invalid cursor', { cause });
  if (cursor.length === 0 || cursor.length > 512 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch (err) {
    throw bad(err);
  }
  if (typeof v !== 'object' || v === null) throw bad();
  const { t, id } = v as { t?: unknown; id?: unknown };
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || typeof id !== 'string' || id.length === 0) throw bad();
  const date = new Date(t);
  if (Number.isNaN(date.getTime())) throw bad();
  return { t: date, id };
}

export async function createStream(q: Queryable, input: NewStream): Promise<StreamRecord> {
  const now = new Date();
  const ladder = ladderParam(input.ladder);
  const { rows } = await q.query<StreamRow>(
    `INSERT INTO streams (id, name, profile, record, visibility, ladder, key_hash, created_at, updated_at, key_rotated_at)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $8, $8) RETURNING ${COLUMNS}`,
    [newId(), input.name, input.profile, input.record ?? true, input.visibility ?? 'public', ladder, input.keyHash, now],
  );
  return toStream(rows[0]);
}

export async function getStream(q: Queryable, id: string): Promise<StreamRecord | undefined> {
  const { rows } = await q.query<StreamRow>(`SELECT ${COLUMNS} FROM streams WHERE id = $1`, [id]);
  return rows.length > 0 ? toStream(rows[0]) : undefined;
}

export async function findStreamByKeyHash(q: Queryable, keyHash: string): Promise<StreamRecord | undefined> {
  const { rows } = await q.query<StreamRow>(`SELECT ${COLUMNS} FROM streams WHERE key_hash = $1`, [keyHash]);
  return rows.length > 0 ? toStream(rows[0]) : undefined;
}

export async function listStreams(q: Queryable, opts: { limit: number; cursor?: string }): Promise<Page<StreamRecord>> {
  const { limit } = opts;
  checkLimit(limit);
  const after = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor);
  // One extra row tells whether another page follows, so the last page has nextCursor null.
  const { rows } =
    after === undefined
      ? await q.query<StreamRow>(`SELECT ${COLUMNS} FROM streams ORDER BY created_at, id LIMIT $1`, [limit + 1])
      : await q.query<StreamRow>(`SELECT ${COLUMNS} FROM streams WHERE (created_at, id) > ($1, $2) ORDER BY created_at, id LIMIT $3`, [
          after.t,
          after.id,
          limit + 1,
        ]);
  const items = rows.slice(0, limit).map(toStream);
  const nextCursor = rows.length > limit ? encodeCursor(items[items.length - 1]) : null;
  return { items, nextCursor };
}

export async function countStreams(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: string | number }>('SELECT count(*) AS n FROM streams');
  return toNumber(rows[0].n);
}

export async function updateStream(q: Queryable, id: string, patch: StreamPatch): Promise<StreamRecord | undefined> {
  const { name, profile, record, visibility, ladder } = patch;
  if (name === undefined && profile === undefined && record === undefined && visibility === undefined && ladder === undefined) {
    return getStream(q, id);
  }
  // For name, profile and record a null parameter keeps the column as it is (none of them accepts null).
  // The ladder may be set to null (the default ladder), so whether to touch it travels in its own flag.
  const { rows } = await q.query<StreamRow>(
    `UPDATE streams
        SET name = COALESCE($2, name), profile = COALESCE($3, profile), record = COALESCE($4, record),
            ladder = CASE WHEN $5::boolean THEN $6::jsonb ELSE ladder END, updated_at = $7,
            visibility = COALESCE($8, visibility)
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, name ?? null, profile ?? null, record ?? null, ladder !== undefined, ladderParam(ladder), new Date(), visibility ?? null],
  );
  return rows.length > 0 ? toStream(rows[0]) : undefined;
}

export async function rotateStreamKey(q: Queryable, id: string, keyHash: string): Promise<StreamRecord | undefined> {
  const { rows } = await q.query<StreamRow>(
    `UPDATE streams SET key_hash = $2, key_rotated_at = $3, updated_at = $3 WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, keyHash, new Date()],
  );
  return rows.length > 0 ? toStream(rows[0]) : undefined;
}

/** Its publish sessions go with it (ON DELETE CASCADE). */
export async function deleteStream(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>('DELETE FROM streams WHERE id = $1 RETURNING id', [id]);
  return rows.length > 0;
}

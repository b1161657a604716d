import { AppError } from '../core/index.js';
import type { Logger } from '../core/index.js';
import type { Db } from './db.js';

/**
 * One schema change. `sql` may hold several statements; it runs in one transaction together with the row
 * that records it, so a migration is applied entirely or not at all.
 *
 * To extend: append a new entry with the next version. Never edit or reorder an applied one. The same SQL
 * runs on PGlite and PostgreSQL, so stay within what both accept (plain PostgreSQL, no extensions).
 * Timestamps are written by the application (millisecond Dates), which keeps keyset cursors exact; ids
 * sort bytewise (COLLATE "C") so (created_at, id) order is the same on every server, whatever its locale.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'streams and publish sessions',
    sql: `
      CREATE TABLE streams (
        id             text COLLATE "C" PRIMARY KEY,
        name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
        profile        text NOT NULL CHECK (profile IN ('passthrough', 'abr')),
        record         boolean NOT NULL DEFAULT true,
        key_hash       text NOT NULL UNIQUE,
        created_at     timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL,
        key_rotated_at timestamptz NOT NULL
      );
      CREATE INDEX streams_created_at_id_idx ON streams (created_at, id);

      CREATE TABLE publish_sessions (
        id             text COLLATE "C" PRIMARY KEY,
        stream_id      text COLLATE "C" NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
        protocol       text NOT NULL,
        remote_address text NOT NULL,
        started_at     timestamptz NOT NULL,
        ended_at       timestamptz,
        end_reason     text,
        bytes          bigint NOT NULL DEFAULT 0,
        frames         bigint NOT NULL DEFAULT 0
      );
      CREATE INDEX publish_sessions_stream_started_idx ON publish_sessions (stream_id, started_at DESC);
    `,
  },
  {
    version: 2,
    name: 'custom ABR ladder per stream',
    // NULL = the default ladder. Rungs are checked by validateLadder before they get here; the CHECK only
    // keeps the column's shape, so a row written by hand cannot break reading it back.
    sql: `
      ALTER TABLE streams ADD COLUMN ladder jsonb
        CONSTRAINT streams_ladder_is_array CHECK (ladder IS NULL OR jsonb_typeof(ladder) = 'array');
    `,
  },
];

const CREATE_MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL
  )`;

/**
 * Serialises migrators per schema. A transaction-scoped advisory lock is released by COMMIT/ROLLBACK, so a
 * crashed migrator never leaves it held. On PGlite (one connection) it is a no-op that costs nothing.
 */
const LOCK = `SELECT pg_advisory_xact_lock(hashtext('livepack.schema_migrations.' || coalesce(current_schema(), '')))`;

function checkOrder(migrations: readonly Migration[]): void {
  let last = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= last) {
      throw new AppError('E_INTERNAL', `catalog: migration versions must increase; ${m.version} follows ${last}`);
    }
    last = m.version;
  }
}

/**
 * Applies the migrations not yet recorded, each in its own transaction under the lock; safe to run again and
 * safe when several processes start at once (the loser waits, then sees the version recorded and skips it).
 * Returns the versions this call applied.
 */
export async function migrate(db: Db, logger: Logger, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  checkOrder(migrations);
  const applied: number[] = [];
  for (const m of migrations) {
    const did = await db.transaction(async (tx) => {
      await tx.query(LOCK);
      await tx.exec(CREATE_MIGRATIONS_TABLE);
      const { rows } = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (rows.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        new Date(),
      ]);
      return true;
    });
    if (did) {
      applied.push(m.version);
      logger.info({ version: m.version, name: m.name }, 'catalog: migration applied');
    }
  }
  return applied;
}

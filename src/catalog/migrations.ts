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
  {
    version: 3,
    name: 'videos (live runs, recordings, uploads), their segments, jobs, viewing history',
    // A video is one live run of a stream (type 'live' while it runs, 'vod' once it ended and was recorded)
    // or an upload. video_segments is the recorder's journal: a row is written only after its object is in
    // storage, so the rows of a video are exactly what a crash left playable. The search vector is a
    // generated column (title weighted above description); 'english' stems ("racing" finds "race").
    sql: `
      ALTER TABLE streams ADD COLUMN visibility text NOT NULL DEFAULT 'public'
        CONSTRAINT streams_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private'));

      CREATE TABLE videos (
        id          text COLLATE "C" PRIMARY KEY,
        type        text NOT NULL CHECK (type IN ('live', 'vod')),
        source      text NOT NULL CHECK (source IN ('recording', 'upload')),
        stream_id   text COLLATE "C" REFERENCES streams (id) ON DELETE SET NULL,
        run_id      text,
        title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
        description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
        visibility  text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'unlisted', 'private')),
        status      text NOT NULL CHECK (status IN ('live', 'uploading', 'queued', 'processing', 'ready', 'failed')),
        recording   boolean NOT NULL DEFAULT false,
        progress    real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        duration    double precision,
        renditions  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(renditions) = 'array'),
        thumbnail   boolean NOT NULL DEFAULT false,
        error       text,
        upload      jsonb,
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        ended_at    timestamptz,
        search      tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', description), 'B')
                    ) STORED
      );
      CREATE INDEX videos_created_at_id_idx ON videos (created_at DESC, id DESC);
      CREATE INDEX videos_stream_idx ON videos (stream_id);
      CREATE INDEX videos_status_idx ON videos (status);
      CREATE INDEX videos_search_idx ON videos USING gin (search);

      CREATE TABLE video_segments (
        video_id          text COLLATE "C" NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        rendition         text NOT NULL,
        msn               integer NOT NULL,
        uri               text NOT NULL,
        init_uri          text NOT NULL,
        duration          double precision NOT NULL,
        discontinuity     boolean NOT NULL,
        gap               boolean NOT NULL DEFAULT false,
        bytes             integer NOT NULL,
        program_date_time timestamptz,
        PRIMARY KEY (video_id, rendition, msn)
      );

      CREATE TABLE jobs (
        id           text COLLATE "C" PRIMARY KEY,
        kind         text NOT NULL,
        video_id     text COLLATE "C" REFERENCES videos (id) ON DELETE CASCADE,
        payload      jsonb NOT NULL DEFAULT '{}',
        state        text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        attempts     integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 3,
        run_at       timestamptz NOT NULL,
        lease_owner  text,
        lease_until  timestamptz,
        last_error   text,
        created_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL
      );
      CREATE INDEX jobs_queued_idx ON jobs (run_at) WHERE state = 'queued';
      CREATE INDEX jobs_running_idx ON jobs (lease_until) WHERE state = 'running';

      CREATE TABLE video_views (
        video_id     text COLLATE "C" NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        viewer_id    text NOT NULL,
        position     double precision NOT NULL DEFAULT 0,
        startup_ms   integer,
        rebuffers    integer NOT NULL DEFAULT 0,
        rebuffer_ms  integer NOT NULL DEFAULT 0,
        bitrate_kbps integer,
        beacons      integer NOT NULL DEFAULT 0,
        started_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL,
        PRIMARY KEY (video_id, viewer_id)
      );
      CREATE INDEX video_views_updated_idx ON video_views (updated_at DESC);
    `,
  },
  {
    version: 4,
    name: 'live runs carry their origin and a heartbeat; segments say whether they start on a keyframe; jobs by video',
    // node_id + heartbeat_at let any origin sharing the catalog tell a run that is still being recorded
    // elsewhere from one whose origin died (its heartbeat stops), and finish only the latter.
    sql: `
      ALTER TABLE videos ADD COLUMN node_id text;
      ALTER TABLE videos ADD COLUMN heartbeat_at timestamptz;
      ALTER TABLE video_segments ADD COLUMN independent boolean NOT NULL DEFAULT true;
      CREATE INDEX jobs_video_idx ON jobs (video_id);
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
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, new Date()]);
      return true;
    });
    if (did) {
      applied.push(m.version);
      logger.info({ version: m.version, name: m.name }, 'catalog: migration applied');
    }
  }
  return applied;
}

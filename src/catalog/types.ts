import { AppError, DEFAULT_LADDER } from '../core/index.js';
import type { LadderRung, StreamProfile } from '../core/index.js';

export type { LadderRung, StreamProfile };

/** Who may watch a stream or a video. */
export const VISIBILITIES = ['public', 'unlisted', 'private'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

export interface StreamRecord {
  id: string;
  name: string;
  profile: StreamProfile;
  record: boolean;
  /** Who may watch: 'private' needs a playback token (also for its recordings, which start with it). */
  visibility: Visibility;
  /** The stream's own ABR ladder, highest rung first; null means DEFAULT_LADDER. Kept whatever the profile. */
  ladder: LadderRung[] | null;
  createdAt: Date;
  updatedAt: Date;
  keyRotatedAt: Date;
}

/** What createStream needs; `ladder` omitted or null means the default ladder. */
export interface NewStream {
  name: string;
  profile: StreamProfile;
  record?: boolean;
  visibility?: Visibility;
  ladder?: readonly LadderRung[] | null;
  keyHash: string;
}

/** Fields to change; undefined leaves a field as it is, `ladder: null` goes back to the default ladder. */
export interface StreamPatch {
  name?: string;
  profile?: StreamProfile;
  record?: boolean;
  visibility?: Visibility;
  ladder?: readonly LadderRung[] | null;
}

/** The ladder a stream transcodes to when its profile is 'abr': its own, else the default. */
export function effectiveLadder(s: Pick<StreamRecord, 'ladder'>): readonly LadderRung[] {
  return s.ladder ?? DEFAULT_LADDER;
}

export interface PublishSessionRecord {
  id: string;
  streamId: string;
  protocol: string;
  remoteAddress: string;
  startedAt: Date;
  endedAt: Date | null;
  endReason: string | null;
  bytes: number;
  frames: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** A timestamptz as either driver returns it (both give Date by default; strings are tolerated). */
export function toDate(v: Date | string): Date {
  return v instanceof Date ? v : new Date(v);
}

/** bigint/count columns: pg returns strings, PGlite numbers. Values stay far below 2^53 (bytes, frames). */
export function toNumber(v: string | number | bigint): number {
  return Number(v);
}

export const MAX_PAGE_SIZE = 1000;

export function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new AppError('E_VALIDATION', `limit must be an integer in 1..${MAX_PAGE_SIZE}`);
  }
}

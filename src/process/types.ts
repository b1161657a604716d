import type { Duplex, Readable, Writable } from 'node:stream';
import type { Logger } from '../core/index.js';

export type SupervisorState = 'idle' | 'starting' | 'running' | 'backoff' | 'failed' | 'stopped';

/**
 * How a child ended. 'never-started': it could not be spawned (ENOENT), or exited or was killed before it
 * was marked ready (bad arguments, unknown encoder, ready timeout). 'died': it ended by itself after it was
 * ready; exit code 0 counts too, because a live transcoder has no reason to finish on its own. 'stopped':
 * we asked it to end (stop() or restartNow()).
 */
export type ExitKind = 'never-started' | 'died' | 'stopped';

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Each restart waits `factor` times longer than the one before, up to maxMs. */
  readonly factor: number;
}

/** One spawned child, handed to onStart so the caller can wire its pipes. */
export interface ChildHandle {
  readonly pid: number;
  /** 1 for the first child, then one more per spawn (restarts included). */
  readonly attempt: number;
  readonly stdin: Writable;
  /** The caller must read it (or the child blocks once the pipe buffer is full). */
  readonly stdout: Readable;
  /** The pipes on fds 3, 4, ... (extra[0] is fd 3, FFmpeg's `pipe:3`). Read those the child writes to. */
  readonly extra: readonly Duplex[];
  /** The child works (e.g. its first output frame arrived). Only the first call counts. */
  markReady(): void;
  /**
   * Kills the child's process group at once (SIGKILL), e.g. when what it writes cannot be read. Its exit is
   * reported as one it was not asked for ('died' once ready, else 'never-started'), so restarts back off.
   * No-op once it has exited.
   */
  kill(): void;
}

export interface ExitInfo {
  readonly attempt: number;
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly kind: ExitKind;
  /** In words, for logs and status: 'exited with code 1 before ready', 'not ready within 5000 ms'... */
  readonly reason: string;
  /** The last lines the child printed on stderr, oldest first. */
  readonly stderrTail: readonly string[];
  readonly ranMs: number;
}

export interface SupervisorOptions {
  /** Names the child in logs. */
  readonly name: string;
  readonly command: string;
  /** Called at every (re)start, so a restart can run with other arguments (fewer outputs, say). */
  readonly args: () => readonly string[];
  readonly logger: Logger;
  /** Extra pipes on fds 3..3+n-1. Default 0. */
  readonly extraFds?: number;
  /** A child not marked ready this long after spawn is killed and counts as never started. */
  readonly readyTimeoutMs: number;
  readonly backoff: BackoffOptions;
  /** After a child has been ready this long, the next restart waits backoff.initialMs again. Default 30000. */
  readonly stableAfterMs?: number;
  /** Give up (state 'failed') after this many never-started children in a row. Default: never give up. */
  readonly maxStartFailures?: number;
  /** SIGTERM, then SIGKILL after this long. Default 3000. */
  readonly killTimeoutMs?: number;
  /** Logging limits for stderr; see StderrLog. Defaults: 2000 chars, 50 lines/s, 20 kept. */
  readonly stderr?: { readonly maxLineLength?: number; readonly maxLinesPerSec?: number; readonly tailLines?: number };
  readonly onStart?: (handle: ChildHandle) => void;
  /** Called exactly once per child, the spawn failures included. */
  readonly onExit?: (info: ExitInfo) => void;
}

/**
 * One FFmpeg run that is meant to finish (a file encode), as opposed to the live transcoder's child that
 * Supervisor keeps alive and restarts. Spawned and ended the way Supervisor does it (group.ts: its own
 * process group, so a kill reaches everything it started; SIGTERM, then SIGKILL); bounded by a total
 * timeout and by a stall timeout (no -progress output for that long). stderr goes through the same
 * StderrLog: line by line into the logger (debug), its last lines kept for the error.
 *
 * Also execTool: a short tool run (ffprobe, `ffmpeg -i`, a poster frame) whose whole output is wanted.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, type Logger } from '../core/index.js';
import { signalGroup, spawnGroup, terminateGroup } from './group.js';
import { ProgressParser } from './progress.js';
import { StderrLog } from './stderr.js';

export interface FfmpegRunOptions {
  readonly ffmpegPath: string;
  readonly args: readonly string[];
  /** Pipes on fds 3 .. 3 + extraFds - 1; fd 3 must be FFmpeg's `-progress pipe:3`. */
  readonly extraFds: number;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
  readonly stallTimeoutMs: number;
  /** FFmpeg's output position, microseconds; `pid` for inputBytesRead. */
  readonly onProgress?: (outTimeUs: number, pid: number) => void;
  /** Wire the output pipes (fd 4 and up: pipes[0] is fd 4) before any data flows. */
  readonly onPipes: (pipes: readonly Readable[], kill: (reason: Error) => void) => void;
}

/** How FFmpeg ended when it did not succeed. */
export class FfmpegError extends AppError {
  readonly exitCode: number | null;
  readonly stderrTail: readonly string[];
  constructor(message: string, exitCode: number | null, stderrTail: readonly string[], options?: { cause?: unknown }) {
    super('E_INTERNAL', message, options);
    this.name = 'FfmpegError';
    this.exitCode = exitCode;
    this.stderrTail = stderrTail;
  }
}

const STDERR_LIMITS = { maxLineLength: 500, maxLinesPerSec: 50, tailLines: 20 } as const;
const KILL_TIMEOUT_MS = 3000;
/**
 * After a killed FFmpeg exited, how long its pipes may take to close before they are destroyed: 'close'
 * waits for every pipe, and one the caller paused (storage backpressure) would otherwise hold it forever.
 */
const CLOSE_AFTER_EXIT_MS = 1000;

export interface ExecToolOptions {
  /** The tool is killed after this long. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  /** Most bytes of stdout or stderr kept; more kills the tool. Default 1 MiB. */
  readonly maxBuffer?: number;
}

export interface ExecToolResult {
  /** Exit status (0 is success); a tool that printed its answer may still exit non-zero (`ffmpeg -i`). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a short tool to its end and resolves with its exit status and output, whatever the status. Rejects
 * (AppError E_INTERNAL, the cause kept) only when it did not run to an answer: not found, killed by the
 * timeout or the signal, or more output than maxBuffer.
 */
export function execTool(cmd: string, args: readonly string[], o: ExecToolOptions): Promise<ExecToolResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, [...args], { timeout: o.timeoutMs, maxBuffer: o.maxBuffer ?? 1 << 20, signal: o.signal }, (err, stdout, stderr) => {
      // execFile's error carries the exit status as a numeric `code`; anything else (ENOENT, killed by the
      // timeout, aborted, too much output) means the tool did not run to an answer.
      const e = err as { code?: unknown; killed?: boolean; message: string } | null;
      const status = typeof e?.code === 'number' ? e.code : undefined;
      if (e && (status === undefined || e.killed)) {
        reject(new AppError('E_INTERNAL', `${basename(cmd)} failed: ${e.message}`, { cause: e }));
        return;
      }
      resolve({ code: status ?? 0, stdout, stderr });
    });
  });
}

/**
 * Bytes a running process has read so far (Linux: `rchar` of /proc/<pid>/io, every thread counted);
 * undefined where that cannot be read. For FFmpeg with one file input and no stdin, that is about how far
 * into its input it is.
 */
export async function inputBytesRead(pid: number): Promise<number | undefined> {
  try {
    const m = /^rchar:\s*(\d+)$/m.exec(await readFile(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resolves when FFmpeg exited with 0 and every pipe was read to its end. Rejects with the abort reason on
 * abort, with the `kill` reason when the caller killed it, or with an FfmpegError (exit status, timeout,
 * stall) whose stderrTail says why.
 */
export function runFfmpeg(o: FfmpegRunOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (o.signal?.aborted) return reject(o.signal.reason);
    const stdio = ['ignore', 'ignore', 'pipe', ...Array.from({ length: o.extraFds }, () => 'pipe' as const)] as const;
    const child = spawnGroup(o.ffmpegPath, o.args, [...stdio]);
    const log = o.logger.child({ pid: child.pid });
    const stderr = child.pid === undefined ? undefined : new StderrLog(child.stderr!, { logger: log, ...STDERR_LIMITS });
    const tail = (): string[] => stderr?.tail() ?? [];
    // Our own failures are made when the run settles, so their stderrTail has the lines up to FFmpeg's end.
    let failure: Error | (() => Error) | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let closeTimer: NodeJS.Timeout | undefined;
    let exited = false;
    const pipes = child.stdio.slice(4) as Readable[];
    // The output of a killed FFmpeg is not wanted: should a pipe still be open a moment after the exit (a
    // grandchild holding it), every pipe is destroyed so that 'close' comes.
    const closeSoon = () => {
      if (!exited || !failure || closeTimer) return;
      closeTimer = setTimeout(() => {
        for (const s of child.stdio) s?.destroy();
      }, CLOSE_AFTER_EXIT_MS);
    };
    const kill = (reason: Error | (() => Error)) => {
      failure ??= reason;
      if (killTimer) return;
      // Nothing more is wanted from the rung pipes: a paused one (its reader waits on storage) must neither
      // keep FFmpeg blocked on a full pipe nor, after the exit, keep 'close' from ever coming.
      for (const p of pipes) p.destroy();
      killTimer = terminateGroup(child.pid, KILL_TIMEOUT_MS, log);
      closeSoon();
    };
    const onAbort = () => kill(o.signal!.reason instanceof Error ? o.signal!.reason : new AppError('E_CLOSED', 'packaging aborted'));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const total = setTimeout(
      () => kill(() => new FfmpegError(`FFmpeg did not finish within ${Math.round(o.timeoutMs / 1000)} s`, null, tail())),
      o.timeoutMs,
    );
    let stall: NodeJS.Timeout | undefined;
    const armStall = () => {
      clearTimeout(stall);
      stall = setTimeout(
        () => kill(() => new FfmpegError(`FFmpeg made no progress for ${Math.round(o.stallTimeoutMs / 1000)} s`, null, tail())),
        o.stallTimeoutMs,
      );
    };
    armStall();

    const cleanup = () => {
      clearTimeout(total);
      clearTimeout(stall);
      clearTimeout(killTimer);
      clearTimeout(closeTimer);
      o.signal?.removeEventListener('abort', onAbort);
      stderr?.close();
    };
    child.once('error', (err) => {
      const e = () => new FfmpegError(`could not run FFmpeg (${o.ffmpegPath}): ${err.message}`, null, tail(), { cause: err });
      if (child.pid !== undefined) return kill(e);
      // Never started (ENOENT, EACCES): no 'close' is owed.
      cleanup();
      reject(e());
    });
    for (const s of child.stdio) s?.on('error', (err) => o.logger.debug({ err }, 'ffmpeg pipe error'));
    const progress = new ProgressParser();
    (child.stdio[3] as Readable | null)?.on('data', (chunk: Buffer) => {
      for (const p of progress.push(chunk)) {
        armStall();
        if (p.outTimeUs !== undefined && p.outTimeUs >= 0 && child.pid !== undefined) o.onProgress?.(p.outTimeUs, child.pid);
      }
    });
    if (child.pid === undefined) return;
    try {
      o.onPipes(pipes, kill);
    } catch (err) {
      kill(err as Error);
    }

    child.once('exit', () => {
      exited = true;
      closeSoon();
    });
    // 'close' comes after the exit and after every pipe ended, so all output has been handed over.
    child.once('close', (code, signal) => {
      cleanup();
      if (child.pid === undefined) return;
      signalGroup(child.pid, 'SIGKILL', log); // anything FFmpeg left in its group
      if (failure) return reject(typeof failure === 'function' ? failure() : failure);
      if (code === 0) return resolve();
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const lines = tail();
      const last = lines.filter((l) => l.trim()).at(-1);
      reject(new FfmpegError(`FFmpeg ${how}${last ? `: ${last}` : ''}`, code, lines));
    });
  });
}

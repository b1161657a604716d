import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { Duplex, Writable } from 'node:stream';
import { AppError, ClosedError, type Logger } from '../core/index.js';
import { signalGroup, spawnGroup, terminateGroup } from './group.js';
import { StderrLog } from './stderr.js';
import type { ChildHandle, ExitInfo, ExitKind, SupervisorOptions, SupervisorState } from './types.js';

/** After the child exited, how long we wait for the rest of its stderr (the error message is often last). */
const STDERR_DRAIN_MS = 500;
/** stop() resolves at the latest this long after SIGKILL was due, whether or not the child was seen to exit. */
const STOP_MARGIN_MS = 1000;

/** Why we are ending a child, when we are. 'stop' wins over the others. */
type Ending = 'stop' | 'restart' | 'ready-timeout' | 'on-start-failed';

interface Run {
  readonly attempt: number;
  readonly pid: number | undefined;
  readonly startedAt: number;
  readonly log: Logger;
  readonly stderr: StderrLog | undefined;
  stdin?: Writable;
  ready: boolean;
  ending: Ending | undefined;
  restartReason?: string;
  readyTimer: NodeJS.Timeout | undefined;
  termSent: boolean;
  exited: boolean;
  done: boolean;
  timers: NodeJS.Timeout[];
}

/**
 * Keeps one long-running child (FFmpeg) alive: spawns it in its own process group, waits for the caller's
 * readiness signal, restarts it with exponential backoff when it dies, and gives up when it cannot start at
 * all (a bad encoder name fails the same way every time and must not spin). Kills always go to the whole
 * group, so helpers the child started do not outlive it. stderr is logged line by line.
 *
 * Modelled on mediasoup's Worker (spawn, stderr to the logger, 'died' vs. closed by us) and MediaMTX's
 * externalcmd (restart loop with a pause).
 */
export class Supervisor {
  readonly #opts: SupervisorOptions;
  readonly #log: Logger;
  readonly #killTimeoutMs: number;
  #state: SupervisorState = 'idle';
  #run: Run | undefined;
  #attempt = 0;
  #restarts = 0;
  #startFailures = 0;
  #delayMs: number;
  #lastExit: ExitInfo | undefined;
  #backoffTimer: NodeJS.Timeout | undefined;
  #restartPending: string | undefined;
  #stopping: Promise<void> | undefined;
  #resolveStop: (() => void) | undefined;

  constructor(options: SupervisorOptions) {
    const { name, backoff, readyTimeoutMs, extraFds = 0, maxStartFailures } = options;
    const check = (ok: boolean, what: string) => {
      if (!ok) throw new AppError('E_CONFIG_INVALID', `supervisor ${name}: ${what}`);
    };
    check(readyTimeoutMs > 0, 'readyTimeoutMs must be > 0');
    check(backoff.initialMs >= 0 && backoff.maxMs >= backoff.initialMs, 'backoff needs 0 <= initialMs <= maxMs');
    check(backoff.factor >= 1, 'backoff.factor must be >= 1');
    check(Number.isInteger(extraFds) && extraFds >= 0 && extraFds <= 16, 'extraFds must be an integer 0..16');
    check(maxStartFailures === undefined || maxStartFailures >= 1, 'maxStartFailures must be >= 1');
    this.#opts = options;
    this.#log = options.logger.child({ proc: name });
    this.#killTimeoutMs = options.killTimeoutMs ?? 3000;
    this.#delayMs = backoff.initialMs;
  }

  get state(): SupervisorState {
    return this.#state;
  }
  /** Automatic restarts after a child exited unasked (died or never started). restartNow() is not counted. */
  get restarts(): number {
    return this.#restarts;
  }
  /** Never-started children in a row; back to 0 once one is ready. */
  get startFailures(): number {
    return this.#startFailures;
  }
  get lastExit(): ExitInfo | undefined {
    return this.#lastExit;
  }
  /** The current child's pid (and process group id), if one is alive. */
  get pid(): number | undefined {
    return this.#run?.exited === false ? this.#run.pid : undefined;
  }
  /** The current child's last stderr lines, else the last exited one's. */
  get stderrTail(): readonly string[] {
    return this.#run?.stderr?.tail() ?? this.#lastExit?.stderrTail ?? [];
  }

  /** Spawns the first child. No-op unless idle; after stop() it throws. */
  start(): void {
    if (this.#state === 'stopped') throw new ClosedError(`supervisor ${this.#opts.name}`);
    if (this.#state === 'idle') this.#spawn();
  }

  /**
   * Ends the current child and spawns a new one at once, without backoff (its args() may have changed).
   * The old child's exit is reported as 'stopped'. From 'failed' this tries again from zero failures.
   */
  restartNow(reason: string): void {
    if (this.#stopping) return;
    this.#log.info({ reason }, 'restart requested');
    const run = this.#run;
    if (run) {
      // Running, being killed for another reason, or already exited and being reported: the next child
      // follows its exit at once either way.
      this.#restartPending = reason;
      if (!run.exited) {
        run.restartReason = reason;
        this.#kill(run, 'restart');
      }
    } else {
      clearTimeout(this.#backoffTimer);
      if (this.#state === 'failed') this.#startFailures = 0;
      this.#spawn();
    }
  }

  /**
   * Stops restarting and ends the child's process group: SIGTERM, SIGKILL after killTimeoutMs. Resolves once
   * the child has exited, or at the latest killTimeoutMs + 1 s later. Idempotent.
   */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    clearTimeout(this.#backoffTimer);
    const run = this.#run;
    if (!run) {
      this.#state = 'stopped';
      this.#stopping = Promise.resolve();
      return this.#stopping;
    }
    this.#stopping = new Promise<void>((resolve) => {
      const bound = setTimeout(() => {
        this.#log.error({ pid: run.pid }, 'child did not exit after SIGKILL; giving up waiting');
        this.#state = 'stopped';
        resolve();
      }, this.#killTimeoutMs + STOP_MARGIN_MS);
      this.#resolveStop = () => {
        clearTimeout(bound);
        resolve();
      };
    });
    if (!run.exited) this.#kill(run, 'stop');
    return this.#stopping;
  }

  #spawn(): void {
    const attempt = ++this.#attempt;
    const { command, extraFds = 0, stderr: limits } = this.#opts;
    this.#state = 'starting';
    let child: ChildProcess;
    let args: string[];
    try {
      args = [...this.#opts.args()];
      const stdio: StdioOptions = Array.from({ length: 3 + extraFds }, () => 'pipe' as const);
      // The child leads its own process group, so one kill(-pid) reaches everything it started.
      child = spawnGroup(command, args, stdio);
    } catch (err) {
      // Invalid arguments (a NUL byte, args() throwing): report like a spawn failure, after this call returns.
      const run = this.#newRun(attempt, undefined, this.#log.child({ attempt }), undefined);
      setImmediate(() => this.#finish(run, null, null, `spawn failed: ${(err as Error).message}`));
      return;
    }
    const log = this.#log.child({ attempt, pid: child.pid });
    const stderr =
      child.pid === undefined
        ? undefined
        : new StderrLog(child.stderr!, {
            logger: log,
            maxLineLength: limits?.maxLineLength ?? 2000,
            maxLinesPerSec: limits?.maxLinesPerSec ?? 50,
            tailLines: limits?.tailLines ?? 20,
          });
    const run = this.#newRun(attempt, child.pid, log, stderr);
    run.stdin = child.stdin ?? undefined;
    // A child that exits while we write to it gives EPIPE on stdin; that must not become an uncaught error.
    for (const s of child.stdio) s?.on('error', (err) => run.log.debug({ err }, 'pipe error'));
    child.once('exit', (code, signal) => this.#onExit(run, code, signal));
    child.on('error', (err) => {
      if (run.pid === undefined) this.#finish(run, null, null, `spawn failed: ${err.message}`);
      else run.log.warn({ err }, 'child process error');
    });
    if (run.pid === undefined) return; // 'error' follows (ENOENT, EACCES)
    run.log.info({ command, args }, 'spawned');
    run.readyTimer = setTimeout(() => this.#kill(run, 'ready-timeout'), this.#opts.readyTimeoutMs);
    const handle: ChildHandle = {
      pid: run.pid,
      attempt,
      stdin: child.stdin!,
      stdout: child.stdout!,
      extra: child.stdio.slice(3) as Duplex[],
      markReady: () => this.#markReady(run),
      kill: () => {
        if (!run.exited) signalGroup(run.pid, 'SIGKILL', run.log);
      },
    };
    try {
      this.#opts.onStart?.(handle);
    } catch (err) {
      run.log.error({ err }, 'onStart threw; ending the child');
      this.#kill(run, 'on-start-failed');
    }
  }

  #newRun(attempt: number, pid: number | undefined, log: Logger, stderr: StderrLog | undefined): Run {
    const run: Run = {
      attempt,
      pid,
      startedAt: performance.now(),
      log,
      stderr,
      ready: false,
      ending: undefined,
      readyTimer: undefined,
      termSent: false,
      exited: false,
      done: false,
      timers: [],
    };
    this.#run = run;
    return run;
  }

  #markReady(run: Run): void {
    // Output read just after the exit event (while stderr drains) still proves the child worked.
    if (run !== this.#run || run.ready || run.done || run.ending) return;
    run.ready = true;
    clearTimeout(run.readyTimer);
    this.#startFailures = 0;
    run.log.info({ readyMs: Math.round(performance.now() - run.startedAt) }, 'ready');
    if (run.exited) return;
    this.#state = 'running';
    run.timers.push(setTimeout(() => (this.#delayMs = this.#opts.backoff.initialMs), this.#opts.stableAfterMs ?? 30_000));
  }

  #kill(run: Run, why: Ending): void {
    if (why === 'stop' || run.ending === undefined) run.ending = why;
    if (run.termSent || run.exited) return;
    run.termSent = true;
    if (why === 'ready-timeout') run.log.warn({ readyTimeoutMs: this.#opts.readyTimeoutMs }, 'not ready in time; killing');
    // End of input first: FFmpeg blocked reading an idle stdin does not act on SIGTERM until it reads
    // something, but it finishes at once at EOF.
    run.stdin?.end();
    run.timers.push(terminateGroup(run.pid, this.#killTimeoutMs, run.log));
  }

  #onExit(run: Run, code: number | null, signal: NodeJS.Signals | null): void {
    run.exited = true;
    clearTimeout(run.readyTimer);
    for (const t of run.timers) clearTimeout(t);
    // Whatever else is left in its group (a shell's background job, say) goes with it; it also closes the
    // stderr those held open, so the drain below ends at once.
    signalGroup(run.pid, 'SIGKILL', run.log);
    let drainTimer: NodeJS.Timeout | undefined;
    const drained = new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, STDERR_DRAIN_MS)));
    void Promise.race([run.stderr?.closed, drained]).then(() => {
      clearTimeout(drainTimer);
      this.#finish(run, code, signal);
    });
  }

  #finish(run: Run, code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (run.done) return;
    run.done = run.exited = true;
    clearTimeout(run.readyTimer);
    for (const t of run.timers) clearTimeout(t);
    run.stderr?.close();
    const { ending } = run;
    const kind: ExitKind = ending === 'stop' || ending === 'restart' ? 'stopped' : run.ready && !ending ? 'died' : 'never-started';
    const ended = spawnError ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
    const reason =
      ending === 'stop'
        ? `stopped (${ended})`
        : ending === 'restart'
          ? `restart: ${run.restartReason} (${ended})`
          : ending === 'ready-timeout'
            ? `not ready within ${this.#opts.readyTimeoutMs} ms (${ended})`
            : ending === 'on-start-failed'
              ? `onStart threw (${ended})`
              : kind === 'never-started' && !spawnError
                ? `${ended} before ready`
                : ended;
    const stderrTail = run.stderr?.tail() ?? [];
    const info: ExitInfo = {
      attempt: run.attempt,
      pid: run.pid,
      code,
      signal,
      kind,
      reason,
      stderrTail,
      ranMs: Math.round(performance.now() - run.startedAt),
    };
    this.#run = undefined;
    this.#lastExit = info;
    if (kind === 'stopped') run.log.info({ reason, ranMs: info.ranMs }, 'child ended');
    else run.log.warn({ kind, reason, ranMs: info.ranMs, stderrTail }, 'child ended by itself');

    // Decide first, so onExit sees the state we are going to.
    const immediate = ending === 'restart' || this.#restartPending !== undefined;
    this.#restartPending = undefined;
    if (this.#stopping) this.#state = 'stopped';
    else if (immediate) this.#state = 'backoff';
    else {
      if (kind === 'never-started') this.#startFailures++;
      const max = this.#opts.maxStartFailures;
      this.#state = max !== undefined && this.#startFailures >= max ? 'failed' : 'backoff';
    }
    if (this.#state === 'failed') this.#log.error({ startFailures: this.#startFailures, reason }, 'giving up: child never started');
    try {
      this.#opts.onExit?.(info);
    } catch (err) {
      this.#log.error({ err }, 'onExit threw');
    }
    if (this.#state === 'stopped') this.#resolveStop?.();
    if (this.#state !== 'backoff') return; // stopped, failed, or onExit already restarted it
    if (immediate) return this.#spawn();
    const delay = this.#delayMs;
    this.#delayMs = Math.min(delay * this.#opts.backoff.factor, this.#opts.backoff.maxMs);
    this.#log.info({ delayMs: delay }, 'restarting after backoff');
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#restarts++;
      this.#spawn();
    }, delay);
  }
}

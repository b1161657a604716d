/**
 * The one way this server starts and ends a child: spawned detached, so it leads its own process group
 * and one kill(-pid) reaches everything it started; ended with SIGTERM, then SIGKILL if it is still there.
 * Supervisor (long-running, restarted) and runFfmpeg (runs to its end) both go through these.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Logger } from '../core/index.js';

/** Spawns `command` as the leader of a new process group. Throws on invalid arguments (a NUL byte). */
export function spawnGroup(command: string, args: readonly string[], stdio: StdioOptions): ChildProcess {
  return spawn(command, [...args], { detached: true, stdio });
}

/** Signals the whole process group led by `pid`. ESRCH means nothing is left; other failures are logged. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals, log: Logger): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') log.warn({ err, signal }, 'could not signal the process group');
  }
}

/**
 * SIGTERM to the group now, SIGKILL after killTimeoutMs. Returns the SIGKILL timer: clear it once the child
 * has exited.
 */
export function terminateGroup(pid: number | undefined, killTimeoutMs: number, log: Logger): NodeJS.Timeout {
  signalGroup(pid, 'SIGTERM', log);
  return setTimeout(() => {
    log.warn({ killTimeoutMs }, 'still running after SIGTERM; SIGKILL');
    signalGroup(pid, 'SIGKILL', log);
  }, killTimeoutMs);
}

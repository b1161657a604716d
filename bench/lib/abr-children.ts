/**
 * The ABR bench's child processes: FFmpeg children with a name for error messages, the check that they
 * (and the server) still run, a wait that keeps checking, and the publisher that loops the source file.
 */
import { spawnLogged, type LoggedChild } from '../../harness/processes.js';
import type { ServerProcess } from '../../harness/server-process.js';
import type { BenchRun } from './run.js';

/** A tracked child (harness/processes.ts) with the tail of its stderr and a name for error messages. */
export type Child = LoggedChild & { label: string };

export function spawnLabelled(label: string, cmd: string, args: string[], cwd?: string): Child {
  return Object.assign(spawnLogged(cmd, args, { cwd }), { label });
}

export function assertAlive(...children: (Child | ServerProcess | undefined)[]): void {
  for (const c of children) {
    if (!c) continue;
    if ('label' in c) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`${c.label} stopped (${c.exitCode ?? c.signalCode}): ${c.stderrText().trim().slice(-1500)}`);
      }
    } else if (!c.alive()) {
      throw new Error(`the server stopped (${c.child.exitCode ?? c.child.signalCode}): ${c.stderrText().trim().slice(-1500)}`);
    }
  }
}

/** Sleep until `until` (epoch ms), checking the children every second. */
export async function hold(bench: BenchRun, until: number, ...alive: (Child | ServerProcess | undefined)[]): Promise<void> {
  while (Date.now() < until) {
    await bench.sleep(Math.min(1000, until - Date.now()));
    bench.check();
    assertAlive(...alive);
  }
}

/** `file` pushed to `url` in real time, in a loop, as it is (`-c copy`: the publisher costs next to nothing). */
export function publishLoop(label: string, file: string, url: string): Child {
  return spawnLabelled(label, 'ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-re',
    '-stream_loop',
    '-1',
    '-i',
    file,
    '-c',
    'copy',
    '-f',
    'flv',
    url,
  ]);
}

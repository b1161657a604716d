import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/index.js';
import {
  ProgressParser,
  Supervisor,
  findFfmpeg,
  type ChildHandle,
  type ExitInfo,
  type SupervisorOptions,
} from '../../src/process/index.js';

interface Entry {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

/** A pino-like logger that records every call, bindings merged in. */
function recordingLogger(entries: Entry[] = [], bindings: Record<string, unknown> = {}): Logger & { entries: Entry[] } {
  const at = (level: string) => (obj: unknown, msg?: string) =>
    entries.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg });
  return {
    entries,
    child: (b) => recordingLogger(entries, { ...bindings, ...b }),
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** PF_EXITING in /proc/<pid>/stat flags: the process is in do_exit (its files are already closing). */
const PF_EXITING = 0x4;

/**
 * Processes of a group that are still alive. Zombies and processes already exiting are left out: this
 * machine's PID 1 does not reap the orphans it inherits, so kill(-pgid, 0) succeeds while a zombie of the
 * group is left; and a SIGKILLed process can close its pipes a moment before /proc shows it as a zombie.
 */
function liveMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const [state, , pgrp, , , , flags] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const dying = state === 'Z' || state === 'X' || (Number(flags) & PF_EXITING) !== 0;
    if (Number(pgrp) === pgid && !dying) pids.push(Number(d));
  }
  return pids;
}

function expectGroupGone(pgid: number): void {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ESRCH');
    return;
  }
  expect(liveMembers(pgid)).toEqual([]);
}

const supervisors: Supervisor[] = [];
afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});

type Opts = Partial<SupervisorOptions> & Pick<SupervisorOptions, 'command' | 'args'>;

function make(opts: Opts) {
  const exits: ExitInfo[] = [];
  const handles: ChildHandle[] = [];
  const logger = recordingLogger();
  const sup = new Supervisor({
    name: 'test',
    logger,
    readyTimeoutMs: 2000,
    backoff: { initialMs: 20, maxMs: 200, factor: 2 },
    killTimeoutMs: 500,
    ...opts,
    onStart: (h) => {
      handles.push(h);
      opts.onStart?.(h);
    },
    onExit: (info) => {
      exits.push(info);
      opts.onExit?.(info);
    },
  });
  supervisors.push(sup);
  return { sup, exits, handles, logger };
}

/** A child that prints 'ready' on stdout and then lives on; marked ready on its first output. */
const readyOnStdout = (h: ChildHandle) => h.stdout.once('data', () => h.markReady());
const LONG_LIVED = { command: '/bin/sh', args: () => ['-c', 'echo ready; exec sleep 1000'], onStart: readyOnStdout };

describe('Supervisor: never started', () => {
  it('reports a command that does not exist, without calling onStart, and gives up', async () => {
    const { sup, exits, handles } = make({ command: '/nonexistent/ffmpeg', args: () => [], maxStartFailures: 1 });
    sup.start();
    await until(() => sup.state === 'failed', 'failed');
    expect(handles).toEqual([]);
    expect(exits).toEqual([expect.objectContaining({ kind: 'never-started', code: null, pid: undefined })]);
    expect(exits[0].reason).toMatch(/spawn failed.*ENOENT/);
    expect(sup.startFailures).toBe(1);
  });

  it('reports FFmpeg exiting 1 on an unknown encoder, with its error in the stderr tail', async () => {
    const args = ['-hide_banner', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=5', '-t', '1', '-c:v', 'nosuchencoder', '-f', 'null', '-'];
    const { sup, exits, handles } = make({ command: findFfmpeg(), args: () => args, maxStartFailures: 1 });
    sup.start();
    await until(() => sup.state === 'failed', 'failed');
    expect(handles).toHaveLength(1);
    expect(exits).toEqual([expect.objectContaining({ kind: 'never-started', code: 1, signal: null })]);
    expect(exits[0].reason).toBe('exited with code 1 before ready');
    expect(exits[0].stderrTail.join('\n')).toContain("Unknown encoder 'nosuchencoder'");
  });

  it('kills a child that is not ready in time and counts it as never started', async () => {
    const { sup, exits } = make({ command: 'sleep', args: () => ['1000'], readyTimeoutMs: 150, maxStartFailures: 1 });
    sup.start();
    const pid = sup.pid!;
    await until(() => sup.state === 'failed', 'failed');
    expect(exits).toEqual([expect.objectContaining({ kind: 'never-started', signal: 'SIGTERM', pid })]);
    expect(exits[0].reason).toMatch(/^not ready within 150 ms/);
    expect(exits[0].ranMs).toBeGreaterThanOrEqual(150);
    expectGroupGone(pid);
  });

  it('retries with backoff and stops after maxStartFailures in a row', async () => {
    const { sup, exits } = make({ command: '/bin/sh', args: () => ['-c', 'echo boom >&2; exit 3'], maxStartFailures: 3 });
    sup.start();
    await until(() => sup.state === 'failed', 'failed');
    expect(exits.map((e) => [e.kind, e.code, e.attempt])).toEqual([
      ['never-started', 3, 1],
      ['never-started', 3, 2],
      ['never-started', 3, 3],
    ]);
    expect(exits[2].stderrTail).toEqual(['boom']);
    expect(sup.startFailures).toBe(3);
    expect(sup.restarts).toBe(2);
    // Backoff 20 then 40 ms between the three attempts.
    expect(exits[2].attempt).toBe(3);
    await new Promise((r) => setTimeout(r, 100)); // 'failed' is final: nothing more is spawned
    expect(exits).toHaveLength(3);
  });
});

describe('Supervisor: running', () => {
  it('restarts a child that died after it was ready, with a new pid', async () => {
    const { sup, exits, handles } = make(LONG_LIVED);
    sup.start();
    await until(() => sup.state === 'running', 'running');
    const first = sup.pid!;
    process.kill(first, 'SIGKILL');
    await until(() => handles.length === 2 && sup.state === 'running', 'restarted and ready');
    expect(exits).toEqual([expect.objectContaining({ kind: 'died', signal: 'SIGKILL', code: null, pid: first, attempt: 1 })]);
    expect(sup.restarts).toBe(1);
    expect(sup.pid).not.toBe(first);
    expect(handles[1].attempt).toBe(2);
  });

  it('backs off longer after each crash, and from the start again once a child ran stableAfterMs', async () => {
    const { sup, handles, logger } = make({ ...LONG_LIVED, backoff: { initialMs: 20, maxMs: 1000, factor: 10 }, stableAfterMs: 300 });
    const crashWhenRunning = async (n: number, runMs = 0) => {
      await until(() => handles.length === n && sup.state === 'running', `child ${n} running`);
      if (runMs) await new Promise((r) => setTimeout(r, runMs)); // the rule under test is about time run
      process.kill(sup.pid!, 'SIGKILL');
    };
    sup.start();
    await crashWhenRunning(1);
    await crashWhenRunning(2);
    await crashWhenRunning(3, 400);
    await until(() => handles.length === 4, 'fourth child');
    const delays = logger.entries.filter((e) => e.msg === 'restarting after backoff').map((e) => e.obj.delayMs);
    expect(delays).toEqual([20, 200, 20]);
    expect(sup.restarts).toBe(3);
  });

  it('treats exit code 0 after ready as died; pipes on stdin and fd 3 work', async () => {
    const got: string[] = [];
    const { sup, exits } = make({
      command: '/bin/sh',
      args: () => ['-c', 'echo hi >&3; read line; echo "got $line" >&3'],
      extraFds: 1,
      maxStartFailures: 1,
      onStart: (h) => {
        expect(h.extra).toHaveLength(1);
        h.extra[0].on('data', (d: Buffer) => {
          got.push(d.toString());
          h.markReady();
          h.stdin.write('bye\n');
        });
      },
    });
    sup.start();
    await until(() => exits.length === 1, 'exit');
    expect(got.join('')).toBe('hi\ngot bye\n');
    expect(exits[0]).toMatchObject({ kind: 'died', code: 0, reason: 'exited with code 0' });
  });

  it('survives EPIPE when writing to a child that closed its stdin', async () => {
    const { sup, handles, logger } = make({
      command: '/bin/sh',
      args: () => ['-c', 'exec 0<&-; echo ready; exec sleep 1000'],
      onStart: readyOnStdout,
    });
    sup.start();
    await until(() => sup.state === 'running', 'running');
    for (let i = 0; i < 20; i++) handles[0].stdin.write(Buffer.alloc(65536));
    await until(() => logger.entries.some((e) => e.msg === 'pipe error'), 'pipe error logged');
    expect(logger.entries.find((e) => e.msg === 'pipe error')?.obj.err).toMatchObject({ code: 'EPIPE' });
    expect(sup.state).toBe('running');
  });

  it('restartNow ends the child as stopped and spawns at once with fresh args', async () => {
    let n = 0;
    const { sup, exits, handles } = make({ ...LONG_LIVED, args: () => ['-c', `echo ready${++n}; exec sleep 1000`] });
    sup.start();
    await until(() => sup.state === 'running', 'running');
    sup.restartNow('outputs changed');
    await until(() => handles.length === 2 && sup.state === 'running', 'restarted');
    expect(n).toBe(2);
    expect(exits).toEqual([expect.objectContaining({ kind: 'stopped', signal: 'SIGTERM' })]);
    expect(exits[0].reason).toMatch(/^restart: outputs changed/);
    expect(sup.restarts).toBe(0);
  });
});

describe('Supervisor: stop', () => {
  it('kills the whole process group and resolves once it is gone', async () => {
    const { sup, exits } = make({ command: '/bin/sh', args: () => ['-c', 'sleep 1000 & sleep 1000'], onStart: (h) => h.markReady() });
    sup.start();
    const pgid = sup.pid!;
    await until(() => liveMembers(pgid).length >= 2, 'sh and its background sleep');
    await sup.stop();
    expect(sup.state).toBe('stopped');
    expect(sup.pid).toBeUndefined();
    expect(exits).toEqual([expect.objectContaining({ kind: 'stopped', reason: 'stopped (killed by SIGTERM)' })]);
    expectGroupGone(pgid);
    await sup.stop(); // idempotent
    expect(exits).toHaveLength(1);
    expect(() => sup.start()).toThrow(/closed/);
  });

  it('SIGKILLs a group that ignores SIGTERM after killTimeoutMs', async () => {
    const { sup, exits } = make({
      command: '/bin/sh',
      args: () => ['-c', 'trap "" TERM; echo ready; sleep 1000'],
      onStart: readyOnStdout,
      killTimeoutMs: 200,
    });
    sup.start();
    await until(() => sup.state === 'running', 'running');
    const pgid = sup.pid!;
    const t0 = Date.now();
    await sup.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(exits).toEqual([expect.objectContaining({ kind: 'stopped', signal: 'SIGKILL' })]);
    expectGroupGone(pgid);
  });

  it('during backoff: no child is spawned any more', async () => {
    const { sup, exits, handles } = make({
      command: '/bin/sh',
      args: () => ['-c', 'exit 1'],
      backoff: { initialMs: 300, maxMs: 300, factor: 1 },
    });
    sup.start();
    await until(() => sup.state === 'backoff', 'backoff');
    await sup.stop();
    await new Promise((r) => setTimeout(r, 350)); // absence of a spawn cannot be awaited
    expect(handles).toHaveLength(1);
    expect(exits).toHaveLength(1);
    expect(sup.state).toBe('stopped');
  });
});

describe('Supervisor: stderr', () => {
  it('logs stderr lines at debug with the child context', async () => {
    const { sup, logger } = make({
      command: '/bin/sh',
      args: () => ['-c', 'echo line1 >&2; echo line2 >&2; echo ready; exec sleep 1000'],
      onStart: readyOnStdout,
    });
    sup.start();
    await until(() => logger.entries.filter((e) => e.msg === 'stderr').length === 2, 'two stderr lines');
    const lines = logger.entries.filter((e) => e.msg === 'stderr');
    expect(lines.map((e) => [e.level, e.obj.line, e.obj.proc, e.obj.pid])).toEqual([
      ['debug', 'line1', 'test', sup.pid],
      ['debug', 'line2', 'test', sup.pid],
    ]);
  });

  it('rate-limits a flood, reports the count, keeps the last 20 lines and cuts long ones', async () => {
    const script = 'i=0; while [ $i -lt 500 ]; do echo l$i >&2; i=$((i+1)); done; printf "%3000s\\n" x >&2; echo ready; exec sleep 1000';
    const { sup, logger } = make({
      command: '/bin/sh',
      args: () => ['-c', script],
      onStart: readyOnStdout,
      stderr: { maxLinesPerSec: 10 },
    });
    sup.start();
    await until(() => logger.entries.some((e) => e.obj.suppressed !== undefined), 'suppressed count', 3000);
    const logged = logger.entries.filter((e) => e.msg === 'stderr');
    expect(logged.map((e) => e.obj.line)).toEqual(Array.from({ length: 10 }, (_, i) => `l${i}`));
    const suppressed = logger.entries.filter((e) => e.obj.suppressed !== undefined).map((e) => e.obj.suppressed as number);
    expect(suppressed.reduce((a, b) => a + b, 0)).toBe(491);
    const tail = sup.stderrTail;
    expect(tail).toHaveLength(20);
    expect(tail[0]).toBe('l481');
    expect(tail[18]).toBe('l499');
    expect(tail[19]).toHaveLength(2001);
    expect(tail[19].endsWith('…')).toBe(true);
  });
});

describe('Supervisor with FFmpeg', () => {
  it('runs FFmpeg with -progress on pipe:3, ready on its first block, and stops it', async () => {
    const blocks: number[] = [];
    const { sup, exits } = make({
      command: findFfmpeg(),
      args: () => [
        '-hide_banner',
        '-nostats',
        '-re',
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=64x64:rate=10',
        '-progress',
        'pipe:3',
        '-stats_period',
        '0.1',
        '-f',
        'null',
        '-',
      ],
      extraFds: 1,
      readyTimeoutMs: 5000,
      onStart: (h) => {
        const parser = new ProgressParser();
        h.extra[0].on('data', (d: Buffer) => {
          for (const p of parser.push(d)) {
            blocks.push(p.frame ?? -1);
            h.markReady();
          }
        });
      },
    });
    sup.start();
    await until(() => blocks.length >= 3, 'three progress blocks');
    expect(sup.state).toBe('running');
    expect(blocks[2]).toBeGreaterThan(blocks[0]);
    await sup.stop();
    expect(exits).toEqual([expect.objectContaining({ kind: 'stopped' })]);
  });
});

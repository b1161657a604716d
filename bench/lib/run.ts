import { killTracked } from './procs.js';

/**
 * The frame every bench runs in: one shutdown path for success, failure, the watchdog and signals
 * (cleanups run in reverse order, tracked children are killed whatever happens), and waits that end
 * when the bench stops.
 */
export interface BenchRun {
  /** Aborted when the bench stops. */
  readonly signal: AbortSignal;
  /** Registered undo steps, run last-in first-out on shutdown. */
  readonly cleanups: (() => Promise<unknown> | void)[];
  shutdown(code: number): Promise<never>;
  sleep(ms: number): Promise<void>;
  /** Throws once the bench is stopping. */
  check(): void;
  /** Poll `fn` until it gives a truthy value. With tolerateErrors, a throwing `fn` counts as "not yet". */
  waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, opts?: { stepMs?: number; tolerateErrors?: boolean }): Promise<T>;
}

export function startBenchRun(opts: { budgetS: number; forceExitMs: number }): BenchRun {
  const stop = new AbortController();
  const cleanups: (() => Promise<unknown> | void)[] = [];
  let exiting = false;

  async function shutdown(code: number): Promise<never> {
    if (!exiting) {
      exiting = true;
      stop.abort();
      const force = setTimeout(() => {
        killTracked();
        process.exit(code || 1);
      }, opts.forceExitMs);
      for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
      clearTimeout(force);
      process.exit(code);
    }
    return new Promise<never>(() => {});
  }

  process.on('exit', killTracked);
  process.once('SIGINT', () => {
    console.error('\ninterrupted, stopping');
    void shutdown(130);
  });
  process.once('SIGTERM', () => void shutdown(143));
  const watchdog = setTimeout(() => {
    console.error(`bench did not finish within ${opts.budgetS} s, stopping`);
    void shutdown(1);
  }, opts.budgetS * 1000);
  watchdog.unref();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        stop.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      stop.signal.addEventListener('abort', done, { once: true });
    });

  const check = () => {
    if (stop.signal.aborted) throw new Error('stopped');
  };

  async function waitFor<T>(
    what: string,
    fn: () => Promise<T | undefined | false>,
    timeoutMs: number,
    o: { stepMs?: number; tolerateErrors?: boolean } = {},
  ): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      check();
      const v = o.tolerateErrors ? await fn().catch(() => undefined) : await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
      await sleep(o.stepMs ?? 100);
    }
  }

  return { signal: stop.signal, cleanups, shutdown, sleep, check, waitFor };
}

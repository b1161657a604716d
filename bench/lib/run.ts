import { parseArgs } from 'node:util';
import { killTracked } from '../../harness/processes.js';
import { sleepUnless } from '../../harness/sleep.js';

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
  // Function-valued properties, not methods: benches destructure them off the run (none uses `this`).
  readonly shutdown: (code: number) => Promise<never>;
  readonly sleep: (ms: number) => Promise<void>;
  /** Throws once the bench is stopping. */
  readonly check: () => void;
  /** Poll `fn` until it gives a truthy value. With tolerateErrors, a throwing `fn` counts as "not yet". */
  readonly waitFor: <T>(
    what: string,
    fn: () => Promise<T | undefined | false>,
    timeoutMs: number,
    opts?: { stepMs?: number; tolerateErrors?: boolean },
  ) => Promise<T>;
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

  const sleep = (ms: number) => sleepUnless(ms, stop.signal);

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

/** A whole-number option of a bench's own: its default and the range it must lie in. */
export interface IntegerOption {
  readonly default: number;
  readonly min: number;
  readonly max: number;
}

/**
 * The command line every bench takes: --seconds (measured window, default 60) and --warmup (default 10),
 * plus string options of its own (`choices` lists the allowed values of each; the first is the default)
 * whole-number options of its own (`integers`, e.g. --streams) and free-form strings (`strings`, name ->
 * default, checked by the bench itself). Prints `usage` and exits 2 on anything else, 0 for --help.
 */
export function parseBenchCli<K extends string, I extends string = never, S extends string = never>(
  usage: string,
  choices: Record<K, readonly string[]> = {} as Record<K, readonly string[]>,
  integers: Record<I, IntegerOption> = {} as Record<I, IntegerOption>,
  strings: Record<S, string> = {} as Record<S, string>,
): { seconds: number; warmup: number; options: Record<K, string>; integers: Record<I, number>; strings: Record<S, string> } {
  const fail = (code = 2): never => {
    (code === 0 ? console.log : console.error)(`usage: ${usage}`);
    process.exit(code);
  };
  const own = Object.keys(choices) as K[];
  let values: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    };
    for (const k of [...own, ...Object.keys(integers), ...Object.keys(strings)]) options[k] = { type: 'string' };
    ({ values } = parseArgs({ options }));
  } catch (err) {
    console.error((err as Error).message);
    return fail();
  }
  if (values.help) fail(0);
  const num = (name: string, dflt: number, min: number, max: number, unit = ' of seconds') => {
    const raw = values[name] as string | undefined;
    const n = raw === undefined ? dflt : Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      console.error(`--${name} must be a whole number${unit} from ${min} to ${max}`);
      fail();
    }
    return n;
  };
  const options = {} as Record<K, string>;
  for (const k of own) {
    const v = (values[k] as string | undefined) ?? choices[k][0];
    if (!choices[k].includes(v)) {
      console.error(`--${k} must be ${choices[k].join(' or ')}`);
      fail();
    }
    options[k] = v;
  }
  const ints = {} as Record<I, number>;
  for (const k of Object.keys(integers) as I[]) ints[k] = num(k, integers[k].default, integers[k].min, integers[k].max, '');
  const strs = {} as Record<S, string>;
  for (const k of Object.keys(strings) as S[]) strs[k] = (values[k] as string | undefined) ?? strings[k];
  return { seconds: num('seconds', 60, 5, 3600), warmup: num('warmup', 10, 0, 120), options, integers: ints, strings: strs };
}

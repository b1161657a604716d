/**
 * The one lifecycle owner of the composition root: each component that starts pushes its named `close`;
 * a start-up failure and the shutdown unwind the same stack, last pushed first. Every step is bounded in
 * time: a shutdown that waits forever for one stuck client or query is worse than one that cuts it off.
 * A step over its time is logged with its name, a step that throws with its error, and the unwinding goes
 * on past both.
 */
import type { Logger } from './core/index.js';

export interface StepOptions {
  /** Longest this step may take; default: the stack's `stepMs`. */
  readonly limitMs?: number;
  /** Called when the step overruns (e.g. cut the connections a graceful close is still waiting for). */
  readonly onLate?: () => void;
}

export interface LifecycleOptions {
  readonly logger: Logger;
  /** Longest one step may take unless it says otherwise. */
  readonly stepMs: number;
}

/** What an unwinding did: the steps that threw and the ones cut short, in the order they ran. */
export interface UnwindOutcome {
  readonly failed: readonly string[];
  readonly late: readonly string[];
}

interface Step extends StepOptions {
  readonly name: string;
  readonly close: () => unknown;
}

export class Lifecycle {
  readonly #opts: LifecycleOptions;
  readonly #steps: Step[] = [];
  #unwinding: Promise<UnwindOutcome> | undefined;
  #current = 'running';

  constructor(opts: LifecycleOptions) {
    this.#opts = opts;
  }

  /** 'running', the name of the step in progress, or 'stopped'. */
  get step(): string {
    return this.#current;
  }

  /** The longest the whole unwinding can take: the sum of every step's limit. */
  get budgetMs(): number {
    return this.#steps.reduce((sum, s) => sum + (s.limitMs ?? this.#opts.stepMs), 0);
  }

  /** Adds a step that runs before every step pushed so far. Pushing once the unwinding began is a bug. */
  push(name: string, close: () => unknown, opts: StepOptions = {}): void {
    if (this.#unwinding) throw new Error(`lifecycle: "${name}" pushed after close()`);
    this.#steps.push({ name, close, ...opts });
  }

  /** Runs every step, last pushed first. Idempotent: later calls get the same promise. Never rejects. */
  close(): Promise<UnwindOutcome> {
    this.#unwinding ??= this.#unwind();
    return this.#unwinding;
  }

  async #unwind(): Promise<UnwindOutcome> {
    const log = this.#opts.logger;
    const failed: string[] = [];
    const late: string[] = [];
    const t0 = performance.now();
    for (const step of [...this.#steps].reverse()) {
      this.#current = step.name;
      const limitMs = step.limitMs ?? this.#opts.stepMs;
      // A throw inside close() is a failed step like a rejection; a step that fails after its time is logged too.
      const run = new Promise<unknown>((resolve) => resolve(step.close())).then(
        () => 'done' as const,
        (err: unknown) => {
          log.error({ err, step: step.name }, 'shutdown step failed; going on');
          return 'failed' as const;
        },
      );
      let timer: NodeJS.Timeout | undefined;
      const overrun = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), limitMs);
      });
      const outcome = await Promise.race([run, overrun]);
      clearTimeout(timer);
      if (outcome === 'failed') failed.push(step.name);
      if (outcome === 'late') {
        late.push(step.name);
        log.warn({ step: step.name, limitMs }, 'shutdown step did not finish in time; going on');
        try {
          step.onLate?.();
        } catch (err) {
          log.error({ err, step: step.name }, 'shutdown step: cutting it short failed');
        }
      }
      log.debug({ step: step.name, ms: Math.round(performance.now() - t0) }, 'shutdown step done');
    }
    this.#current = 'stopped';
    return { failed, late };
  }
}

/**
 * Start waiters: requests for a stream's multivariant playlist (or a first media playlist) held until the
 * stream can be played, bounded in time and in number like held playlist requests.
 */
export class StartWaiters {
  readonly #max: number;
  readonly #waiters = new Set<() => void>();

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#waiters.size;
  }

  /** Resolves on release(), after timeoutMs, or when `signal` aborts; at once past the limit. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    // Past the limit, answer at once with what there is.
    if (this.#waiters.size >= this.#max) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', finish);
        this.#waiters.delete(finish);
        resolve();
      };
      const t = setTimeout(finish, timeoutMs);
      signal?.addEventListener('abort', finish, { once: true });
      this.#waiters.add(finish);
    });
  }

  release(): void {
    for (const f of [...this.#waiters]) f();
  }
}

/**
 * A coalesced read: however many callers ask at once, one read runs and at most one more is queued, and
 * each caller is answered by a read that started after it asked (so no caller gets what was stored before
 * its request came).
 */
export class Refresh {
  readonly #read: () => Promise<void>;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(read: () => Promise<void>) {
    this.#read = read;
  }

  run(): Promise<void> {
    const running = this.#running;
    if (!running) return this.#start();
    if (!this.#queued) {
      const next = () => {
        this.#queued = undefined;
        return this.#start();
      };
      this.#queued = running.then(next, next);
    }
    return this.#queued;
  }

  #start(): Promise<void> {
    const p: Promise<void> = this.#read().finally(() => {
      if (this.#running === p) this.#running = undefined;
    });
    this.#running = p;
    return p;
  }
}

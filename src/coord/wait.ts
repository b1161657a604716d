/**
 * Waiting for a rendition's state to reach a version (an origin's blocking reload). Announcements are
 * fire-and-forget, so the wait never depends on one: it re-checks the store on a short timer as well, and a
 * lost announcement costs at most one re-check interval.
 */
import type { LiveWindowStore, StoredRenditionState } from './types.js';

export interface WaitForStateOptions {
  /** Give up after this long (resolves undefined). */
  timeoutMs: number;
  /** Re-read the state this often whatever the announcements do (default 100 ms). */
  recheckMs?: number;
  signal?: AbortSignal;
}

/** The rendition's state once its version is at least `minVersion`; undefined on timeout or abort. */
export function waitForState(
  store: LiveWindowStore,
  streamId: string,
  rendition: string,
  minVersion: number,
  opts: WaitForStateOptions,
): Promise<StoredRenditionState | undefined> {
  return new Promise((resolve) => {
    let done = false;
    let reading = false;
    let again = false;
    const finish = (state: StoredRenditionState | undefined) => {
      if (done) return;
      done = true;
      unsubscribe();
      clearInterval(timer);
      clearTimeout(deadline);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(state);
    };
    const check = () => {
      if (done) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      store.getState(streamId, rendition).then(
        (s) => {
          reading = false;
          if (s && s.version >= minVersion) finish(s);
          else if (again) {
            again = false;
            check();
          }
        },
        // A failed read (an outage) is retried by the timer; the deadline still holds.
        () => (reading = false),
      );
    };
    const onAbort = () => finish(undefined);
    const unsubscribe = store.subscribe(streamId, (a) => {
      if (a.rendition === rendition && a.version >= minVersion) check();
    });
    const timer = setInterval(check, opts.recheckMs ?? 100);
    const deadline = setTimeout(() => finish(undefined), opts.timeoutMs);
    if (opts.signal?.aborted) return finish(undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    check();
  });
}

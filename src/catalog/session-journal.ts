import { isAppError, monotonicNow, type Logger } from '../core/index.js';

/** The part of the catalog the journal writes to. */
export interface SessionWriter {
  startSession(s: { id: string; streamId: string; protocol: string; remoteAddress: string; startedAt: Date }): Promise<void>;
  endSession(id: string, end: { endedAt: Date; reason: string; bytes: number; frames: number }): Promise<void>;
}

/** A write the catalog could not take because it was away is tried again this long, then given up (logged). */
export const SESSION_RETRY_FOR_MS = 10 * 60_000;
/** Delay before the first retry; it doubles up to SESSION_RETRY_MAX_DELAY_MS. */
const SESSION_RETRY_FIRST_MS = 250;
const SESSION_RETRY_MAX_DELAY_MS = 5000;

function delay(ms: number): Promise<void> {
  // Unreferenced: a write waiting for the catalog does not keep a stopping process alive.
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Publish sessions into the catalog, as the hub reports them. A catalog failure is logged, never stops the
 * stream. A session's end is written after its start (with a pool they could otherwise race and leave the
 * session open). A catalog that is away (E_UNAVAILABLE: PostgreSQL down) gets the write again when it is
 * back, for up to SESSION_RETRY_FOR_MS: a session that ended during an outage is not left open.
 */
export class SessionJournal {
  readonly #catalog: SessionWriter;
  readonly #log: Logger;
  /** The start write of each session not ended yet: its end waits for it. */
  readonly #starts = new Map<string, Promise<void>>();
  readonly #retryForMs: number;

  constructor(catalog: SessionWriter, logger: Logger, opts: { retryForMs?: number } = {}) {
    this.#catalog = catalog;
    this.#log = logger;
    this.#retryForMs = opts.retryForMs ?? SESSION_RETRY_FOR_MS;
  }

  started(streamId: string, info: { sessionId: string; protocol: string; remoteAddress: string }): void {
    const s = { id: info.sessionId, streamId, protocol: info.protocol, remoteAddress: info.remoteAddress, startedAt: new Date() };
    const started = this.#write(() => this.#catalog.startSession(s)).catch((err: unknown) =>
      this.#log.warn({ err, stream: streamId }, 'could not record publish session'),
    );
    this.#starts.set(info.sessionId, started);
  }

  ended(streamId: string, sessionId: string, end: { reason: string; bytes: number; frames: number }): void {
    const endedAt = new Date();
    const started = this.#starts.get(sessionId) ?? Promise.resolve();
    this.#starts.delete(sessionId);
    void started
      .then(() =>
        this.#write(() => this.#catalog.endSession(sessionId, { endedAt, reason: end.reason, bytes: end.bytes, frames: end.frames })),
      )
      .catch((err: unknown) => this.#log.warn({ err, stream: streamId }, 'could not record end of publish session'));
  }

  /** `write`, again while the catalog is away, until it succeeds or SESSION_RETRY_FOR_MS have passed. */
  async #write(write: () => Promise<void>): Promise<void> {
    const giveUpAt = monotonicNow() + this.#retryForMs;
    for (let wait = SESSION_RETRY_FIRST_MS; ; wait = Math.min(2 * wait, SESSION_RETRY_MAX_DELAY_MS)) {
      try {
        return await write();
      } catch (err) {
        if (!(isAppError(err) && err.code === 'E_UNAVAILABLE') || monotonicNow() + wait > giveUpAt) throw err;
        await delay(wait);
      }
    }
  }
}

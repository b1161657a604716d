import type { Logger } from '../core/index.js';

/** The part of the catalog the journal writes to. */
export interface SessionWriter {
  startSession(s: { id: string; streamId: string; protocol: string; remoteAddress: string; startedAt: Date }): Promise<void>;
  endSession(id: string, end: { endedAt: Date; reason: string; bytes: number; frames: number }): Promise<void>;
}

/**
 * Publish sessions into the catalog, as the hub reports them. A catalog failure is logged, never stops the
 * stream. A session's end is written after its start (with a pool they could otherwise race and leave the
 * session open).
 */
export class SessionJournal {
  readonly #catalog: SessionWriter;
  readonly #log: Logger;
  /** The start write of each session not ended yet: its end waits for it. */
  readonly #starts = new Map<string, Promise<void>>();

  constructor(catalog: SessionWriter, logger: Logger) {
    this.#catalog = catalog;
    this.#log = logger;
  }

  started(streamId: string, info: { sessionId: string; protocol: string; remoteAddress: string }): void {
    const started = this.#catalog
      .startSession({ id: info.sessionId, streamId, protocol: info.protocol, remoteAddress: info.remoteAddress, startedAt: new Date() })
      .catch((err: unknown) => this.#log.warn({ err, stream: streamId }, 'could not record publish session'));
    this.#starts.set(info.sessionId, started);
  }

  ended(streamId: string, sessionId: string, end: { reason: string; bytes: number; frames: number }): void {
    const endedAt = new Date();
    const started = this.#starts.get(sessionId) ?? Promise.resolve();
    this.#starts.delete(sessionId);
    void started
      .then(() => this.#catalog.endSession(sessionId, { endedAt, reason: end.reason, bytes: end.bytes, frames: end.frames }))
      .catch((err: unknown) => this.#log.warn({ err, stream: streamId }, 'could not record end of publish session'));
  }
}

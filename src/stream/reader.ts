import type { MediaFrame, TrackSet } from '../core/index.js';

export type StreamEvent =
  /** A publish session delivers its tracks; every frame until the next session-start belongs to it. */
  | {
      readonly type: 'session-start';
      readonly sessionId: string;
      /** Set for a transcoded rung: the source session it was made from. */
      readonly sourceSessionId?: string;
      readonly tracks: TrackSet;
      readonly wallClock: number;
    }
  | { readonly type: 'frame'; readonly frame: MediaFrame }
  /** The publisher went away (or was replaced); the stream may come back within the grace period. */
  | { readonly type: 'session-end'; readonly sessionId: string; readonly reason: string }
  /** No publisher came back within the grace period, or the stream was deleted. Last event. */
  | { readonly type: 'stream-end'; readonly reason: string };

/**
 * One consumer of a live stream. Events are queued up to `maxFrames` media frames; past that the reader
 * drops queued frames and then every frame until the next video keyframe (the next audio frame when the
 * session has no video), and counts what it dropped. The publisher never waits for a reader. Control
 * events are never dropped.
 */
export class Reader implements AsyncIterable<StreamEvent> {
  readonly name: string;
  #queue: StreamEvent[] = [];
  #frames = 0;
  #maxFrames: number;
  #waiting: ((ev: IteratorResult<StreamEvent>) => void) | undefined;
  #closed = false;
  #needKeyframe = false;
  /** Whether the current session has video; without it every audio frame is a place to resume. */
  #hasVideo = true;
  #onClose: (reader: Reader) => void;
  dropped = 0;

  constructor(name: string, maxFrames: number, onClose: (reader: Reader) => void) {
    this.name = name;
    this.#maxFrames = maxFrames;
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called by the hub. Never blocks. */
  push(ev: StreamEvent): void {
    if (this.#closed) return;
    if (ev.type === 'frame') {
      if (this.#needKeyframe) {
        if ((ev.frame.track === 'video' || !this.#hasVideo) && ev.frame.keyframe) this.#needKeyframe = false;
        else {
          this.dropped++;
          return;
        }
      }
      if (this.#frames >= this.#maxFrames) {
        // Drop every queued frame (keep control events) and resume at the next video keyframe.
        const before = this.#queue.length;
        this.#queue = this.#queue.filter((e) => e.type !== 'frame');
        this.dropped += before - this.#queue.length + 1;
        this.#frames = 0;
        this.#needKeyframe = true;
        return;
      }
      this.#frames++;
    } else if (ev.type === 'session-start') {
      this.#needKeyframe = false;
      this.#hasVideo = ev.tracks.video !== undefined;
    }
    this.#deliver(ev);
    if (ev.type === 'stream-end') this.#finish();
  }

  #deliver(ev: StreamEvent): void {
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      if (ev.type === 'frame') this.#frames--;
      waiting({ value: ev, done: false });
    } else {
      this.#queue.push(ev);
    }
  }

  /** Next event, or undefined once the stream ended or the reader closed. */
  async next(): Promise<StreamEvent | undefined> {
    const r = await this.#nextResult();
    return r.done ? undefined : r.value;
  }

  #nextResult(): Promise<IteratorResult<StreamEvent>> {
    const ev = this.#queue.shift();
    if (ev) {
      if (ev.type === 'frame') this.#frames--;
      return Promise.resolve({ value: ev, done: false });
    }
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    return { next: () => this.#nextResult() };
  }

  /** Stops delivery and discards what is queued; a pending next() resolves as done. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#finish();
    this.#queue = [];
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
    this.#onClose(this);
  }
}

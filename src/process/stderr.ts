import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Logger } from '../core/index.js';

export interface StderrLogOptions {
  readonly logger: Logger;
  /** Longer lines are cut (and marked with '…') before they are logged or kept. */
  readonly maxLineLength: number;
  /** At most this many lines are logged per second; the rest are counted and the count logged. */
  readonly maxLinesPerSec: number;
  /** How many of the last lines are kept for exit reports and status. */
  readonly tailLines: number;
}

const WINDOW_MS = 1000;

/**
 * A child's stderr, line by line, into the logger at debug level. A child that floods its stderr (FFmpeg
 * with a broken input can print a line per packet) must not flood the log: past `maxLinesPerSec` lines are
 * only counted, and the count is logged once at the end of that second. The last `tailLines` lines are
 * kept, because the line that explains an exit ("Unknown encoder 'x'") is usually the last one printed.
 *
 * readline splits on '\n', '\r' and '\r\n'; FFmpeg's stats line ends in '\r', so each update is a line.
 * readline holds a partial line whole until it ends; FFmpeg's lines are short, and we are its only reader.
 */
export class StderrLog {
  /** Settles when the stream has ended or closed, i.e. every line has been seen. */
  readonly closed: Promise<void>;
  readonly #opts: StderrLogOptions;
  #tail: string[] = [];
  #windowStart = -Infinity;
  #loggedInWindow = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(input: Readable, options: StderrLogOptions) {
    this.#opts = options;
    const rl = createInterface({ input, crlfDelay: Infinity });
    rl.on('line', (line) => this.#line(line));
    this.closed = new Promise((resolve) => {
      rl.once('close', resolve);
      input.once('close', resolve);
    });
  }

  /** The last lines, oldest first. */
  tail(): string[] {
    return [...this.#tail];
  }

  /** Stop counting: report what was suppressed and clear the timer. Lines still arriving are only kept. */
  close(): void {
    this.#done = true;
    this.#flush();
  }

  #line(raw: string): void {
    const { maxLineLength, maxLinesPerSec, tailLines, logger } = this.#opts;
    const line = raw.length > maxLineLength ? `${raw.slice(0, maxLineLength)}…` : raw;
    this.#tail.push(line);
    if (this.#tail.length > tailLines) this.#tail.shift();
    if (this.#done) return;
    const now = performance.now();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#flush();
      this.#windowStart = now;
      this.#loggedInWindow = 0;
    }
    if (this.#loggedInWindow < maxLinesPerSec) {
      this.#loggedInWindow++;
      logger.debug({ line }, 'stderr');
      return;
    }
    this.#suppressed++;
    this.#timer ??= setTimeout(() => this.#flush(), this.#windowStart + WINDOW_MS - now).unref();
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#suppressed === 0) return;
    this.#opts.logger.debug({ suppressed: this.#suppressed }, 'stderr lines not logged (rate limit)');
    this.#suppressed = 0;
  }
}

import http from 'node:http';
import { nowMs } from './http-bytes.js';
import { FlvTagReader } from './media.js';

/**
 * An HTTP-FLV viewer: GETs `url` (opened before the publisher starts; a server that accepts a play before
 * the publish holds it) and notes when the first video key frame arrives. With `keepOpen` it stays
 * connected and records the arrival time and timestamp of every video tag; otherwise it hangs up after
 * the first key frame, so that it costs the server nothing during the measured window.
 */
export class FlvProbe {
  firstKeyFrameAtMs: number | undefined;
  readonly videoTags: { atMs: number; timestampMs: number }[] = [];
  error: string | undefined;
  readonly #url: string;
  readonly #keepOpen: boolean;
  readonly #reader = new FlvTagReader();
  #req: http.ClientRequest | undefined;
  static readonly MAX_TAGS = 200_000;

  constructor(url: string, opts: { keepOpen?: boolean } = {}) {
    this.#url = url;
    this.#keepOpen = opts.keepOpen ?? false;
  }

  start(): void {
    if (this.#req) return;
    // No keep-alive agent: this answer never ends while the stream lives.
    this.#req = http.get(this.#url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        this.error = `HTTP ${res.statusCode}`;
        res.resume();
        return;
      }
      res.on('data', (chunk: Buffer) => this.#onData(chunk));
      res.on('error', () => {});
    });
    this.#req.on('error', (e) => (this.error ??= e.message));
  }

  #onData(chunk: Buffer): void {
    const at = nowMs();
    let tags;
    try {
      tags = this.#reader.push(chunk);
    } catch (e) {
      this.error = (e as Error).message;
      this.close();
      return;
    }
    for (const t of tags) {
      if (t.type !== 9) continue;
      if (t.keyFrame && this.firstKeyFrameAtMs === undefined) {
        this.firstKeyFrameAtMs = at;
        if (!this.#keepOpen) return this.close();
      }
      if (this.#keepOpen && this.videoTags.length < FlvProbe.MAX_TAGS) this.videoTags.push({ atMs: at, timestampMs: t.timestampMs });
    }
  }

  /** Hang up. Idempotent. */
  close(): void {
    this.#req?.destroy();
  }
}

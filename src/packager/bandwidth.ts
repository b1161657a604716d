/**
 * A rendition's bandwidth for the multivariant playlist: BANDWIDTH is the peak segment bit rate, and
 * AVERAGE-BANDWIDTH the mean over every segment with media.
 */
export class BandwidthMeter {
  peak = 0;
  #bits = 0;
  #seconds = 0;

  /** A completed segment: its parts' bytes over its duration (gaps carry none). */
  add(seg: { readonly parts: readonly { readonly bytes: Uint8Array }[]; readonly duration: number; readonly gap?: boolean }): void {
    const bits = seg.parts.reduce((n, p) => n + p.bytes.byteLength, 0) * 8;
    if (seg.duration > 0 && !seg.gap) {
      this.peak = Math.max(this.peak, bits / seg.duration);
      this.#bits += bits;
      this.#seconds += seg.duration;
    }
  }

  get average(): number {
    return this.#seconds > 0 ? this.#bits / this.#seconds : 0;
  }
}

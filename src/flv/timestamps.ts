/**
 * RTMP timestamps are 32-bit milliseconds and wrap after ~49.7 days; this keeps a monotonic unwrapped
 * value by taking each step as a signed 32-bit difference.
 */
export class TimestampUnwrapper {
  #last: number | undefined;
  #value = 0;

  next(ts: number): number {
    if (this.#last === undefined) this.#value = ts >>> 0;
    else this.#value += ((ts >>> 0) - this.#last) | 0;
    this.#last = ts >>> 0;
    return this.#value;
  }
}

import { randomBytes } from 'node:crypto';
import { AppError } from '../../core/index.js';

/** "the size of C1 and S1 ... is 1536 octets" (RTMP 1.0, 5.2.3). */
export const HANDSHAKE_SIZE = 1536;
export const RTMP_VERSION = 3;

export type HandshakeState = 'c0c1' | 'c2' | 'done';

export interface HandshakeStep {
  /** Bytes to send to the client (S0+S1+S2), if any. */
  readonly reply?: Buffer;
  /** Bytes received after C2: the start of the chunk stream. */
  readonly rest?: Buffer;
  readonly done: boolean;
}

/**
 * Server side of the plain RTMP handshake. C0 carries the version (3); S1 is our time and random bytes,
 * S2 echoes C1. Clients that put a digest in C1 (Flash "complex" handshake, FFmpeg) accept a plain
 * reply as long as S1's version bytes are zero, so no digest is computed; C2 is read and not checked.
 */
export class Handshake {
  #state: HandshakeState = 'c0c1';
  #buf: Buffer = Buffer.alloc(0);
  readonly #epoch: number;

  constructor(epoch = performance.now()) {
    this.#epoch = epoch;
  }

  get state(): HandshakeState {
    return this.#state;
  }

  push(data: Buffer): HandshakeStep {
    if (this.#state === 'done') return { rest: data, done: true };
    this.#buf = this.#buf.byteLength > 0 ? Buffer.concat([this.#buf, data]) : data;
    let reply: Buffer | undefined;
    if (this.#state === 'c0c1') {
      if (this.#buf.byteLength < 1) return { done: false };
      const version = this.#buf[0];
      // 5.2.2: "A server that does not recognize the client's requested version SHOULD respond with 3."
      // Versions 6 and 8 ask for RTMPE encryption, which a plain reply cannot satisfy.
      if (version !== RTMP_VERSION) {
        throw new AppError('E_PROTOCOL', `unsupported RTMP version ${version} in C0`);
      }
      if (this.#buf.byteLength < 1 + HANDSHAKE_SIZE) return { done: false };
      const c1 = this.#buf.subarray(1, 1 + HANDSHAKE_SIZE);
      const s1 = randomBytes(HANDSHAKE_SIZE);
      s1.writeUInt32BE((performance.now() - this.#epoch) >>> 0, 0);
      s1.writeUInt32BE(0, 4); // "Zero (4 bytes): This field MUST be all 0s."
      reply = Buffer.concat([Buffer.of(RTMP_VERSION), s1, c1]);
      this.#buf = this.#buf.subarray(1 + HANDSHAKE_SIZE);
      this.#state = 'c2';
    }
    if (this.#buf.byteLength < HANDSHAKE_SIZE) {
      // Keep only what is needed: copy so the socket buffer is not pinned.
      this.#buf = Buffer.from(this.#buf);
      return { reply, done: false };
    }
    const rest = Buffer.from(this.#buf.subarray(HANDSHAKE_SIZE));
    this.#buf = Buffer.alloc(0);
    this.#state = 'done';
    return { reply, rest, done: true };
  }
}

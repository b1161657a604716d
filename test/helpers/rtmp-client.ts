/**
 * A tiny RTMP publisher built from the server's own pieces (chunk encoder and parser, AMF0), for tests that
 * need a client doing what no encoder does: publish and then send nothing but acknowledgements, send a
 * few frames and go quiet, or hammer a wrong key.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { decodeAmf0, encodeAmf0, encodeAmf0EcmaArray, type AmfValue } from '../../src/flv/index.js';
import { ChunkParser, encodeMessage, MessageType, type RtmpMessage } from '../../src/ingest/rtmp/chunk.js';
import { HANDSHAKE_SIZE } from '../../src/ingest/rtmp/handshake.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** A real avcC (640x360 High) and a tiny IDR slice: enough for the assembler and the packager. */
const AVC_C = hex('0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800');
const NALS = hex('00000005 6588840021 00000002 0601');
const CHUNK = 128;

const command = (values: AmfValue[], streamId = 0): RtmpMessage => ({
  csid: 3,
  type: MessageType.commandAmf0,
  streamId,
  timestamp: 0,
  payload: encodeAmf0(...values),
});

export class RtmpTestClient {
  readonly socket: net.Socket;
  /** onStatus codes the server sent, in order (NetStream.Publish.Start, ...BadName). */
  readonly statuses: string[] = [];
  readonly closed: Promise<void>;
  #handshake = Buffer.alloc(0);
  #handshakeDone = false;
  #received = 0;
  readonly #parser = new ChunkParser({ maxChunkSize: 1 << 20, maxMessageSize: 1 << 24, maxChunkStreams: 64 });
  #statusWaiters: Array<() => void> = [];
  #keepAlive: NodeJS.Timeout | undefined;
  #closedAt: number | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#closedAt = Date.now();
        clearInterval(this.#keepAlive);
        for (const w of this.#statusWaiters.splice(0)) w();
        resolve();
      }),
    );
    socket.on('error', () => {}); // a reset ends in 'close', which is what tests look at
    socket.on('data', (d: Buffer) => this.#onData(d));
  }

  /** Connects, shakes hands, and sends connect / createStream / publish for `key`. */
  static open(port: number, key: string, app = 'live'): RtmpTestClient {
    const socket = net.connect(port, '127.0.0.1');
    const client = new RtmpTestClient(socket);
    socket.write(Buffer.concat([Buffer.of(3), randomBytes(HANDSHAKE_SIZE)]));
    client.#afterHandshake = () =>
      client.#send([
        command(['connect', 1, { app, tcUrl: `rtmp://127.0.0.1:${port}/${app}`, type: 'nonprivate' }]),
        command(['releaseStream', 2, null, key]),
        command(['FCPublish', 3, null, key]),
        command(['createStream', 4, null]),
        command(['publish', 5, null, key, 'live'], 1),
      ]);
    return client;
  }

  #afterHandshake: () => void = () => {};

  get closedAt(): number | undefined {
    return this.#closedAt;
  }

  /** Resolves with the first onStatus code (or undefined if the connection closes before one). */
  async status(): Promise<string | undefined> {
    if (this.statuses.length === 0 && !this.socket.destroyed) {
      await new Promise<void>((resolve) => this.#statusWaiters.push(resolve));
    }
    return this.statuses[0];
  }

  /** Sends an Acknowledgement every `ms`: traffic that keeps the connection from being idle, and no media. */
  keepAlive(ms: number): void {
    this.#keepAlive = setInterval(() => {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(this.#received >>> 0);
      this.#send([{ csid: 2, type: MessageType.acknowledgement, streamId: 0, timestamp: 0, payload }]);
    }, ms);
  }

  /** Metadata, the AVC sequence header and `n` frames (a keyframe first), 33 ms of media time apart. */
  sendVideo(n: number): void {
    const meta = Buffer.concat([
      encodeAmf0('@setDataFrame', 'onMetaData'),
      encodeAmf0EcmaArray({ width: 640, height: 360, videocodecid: 7 }),
    ]);
    const msgs: RtmpMessage[] = [
      { csid: 4, type: MessageType.dataAmf0, streamId: 1, timestamp: 0, payload: meta },
      { csid: 6, type: MessageType.video, streamId: 1, timestamp: 0, payload: Buffer.concat([hex('1700000000'), AVC_C]) },
    ];
    for (let i = 0; i < n; i++) {
      const head = i === 0 ? hex('1701000000') : hex('2701000000');
      msgs.push({ csid: 6, type: MessageType.video, streamId: 1, timestamp: i * 33, payload: Buffer.concat([head, NALS]) });
    }
    this.#send(msgs);
  }

  close(): void {
    clearInterval(this.#keepAlive);
    this.socket.destroy();
  }

  #send(msgs: RtmpMessage[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(msgs.map((m) => encodeMessage(m, CHUNK))));
  }

  #onData(d: Buffer): void {
    this.#received += d.byteLength;
    let rest = d;
    if (!this.#handshakeDone) {
      this.#handshake = Buffer.concat([this.#handshake, d]);
      if (this.#handshake.byteLength < 1 + 2 * HANDSHAKE_SIZE) return;
      this.#handshakeDone = true;
      // C2 echoes S1.
      this.socket.write(this.#handshake.subarray(1, 1 + HANDSHAKE_SIZE));
      rest = this.#handshake.subarray(1 + 2 * HANDSHAKE_SIZE);
      this.#afterHandshake();
    }
    if (rest.byteLength === 0) return;
    for (const msg of this.#parser.push(rest)) {
      if (msg.type !== MessageType.commandAmf0) continue;
      const [name, , , info] = decodeAmf0(msg.payload);
      const code = typeof info === 'object' && info !== null && 'code' in info ? info.code : undefined;
      if (name !== 'onStatus' || typeof code !== 'string') continue;
      this.statuses.push(code);
      for (const w of this.#statusWaiters.splice(0)) w();
    }
  }
}

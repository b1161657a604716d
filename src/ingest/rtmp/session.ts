import { anchoredClock, AppError, isAppError, monotonicNow, newId, type Logger } from '../../core/index.js';
import type { Publisher } from '../../stream/index.js';
import { ChunkParser, encodeMessage, MessageType, type RtmpMessage } from './chunk.js';
import { Handshake } from './handshake.js';
import {
  decodeAmf0,
  DEFAULT_ASSEMBLER_OPTIONS,
  isAmfObject,
  MediaAssembler,
  parseAggregate,
  type AmfValue,
  type MediaSink,
} from '../../flv/index.js';
import * as m from './messages.js';
import type { SessionOptions } from './types.js';

export type { SessionOptions, SessionTransport } from './types.js';

/** Our outgoing chunk size, and the acknowledgement window / peer bandwidth we announce. */
const OUT_CHUNK_SIZE = 4096;
const WINDOW = 5_000_000;
/** A peer that does not read our replies (pings, statuses) is cut off past this. */
const MAX_WRITE_BACKLOG = 1024 * 1024;
/** Chunk streams a peer may use at once (FFmpeg uses 2-8, OBS 4-6). */
const MAX_CHUNK_STREAMS = 64;
const MAX_MESSAGE_STREAMS = 8;
const ACCEPTED_APP = 'live';

type PublishState = 'idle' | 'authorizing' | 'live' | 'ended';

/**
 * One RTMP connection: handshake, chunk stream, NetConnection / NetStream commands, and media into
 * the hub. `feed()` never throws: bad input closes this connection with one logged reason.
 */
export class RtmpSession {
  readonly id = newId();
  readonly #o: SessionOptions;
  readonly #handshake = new Handshake();
  readonly #chunks: ChunkParser;
  #log: Logger;
  #closed = false;
  #app: string | undefined;
  #streams = 0;
  #state: PublishState = 'idle';
  #publisher: Publisher | undefined;
  #media: MediaAssembler | undefined;
  #metadata: AmfValue;
  /** Messages held while authorize() runs, so nothing is processed out of order. */
  #queued: RtmpMessage[] = [];
  #queuedBytes = 0;
  #received = 0;
  #lastAck = 0;
  #peerWindow = 0;
  /** Message stream id the client publishes on (from createStream). */
  #msgStream = 1;
  /** Frames handed to the hub, and when the last one was (or the publish started): the media timeout. */
  #frames = 0;
  #lastFrameAt = 0;
  #mediaTimer: NodeJS.Timeout | undefined;

  constructor(opts: SessionOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ session: this.id, remote: opts.transport.remoteAddress });
    this.#chunks = new ChunkParser({
      maxChunkSize: opts.limits.maxChunkSize,
      maxMessageSize: opts.limits.maxMessageSize,
      maxChunkStreams: MAX_CHUNK_STREAMS,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get handshakeDone(): boolean {
    return this.#handshake.state === 'done';
  }

  /** Bytes held by the parser and the authorize queue (bounded by the limits). */
  get bufferedBytes(): number {
    return this.#chunks.bufferedBytes + this.#queuedBytes;
  }

  feed(data: Buffer): void {
    if (this.#closed) return;
    this.#o.counters.bytesIn += data.byteLength;
    this.#received += data.byteLength;
    try {
      let bytes: Buffer | undefined = data;
      if (this.#handshake.state !== 'done') {
        const step = this.#handshake.push(data);
        if (step.reply) this.#o.transport.write(step.reply);
        if (!step.done) return;
        this.#o.onHandshake?.();
        bytes = step.rest;
      }
      if (bytes && bytes.byteLength > 0) {
        this.#dispatch(this.#chunks.push(bytes));
        this.#acknowledge();
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Ends the session: the publisher (if any) and the connection. Idempotent. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#mediaTimer);
    if (this.#state === 'live') this.#log.info({ reason }, 'rtmp publish ended');
    this.#state = 'ended';
    try {
      this.#publisher?.close(reason);
    } catch (err) {
      this.#log.error({ err }, 'rtmp publisher close failed');
    }
    this.#queued = [];
    this.#queuedBytes = 0;
    this.#log.debug({ reason }, 'rtmp connection closed');
    this.#o.transport.close();
    this.#o.onClose?.(reason);
  }

  #fail(err: unknown): void {
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message : String(err);
    if (isAppError(err) && err.code === 'E_UNSUPPORTED_CODEC') {
      this.#o.counters.unsupportedCodec++;
      this.#log.warn({ reason }, 'rtmp publish refused: unsupported codec');
      this.#status({ level: 'error', code: 'NetStream.Publish.Rejected', description: reason });
    } else if (isAppError(err)) {
      this.#o.counters.badInput++;
      this.#log.warn({ reason, code: err.code }, 'rtmp connection closed: bad input');
    } else {
      this.#o.counters.badInput++;
      this.#log.error({ err }, 'rtmp connection closed: internal error');
    }
    this.close(reason);
  }

  #dispatch(msgs: RtmpMessage[]): void {
    for (const msg of msgs) {
      if (this.#closed) return;
      if (this.#state === 'authorizing') {
        this.#queuedBytes += msg.payload.byteLength;
        if (this.#queuedBytes > 2 * this.#o.limits.maxMessageSize) {
          throw new AppError('E_LIMIT_EXCEEDED', 'too much data sent while the publish was being authorized');
        }
        this.#queued.push(msg);
      } else {
        this.#onMessage(msg);
      }
    }
  }

  #send(msg: RtmpMessage): void {
    if (this.#closed) return;
    this.#o.transport.write(encodeMessage(msg, OUT_CHUNK_SIZE));
    if (this.#o.transport.writableLength > MAX_WRITE_BACKLOG) {
      throw new AppError('E_LIMIT_EXCEEDED', 'peer does not read what we send');
    }
  }

  /** Sends onStatus on the publishing message stream; never throws (used on the way out, too). */
  #status(info: m.StatusInfo): void {
    try {
      this.#send(m.onStatusMessage(this.#msgStream, info));
    } catch {
      // the connection is being closed anyway
    }
  }

  /** 5.4.3: "The client or the server MUST send an acknowledgment to the peer after receiving bytes equal to the window size." */
  #acknowledge(): void {
    if (this.#peerWindow > 0 && this.#received - this.#lastAck >= this.#peerWindow) {
      this.#lastAck = this.#received;
      this.#send(m.acknowledgementMessage(this.#received));
    }
  }

  #onMessage(msg: RtmpMessage): void {
    const p = msg.payload;
    switch (msg.type) {
      case MessageType.windowAckSize:
        if (p.byteLength < 4) throw new AppError('E_PROTOCOL', 'short Window Acknowledgement Size');
        this.#peerWindow = p.readUInt32BE(0);
        return;
      case MessageType.userControl:
        if (p.byteLength < 2) throw new AppError('E_PROTOCOL', 'short User Control message');
        // PingRequest: "The client MUST respond with PingResponse" and the same timestamp; we do as well.
        if (p.readUInt16BE(0) === m.UserControl.pingRequest && p.byteLength >= 6) {
          this.#send(m.userControlMessage(m.UserControl.pingResponse, p.readUInt32BE(2)));
        }
        return;
      case MessageType.commandAmf0:
      case MessageType.commandAmf3:
        return this.#command(this.#amf(msg), msg.streamId);
      case MessageType.dataAmf0:
      case MessageType.dataAmf3:
        return this.#data(this.#amf(msg));
      case MessageType.audio:
      case MessageType.video:
        return this.#mediaMessage(msg.type, msg.timestamp, p);
      case MessageType.aggregate:
        if (this.#state !== 'live') return;
        for (const item of parseAggregate(p, msg.timestamp)) this.#mediaMessage(item.type, item.timestamp, item.body);
        return;
      default:
        // Acknowledgement, Set Peer Bandwidth, shared objects: nothing to do for an ingest server.
        return;
    }
  }

  /** AMF3 command/data messages (17, 15) as FFmpeg and OBS send them: a 0 format byte, then AMF0. */
  #amf(msg: RtmpMessage): AmfValue[] {
    const amf3 = msg.type === MessageType.commandAmf3 || msg.type === MessageType.dataAmf3;
    const body = amf3 ? msg.payload.subarray(1) : msg.payload;
    return decodeAmf0(body);
  }

  #mediaMessage(type: number, timestamp: number, body: Buffer): void {
    const media = this.#media;
    if (this.#state !== 'live' || !media) return;
    if (type === MessageType.video) media.video(timestamp, body);
    else if (type === MessageType.audio) media.audio(timestamp, body);
  }

  #data(values: AmfValue[]): void {
    const meta = m.metadataOf(values);
    if (!meta) return;
    this.#metadata = meta;
    this.#media?.metadata(meta);
  }

  #command(values: AmfValue[], streamId: number): void {
    const [name, txn, , ...args] = values;
    if (typeof name !== 'string') throw new AppError('E_PROTOCOL', 'command without a name');
    const t = typeof txn === 'number' ? txn : 0;
    switch (name) {
      case 'connect':
        return this.#connect(t, values[2]);
      case 'releaseStream':
        return this.#send(m.resultMessage(t, undefined));
      case 'FCPublish':
        return this.#send(m.onFCPublishMessage());
      case 'createStream':
        if (++this.#streams > MAX_MESSAGE_STREAMS) throw new AppError('E_LIMIT_EXCEEDED', 'too many createStream calls');
        return this.#send(m.resultMessage(t, this.#streams));
      case 'publish':
        return this.#publish(args[0], streamId);
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        if (this.#state === 'live') {
          this.#state = 'ended';
          clearTimeout(this.#mediaTimer);
          this.#publisher?.close('unpublished', 'unpublished');
          this.#log.info({ reason: 'unpublished' }, 'rtmp publish ended');
        }
        return;
      case 'play':
      case 'play2':
        this.#log.info({ command: name }, 'rtmp play refused: ingest only');
        this.#status({ level: 'error', code: 'NetStream.Play.Failed', description: 'This server accepts publishing only.' });
        return this.close('play refused');
      default:
        return; // getStreamLength, _checkbw, onBWDone, _result of nothing we asked...
    }
  }

  #connect(txn: number, obj: AmfValue): void {
    if (this.#app !== undefined) throw new AppError('E_PROTOCOL', 'second connect on one connection');
    const cmd = isAmfObject(obj) ? obj : {};
    const app = m.appName(cmd);
    this.#app = app;
    if (app !== ACCEPTED_APP) {
      this.#authFailed();
      this.#log.warn({ app: app.slice(0, 64) }, 'rtmp connect refused: unknown app');
      this.#send(m.connectRejectedMessage(txn, 'Unknown application.'));
      return this.close('unknown app');
    }
    for (const msg of m.connectReplies(txn, cmd, OUT_CHUNK_SIZE, WINDOW)) this.#send(msg);
  }

  #publish(nameValue: AmfValue, streamId: number): void {
    if (this.#app === undefined) throw new AppError('E_PROTOCOL', 'publish before connect');
    if (this.#state !== 'idle') throw new AppError('E_PROTOCOL', 'second publish on one connection');
    const key = m.streamKey(nameValue);
    this.#msgStream = streamId;
    const remote = this.#o.transport.remoteAddress;
    if (this.#o.authLimiter?.check(remote).refused) {
      // Counted, not logged: the source's refusal was logged once when it reached the limit.
      this.#o.counters.authRefused++;
      this.#status({ level: 'error', code: 'NetStream.Publish.BadName', description: 'Too many failed attempts; try again later.' });
      return this.close('too many failed publishes');
    }
    this.#state = 'authorizing';
    this.#o.transport.pause();
    const app = this.#app;
    // Taken before the key check, so a key revoked while the check runs cannot go live afterwards.
    const authorizedAt = monotonicNow();
    const run = async (): Promise<string> => {
      if (key === '') throw new AppError('E_STREAM_KEY_INVALID', 'empty stream key');
      return (await this.#o.authorize(app, key, remote)).streamId;
    };
    run().then(
      (id) => this.#started(id, authorizedAt),
      (err: unknown) => this.#refused(err),
    );
  }

  #refused(err: unknown): void {
    if (this.#closed) return;
    if (isAppError(err) && err.code === 'E_STREAM_KEY_INVALID') {
      this.#authFailed();
      this.#log.warn({ app: this.#app, reason: err.message }, 'rtmp publish refused: invalid stream key');
      this.#status({ level: 'error', code: 'NetStream.Publish.BadName', description: 'Invalid stream key.' });
      return this.close('invalid stream key');
    }
    this.#log.error({ err }, 'rtmp publish failed');
    this.#status({ level: 'error', code: 'NetStream.Publish.Failed', description: 'Publish failed.' });
    this.close('authorize failed');
  }

  /** A wrong app or key: counted, and the source's failure recorded; logged once when it reaches the limit. */
  #authFailed(): void {
    this.#o.counters.authFailures++;
    const verdict = this.#o.authLimiter?.fail(this.#o.transport.remoteAddress);
    if (verdict?.justRefused) {
      this.#log.warn({ retryAfterSeconds: verdict.retryAfterSeconds }, 'rtmp source refused: too many failed publishes');
    }
  }

  /** What the assembler feeds: the publisher, with each frame noted for the media timeout. */
  #sink(publisher: Publisher): MediaSink {
    return {
      setTracks: (tracks) => publisher.setTracks(tracks),
      write: (frame) => {
        this.#frames++;
        this.#lastFrameAt = monotonicNow();
        publisher.write(frame);
      },
    };
  }

  /** Closes the publish when no frame has come for mediaTimeoutMs (the first one counted from publish). */
  #watchMedia(): void {
    const limit = this.#o.limits.mediaTimeoutMs;
    const quiet = monotonicNow() - this.#lastFrameAt;
    if (quiet < limit) {
      this.#mediaTimer = setTimeout(() => this.#watchMedia(), limit - quiet);
      this.#mediaTimer.unref();
      return;
    }
    if (this.#closed || this.#state !== 'live') return;
    this.#o.counters.timeouts++;
    const what = this.#frames === 0 ? `no media within ${limit} ms of publish` : `no media for ${limit} ms`;
    this.#log.info({ frames: this.#frames }, `rtmp publish closed: ${what}`);
    this.close(what);
  }

  #started(id: string, authorizedAt: number): void {
    if (this.#closed) return;
    this.#log = this.#log.child({ stream: id });
    const info = { sessionId: this.id, protocol: this.#o.protocol, remoteAddress: this.#o.transport.remoteAddress, authorizedAt };
    let publisher: Publisher;
    try {
      publisher = this.#o.hub.publish(id, info, (reason) => this.close(reason));
    } catch (err) {
      return this.#refused(err);
    }
    this.#publisher = publisher;
    try {
      // Arrivals on the wall clock of the publish's start plus monotonic time: PDTs that never jump.
      const wall = anchoredClock(this.#o.hub.clock);
      this.#media = new MediaAssembler(this.#sink(publisher), { ...DEFAULT_ASSEMBLER_OPTIONS, now: () => wall.now() });
      if (this.#metadata !== undefined) this.#media.metadata(this.#metadata);
      this.#state = 'live';
      this.#lastFrameAt = monotonicNow();
      this.#watchMedia();
      this.#log.info({ app: this.#app, protocol: this.#o.protocol }, 'rtmp publish started');
      this.#send(m.userControlMessage(m.UserControl.streamBegin, this.#msgStream));
      this.#status({ level: 'status', code: 'NetStream.Publish.Start', description: 'Publishing.' });
      const queued = this.#queued;
      this.#queued = [];
      this.#queuedBytes = 0;
      this.#dispatch(queued);
      this.#o.transport.resume();
    } catch (err) {
      this.#fail(err);
    }
  }
}

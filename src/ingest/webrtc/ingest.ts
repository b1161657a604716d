import { randomBytes } from 'node:crypto';
import ndc from 'node-datachannel';
import { AppError, isAppError, newId, type FailureLimiter, type Logger } from '../../core/index.js';
import { WhipAdmission, type Admission } from './admission.js';
import { negotiate, parseOffer, parseTrickleFragment, candidateAddress } from './sdp.js';
import { WhipSession } from './session.js';
import { newWebRtcCounters, type WebRtcCounters, type WebRtcIngestOptions, type WhipSessionStats } from './types.js';

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (/^127\./.test(address) || address === '::1');
}

export interface CreatedSession {
  readonly sessionId: string;
  readonly answer: string;
  /** Strong entity tag of the ICE session (RFC 9725 4.3.1: If-Match on PATCH). */
  readonly etag: string;
}

export type PatchOutcome =
  { readonly kind: 'trickle'; readonly added: number } | { readonly kind: 'restart-unsupported' } | { readonly kind: 'etag-mismatch' };

/** Why a pending session was closed by a newer offer for its stream. */
const REPLACED = 'replaced by a newer offer for the stream';

interface Entry {
  readonly session: WhipSession;
  readonly etag: string;
  readonly iceUfrag: string | undefined;
}

/**
 * WebRTC ingest: WHIP sessions (created by signaling/), each publishing one stream into the hub. Owns its
 * sessions: close() ends them all. Same rules as RTMP: the stream key is checked by the same lookup, a new
 * session for a live stream takes it over (the hub kicks the old publisher), limits on everything.
 */
export class WebRtcIngest {
  readonly counters: WebRtcCounters = newWebRtcCounters();
  readonly #o: WebRtcIngestOptions;
  readonly #log: Logger;
  readonly #sessions = new Map<string, Entry>();
  readonly #admission: WhipAdmission;
  #dropEvery = 0;
  #closed = false;

  constructor(opts: WebRtcIngestOptions) {
    const n = opts.network;
    if (!(Number.isInteger(n.portMin) && Number.isInteger(n.portMax) && n.portMin >= 1024 && n.portMax <= 65535 && n.portMin < n.portMax)) {
      throw new AppError('E_CONFIG_INVALID', `WebRTC UDP port range ${n.portMin}-${n.portMax} must be within 1024-65535 with min < max`);
    }
    for (const [k, v] of Object.entries(opts.limits)) {
      if (!Number.isInteger(v) || v <= 0) throw new AppError('E_CONFIG_INVALID', `WebRTC limit ${k} must be a positive integer, got ${v}`);
    }
    this.#o = opts;
    this.#log = opts.logger;
    this.#admission = new WhipAdmission({
      authorize: (key, remote) => opts.authorize(key, remote),
      offersPerMinute: opts.limits.offersPerStreamPerMinute,
      authFailures: opts.authFailures,
      counters: this.counters,
      logger: opts.logger,
    });
    // libdatachannel logs to stderr by default; route its warnings into ours.
    ndc.initLogger('Warning', (level, message) => this.#log.debug({ level, message }, 'libdatachannel'));
  }

  get #loopbackOnly(): boolean {
    return isLoopback(this.#o.network.bindAddress);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The ICE servers for clients (Link headers, RFC 9725 4.6). */
  get iceServers(): readonly string[] {
    return this.#o.network.iceServers;
  }

  /** Test only: drop every n-th received RTP packet of every session (0 turns it off). */
  setTestPacketDrop(every: number): void {
    this.#dropEvery = Math.max(0, Math.floor(every));
  }

  /**
   * Checks what can be checked before the offer is read (signaling calls this from the request's headers):
   * the address is not held for wrong keys, the key names a stream, the stream is within its offer rate.
   * Throws E_UNAUTHORIZED (wrong key), RetryLaterError (429 with Retry-After), E_CLOSED.
   */
  async admit(streamKey: string, remoteAddress: string): Promise<Admission> {
    if (this.#closed) throw new AppError('E_CLOSED', 'WebRTC ingest closed');
    return this.#admission.admit(streamKey, remoteAddress);
  }

  /** The wrong-key limiter per source address (its counters are for /metrics). */
  get authFailures(): FailureLimiter {
    return this.#admission.authFailures;
  }

  /**
   * Negotiates the offer of an admitted publisher and answers. Throws AppError: E_VALIDATION /
   * E_LIMIT_EXCEEDED / E_UNSUPPORTED_CODEC (bad offer), E_LIMIT_EXCEEDED (too many sessions), E_CLOSED.
   */
  async create(offerSdp: string, admission: Admission, remoteAddress: string): Promise<CreatedSession> {
    if (this.#closed) throw new AppError('E_CLOSED', 'WebRTC ingest closed');
    const { streamId, authorizedAt } = admission;
    let offer;
    let negotiated;
    try {
      offer = parseOffer(offerSdp);
      negotiated = negotiate(offer);
    } catch (err) {
      this.counters.badOffers++;
      if (isAppError(err) && err.code === 'E_UNSUPPORTED_CODEC') this.counters.unsupportedCodec++;
      this.#log.warn({ remote: remoteAddress, stream: streamId, reason: (err as Error).message }, 'whip offer refused');
      throw err;
    }
    this.#replacePending(streamId);
    if (this.#sessions.size >= this.#o.limits.maxSessions) {
      this.counters.overLimit++;
      throw new AppError('E_LIMIT_EXCEEDED', `too many WebRTC sessions (${this.#o.limits.maxSessions})`);
    }
    const id = newId();
    const log = this.#log.child({ session: id, stream: streamId, remote: remoteAddress });
    // Bound to loopback (the tests: 127.0.0.1), only loopback candidates can be reached: the others are not
    // tried at all, so no check ever leaves the machine.
    const filtered = this.#loopbackOnly
      ? offerSdp
          .split(/\r?\n/)
          .filter((l) => !l.startsWith('a=candidate:') || isLoopback(candidateAddress(l.slice(2))))
          .join('\r\n')
      : offerSdp;
    let session: WhipSession;
    try {
      session = new WhipSession({
        id,
        streamId,
        authorizedAt,
        remoteAddress,
        offer: filtered,
        negotiated,
        ingest: this.#o,
        counters: this.counters,
        logger: log,
        dropEvery: () => this.#dropEvery,
        onClosed: () => {
          if (this.#sessions.get(id)?.session === session) {
            this.#sessions.delete(id);
            this.counters.activeSessions--;
          }
        },
      });
    } catch (err) {
      this.counters.badOffers++;
      log.warn({ err }, 'whip session could not be created');
      throw new AppError('E_VALIDATION', `the offer could not be applied: ${(err as Error).message}`, { cause: err });
    }
    const etag = `"${randomBytes(9).toString('base64url')}"`;
    this.#sessions.set(id, { session, etag, iceUfrag: offer.media.find((m) => m.mid === negotiated.video.mid)?.iceUfrag });
    this.counters.sessions++;
    this.counters.activeSessions++;
    try {
      const answer = await session.answer();
      log.info({ audio: Boolean(negotiated.audio), sprop: negotiated.video.sprop.length > 0 }, 'whip session created');
      return { sessionId: id, answer, etag };
    } catch (err) {
      // Two offers for one stream at once: the newer one replaced this one while it was being answered.
      if (session.closeReason === REPLACED)
        throw new AppError('E_CONFLICT', 'a newer offer for this stream replaced this one', { cause: err });
      session.close('answer failed');
      if (isAppError(err)) throw err;
      throw new AppError('E_VALIDATION', `the offer could not be answered: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * One pending (not yet connected) session per stream, as MediaMTX and SRS allow one publisher per path: a
   * new offer replaces the one still connecting, so offers with one key never fill WEBRTC_MAX_SESSIONS for
   * every other stream. A live session is left alone: the hub hands the stream over when the new session
   * connects (a reconnect after a drop, or a second client, takes over without a gap), and an offer that
   * never connects cannot end it. A stream thus holds at most two sessions: one live, one connecting.
   */
  #replacePending(streamId: string): void {
    for (const e of this.#sessions.values()) {
      if (e.session.streamId !== streamId || e.session.state !== 'connecting') continue;
      this.counters.pendingReplaced++;
      e.session.close(REPLACED);
    }
  }

  /**
   * A PATCH (RFC 9725 4.3): trickled candidates, or an ICE restart (new ufrag), which libdatachannel cannot do
   * on a live session; the client then starts a new session, which takes the stream over seamlessly.
   */
  patch(sessionId: string, fragment: string, ifMatch: string | undefined): PatchOutcome {
    const e = this.#entry(sessionId);
    const frag = parseTrickleFragment(fragment);
    if (frag.iceUfrag !== undefined && e.iceUfrag !== undefined && frag.iceUfrag !== e.iceUfrag) return { kind: 'restart-unsupported' };
    // "If-Match: *" is for restarts; a trickle PATCH carries the session's ETag. A stale one is refused.
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== e.etag) return { kind: 'etag-mismatch' };
    const candidates = this.#loopbackOnly ? frag.candidates.filter((c) => isLoopback(candidateAddress(c.candidate))) : frag.candidates;
    return { kind: 'trickle', added: e.session.addCandidates(candidates) };
  }

  etag(sessionId: string): string {
    return this.#entry(sessionId).etag;
  }

  /** DELETE: the publisher stopped, as after an RTMP unpublish (the stream ends after UNPUBLISH_GRACE_MS). */
  remove(sessionId: string): void {
    this.#entry(sessionId).session.close('publisher ended the session (DELETE)', 'unpublished');
  }

  #entry(sessionId: string): Entry {
    const e = this.#sessions.get(sessionId);
    if (!e) throw new AppError('E_NOT_FOUND', 'no such WHIP session');
    return e;
  }

  /** Sessions of a stream (usually one; two during a takeover), newest first. */
  streamSessions(streamId: string): WhipSessionStats[] {
    return [...this.#sessions.values()]
      .filter((e) => e.session.streamId === streamId)
      .map((e) => e.session.stats())
      .sort((a, b) => b.startedAt - a.startedAt);
  }

  list(): WhipSessionStats[] {
    return [...this.#sessions.values()].map((e) => e.session.stats());
  }

  /** Ends every session and waits for their FFmpegs. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#sessions.values()].map((e) => e.session);
    for (const s of all) s.close('server shutting down');
    await Promise.all(all.map((s) => s.drained()));
  }
}

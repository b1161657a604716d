/**
 * The few SDP facts a WHIP ingest needs from an offer (RFC 8866 syntax, RFC 8829 usage), and the choice of
 * codecs. Pure and bounded: an offer larger than MAX_SDP_BYTES, with more lines or m-sections than the
 * limits, or without the attributes WebRTC requires, throws AppError and never allocates past the limits.
 */
import { AppError } from '../../core/index.js';

/** Browsers' offers are 3-8 KB; OBS's about 2 KB. */
export const MAX_SDP_BYTES = 64 * 1024;
const MAX_LINES = 2000;
const MAX_MEDIA = 16;
const MAX_FORMATS = 64;
const MAX_CANDIDATES = 64;
const MAX_SPROP_BYTES = 1024;
/**
 * RFC 8839 5.4: `ice-ufrag = "ice-ufrag:" ufrag` with `ufrag = 4*256ice-char`, and `ice-pwd` 22 to 256
 * ice-chars. Browsers send 4 and 24, libnice and FFmpeg 8 and 32; anything longer is not a WebRTC offer.
 * The characters are only held to printable ASCII: the grammar's ALPHA / DIGIT / "+" / "/" is what every
 * client we know sends, but refusing a publisher for a "-" would help nobody.
 */
const ICE_UFRAG = { min: 4, max: 256 } as const;
const ICE_PWD = { min: 22, max: 256 } as const;
/** A mid is "0", "1" in every client; RFC 8285's one-byte header extension that carries it holds 16 bytes. */
const MAX_MID_CHARS = 32;

export interface SdpFormat {
  readonly pt: number;
  /** Encoding name as written (H264, opus...). */
  readonly name: string;
  readonly clockRate: number;
  readonly channels: number;
  readonly fmtp: string;
  readonly feedback: readonly string[];
}

export interface SdpMedia {
  readonly kind: string;
  readonly port: number;
  readonly proto: string;
  readonly mid: string | undefined;
  readonly direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
  readonly formats: readonly SdpFormat[];
  readonly ssrcs: readonly number[];
  readonly candidates: readonly string[];
  readonly iceUfrag: string | undefined;
  readonly icePwd: string | undefined;
}

export interface SdpOffer {
  readonly media: readonly SdpMedia[];
  readonly iceUfrag: string | undefined;
  readonly icePwd: string | undefined;
  readonly hasFingerprint: boolean;
}

/** What we take from an offer: one H.264 video section and at most one Opus audio section. */
export interface Negotiated {
  readonly video: {
    readonly mid: string;
    readonly pt: number;
    readonly fmtp: string;
    /** SPS and PPS from sprop-parameter-sets (RFC 6184 8.1), when the offer carries them. */
    readonly sprop: readonly Uint8Array[];
    readonly feedback: ReadonlySet<string>;
  };
  readonly audio?: {
    readonly mid: string;
    readonly pt: number;
    readonly fmtp: string;
    readonly channels: number;
  };
}

const bad = (why: string) => new AppError('E_VALIDATION', `bad SDP offer: ${why}`);

/** An ICE ufrag or password as RFC 8839 5.4 bounds it; throws E_VALIDATION naming the attribute. */
function iceCredential(attr: 'ice-ufrag' | 'ice-pwd', value: string, what = 'SDP offer'): string {
  const { min, max } = attr === 'ice-ufrag' ? ICE_UFRAG : ICE_PWD;
  if (value.length < min || value.length > max || !/^[\x21-\x7e]+$/.test(value)) {
    const shown = value.length > 16 ? `${value.length} characters` : `"${value.replace(/[^\x21-\x7e]/g, '?')}"`;
    throw new AppError('E_VALIDATION', `bad ${what}: a=${attr} must be ${min} to ${max} printable characters (RFC 8839), got ${shown}`);
  }
  return value;
}

function fmtpParams(fmtp: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of fmtp.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return out;
}

/** Parses an SDP offer. Throws E_VALIDATION (400) when it is too large or not a WebRTC offer. */
export function parseOffer(text: string): SdpOffer {
  if (Buffer.byteLength(text, 'utf8') > MAX_SDP_BYTES)
    throw new AppError('E_LIMIT_EXCEEDED', `SDP offer larger than ${MAX_SDP_BYTES} bytes`);
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_LINES) throw bad(`more than ${MAX_LINES} lines`);
  if (!lines[0]?.startsWith('v=0')) throw bad('does not start with v=0');
  let sessionUfrag: string | undefined;
  let sessionPwd: string | undefined;
  let fingerprint = false;
  interface Building {
    kind: string;
    port: number;
    proto: string;
    mid?: string;
    direction: SdpMedia['direction'];
    pts: number[];
    rtpmap: Map<number, { name: string; clockRate: number; channels: number }>;
    fmtp: Map<number, string>;
    fb: Map<number, string[]>;
    ssrcs: Set<number>;
    candidates: string[];
    ufrag?: string;
    pwd?: string;
  }
  const media: Building[] = [];
  let cur: Building | undefined;
  for (const raw of lines) {
    const line = raw.trimEnd();
    if (line.startsWith('m=')) {
      if (media.length >= MAX_MEDIA) throw bad(`more than ${MAX_MEDIA} m-sections`);
      const [kind, port, proto = '', ...fmts] = line.slice(2).split(' ');
      if (fmts.length > MAX_FORMATS) throw bad(`more than ${MAX_FORMATS} formats in one m-section`);
      cur = {
        kind,
        port: Number(port),
        proto,
        direction: 'sendrecv',
        pts: fmts.map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n <= 127),
        rtpmap: new Map(),
        fmtp: new Map(),
        fb: new Map(),
        ssrcs: new Set(),
        candidates: [],
      };
      media.push(cur);
      continue;
    }
    if (!line.startsWith('a=')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line.slice(2) : line.slice(2, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1);
    if (name === 'fingerprint') fingerprint = true;
    if (!cur) {
      if (name === 'ice-ufrag') sessionUfrag = iceCredential(name, value);
      else if (name === 'ice-pwd') sessionPwd = iceCredential(name, value);
      continue;
    }
    switch (name) {
      case 'mid':
        if (value.length > MAX_MID_CHARS) throw bad(`a=mid longer than ${MAX_MID_CHARS} characters`);
        cur.mid = value;
        break;
      case 'sendrecv':
      case 'sendonly':
      case 'recvonly':
      case 'inactive':
        cur.direction = name;
        break;
      case 'ice-ufrag':
        cur.ufrag = iceCredential(name, value);
        break;
      case 'ice-pwd':
        cur.pwd = iceCredential(name, value);
        break;
      case 'candidate':
        if (cur.candidates.length >= MAX_CANDIDATES) throw bad(`more than ${MAX_CANDIDATES} candidates in one m-section`);
        cur.candidates.push(`candidate:${value}`);
        break;
      case 'rtpmap': {
        const m = /^(\d+) ([\w.-]+)\/(\d+)(?:\/(\d+))?$/.exec(value);
        const channels: string | undefined = m?.[4]; // an optional group: undefined when absent
        if (m) cur.rtpmap.set(Number(m[1]), { name: m[2], clockRate: Number(m[3]), channels: Number(channels ?? 1) });
        break;
      }
      case 'fmtp': {
        const sp = value.indexOf(' ');
        if (sp > 0) cur.fmtp.set(Number(value.slice(0, sp)), value.slice(sp + 1));
        break;
      }
      case 'rtcp-fb': {
        const sp = value.indexOf(' ');
        if (sp <= 0) break;
        const pt = value.slice(0, sp) === '*' ? -1 : Number(value.slice(0, sp));
        const list = cur.fb.get(pt) ?? [];
        if (list.length < 16) list.push(value.slice(sp + 1).trim());
        cur.fb.set(pt, list);
        break;
      }
      case 'ssrc': {
        const ssrc = Number(value.split(' ')[0]);
        if (Number.isInteger(ssrc) && cur.ssrcs.size < 16) cur.ssrcs.add(ssrc >>> 0);
        break;
      }
    }
  }
  if (media.length === 0) throw bad('no m-section');
  const parsed: SdpMedia[] = media.map((b) => ({
    kind: b.kind,
    port: b.port,
    proto: b.proto,
    mid: b.mid,
    direction: b.direction,
    formats: b.pts.flatMap((pt) => {
      const map = b.rtpmap.get(pt);
      if (!map) return [];
      return [{ pt, ...map, fmtp: b.fmtp.get(pt) ?? '', feedback: [...(b.fb.get(-1) ?? []), ...(b.fb.get(pt) ?? [])] }];
    }),
    ssrcs: [...b.ssrcs],
    candidates: b.candidates,
    iceUfrag: b.ufrag ?? sessionUfrag,
    icePwd: b.pwd ?? sessionPwd,
  }));
  return { media: parsed, iceUfrag: sessionUfrag, icePwd: sessionPwd, hasFingerprint: fingerprint };
}

/**
 * H.264 formats we accept, best first. RFC 6184 5.8: packetization-mode 1 (non-interleaved; FU-A and
 * STAP-A) is what every WebRTC sender offers; mode 0 would forbid fragmentation and mode 2 needs
 * de-interleaving. Any profile is packaged as it comes (HLS players decode them all); constrained baseline
 * (42e0xx) ranks first because it has no B-frames, the others follow in the offer's order.
 */
function h264Rank(f: SdpFormat): number {
  if (f.name.toUpperCase() !== 'H264' || f.clockRate !== 90_000) return -1;
  const p = fmtpParams(f.fmtp);
  if ((p.get('packetization-mode') ?? '0') !== '1') return -1;
  const profile = (p.get('profile-level-id') ?? '42e01f').toLowerCase();
  return profile.startsWith('42e0') ? 3 : profile.startsWith('4200') ? 2 : 1;
}

/** Decodes sprop-parameter-sets: comma-separated base64 NAL units (RFC 6184 8.1). Bad entries are skipped. */
export function parseSprop(fmtp: string): Uint8Array[] {
  const v = fmtpParams(fmtp).get('sprop-parameter-sets');
  if (!v || v.length > MAX_SPROP_BYTES) return [];
  return v
    .split(',')
    .map((s) => Buffer.from(s, 'base64'))
    .filter((n) => n.length > 1 && ((n[0] & 0x1f) === 7 || (n[0] & 0x1f) === 8));
}

/**
 * Chooses what to receive: the first video section with an acceptable H.264 format (required) and the first
 * audio section with Opus (optional). Throws E_UNSUPPORTED_CODEC (415) when there is no H.264 to take, and
 * E_VALIDATION when the offer lacks what WebRTC requires (mids, DTLS fingerprint, ICE credentials).
 */
export function negotiate(offer: SdpOffer): Negotiated {
  if (!offer.hasFingerprint) throw bad('no a=fingerprint (DTLS-SRTP is required)');
  let video: Negotiated['video'] | undefined;
  let audio: Negotiated['audio'] | undefined;
  for (const m of offer.media) {
    if (m.port === 0 && m.mid === undefined) continue;
    if (m.direction === 'recvonly' || m.direction === 'inactive') continue;
    if (!m.iceUfrag || !m.icePwd) throw bad('no ICE credentials (a=ice-ufrag, a=ice-pwd)');
    if (m.kind === 'video' && !video) {
      if (!m.mid) throw bad('video section without a=mid');
      const best = m.formats
        .map((f) => ({ f, r: h264Rank(f) }))
        .filter((x) => x.r > 0)
        .sort((a, b) => b.r - a.r)
        .at(0);
      if (!best) continue;
      video = { mid: m.mid, pt: best.f.pt, fmtp: best.f.fmtp, sprop: parseSprop(best.f.fmtp), feedback: new Set(best.f.feedback) };
    } else if (m.kind === 'audio' && !audio) {
      if (!m.mid) throw bad('audio section without a=mid');
      const opus = m.formats.find((f) => f.name.toLowerCase() === 'opus' && f.clockRate === 48_000);
      if (opus) audio = { mid: m.mid, pt: opus.pt, fmtp: opus.fmtp, channels: opus.channels };
    }
  }
  if (!video) {
    const offered = offer.media.filter((m) => m.kind === 'video').flatMap((m) => m.formats.map((f) => f.name));
    throw new AppError(
      'E_UNSUPPORTED_CODEC',
      `the offer has no H.264 video with packetization-mode=1 (offered: ${[...new Set(offered)].join(', ') || 'no video'})`,
    );
  }
  return audio ? { video, audio } : { video };
}

/**
 * The fmtp of our answer for the chosen H.264 format: the offer's profile and level (we take what the
 * sender encodes), packetization-mode 1, and never sprop-parameter-sets (that is the sender's to declare).
 */
export function answerH264Fmtp(offerFmtp: string): string {
  const p = fmtpParams(offerFmtp);
  const profile = /^[0-9a-f]{6}$/i.test(p.get('profile-level-id') ?? '') ? p.get('profile-level-id')! : '42e01f';
  return `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${profile}`;
}

/**
 * Rewrites the host candidates of an answer to announce `publicIp` instead (a server behind a 1:1 NAT: the
 * same ports are forwarded). Other candidates (srflx, relay) are left alone.
 */
export function announceAddress(sdp: string, publicIp: string): string {
  return sdp
    .split('\r\n')
    .map((l) => {
      const m = /^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$/.exec(l);
      return m ? `${m[1]}${publicIp}${m[3]}` : l.startsWith('c=IN IP') ? `c=IN ${publicIp.includes(':') ? 'IP6' : 'IP4'} ${publicIp}` : l;
    })
    .join('\r\n');
}

/** One trickled candidate and the m-section (mid) it belongs to. */
export interface TrickleCandidate {
  readonly mid: string | undefined;
  readonly candidate: string;
}

/** What a PATCH body (application/trickle-ice-sdpfrag, RFC 8840) carries. */
export interface TrickleFragment {
  readonly iceUfrag: string | undefined;
  readonly icePwd: string | undefined;
  readonly candidates: readonly TrickleCandidate[];
  readonly endOfCandidates: boolean;
}

/** Parses an SDP fragment for trickle ICE (RFC 8840 section 9.2). Bounded like an offer. */
export function parseTrickleFragment(text: string): TrickleFragment {
  if (Buffer.byteLength(text, 'utf8') > MAX_SDP_BYTES)
    throw new AppError('E_LIMIT_EXCEEDED', `SDP fragment larger than ${MAX_SDP_BYTES} bytes`);
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_LINES) throw new AppError('E_VALIDATION', `bad SDP fragment: more than ${MAX_LINES} lines`);
  let ufrag: string | undefined;
  let pwd: string | undefined;
  let mid: string | undefined;
  let end = false;
  const candidates: TrickleCandidate[] = [];
  for (const raw of lines) {
    const l = raw.trim();
    if (l.startsWith('a=ice-ufrag:')) ufrag = iceCredential('ice-ufrag', l.slice(12), 'SDP fragment');
    else if (l.startsWith('a=ice-pwd:')) pwd = iceCredential('ice-pwd', l.slice(10), 'SDP fragment');
    else if (l.startsWith('a=mid:')) mid = l.slice(6);
    else if (l === 'a=end-of-candidates') end = true;
    else if (l.startsWith('a=candidate:')) {
      if (candidates.length >= MAX_CANDIDATES)
        throw new AppError('E_VALIDATION', `bad SDP fragment: more than ${MAX_CANDIDATES} candidates`);
      candidates.push({ mid, candidate: l.slice(2) });
    }
  }
  return { iceUfrag: ufrag, icePwd: pwd, candidates, endOfCandidates: end };
}

/** The address of a candidate line (`candidate:1 1 UDP 2122 192.0.2.1 5000 typ host`). */
export function candidateAddress(candidate: string): string | undefined {
  return candidate.split(' ')[4];
}

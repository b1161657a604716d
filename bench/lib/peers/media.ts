/**
 * The few bytes of media the peers bench reads from what a server serves, as pure functions: the media
 * playlist, the first video timestamp of an MPEG-TS or fMP4 segment, and FLV tags of an HTTP-FLV stream.
 * Only what the bench needs; not general parsers.
 */

export interface PlaylistSegment {
  readonly msn: number;
  readonly uri: string;
  /** EXTINF, seconds. */
  readonly durationS: number;
  /** EXT-X-PROGRAM-DATE-TIME in ms since the epoch, when the playlist has one for this segment. */
  readonly pdtMs?: number;
}

export interface PlaylistPart {
  /** The segment this part belongs to. */
  readonly msn: number;
  readonly uri: string;
  readonly durationS: number;
}

export interface MediaPlaylist {
  readonly targetDurationS?: number;
  readonly partHoldBackS?: number;
  /** EXT-X-MAP URI (fMP4). */
  readonly mapUri?: string;
  readonly segments: PlaylistSegment[];
  readonly parts: PlaylistPart[];
}

/** Parse a live media playlist; unknown tags are ignored. */
export function parseMediaPlaylist(text: string): MediaPlaylist {
  let targetDurationS: number | undefined;
  let partHoldBackS: number | undefined;
  let mapUri: string | undefined;
  let msn = 0;
  let pendingDuration: number | undefined;
  let pendingPdt: number | undefined;
  // A program date time applies to the next segment and, by extrapolation, to those after it.
  let nextPdt: number | undefined;
  const segments: PlaylistSegment[] = [];
  const parts: PlaylistPart[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-TARGETDURATION:')) targetDurationS = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-SERVER-CONTROL:')) {
      const m = /PART-HOLD-BACK=([\d.]+)/.exec(line);
      if (m) partHoldBackS = Number(m[1]);
    } else if (line.startsWith('#EXT-X-MAP:')) mapUri = /URI="([^"]+)"/.exec(line)?.[1];
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pendingPdt = Date.parse(line.slice(25));
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]+)"/.exec(line)?.[1];
      const d = Number(/DURATION=([\d.]+)/.exec(line)?.[1]);
      if (uri && Number.isFinite(d)) parts.push({ msn, uri, durationS: d });
    } else if (line.startsWith('#EXTINF:')) pendingDuration = Number.parseFloat(line.slice(8));
    else if (!line.startsWith('#') && pendingDuration !== undefined) {
      const pdtMs = pendingPdt ?? nextPdt;
      segments.push({ msn, uri: line, durationS: pendingDuration, pdtMs });
      nextPdt = pdtMs === undefined ? undefined : pdtMs + pendingDuration * 1000;
      pendingDuration = undefined;
      pendingPdt = undefined;
      msn++;
    }
  }
  return { targetDurationS, partHoldBackS, mapUri, segments, parts };
}

// ---- MPEG-TS ----

const TS_PACKET = 188;

/**
 * PTS (seconds) of the first video PES (stream id 0xE0-0xEF) that starts in `ts`, or undefined. Walks the
 * 188-byte packets without the PAT/PMT: a PES start is recognised by its 00 00 01 prefix.
 */
export function firstVideoPtsTs(ts: Uint8Array): number | undefined {
  for (let off = 0; off + TS_PACKET <= ts.length; off += TS_PACKET) {
    if (ts[off] !== 0x47) return undefined; // lost sync: not a TS file the bench understands
    const payloadStart = (ts[off + 1] & 0x40) !== 0;
    const afc = (ts[off + 3] >> 4) & 3;
    if (!payloadStart || (afc & 1) === 0) continue;
    const p = off + 4 + (afc & 2 ? 1 + ts[off + 4] : 0);
    if (p + 14 > off + TS_PACKET) continue;
    if (ts[p] !== 0 || ts[p + 1] !== 0 || ts[p + 2] !== 1) continue;
    const streamId = ts[p + 3];
    if (streamId < 0xe0 || streamId > 0xef) continue;
    if ((ts[p + 7] & 0x80) === 0) continue; // no PTS
    const b = ts.subarray(p + 9, p + 14);
    // 33 bits spread over 5 bytes with marker bits; too wide for 32-bit bit operations, hence the products.
    const pts = ((b[0] >> 1) & 0x07) * 2 ** 30 + ((b[1] << 7) | (b[2] >> 1)) * 2 ** 15 + ((b[3] << 7) | (b[4] >> 1));
    return pts / 90_000;
  }
  return undefined;
}

// ---- ISO BMFF (fMP4) ----

interface Box {
  readonly type: string;
  /** Payload: after the size and type (and the 64-bit size when there is one). */
  readonly body: Uint8Array;
}

function* boxes(buf: Uint8Array): Generator<Box> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 8 <= buf.length) {
    let size = dv.getUint32(off);
    let header = 8;
    if (size === 1) {
      if (off + 16 > buf.length) return;
      size = Number(dv.getBigUint64(off + 8));
      header = 16;
    } else if (size === 0) size = buf.length - off;
    if (size < header || off + size > buf.length) return;
    const type = String.fromCharCode(buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]);
    yield { type, body: buf.subarray(off + header, off + size) };
    off += size;
  }
}

function child(buf: Uint8Array, type: string): Uint8Array | undefined {
  for (const b of boxes(buf)) if (b.type === type) return b.body;
  return undefined;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

export interface VideoTrack {
  readonly trackId: number;
  readonly timescale: number;
}

/** The video track of an init segment (moov > trak with handler 'vide'): its id and mdhd timescale. */
export function videoTrackOfInit(init: Uint8Array): VideoTrack | undefined {
  const moov = child(init, 'moov');
  if (!moov) return undefined;
  for (const b of boxes(moov)) {
    if (b.type !== 'trak') continue;
    const tkhd = child(b.body, 'tkhd');
    const mdia = child(b.body, 'mdia');
    const hdlr = mdia && child(mdia, 'hdlr');
    const mdhd = mdia && child(mdia, 'mdhd');
    if (!tkhd || !hdlr || !mdhd) continue;
    // hdlr: version/flags (4), pre_defined (4), handler_type (4).
    if (String.fromCharCode(...hdlr.subarray(8, 12)) !== 'vide') continue;
    // tkhd v0: version/flags, creation, modification (4 each), track_ID; v1: the times are 8 bytes each.
    const trackId = view(tkhd).getUint32(tkhd[0] === 1 ? 20 : 12);
    // mdhd v0: version/flags, creation, modification, timescale; v1: the times are 8 bytes each.
    const timescale = view(mdhd).getUint32(mdhd[0] === 1 ? 20 : 12);
    return { trackId, timescale };
  }
  return undefined;
}

/** baseMediaDecodeTime (seconds) of `track` in the first moof of a segment or part, or undefined. */
export function firstTfdtSeconds(segment: Uint8Array, track: VideoTrack): number | undefined {
  const moof = child(segment, 'moof');
  if (!moof) return undefined;
  for (const b of boxes(moof)) {
    if (b.type !== 'traf') continue;
    const tfhd = child(b.body, 'tfhd');
    const tfdt = child(b.body, 'tfdt');
    if (!tfhd || !tfdt || view(tfhd).getUint32(4) !== track.trackId) continue;
    const t = tfdt[0] === 1 ? Number(view(tfdt).getBigUint64(4)) : view(tfdt).getUint32(4);
    return t / track.timescale;
  }
  return undefined;
}

// ---- FLV over HTTP ----

export interface FlvTag {
  /** 8 audio, 9 video, 18 script data. */
  readonly type: number;
  /** Tag timestamp, ms (the RTMP timestamp the server forwards). */
  readonly timestampMs: number;
  /** A video tag that carries a key frame (not a sequence header). */
  readonly keyFrame: boolean;
}

/**
 * Incremental FLV tag reader: feed it the bytes of an HTTP-FLV answer as they arrive. A file header may
 * appear again at a tag boundary (some servers send one per publish) and is skipped.
 */
export class FlvTagReader {
  #buf: Buffer = Buffer.alloc(0);
  /** Longest tag accepted: the bench's source has tags of a few tens of KB. */
  static readonly MAX_TAG = 8 << 20;

  push(chunk: Buffer): FlvTag[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const tags: FlvTag[] = [];
    let off = 0;
    for (;;) {
      const b = this.#buf;
      if (b.length - off >= 3 && b[off] === 0x46 && b[off + 1] === 0x4c && b[off + 2] === 0x56) {
        // "FLV" header (9 bytes) + PreviousTagSize0 (4 bytes).
        if (b.length - off < 13) break;
        off += 13;
        continue;
      }
      if (b.length - off < 11) break;
      const size = b.readUIntBE(off + 1, 3);
      if (size > FlvTagReader.MAX_TAG) throw new Error(`FLV tag of ${size} bytes: not an FLV stream the bench understands`);
      if (b.length - off < 11 + size + 4) break;
      const type = b[off] & 0x1f;
      const timestampMs = (b.readUIntBE(off + 4, 3) | (b[off + 7] << 24)) >>> 0;
      // Legacy video tag: frame type in the high nibble (1 = key frame); for AVC, byte 1 is the packet type
      // (0 = sequence header, 1 = NAL units).
      const keyFrame = type === 9 && size >= 2 && b[off + 11] >> 4 === 1 && b[off + 12] === 1;
      tags.push({ type, timestampMs, keyFrame });
      off += 11 + size + 4;
    }
    this.#buf = this.#buf.subarray(off);
    return tags;
  }
}

import { describe, expect, it } from 'vitest';
import { announceAddress, answerH264Fmtp, negotiate, parseOffer, parseSprop, parseTrickleFragment } from '../../src/ingest/webrtc/sdp.js';

/** A Chrome-like WHIP offer (trimmed): VP8, H.264 in several profiles and modes, RTX, Opus. */
const CHROME = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=msid-semantic: WMS',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 127',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Vx3n',
  'a=ice-pwd:pNq0zT5r6Gx9d1Lw2Kc4Bv7Y',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
  'a=setup:actpass',
  'a=mid:0',
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=sendonly',
  'a=rtcp-mux',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 goog-remb',
  'a=rtcp-fb:96 transport-cc',
  'a=rtcp-fb:96 nack',
  'a=rtcp-fb:96 nack pli',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:102 H264/90000',
  'a=rtcp-fb:102 goog-remb',
  'a=rtcp-fb:102 nack',
  'a=rtcp-fb:102 nack pli',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  'a=rtpmap:103 H264/90000',
  'a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
  'a=rtpmap:106 H264/90000',
  'a=rtcp-fb:106 nack',
  'a=rtcp-fb:106 nack pli',
  'a=rtcp-fb:106 ccm fir',
  'a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbsBagICAoAAAMAAgAAAwB5HjBlQA==,aM48gA==',
  'a=rtpmap:127 H264/90000',
  'a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f',
  'a=ssrc-group:FID 1111 2222',
  'a=ssrc:1111 cname:x',
  'a=ssrc:2222 cname:x',
  'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Vx3n',
  'a=ice-pwd:pNq0zT5r6Gx9d1Lw2Kc4Bv7Y',
  'a=mid:1',
  'a=sendonly',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=rtpmap:9 G722/8000',
  'a=ssrc:3333 cname:x',
  '',
].join('\r\n');

describe('WHIP offer parsing and codec choice', () => {
  it('reads m-sections, formats, feedback, SSRCs and candidates', () => {
    const o = parseOffer(CHROME);
    expect(o.hasFingerprint).toBe(true);
    expect(o.media.map((m) => [m.kind, m.mid, m.direction])).toEqual([
      ['video', '0', 'sendonly'],
      ['audio', '1', 'sendonly'],
    ]);
    expect(o.media[0].formats.map((f) => f.pt)).toEqual([96, 97, 102, 103, 106, 127]);
    expect(o.media[0].ssrcs).toEqual([1111, 2222]);
    expect(o.media[0].candidates).toEqual(['candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0']);
    expect(o.media[0].iceUfrag).toBe('Vx3n');
  });

  it('takes H.264 packetization-mode 1, constrained baseline first, with its sprop-parameter-sets, and Opus', () => {
    const n = negotiate(parseOffer(CHROME));
    expect(n.video.pt).toBe(106);
    expect(n.video.mid).toBe('0');
    expect([...n.video.feedback]).toEqual(['nack', 'nack pli', 'ccm fir']);
    expect(n.video.sprop.map((x) => x[0] & 0x1f)).toEqual([7, 8]);
    expect(n.audio).toEqual({ mid: '1', pt: 111, fmtp: 'minptime=10;useinbandfec=1', channels: 2 });
    expect(answerH264Fmtp(n.video.fmtp)).toBe('level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f');
  });

  it('falls back to other H.264 profiles, refuses mode 0 only and offers without H.264', () => {
    const noCb = CHROME.replace(/a=rtpmap:106 H264/, 'a=rtpmap:106 VP9');
    expect(negotiate(parseOffer(noCb)).video.pt).toBe(102);
    const mode0 = CHROME.replace(/packetization-mode=1/g, 'packetization-mode=0');
    expect(() => negotiate(parseOffer(mode0))).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED_CODEC', status: 415 }));
    const vp8only = CHROME.replace(/H264/g, 'VP8');
    expect(() => negotiate(parseOffer(vp8only))).toThrow(/no H.264/);
  });

  it('is video-only when the offer has no Opus', () => {
    const n = negotiate(parseOffer(CHROME.replace('opus/48000/2', 'PCMU/8000')));
    expect(n.audio).toBeUndefined();
  });

  it('refuses what is not a WebRTC offer, and sizes over the limits', () => {
    expect(() => parseOffer('hello')).toThrow(expect.objectContaining({ code: 'E_VALIDATION' }));
    expect(() => negotiate(parseOffer(CHROME.replace(/a=fingerprint.*\r\n/, '')))).toThrow(/fingerprint/);
    expect(() => negotiate(parseOffer(CHROME.replace(/a=ice-pwd.*\r\n/g, '')))).toThrow(/ICE credentials/);
    expect(() => parseOffer(CHROME + 'a=x:' + 'y'.repeat(70_000))).toThrow(expect.objectContaining({ code: 'E_LIMIT_EXCEEDED' }));
    expect(() => parseOffer('v=0\r\n' + 'm=video 9 X 96\r\n'.repeat(17))).toThrow(/m-sections/);
    expect(() => parseOffer('v=0\r\n' + 'a=x\r\n'.repeat(2001))).toThrow(/lines/);
  });

  it('decodes sprop-parameter-sets and skips garbage', () => {
    expect(parseSprop('sprop-parameter-sets=Z0LAH9oBQBbsBagICAoAAAMAAgAAAwB5HjBlQA==,aM48gA==').length).toBe(2);
    expect(parseSprop('sprop-parameter-sets=AAAA,!!!')).toEqual([]);
    expect(parseSprop('packetization-mode=1')).toEqual([]);
  });

  it('announces a public address in place of host candidates (1:1 NAT)', () => {
    const ans =
      'v=0\r\nc=IN IP4 10.0.0.5\r\na=candidate:1 1 UDP 2114977791 10.0.0.5 20001 typ host\r\na=candidate:2 1 UDP 1 198.51.100.9 20001 typ srflx raddr 10.0.0.5 rport 20001\r\n';
    expect(announceAddress(ans, '203.0.113.7')).toBe(
      'v=0\r\nc=IN IP4 203.0.113.7\r\na=candidate:1 1 UDP 2114977791 203.0.113.7 20001 typ host\r\na=candidate:2 1 UDP 1 198.51.100.9 20001 typ srflx raddr 10.0.0.5 rport 20001\r\n',
    );
  });

  it('parses trickle-ice-sdpfrag bodies (RFC 8840)', () => {
    const f = parseTrickleFragment(
      'a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n',
    );
    expect(f).toEqual({
      iceUfrag: 'EsAw',
      icePwd: 'P2uYro0UCOQ4zxjKXaWCBui1',
      candidates: [{ mid: '0', candidate: 'candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host' }],
      endOfCandidates: true,
    });
    expect(() => parseTrickleFragment('a=candidate:1 1 UDP 1 1.2.3.4 5 typ host\r\n'.repeat(65))).toThrow(/candidates/);
  });

  it('never throws anything but AppError on random text (fuzz)', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const pieces = [
      'v=0',
      'm=video 9 UDP 96',
      'm=audio',
      'a=mid:',
      'a=rtpmap:96 H264/90000',
      'a=fmtp:96 packetization-mode=1',
      'a=rtcp-fb:* nack',
      'a=ssrc:x',
      'a=candidate:',
      'a=fingerprint:x',
      'a=ice-ufrag:a',
      'a=ice-pwd:b',
      '\u0000',
      'a=rtpmap:999 x/y',
    ];
    for (let i = 0; i < 2000; i++) {
      const text = Array.from(
        { length: Math.floor(rnd() * 30) },
        () => pieces[Math.floor(rnd() * pieces.length)] + (rnd() < 0.3 ? String(Math.floor(rnd() * 200)) : ''),
      ).join(rnd() < 0.5 ? '\r\n' : '\n');
      try {
        negotiate(parseOffer(text));
      } catch (err) {
        expect((err as { code?: string }).code).toMatch(/^E_/);
      }
    }
  });
});

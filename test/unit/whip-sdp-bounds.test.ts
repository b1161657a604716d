import { describe, expect, it } from 'vitest';
import { negotiate, parseOffer, parseTrickleFragment } from '../../src/ingest/webrtc/sdp.js';

/** A minimal WHIP offer: one H.264 section; `ufrag` and `pwd` are put at the media level. */
const offer = (ufrag: string, pwd: string, mid = '0') =>
  [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
    'm=video 9 UDP/TLS/RTP/SAVPF 102',
    `a=mid:${mid}`,
    'a=sendonly',
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    'a=rtpmap:102 H264/90000',
    'a=fmtp:102 packetization-mode=1;profile-level-id=42e01f',
    '',
  ].join('\r\n');

const PWD = 'P2uYro0UCOQ4zxjKXaWCBui1'; // 24 characters, as Chrome sends

describe('WHIP SDP bounds (RFC 8839 ice-ufrag 4..256, ice-pwd 22..256)', () => {
  it('takes the credentials real clients send: Chrome 4/24, libnice and FFmpeg 8/32, and the limits themselves', () => {
    expect(negotiate(parseOffer(offer('Vx3n', PWD))).video.mid).toBe('0');
    expect(parseOffer(offer('a1b2c3d4', 'f'.repeat(32))).media[0].iceUfrag).toBe('a1b2c3d4');
    expect(parseOffer(offer('u'.repeat(256), 'p'.repeat(256))).media[0].icePwd).toHaveLength(256);
    expect(parseOffer(offer('ab+/', 'p'.repeat(22))).media[0].iceUfrag).toBe('ab+/');
  });

  it('refuses a 5,000-character ufrag with E_VALIDATION naming the attribute, not echoing it', () => {
    const err = (() => {
      try {
        parseOffer(offer('u'.repeat(5000), PWD));
      } catch (e) {
        return e as { code: string; message: string };
      }
    })();
    expect(err?.code).toBe('E_VALIDATION');
    expect(err?.message).toMatch(/a=ice-ufrag must be 4 to 256 .*got 5000 characters/);
    expect(err!.message.length).toBeLessThan(200);
  });

  it('refuses ufrags and passwords out of bounds, at the session level too', () => {
    expect(() => parseOffer(offer('u'.repeat(257), PWD))).toThrow(/a=ice-ufrag/);
    expect(() => parseOffer(offer('abc', PWD))).toThrow(/a=ice-ufrag/);
    expect(() => parseOffer(offer('Vx3n', 'p'.repeat(21)))).toThrow(/a=ice-pwd/);
    expect(() => parseOffer(offer('Vx3n', 'p'.repeat(257)))).toThrow(/a=ice-pwd/);
    expect(() => parseOffer(offer('Vx 3n', PWD))).toThrow(/a=ice-ufrag/);
    const sessionLevel = offer('Vx3n', PWD).replace('t=0 0\r\n', `t=0 0\r\na=ice-ufrag:${'s'.repeat(300)}\r\n`);
    expect(() => parseOffer(sessionLevel)).toThrow(expect.objectContaining({ code: 'E_VALIDATION' }));
  });

  it('refuses an overlong mid', () => {
    expect(parseOffer(offer('Vx3n', PWD, 'v'.repeat(32))).media[0].mid).toHaveLength(32);
    expect(() => parseOffer(offer('Vx3n', PWD, 'v'.repeat(33)))).toThrow(/a=mid longer than 32/);
  });

  it('bounds the credentials of a trickle PATCH body the same way', () => {
    expect(parseTrickleFragment(`a=ice-ufrag:EsAw\r\na=ice-pwd:${PWD}\r\n`).iceUfrag).toBe('EsAw');
    expect(() => parseTrickleFragment(`a=ice-ufrag:${'u'.repeat(5000)}\r\n`)).toThrow(/bad SDP fragment: a=ice-ufrag/);
    expect(() => parseTrickleFragment('a=ice-pwd:short\r\n')).toThrow(/a=ice-pwd/);
  });
});

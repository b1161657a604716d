import { describe, expect, it } from 'vitest';
import { AdtsReader } from '../../src/ingest/webrtc/adts.js';
import { aacArgs } from '../../src/ingest/webrtc/aac.js';
import { oggCrc, OggWriter, opusHeaders, opusPacketSamples, OpusTimeline, OPUS_SILENCE_20MS } from '../../src/ingest/webrtc/opus.js';

describe('Opus packets and the Ogg stream fed to FFmpeg', () => {
  it('reads packet durations from the TOC byte (RFC 6716 3.1)', () => {
    expect(opusPacketSamples(Uint8Array.of(0xf8))).toBe(960); // CELT FB 20 ms, one frame
    expect(opusPacketSamples(Uint8Array.of(0x78))).toBe(960); // SILK WB 20 ms
    expect(opusPacketSamples(Uint8Array.of(0x79))).toBe(1920); // two frames
    expect(opusPacketSamples(Uint8Array.of(0x1b, 0x02))).toBe(2 * 2880); // SILK NB 60 ms, code 3, 2 frames
    expect(opusPacketSamples(Uint8Array.of(0x1b, 0x03))).toBeUndefined(); // 180 ms > 120 ms
    expect(opusPacketSamples(Uint8Array.of(0x03))).toBeUndefined(); // code 3 without a count byte
    expect(opusPacketSamples(new Uint8Array(0))).toBeUndefined();
  });

  it('writes Ogg pages with the Ogg CRC (RFC 3533)', () => {
    // CRC-32/MPEG-2 without final xor ("CRC-32/BZIP2" unreflected, init 0): check value of "123456789".
    expect(oggCrc(Buffer.from('123456789')).toString(16)).toBe('89a1897f');
    const page = new OggWriter(0x1234).page(Buffer.alloc(600, 1), 960, 0x02);
    expect(page.subarray(0, 4).toString('latin1')).toBe('OggS');
    expect(page[5]).toBe(0x02);
    expect(page.readBigInt64LE(6)).toBe(960n);
    expect([...page.subarray(26, 30)]).toEqual([3, 255, 255, 90]);
    const copy = Buffer.from(page);
    copy.writeUInt32LE(0, 22);
    expect(oggCrc(copy)).toBe(page.readUInt32LE(22));
    const [head, tags] = opusHeaders(2);
    expect(head.subarray(0, 8).toString()).toBe('OpusHead');
    expect(head[9]).toBe(2);
    expect(tags.subarray(0, 8).toString()).toBe('OpusTags');
  });

  it('keeps the timeline contiguous: a gap is filled with 20 ms silence, a big jump restarts', () => {
    const t = new OpusTimeline(1);
    const p20 = Uint8Array.of(0xfc, 1, 2); // 20 ms
    const first = t.push(1_000_000, p20);
    expect(first).toMatchObject({ kind: 'pages', samples: 960, filled: 0 });
    expect(first.kind === 'pages' && first.bytes.length).toBe(3); // OpusHead, OpusTags, packet
    expect(t.anchor).toBe(1_000_000);
    expect(t.push(1_000_960, p20)).toMatchObject({ filled: 0 });
    const gap = t.push(1_000_960 + 960 * 4, p20); // three packets lost
    expect(gap).toMatchObject({ kind: 'pages', filled: 2880 });
    expect(gap.kind === 'pages' && gap.bytes.length).toBe(4);
    expect(gap.kind === 'pages' && Buffer.from(gap.bytes[0].subarray(28)).equals(Buffer.from(OPUS_SILENCE_20MS))).toBe(true);
    expect(t.push(1_000_960, p20)).toMatchObject({ kind: 'pages', samples: 0 }); // late: dropped
    expect(t.push(1_000_000 + 48_000 * 11, p20)).toEqual({ kind: 'restart' });
    expect(t.push(5, Uint8Array.of())).toEqual({ kind: 'bad' });
  });

  it('splits ADTS into raw AAC frames with their AudioSpecificConfig', () => {
    const frame = (payload: number[]) => {
      const len = 7 + payload.length;
      // syncword, MPEG-4, layer 0, no CRC; AAC LC (1), 48 kHz (3), stereo (2); length; fullness 0x7ff; 1 block
      return Buffer.from([
        0xff,
        0xf1,
        (1 << 6) | (3 << 2) | 0,
        (2 << 6) | ((len >> 11) & 3),
        (len >> 3) & 0xff,
        ((len & 7) << 5) | 0x1f,
        0xfc,
        ...payload,
      ]);
    };
    const r = new AdtsReader();
    const both = Buffer.concat([frame([1, 2, 3]), frame([4, 5])]);
    const out = [...r.push(both.subarray(0, 12)), ...r.push(both.subarray(12))];
    expect(out.map((f) => [...f.data])).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    expect(out[0]).toMatchObject({ objectType: 2, sampleRate: 48000, channels: 2 });
    expect(Buffer.from(out[0].asc).toString('hex')).toBe('1190');
    expect(() => new AdtsReader().push(Buffer.from('not adts at all'))).toThrow(/sync/);
  });

  it('asks FFmpeg for AAC-LC 48 kHz stereo as ADTS, reading Ogg without probing', () => {
    const args = aacArgs(128);
    expect(args.join(' ')).toContain('-probesize 32 -analyzeduration 0 -f ogg -i pipe:0');
    expect(args.join(' ')).toContain('-c:a aac -b:a 128k -ac 2 -ar 48000 -flush_packets 1 -f adts pipe:1');
  });
});

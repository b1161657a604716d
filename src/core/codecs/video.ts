/** Video decoder configuration records: avcC (H.264), hvcC (H.265), av1C (AV1), and their SPS / sequence headers. */
import { BitReader, ByteReader, MAX_HVCC_ARRAYS, MAX_PARAM_SETS, checkDimensions, fail, unescapeRbsp } from './bits.js';

// ---------------------------------------------------------------------------------------------- H.264

export interface AvcDecoderConfig {
  profile: number;
  compat: number;
  level: number;
  nalLengthSize: number;
  sps: Uint8Array[];
  pps: Uint8Array[];
  width: number;
  height: number;
}

/** Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (H.264 7.3.2.1.1). */
const AVC_HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Picture size from an H.264 SPS NAL unit (with its one-byte header). */
export function parseAvcSps(nal: Uint8Array): { width: number; height: number } {
  if (nal.length < 4 || (nal[0] & 0x1f) !== 7) fail('avc: not an SPS NAL unit');
  const r = new BitReader(unescapeRbsp(nal.subarray(1)));
  const profile = r.bits(8);
  r.skip(16); // constraint flags, level_idc
  if (r.ue() > 31) fail('avc: bad seq_parameter_set_id');
  let chromaFormat = 1;
  let separateColourPlane = false;
  if (AVC_HIGH_PROFILES.has(profile)) {
    chromaFormat = r.ue();
    if (chromaFormat > 3) fail('avc: bad chroma_format_idc');
    if (chromaFormat === 3) separateColourPlane = r.flag();
    r.ue(); // bit_depth_luma_minus8
    r.ue(); // bit_depth_chroma_minus8
    r.skip(1); // qpprime_y_zero_transform_bypass_flag
    if (r.flag()) {
      // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 (or 6 for 4:4:4) 8x8 lists.
      const lists = chromaFormat === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue(); // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType === 1) {
    r.skip(1); // delta_pic_order_always_zero_flag
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const cycle = r.ue();
    if (cycle > 255) fail('avc: num_ref_frames_in_pic_order_cnt_cycle too large');
    for (let i = 0; i < cycle; i++) r.se();
  } else if (pocType !== 2) {
    fail('avc: bad pic_order_cnt_type');
  }
  r.ue(); // max_num_ref_frames
  r.skip(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.flag() ? 1 : 0;
  if (!frameMbsOnly) r.skip(1); // mb_adaptive_frame_field_flag
  r.skip(1); // direct_8x8_inference_flag
  let width = widthMbs * 16;
  let height = (2 - frameMbsOnly) * heightMapUnits * 16;
  if (r.flag()) {
    // frame_cropping_flag: offsets are in CropUnitX / CropUnitY (H.264 7.4.2.1.1, eq. 7-19..7-22).
    const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
    const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
    const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeightC = chromaArrayType === 1 ? 2 : 1;
    const cropX = chromaArrayType === 0 ? 1 : subWidthC;
    const cropY = (chromaArrayType === 0 ? 1 : subHeightC) * (2 - frameMbsOnly);
    width -= cropX * (left + right);
    height -= cropY * (top + bottom);
  }
  checkDimensions(width, height, 'avc');
  return { width, height };
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1). */
export function parseAvcDecoderConfig(avcC: Uint8Array): AvcDecoderConfig {
  const r = new ByteReader(avcC);
  if (r.u8() !== 1) fail('avcC: unsupported configurationVersion');
  const profile = r.u8();
  const compat = r.u8();
  const level = r.u8();
  const nalLengthSize = (r.u8() & 3) + 1;
  if (nalLengthSize === 3) fail('avcC: lengthSizeMinusOne of 2 is not allowed');
  const numSps = r.u8() & 0x1f;
  if (numSps === 0) fail('avcC: no SPS');
  const sps: Uint8Array[] = [];
  for (let i = 0; i < numSps; i++) sps.push(r.bytes(r.u16()));
  const numPps = r.u8();
  if (numPps > MAX_PARAM_SETS) fail('avcC: too many PPS');
  const pps: Uint8Array[] = [];
  for (let i = 0; i < numPps; i++) pps.push(r.bytes(r.u16()));
  const { width, height } = parseAvcSps(sps[0]);
  return { profile, compat, level, nalLengthSize, sps, pps, width, height };
}

// ---------------------------------------------------------------------------------------------- H.265

interface HvccHeader {
  codecString: string;
  nalLengthSize: number;
  arrays: { type: number; nalus: Uint8Array[] }[];
}

function hex(n: number): string {
  return n.toString(16).toUpperCase();
}

/** HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) and its codec string (annex E.3). */
export function parseHvccHeader(hvcC: Uint8Array): HvccHeader {
  const r = new ByteReader(hvcC);
  if (r.u8() !== 1) fail('hvcC: unsupported configurationVersion');
  const b1 = r.u8();
  const profileSpace = b1 >> 6;
  const tier = (b1 >> 5) & 1;
  const profileIdc = b1 & 0x1f;
  const compat = r.u16() * 65536 + r.u16();
  const constraints = r.bytes(6);
  const levelIdc = r.u8();
  r.bytes(8); // segmentation, parallelism, chroma, bit depths, avgFrameRate
  const nalLengthSize = (r.u8() & 3) + 1;
  if (nalLengthSize === 3) fail('hvcC: lengthSizeMinusOne of 2 is not allowed');
  const numArrays = r.u8();
  if (numArrays > MAX_HVCC_ARRAYS) fail('hvcC: too many NAL arrays');
  const arrays: HvccHeader['arrays'] = [];
  for (let i = 0; i < numArrays; i++) {
    const type = r.u8() & 0x3f;
    const count = r.u16();
    if (count > MAX_PARAM_SETS) fail('hvcC: too many NAL units in an array');
    const nalus: Uint8Array[] = [];
    for (let j = 0; j < count; j++) nalus.push(r.bytes(r.u16()));
    arrays.push({ type, nalus });
  }
  // "the general_profile_compatibility_flags, but in reverse bit order, in hexadecimal, leading zeroes
  // may be omitted"; "each of the 6 bytes of the constraint flags ... trailing bytes that are zero may be
  // omitted".
  let reversed = 0;
  for (let i = 0; i < 32; i++) if ((compat >>> i) & 1) reversed += 2 ** (31 - i);
  let lastNonZero = constraints.length;
  while (lastNonZero > 0 && constraints[lastNonZero - 1] === 0) lastNonZero--;
  const parts = [
    'hvc1',
    `${['', 'A', 'B', 'C'][profileSpace]}${profileIdc}`,
    hex(reversed),
    `${tier ? 'H' : 'L'}${levelIdc}`,
    ...Array.from(constraints.subarray(0, lastNonZero), hex),
  ];
  return { codecString: parts.join('.'), nalLengthSize, arrays };
}

/** Picture size from an H.265 SPS NAL unit (with its two-byte header), H.265 7.3.2.2. */
export function parseHevcSps(nal: Uint8Array): { width: number; height: number } {
  if (nal.length < 3 || ((nal[0] >> 1) & 0x3f) !== 33) fail('hevc: not an SPS NAL unit');
  const r = new BitReader(unescapeRbsp(nal.subarray(2)));
  r.skip(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.bits(3);
  if (maxSubLayersMinus1 > 6) fail('hevc: bad sps_max_sub_layers_minus1');
  r.skip(1); // sps_temporal_id_nesting_flag
  // profile_tier_level(1, sps_max_sub_layers_minus1), 7.3.3
  r.skip(96); // general profile (88 bits) + general_level_idc
  const subProfile: boolean[] = [];
  const subLevel: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    subProfile.push(r.flag());
    subLevel.push(r.flag());
  }
  if (maxSubLayersMinus1 > 0) r.skip(2 * (8 - maxSubLayersMinus1)); // reserved_zero_2bits
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (subProfile[i]) r.skip(88);
    if (subLevel[i]) r.skip(8);
  }
  if (r.ue() > 15) fail('hevc: bad sps_seq_parameter_set_id');
  const chromaFormat = r.ue();
  if (chromaFormat > 3) fail('hevc: bad chroma_format_idc');
  const separateColourPlane = chromaFormat === 3 ? r.flag() : false;
  let width = r.ue();
  let height = r.ue();
  if (r.flag()) {
    // conformance_window_flag: offsets in chroma units (SubWidthC, SubHeightC from table 6-1).
    const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
    const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeightC = chromaArrayType === 1 ? 2 : 1;
    const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
    width -= subWidthC * (left + right);
    height -= subHeightC * (top + bottom);
  }
  checkDimensions(width, height, 'hevc');
  return { width, height };
}

export function parseHevcDecoderConfig(hvcC: Uint8Array): { width: number; height: number; codecString: string } {
  const header = parseHvccHeader(hvcC);
  const sps = header.arrays.find((a) => a.type === 33)?.nalus[0];
  if (!sps) fail('hvcC: no SPS');
  return { ...parseHevcSps(sps), codecString: header.codecString };
}

// ------------------------------------------------------------------------------------------------ AV1

/** uvlc() from AV1 4.10.3. */
function uvlc(r: BitReader): number {
  let zeros = 0;
  while (!r.flag()) if (++zeros >= 32) return 2 ** 32 - 1;
  return r.bits(zeros) + 2 ** zeros - 1;
}

/** Picture size from a sequence_header_obu payload (AV1 5.5.1), up to max_frame_{width,height}. */
function parseAv1SequenceHeader(payload: Uint8Array): { width: number; height: number } {
  const r = new BitReader(payload);
  r.skip(3); // seq_profile
  r.skip(1); // still_picture
  if (r.flag()) {
    r.skip(5); // reduced_still_picture_header: seq_level_idx[0]
  } else {
    let bufferDelayLength = 0;
    let decoderModelInfo = false;
    if (r.flag()) {
      // timing_info()
      r.skip(64);
      if (r.flag()) uvlc(r);
      decoderModelInfo = r.flag();
      if (decoderModelInfo) {
        bufferDelayLength = r.bits(5) + 1;
        r.skip(32 + 5 + 5);
      }
    }
    const initialDisplayDelay = r.flag();
    const points = r.bits(5) + 1;
    for (let i = 0; i < points; i++) {
      r.skip(12); // operating_point_idc
      if (r.bits(5) > 7) r.skip(1); // seq_level_idx > 7: seq_tier
      if (decoderModelInfo && r.flag()) r.skip(2 * bufferDelayLength + 1);
      if (initialDisplayDelay && r.flag()) r.skip(4);
    }
  }
  const widthBits = r.bits(4) + 1;
  const heightBits = r.bits(4) + 1;
  const width = r.bits(widthBits) + 1;
  const height = r.bits(heightBits) + 1;
  checkDimensions(width, height, 'av1');
  return { width, height };
}

/** Reads leb128() (AV1 4.10.5), at most 8 bytes. */
function leb128(r: ByteReader): number {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const b = r.u8();
    value += (b & 0x7f) * 2 ** (7 * i);
    if (!(b & 0x80)) return value;
  }
  fail('av1: leb128 too long');
}

/** AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3.3) and codec string av01.P.LLT.DD (annex A). */
export function parseAv1CodecConfig(av1C: Uint8Array): { width: number; height: number; codecString: string } {
  const r = new ByteReader(av1C);
  const b0 = r.u8();
  if (b0 !== 0x81) fail('av1C: bad marker/version');
  const b1 = r.u8();
  const b2 = r.u8();
  r.u8(); // initial_presentation_delay
  const profile = b1 >> 5;
  const level = b1 & 0x1f;
  const tier = b2 >> 7 ? 'H' : 'M';
  const highBitdepth = (b2 >> 6) & 1;
  const twelveBit = (b2 >> 5) & 1;
  const bitDepth = profile === 2 && highBitdepth ? (twelveBit ? 12 : 10) : highBitdepth ? 10 : 8;
  const codecString = `av01.${profile}.${String(level).padStart(2, '0')}${tier}.${String(bitDepth).padStart(2, '0')}`;
  while (r.left > 0) {
    const header = r.u8();
    if (header & 0x80) fail('av1: forbidden bit set in OBU header');
    const type = (header >> 3) & 0x0f;
    if (header & 0x04) r.u8(); // obu_extension_header
    const size = header & 0x02 ? leb128(r) : r.left;
    const payload = r.bytes(size);
    if (type === 1) return { ...parseAv1SequenceHeader(payload), codecString };
  }
  return { width: 0, height: 0, codecString };
}

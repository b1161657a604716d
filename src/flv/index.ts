/**
 * The FLV format, shared by RTMP ingest (FLV tag bodies inside RTMP messages) and the live transcoder
 * (whole FLV streams on FFmpeg's pipes): AMF0, tag bodies (legacy and Enhanced RTMP), assembly of tags
 * into tracks and frames, and an FLV stream reader and writer.
 */
export * from './amf0.js';
export * from './tags.js';
export * from './assembler.js';
export { TimestampUnwrapper } from './timestamps.js';
export { FlvReader, type FlvTag, type FlvReaderLimits } from './reader.js';
export { FlvWriter } from './writer.js';

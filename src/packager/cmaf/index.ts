/** The CMAF muxer's face: init segments and fragments as bytes, from tracks and samples. */
export type { CmafSample, CmafTrack, FragmentTrack } from './types.js';
export { buildInitSegment } from './init.js';
export { buildFragment } from './fragment.js';
export { BoxWriter } from './box.js';

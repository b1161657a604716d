export type { CmafSample, CmafTrack, FragmentTrack } from './types.js';
export { buildInitSegment } from './init.js';
export { buildFragment } from './fragment.js';
export { BoxWriter } from './box.js';

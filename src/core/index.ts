export * from './media.js';
export * from './errors.js';
export type { Logger } from './logger.js';
export { silentLogger } from './logger.js';
export * from './ids.js';
export type { Clock } from './clock.js';
export { systemClock } from './clock.js';
export * from './codecs/index.js';
export * from './ladder.js';

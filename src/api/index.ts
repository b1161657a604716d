export { buildApp } from './app.js';
export type { AppDeps } from './app.js';
export { PlaybackTokens } from './playback-tokens.js';

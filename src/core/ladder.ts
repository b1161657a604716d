import { AppError } from './errors.js';

/** One transcoded rung of a live stream's ABR ladder. The source itself is always the top rung. */
export interface LadderRung {
  /** Rendition name in playlist URLs: lower-case letters, digits, '-' and '_'. */
  readonly name: string;
  /** Height in pixels (the short side of a portrait source); the width keeps the aspect ratio. */
  readonly height: number;
  readonly videoBitrateKbps: number;
  /** Frame rate cap; a faster source is reduced to it. */
  readonly maxFrameRate: number;
  /** FFmpeg H.264 encoder: libx264 (software) or a hardware one (h264_nvenc, h264_qsv, h264_vaapi). */
  readonly encoder: LadderEncoder;
}

export const LADDER_ENCODERS = ['libx264', 'h264_nvenc', 'h264_qsv', 'h264_vaapi'] as const;
export type LadderEncoder = (typeof LADDER_ENCODERS)[number];

export type StreamProfile = 'abr' | 'passthrough';
export const STREAM_PROFILES: readonly StreamProfile[] = ['abr', 'passthrough'];

/**
 * The default ladder: the common 1080p/720p/480p/360p rungs. Only rungs below the source's height are
 * used, so a 720p source gives 720p (the source, not re-encoded) + 480p + 360p; nothing is upscaled.
 */
export const DEFAULT_LADDER: readonly LadderRung[] = [
  { name: '1080p', height: 1080, videoBitrateKbps: 5000, maxFrameRate: 60, encoder: 'libx264' },
  { name: '720p', height: 720, videoBitrateKbps: 2800, maxFrameRate: 60, encoder: 'libx264' },
  { name: '480p', height: 480, videoBitrateKbps: 1400, maxFrameRate: 30, encoder: 'libx264' },
  { name: '360p', height: 360, videoBitrateKbps: 800, maxFrameRate: 30, encoder: 'libx264' },
];

export const LADDER_LIMITS = {
  maxRungs: 6,
  minHeight: 144,
  maxHeight: 4320,
  minKbps: 100,
  maxKbps: 50_000,
  minFps: 1,
  maxFps: 120,
} as const;

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * Checks a ladder from outside (the control API) and returns it typed. Every problem is named with the
 * rung it is in: `ladder[1].height: must be an even integer between 144 and 4320`.
 */
export function validateLadder(input: unknown): LadderRung[] {
  const fail = (where: string, msg: string): never => {
    throw new AppError('E_VALIDATION', `${where}: ${msg}`);
  };
  if (!Array.isArray(input)) fail('ladder', 'must be a list of rungs');
  const list = input as unknown[];
  if (list.length === 0) fail('ladder', 'must have at least one rung (use profile "passthrough" for none)');
  if (list.length > LADDER_LIMITS.maxRungs) fail('ladder', `at most ${LADDER_LIMITS.maxRungs} rungs`);
  const out: LadderRung[] = [];
  const names = new Set<string>();
  const heights = new Set<number>();
  list.forEach((raw, i) => {
    const at = `ladder[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(at, 'must be an object');
    const r = raw as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['name', 'height', 'videoBitrateKbps', 'maxFrameRate', 'encoder'].includes(key)) fail(`${at}.${key}`, 'unknown field');
    }
    const { minHeight, maxHeight, minKbps, maxKbps, minFps, maxFps } = LADDER_LIMITS;
    const height = r.height;
    if (typeof height !== 'number' || !Number.isInteger(height) || height % 2 !== 0 || height < minHeight || height > maxHeight) {
      fail(`${at}.height`, `must be an even integer between ${minHeight} and ${maxHeight}`);
    }
    const h = height as number;
    const name = r.name === undefined ? `${h}p` : r.name;
    if (typeof name !== 'string' || !NAME.test(name))
      fail(`${at}.name`, 'must be 1-32 characters of a-z, 0-9, "-" or "_", starting with a letter or digit');
    if (name === 'source') fail(`${at}.name`, '"source" is the name of the untouched top rung');
    if (names.has(name as string)) fail(`${at}.name`, `"${name as string}" is used by another rung`);
    if (heights.has(h)) fail(`${at}.height`, `another rung already has height ${h}`);
    const kbps = r.videoBitrateKbps;
    if (typeof kbps !== 'number' || !Number.isInteger(kbps) || kbps < minKbps || kbps > maxKbps) {
      fail(`${at}.videoBitrateKbps`, `must be an integer between ${minKbps} and ${maxKbps}`);
    }
    const fps = r.maxFrameRate ?? 60;
    if (typeof fps !== 'number' || !Number.isFinite(fps) || fps < minFps || fps > maxFps)
      fail(`${at}.maxFrameRate`, `must be a number between ${minFps} and ${maxFps}`);
    const encoder = r.encoder ?? 'libx264';
    if (typeof encoder !== 'string' || !(LADDER_ENCODERS as readonly string[]).includes(encoder)) {
      fail(`${at}.encoder`, `must be one of ${LADDER_ENCODERS.join(', ')}`);
    }
    names.add(name as string);
    heights.add(h);
    out.push({
      name: name as string,
      height: h,
      videoBitrateKbps: kbps as number,
      maxFrameRate: fps as number,
      encoder: encoder as LadderEncoder,
    });
  });
  return out.sort((a, b) => b.height - a.height);
}

/** The rungs to transcode for a source of this size: those below it (the source is the top rung). */
export function rungsFor(ladder: readonly LadderRung[], source: { width: number; height: number }): LadderRung[] {
  const short = Math.min(source.width || source.height, source.height);
  return ladder.filter((r) => r.height < short);
}

/**
 * How a ladder is fitted to what the source actually carries (planLadder). Sharing the bits out by pixels
 * to the power 0.75 (height to the power 1.5) gives a smaller picture more bits per pixel than its share
 * of the area: it has fewer pixels to spend the fixed costs on and shows the loss of detail more. The
 * default ladder's own steps sit between exponents 0.72 (1080p -> 720p) and 0.97 (480p -> 360p), so a
 * source encoded at the ladder's rate for its height keeps the ladder's bitrates; only a leaner source
 * makes the rungs leaner.
 */
export const LADDER_FIT = {
  /** A rung gets at most the source's video bitrate x (rung pixels / source pixels) ^ this. */
  pixelExponent: 0.75,
  /**
   * A rung must carry less than this share of the bits of the rung above it (the source is the top
   * rung). One closer costs an encode for a step a player hardly uses: hls.js moves up a level only once
   * its estimate is 1/0.7 of that level's bitrate, so levels within 20 % are one level to it.
   */
  maxStep: 0.8,
} as const;

export interface LadderPlanSource {
  readonly width: number;
  readonly height: number;
  /** The source's measured video bitrate; undefined while not measured (the ladder is then as it is). */
  readonly videoKbps: number | undefined;
}

export interface LadderPlan {
  /** The rungs to transcode, highest first, with the bitrate each is encoded at. */
  readonly rungs: readonly LadderRung[];
  /** Rungs of the ladder below the source that are not transcoded, and why. */
  readonly omitted: ReadonlyArray<{ readonly name: string; readonly reason: string }>;
  /** What an operator should know about a custom ladder for this source. */
  readonly warnings: readonly string[];
}

/** The most bits a rung of `height` is worth from a source of `sourceHeight` carrying `sourceKbps` of video. */
export function rungCapKbps(sourceKbps: number, height: number, sourceHeight: number): number {
  // Both sides keep the source's aspect ratio, so the pixel ratio is the square of the heights'.
  return sourceKbps * ((height / sourceHeight) ** 2) ** LADDER_FIT.pixelExponent;
}

/**
 * The rungs a source gets. With `custom: false` (the default ladder) each rung below the source is capped
 * at rungCapKbps (never below LADDER_LIMITS.minKbps), and a rung whose bitrate would be LADDER_FIT.maxStep
 * or more of the rung above it is left out, so bitrates (and BANDWIDTH) strictly rise with resolution, the
 * source on top. A custom ladder is the operator's choice and is kept as it is, with a warning for every
 * rung that asks for more bits than the source has or than the rung above it.
 */
export function planLadder(ladder: readonly LadderRung[], source: LadderPlanSource, opts: { readonly custom: boolean }): LadderPlan {
  const below = rungsFor(ladder, source).sort((a, b) => b.height - a.height);
  const kbps = source.videoKbps !== undefined && source.videoKbps > 0 ? Math.round(source.videoKbps) : undefined;
  if (kbps === undefined) return { rungs: below, omitted: [], warnings: [] };
  const short = Math.min(source.width || source.height, source.height);
  if (opts.custom) {
    const warnings: string[] = [];
    below.forEach((r, i) => {
      if (r.videoBitrateKbps > kbps) {
        warnings.push(
          `rung "${r.name}" is set to ${r.videoBitrateKbps} kb/s, more than the source's ${kbps} kb/s of video: it costs more bandwidth than the source for less picture`,
        );
      } else if (i > 0 && r.videoBitrateKbps >= below[i - 1].videoBitrateKbps) {
        const up = below[i - 1];
        warnings.push(
          `rung "${r.name}" is set to ${r.videoBitrateKbps} kb/s, not less than "${up.name}" above it (${up.videoBitrateKbps} kb/s): players that rank rungs by bandwidth put it above`,
        );
      }
    });
    return { rungs: below, omitted: [], warnings };
  }
  const rungs: LadderRung[] = [];
  const omitted: Array<{ name: string; reason: string }> = [];
  let above = { name: 'source', kbps };
  for (const r of below) {
    const fitted = Math.max(LADDER_LIMITS.minKbps, Math.min(r.videoBitrateKbps, Math.round(rungCapKbps(kbps, r.height, short))));
    if (fitted >= LADDER_FIT.maxStep * above.kbps) {
      omitted.push({
        name: r.name,
        reason: `${fitted} kb/s would be within ${Math.round((1 - LADDER_FIT.maxStep) * 100)} % of "${above.name}" above it (${above.kbps} kb/s)`,
      });
      continue;
    }
    rungs.push(fitted === r.videoBitrateKbps ? r : { ...r, videoBitrateKbps: fitted });
    above = { name: r.name, kbps: fitted };
  }
  return { rungs, omitted, warnings: [] };
}

import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { AppError } from '../core/index.js';
import { execTool } from './ffmpeg-run.js';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The FFmpeg binary to run: FFMPEG_PATH if set (it must then be an executable file: a wrong setting is an
 * error, not a reason to fall back silently), else `ffmpeg` on PATH, else the binary of the npm package
 * `@ffmpeg-installer/linux-x64` if it is installed. Throws E_CONFIG_INVALID saying what was tried.
 */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.FFMPEG_PATH;
  if (configured) {
    if (isExecutableFile(configured)) return configured;
    throw new AppError('E_CONFIG_INVALID', `FFMPEG_PATH=${configured} is not an executable file`);
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue; // an empty entry means the current directory; never run a binary from there
    const candidate = join(dir, 'ffmpeg');
    if (isExecutableFile(candidate)) return candidate;
  }
  try {
    const bundled = createRequire(import.meta.url).resolve('@ffmpeg-installer/linux-x64/ffmpeg');
    if (isExecutableFile(bundled)) return bundled;
  } catch {
    // not installed: fall through to the error
  }
  throw new AppError(
    'E_CONFIG_INVALID',
    'FFmpeg not found: set FFMPEG_PATH, put ffmpeg on PATH (Debian: apt-get install ffmpeg), ' +
      'or install the npm package @ffmpeg-installer/linux-x64',
  );
}

/**
 * Encoder names from `ffmpeg -encoders`. The list follows a legend and a ` ------` line; each entry is
 * six flag characters (V/A/S, F, S, X, B, D or '.') then the name: ` V....D libx264   libx264 H.264 ...`.
 */
export function parseEncoders(text: string): Set<string> {
  const names = new Set<string>();
  let inList = false;
  for (const line of text.split('\n')) {
    if (!inList) {
      inList = line.trim() === '------';
      continue;
    }
    const m = /^\s*[VAS.][F.][S.][X.][B.][D.]\s+(\S+)/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

const encoderCache = new Map<string, Promise<Set<string>>>();

/**
 * The encoders the FFmpeg at `path` has, so config can be checked (libx264 present?) before a stream
 * needs it. Cached per path; a failed run is not cached, so a later call tries again.
 */
export function ffmpegEncoders(path: string): Promise<Set<string>> {
  let cached = encoderCache.get(path);
  if (!cached) {
    cached = execTool(path, ['-hide_banner', '-encoders'], { timeoutMs: 10_000, maxBuffer: 4 << 20 }).then(
      ({ code, stdout }) => {
        if (code !== 0) throw new AppError('E_INTERNAL', `${path} -encoders failed: exited with code ${code}`);
        return parseEncoders(stdout);
      },
      (err: Error) => {
        // execTool's error keeps the one from the run (ENOENT, timeout) as its cause: say that one.
        const why = err.cause instanceof Error ? err.cause.message : err.message;
        throw new AppError('E_INTERNAL', `${path} -encoders failed: ${why}`, { cause: err });
      },
    );
    encoderCache.set(path, cached);
    cached.catch(() => encoderCache.delete(path));
  }
  return cached;
}

/**
 * Whether the FFmpeg at `path` runs at all (`-version` exits 0 within 5 s): told apart from a file FFmpeg
 * fails on, so an outage of FFmpeg itself does not use up a job's attempts.
 */
export function ffmpegRuns(path: string): Promise<boolean> {
  return execTool(path, ['-hide_banner', '-version'], { timeoutMs: 5000, maxBuffer: 1 << 20 }).then(
    ({ code }) => code === 0,
    () => false,
  );
}

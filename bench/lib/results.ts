import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Where benches keep their results, under the repository. */
export const resultsDir = (repoRoot: string) => join(repoRoot, 'bench', 'results');

/** A run's start as a file-name stamp: 2026-11-24T06-45-18Z. */
export function resultStamp(startedAt: Date): string {
  return startedAt
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

/** The short commit the bench ran at ('unknown' outside a git checkout). */
export function gitCommit(repoRoot: string): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** Write `data` as `<dir>/<name>-<stamp>.json`, say where, and return the path. */
export function writeResults(dir: string, name: string, startedAt: Date, data: unknown): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${resultStamp(startedAt)}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  console.log(`\nresults written to ${relative(process.cwd(), file)}`);
  return file;
}

import { writeFileSync } from 'node:fs';
import { run } from '../../harness/processes.js';

/** Seconds of media ffprobe finds behind a playlist URL (it follows the playlists' relative URIs). */
export async function probeDuration(url: string): Promise<number> {
  const r = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', url]);
  if (r.code !== 0) throw new Error(`ffprobe ${url}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/**
 * One live segment joined to its init in `file`, counted by ffprobe frame by frame: the exit code, its
 * stderr and one entry per stream with the asked `entries` (e.g. codec_name, width, nb_read_frames).
 */
export async function probeLiveSegment(
  base: string,
  streamId: string,
  seg: { map?: string; uri: string },
  file: string,
  entries: string,
): Promise<{ code: number | null; stderr: string; stdout: string; streams: Array<Record<string, string | number>> }> {
  if (!seg.map) throw new Error(`segment ${seg.uri} has no EXT-X-MAP`);
  const get = async (name: string) => Buffer.from(await (await fetch(`${base}/live/${streamId}/source/${name}`)).arrayBuffer());
  writeFileSync(file, Buffer.concat([await get(seg.map), await get(seg.uri)]));
  const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', `stream=${entries}`, '-of', 'json', file]);
  return { ...r, streams: r.code === 0 ? (JSON.parse(r.stdout).streams as Array<Record<string, string | number>>) : [] };
}

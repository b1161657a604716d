/**
 * Handover: a publisher that comes back on this ingest node while its stream's run, begun on another node,
 * has not ended (that node died, or a load balancer sent the reconnect here). The packager's new run
 * continues the stored window (packager/seed.ts): the same run id, each rendition's complete segments,
 * the media and discontinuity sequence going on, and their files read from the store while listed.
 *
 * The window is read only once this node holds the stream's lease: from then on the store refuses what
 * the other node writes (a lower epoch), so what was read is that run's last word.
 */
import type { Logger } from '../core/index.js';
import type { LiveWindowStore } from '../coord/index.js';
import type { RenditionSeed, SeedSource, SegmentEntry, StreamSeed } from '../packager/index.js';
import { FileCache } from './file-cache.js';
import { filePrefix, parseRenditionDoc, parseStreamDoc } from './window-state.js';

export interface HandoverOptions {
  readonly store: LiveWindowStore;
  readonly logger: Logger;
  /** Resolves once the stream's session start here has taken (or failed to take) its lease: true if held. */
  readonly leased: (streamId: string) => Promise<boolean>;
  /** The new run waits this long for the lease and the store, then starts a new window. Default 3000 ms. */
  readonly timeoutMs?: number;
  /** Bytes of seeded files kept in memory (read once from the store). Default 32 MiB. */
  readonly cacheBytes?: number;
}

/** The packager's seed source over the shared store. */
export function storedSeeds(opts: HandoverOptions): SeedSource {
  const cache = new FileCache(opts.cacheBytes ?? 32 * 1024 * 1024);
  const timeoutMs = opts.timeoutMs ?? 3000;
  return async (streamId) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        opts.logger.warn({ stream: streamId }, 'cluster: no lease or stored window in time; a new run starts');
        resolve(undefined);
      }, timeoutMs);
    });
    try {
      return await Promise.race([readSeed(opts, cache, streamId), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

async function readSeed(opts: HandoverOptions, cache: FileCache, streamId: string): Promise<StreamSeed | undefined> {
  const { store } = opts;
  if (!(await opts.leased(streamId))) return undefined;
  const json = await store.getStream(streamId);
  const doc = json === undefined ? undefined : parseStreamDoc(json);
  if (!doc) return undefined;
  const renditions = new Map<string, RenditionSeed>();
  /** Segments completed here from a stored segment in progress: their parts, joined when asked for. */
  const joined = new Map<string, readonly string[]>();
  for (const name of doc.renditions) {
    const stored = await store.getState(streamId, name);
    const state = stored && parseRenditionDoc(stored.json);
    if (!state || state.runId !== doc.runId) continue;
    const p = state.playlist;
    // The run ended there (EXT-X-ENDLIST): a publisher now starts a new one.
    if (p.ended) return undefined;
    const segments: SegmentEntry[] = [...p.segments];
    // The other node died within a segment: what it made of it is a (short) segment of its own.
    const pending = p.pending;
    if (pending && pending.parts.length > 0) {
      const uri = `${filePrefix(pending.initUri)}_${pending.msn}.m4s`;
      segments.push({ ...pending, uri, duration: pending.parts.reduce((d, part) => d + part.duration, 0) });
      joined.set(
        `${name}\n${uri}`,
        pending.parts.map((part) => part.uri),
      );
    }
    renditions.set(name, {
      discontinuitySequence: p.discontinuitySequence,
      segments,
      preloadHint: p.preloadHint,
      targetDuration: p.targetDuration,
      partTarget: p.partTarget,
    });
  }
  if (![...renditions.values()].some((r) => r.segments.length > 0)) return undefined;
  opts.logger.info({ stream: streamId, run: doc.runId }, 'cluster: continuing the stored window of the stream');
  const read = async (rendition: string, name: string): Promise<Uint8Array | undefined> => {
    const parts = joined.get(`${rendition}\n${name}`);
    if (!parts) return store.getFile(streamId, rendition, name);
    const bytes = await Promise.all(parts.map((part) => store.getFile(streamId, rendition, part)));
    return bytes.every((b) => b !== undefined) ? Buffer.concat(bytes) : undefined;
  };
  return {
    runId: doc.runId,
    renditions,
    file: (rendition, name) => cache.get(`${streamId}\n${doc.runId}\n${rendition}\n${name}`, () => read(rendition, name)),
  };
}

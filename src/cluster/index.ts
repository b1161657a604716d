/**
 * cluster/: live windows shared between nodes. On the node that ingests a stream, `WindowMirror` follows
 * the packager (its WindowWatcher) and writes every file and playlist state to the shared store
 * (coord's LiveWindowStore); on any origin, `RemotePackages` serves those streams from the store, byte for
 * byte as the ingesting node does, and `LocalFirstPackages` serves a stream from this node's packager when
 * it has it, else from the store. Both plug into the packager's LiveOrigin (OriginPackages).
 */
import type { OriginPackage, OriginPackages } from '../packager/index.js';

export { WindowMirror } from './window-mirror.js';
export type { MirrorCounters, WindowMirrorOptions } from './window-mirror.js';
export { RemotePackages } from './remote-packages.js';
export { StreamOwnership } from './ownership.js';
export { storedSeeds } from './handover.js';
export type { HandoverOptions } from './handover.js';
export type { OwnedHub, OwnershipOptions } from './ownership.js';
export type { RemotePackagesOptions } from './remote-packages.js';
export type { FileCacheCounters } from './file-cache.js';

/** The node's own packager first (it ingests the stream: served from memory), else the shared store. */
export class LocalFirstPackages implements OriginPackages {
  readonly #local: { get(streamId: string): OriginPackage | undefined };
  readonly #remote: OriginPackages;

  constructor(local: { get(streamId: string): OriginPackage | undefined }, remote: OriginPackages) {
    this.#local = local;
    this.#remote = remote;
  }

  get(streamId: string): OriginPackage | undefined | Promise<OriginPackage | undefined> {
    return this.#local.get(streamId) ?? this.#remote.get(streamId);
  }
}

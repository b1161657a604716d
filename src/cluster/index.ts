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

/**
 * The node's own packager first (it ingests the stream: served from memory), else the shared store. A
 * local package of a stream this node no longer owns (another node took it over, and this one's copy has
 * ended) is not the stream any more: the store's is, and the local one only stands in when the store has
 * none or cannot answer.
 */
export class LocalFirstPackages implements OriginPackages {
  readonly #local: { get(streamId: string): OriginPackage | undefined };
  readonly #remote: OriginPackages;
  readonly #owns: (streamId: string) => boolean;

  constructor(
    local: { get(streamId: string): OriginPackage | undefined },
    remote: OriginPackages,
    owns: (streamId: string) => boolean = () => true,
  ) {
    this.#local = local;
    this.#remote = remote;
    this.#owns = owns;
  }

  get(streamId: string): OriginPackage | undefined | Promise<OriginPackage | undefined> {
    const local = this.#local.get(streamId);
    if (!local) return this.#remote.get(streamId);
    if (this.#owns(streamId)) return local;
    return Promise.resolve(this.#remote.get(streamId)).then(
      (remote) => remote ?? local,
      () => local,
    );
  }
}

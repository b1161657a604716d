/**
 * The live window in Redis: files (binary, PX), playlist states and the stream's document, every write fenced
 * by the writer's epoch in one Lua script (redis-scripts.ts FENCED_SET); putState announces on the stream's
 * channel from inside the same script, so an announcement never precedes its state.
 */
import type { RedisLink } from './redis-link.js';
import { streamKeys } from './redis-keys.js';
import { DELETE_STREAM, FENCED_SET } from './redis-scripts.js';
import type { LiveWindowStore, StoredRenditionState, WindowAnnouncement } from './types.js';

export class RedisWindowStore implements LiveWindowStore {
  readonly #link: RedisLink;

  constructor(link: RedisLink) {
    this.#link = link;
  }

  async putFile(streamId: string, rendition: string, name: string, bytes: Uint8Array, epoch: number, ttlMs: number): Promise<boolean> {
    const k = streamKeys(this.#link.prefix, streamId);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return (await this.#link.eval(FENCED_SET, [k.epoch, k.file(rendition, name), k.index], [epoch, ttlMs, buf])) === 1;
  }

  async getFile(streamId: string, rendition: string, name: string): Promise<Uint8Array | undefined> {
    const key = streamKeys(this.#link.prefix, streamId).file(rendition, name);
    return (await this.#link.call('getFile', (c) => c.getBuffer(key))) ?? undefined;
  }

  async putState(streamId: string, rendition: string, state: StoredRenditionState, ttlMs: number): Promise<boolean> {
    const k = streamKeys(this.#link.prefix, streamId);
    const publish = await this.#link.publishCommand();
    const a: WindowAnnouncement = { streamId, rendition, version: state.version };
    const args = [state.epoch, ttlMs, JSON.stringify(state), publish, k.announce, JSON.stringify(a)];
    return (await this.#link.eval(FENCED_SET, [k.epoch, k.state(rendition), k.index], args)) === 1;
  }

  async getState(streamId: string, rendition: string): Promise<StoredRenditionState | undefined> {
    const key = streamKeys(this.#link.prefix, streamId).state(rendition);
    const v = await this.#link.call('getState', (c) => c.get(key));
    return v === null ? undefined : (JSON.parse(v) as StoredRenditionState);
  }

  async putStream(streamId: string, json: string, epoch: number, ttlMs: number): Promise<boolean> {
    const k = streamKeys(this.#link.prefix, streamId);
    return (await this.#link.eval(FENCED_SET, [k.epoch, k.doc, k.index], [epoch, ttlMs, json])) === 1;
  }

  async getStream(streamId: string): Promise<string | undefined> {
    const key = streamKeys(this.#link.prefix, streamId).doc;
    return (await this.#link.call('getStream', (c) => c.get(key))) ?? undefined;
  }

  subscribe(streamId: string, handler: (a: WindowAnnouncement) => void): () => void {
    const channel = streamKeys(this.#link.prefix, streamId).announce;
    return this.#link.subscribe(channel, (m) => handler(JSON.parse(m) as WindowAnnouncement));
  }

  /** Every key of the stream goes, in one script; nothing while a node holds its lease (a publisher came back). */
  async deleteStream(streamId: string): Promise<void> {
    const k = streamKeys(this.#link.prefix, streamId);
    await this.#link.eval(DELETE_STREAM, [k.lease, k.epoch, k.status, k.doc, k.index], []);
  }
}

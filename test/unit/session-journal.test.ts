import { describe, expect, it } from 'vitest';
import { SessionJournal, type SessionWriter } from '../../src/catalog/index.js';
import { silentLogger } from '../../src/core/index.js';

describe('SessionJournal', () => {
  it('writes a session end only after its start, even when the start is slower', async () => {
    const writes: string[] = [];
    let finishStart!: () => void;
    const writer: SessionWriter = {
      startSession: (s) =>
        new Promise<void>((resolve) => {
          finishStart = () => {
            writes.push(`start ${s.id} ${s.streamId} ${s.protocol} ${s.remoteAddress}`);
            resolve();
          };
        }),
      endSession: async (id, end) => void writes.push(`end ${id} ${end.reason} ${end.bytes} ${end.frames}`),
    };
    const journal = new SessionJournal(writer, silentLogger);
    journal.started('s1', { sessionId: 'a', protocol: 'rtmp', remoteAddress: '127.0.0.1' });
    journal.ended('s1', 'a', { reason: 'unpublished', bytes: 10, frames: 2 });
    await new Promise((r) => setTimeout(r, 10));
    expect(writes).toEqual([]);
    finishStart();
    await new Promise((r) => setTimeout(r, 10));
    expect(writes).toEqual(['start a s1 rtmp 127.0.0.1', 'end a unpublished 10 2']);
  });

  it('logs a failed write and still writes the end', async () => {
    const warned: string[] = [];
    const logger = { ...silentLogger, warn: (_: unknown, msg?: string) => void warned.push(msg ?? '') };
    const ended: string[] = [];
    const writer: SessionWriter = {
      startSession: () => Promise.reject(new Error('db down')),
      endSession: async (id) => void ended.push(id),
    };
    const journal = new SessionJournal(writer, logger);
    journal.started('s1', { sessionId: 'b', protocol: 'whip', remoteAddress: '::1' });
    journal.ended('s1', 'b', { reason: 'gone', bytes: 0, frames: 0 });
    await new Promise((r) => setTimeout(r, 10));
    expect(warned).toEqual(['could not record publish session']);
    expect(ended).toEqual(['b']);
  });
});

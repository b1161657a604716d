import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/index.js';
import { Lifecycle } from '../../src/lifecycle.js';

/** A logger that keeps what it is given. */
function recordingLogger() {
  const lines: { level: string; obj: any; msg?: string }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg });
  const logger: Logger = {
    child: () => logger,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { logger, lines };
}

describe('Lifecycle', () => {
  it('unwinds last pushed first, one step at a time, and names the step in progress', async () => {
    const { logger } = recordingLogger();
    const life = new Lifecycle({ logger, stepMs: 1000 });
    const ran: string[] = [];
    const seen: string[] = [];
    for (const name of ['catalog', 'storage', 'hub', 'rtmp']) {
      life.push(name, async () => {
        seen.push(life.step);
        await new Promise((r) => setTimeout(r, 5));
        ran.push(name);
      });
    }
    expect(life.step).toBe('running');
    life.push('slow', () => undefined, { limitMs: 3000 });
    // The budget is the sum of the limits: four steps at the default and one of its own.
    expect(life.budgetMs).toBe(4 * 1000 + 3000);
    expect(await life.close()).toEqual({ failed: [], late: [] });
    expect(ran).toEqual(['rtmp', 'hub', 'storage', 'catalog']);
    expect(seen).toEqual(['rtmp', 'hub', 'storage', 'catalog']);
    expect(life.step).toBe('stopped');
  });

  it('cuts a step that overruns its time, names it in the log, calls its onLate and goes on', async () => {
    const { logger, lines } = recordingLogger();
    const life = new Lifecycle({ logger, stepMs: 1000 });
    const ran: string[] = [];
    let cut = false;
    life.push('catalog', () => void ran.push('catalog'));
    life.push('http', () => new Promise(() => {}), { limitMs: 30, onLate: () => (cut = true) });
    life.push('rtmp', () => void ran.push('rtmp'));
    const t0 = performance.now();
    expect(await life.close()).toEqual({ failed: [], late: ['http'] });
    expect(performance.now() - t0).toBeLessThan(900);
    expect(ran).toEqual(['rtmp', 'catalog']);
    expect(cut).toBe(true);
    const warn = lines.filter((l) => l.level === 'warn');
    expect(warn).toHaveLength(1);
    expect(warn[0].obj).toMatchObject({ step: 'http', limitMs: 30 });
  });

  it('bounds every step by the default time when it gives none', async () => {
    const { logger } = recordingLogger();
    const life = new Lifecycle({ logger, stepMs: 20 });
    life.push('stuck', () => new Promise(() => {}));
    expect((await life.close()).late).toEqual(['stuck']);
  });

  it('logs a step that throws or rejects with its error and goes on with the next', async () => {
    const { logger, lines } = recordingLogger();
    const life = new Lifecycle({ logger, stepMs: 1000 });
    const ran: string[] = [];
    life.push('catalog', () => void ran.push('catalog'));
    life.push('storage', () => Promise.reject(new Error('disk gone')));
    life.push('hub', () => {
      throw new Error('hub broke');
    });
    life.push('rtmp', () => void ran.push('rtmp'));
    expect(await life.close()).toEqual({ failed: ['hub', 'storage'], late: [] });
    expect(ran).toEqual(['rtmp', 'catalog']);
    const errors = lines.filter((l) => l.level === 'error').map((l) => [l.obj.step, (l.obj.err as Error).message]);
    expect(errors).toEqual([
      ['hub', 'hub broke'],
      ['storage', 'disk gone'],
    ]);
  });

  it('runs every step once however often it is closed', async () => {
    const { logger } = recordingLogger();
    const life = new Lifecycle({ logger, stepMs: 1000 });
    let closes = 0;
    life.push('hub', async () => {
      await new Promise((r) => setTimeout(r, 5));
      closes++;
    });
    const first = life.close();
    const second = life.close();
    expect(second).toBe(first);
    await first;
    await life.close();
    expect(closes).toBe(1);
    expect(() => life.push('late', () => {})).toThrow(/pushed after close/);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * TRUST_PROXY: behind nginx every request comes from nginx's address, so the per-address limits (failed
 * tokens here) would refuse every client once one of them guessed wrong. With the proxy trusted, its
 * X-Forwarded-For names the client; from anyone else, the header is ignored (a client cannot pick its own
 * address to escape a limit).
 */
const LIMIT = 3;

/** Makes one client (by X-Forwarded-For) fail LIMIT times, then asks with the right token as another client. */
async function otherClientAfterOneIsLimited(srv: TestServer): Promise<{ limited: number; other: number }> {
  const get = (token: string, forwardedFor: string) =>
    fetch(`${srv.base}/api/v1/streams`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': forwardedFor } });
  for (let i = 0; i < LIMIT; i++) await get(`wrong-token-${i}-0123456789`, '203.0.113.5');
  const limited = (await get(srv.apiToken, '203.0.113.5')).status;
  const other = (await get(srv.apiToken, '203.0.113.6')).status;
  return { limited, other };
}

describe('TRUST_PROXY', () => {
  const started: TestServer[] = [];
  afterAll(async () => {
    for (const s of started) await s.stop();
  });
  const start = async (trustProxy: string | undefined) => {
    const s = await startTestServer({
      AUTH_FAILURE_LIMIT: String(LIMIT),
      ...(trustProxy !== undefined ? { TRUST_PROXY: trustProxy } : {}),
    });
    started.push(s);
    return s;
  };

  it('behind a trusted proxy, limits count each forwarded client apart', async () => {
    const r = await otherClientAfterOneIsLimited(await start('127.0.0.1'));
    expect(r).toEqual({ limited: 429, other: 200 });
  });

  it('unset, X-Forwarded-For is ignored: every request is the socket’s address', async () => {
    const r = await otherClientAfterOneIsLimited(await start(undefined));
    expect(r).toEqual({ limited: 429, other: 429 });
  });

  it('from an address outside the trusted ranges, X-Forwarded-For is ignored', async () => {
    const r = await otherClientAfterOneIsLimited(await start('10.0.0.0/8'));
    expect(r).toEqual({ limited: 429, other: 429 });
  });

  it('refuses a value that is not true or addresses', () => {
    expect(() => loadConfig({ TRUST_PROXY: 'nginx' })).toThrow(/TRUST_PROXY="nginx" must be true or a comma-separated list/);
  });
});

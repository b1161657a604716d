import http from 'node:http';

/** Wall clock in ms since the epoch with sub-ms resolution that never steps back (unlike Date.now()). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** A keep-alive agent for the bench's pollers, so that a poll every 50 ms does not open a connection each time. */
export const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** GET `url` as bytes; rejects on a network error or after `timeoutMs`. */
export function getBytes(url: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: pollAgent, signal: opts.signal, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

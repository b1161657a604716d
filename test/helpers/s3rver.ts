import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

/** The bucket s3rver is started with. */
export const S3RVER_BUCKET = 'livepack-test';
/** s3rver's one account. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/**
 * s3rver 3.7.1 (the last release) makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
 * (Node >= 17) keeps only in its legacy provider: in this process every listing longer than one page fails
 * with InternalError. So s3rver runs as its own Node process with --openssl-legacy-provider, which is also
 * closer to how MinIO or S3 run. Resolves once it prints the port it listens on.
 */
export async function startS3rver(dir: string): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
  const args = ['--openssl-legacy-provider', bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '-s', '--configure-bucket', S3RVER_BUCKET];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  };
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      const m = /S3rver listening on [\d.]+:(\d+)/.exec(line);
      if (m) return `http://127.0.0.1:${m[1]}`;
    }
    throw new Error(`s3rver exited before listening (code ${child.exitCode}): ${stderr}`);
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${stderr}`)), 20_000);
  });
  try {
    return { endpoint: await Promise.race([ready, timeout]), stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

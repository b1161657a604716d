import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Public ids: 12 random bytes, base64url (16 chars). Not secret. */
export function newId(): string {
  return randomBytes(12).toString('base64url');
}

/** Stream keys: 24 random bytes (192 bits), prefixed so they are recognisable in a config paste. */
export function newStreamKey(): string {
  return `sk_${randomBytes(24).toString('base64url')}`;
}

/** Keys are stored only as a SHA-256 hash; high-entropy keys need no slow KDF. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of two strings (compares their SHA-256 digests, so lengths may differ). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

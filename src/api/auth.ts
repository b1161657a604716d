import type { FastifyRequest } from 'fastify';
import { AppError, safeEqual } from '../core/index.js';

/** Checks `Authorization: Bearer <token>` in constant time; throws E_UNAUTHORIZED otherwise. */
export function requireToken(expected: string) {
  return async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m || !safeEqual(m[1], expected)) {
      throw new AppError('E_UNAUTHORIZED', 'missing or wrong operator token (Authorization: Bearer <API_TOKEN>)');
    }
  };
}

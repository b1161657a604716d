import type { FastifyRequest } from 'fastify';
import { AppError, safeEqual } from '../core/index.js';

/**
 * Whether the request carries the operator token (`Authorization: Bearer <token>`, compared in constant
 * time). No Authorization header: false (a viewer). A wrong one throws E_UNAUTHORIZED rather than quietly
 * making the caller a viewer.
 */
export function isOperator(req: FastifyRequest, expected: string): boolean {
  const header = req.headers.authorization;
  if (header === undefined) return false;
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m || !safeEqual(m[1], expected)) throw new AppError('E_UNAUTHORIZED', 'wrong operator token (Authorization: Bearer <API_TOKEN>)');
  return true;
}

/** Throws E_UNAUTHORIZED unless the request carries the operator token. */
export function requireOperator(req: FastifyRequest, expected: string): void {
  if (!isOperator(req, expected)) throw new AppError('E_UNAUTHORIZED', 'missing operator token (Authorization: Bearer <API_TOKEN>)');
}

/** An onRequest hook doing requireOperator. */
export function requireToken(expected: string) {
  return async (req: FastifyRequest): Promise<void> => requireOperator(req, expected);
}

import { AppError } from '../core/index.js';

/**
 * Redis did not answer (down, unreachable, timed out): the call failed fast instead of waiting, and the
 * client reconnects on its own. 503 where it crosses the API (core has no dedicated code; E_CLOSED maps to 503).
 */
export class CoordinationUnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CLOSED', message, options);
    this.name = 'CoordinationUnavailableError';
  }
}

import { expect } from 'vitest';
import { AppError } from '../../src/core/index.js';

/** The AppError code `fn` throws, or 'no error'; anything thrown that is not an AppError fails the test. */
export function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return (err as AppError).code;
  }
  return 'no error';
}

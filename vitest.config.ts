import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn FFmpeg and servers; two cores cannot take many at once.
    maxWorkers: 2,
    minWorkers: 1,
  },
});

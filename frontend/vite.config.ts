import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// The hub serves dist/index.html for every non-API path and dist/ at the root (WhiteNoise).
export default defineConfig({
  base: '/',
  plugins: [react()],
  build: { outDir: 'dist', assetsDir: 'assets', sourcemap: true },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    globals: false,
    setupFiles: ['src/testing/setup.ts'],
    testTimeout: 20000,
  },
});

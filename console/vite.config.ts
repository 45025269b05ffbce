/**
 * Builds the web console (Preact + TypeScript) into dist/console, which main serves at `/`
 * (main/http/console-static.ts). Everything is emitted as files with hashed names: no inline script or
 * style, so main's Content-Security-Policy can forbid both ('unsafe-inline' is never needed).
 */
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  clearScreen: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // A data: URL or an inlined module-preload helper would be the only inline content: keep every asset a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});

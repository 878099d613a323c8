import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The web console, built to static files the API serves at /console/ (src/api/routes/console.ts).
 * Asset names carry a content hash, so the API can let browsers keep them for a year.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsDir: 'assets',
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/v1': 'http://127.0.0.1:8080' } },
});

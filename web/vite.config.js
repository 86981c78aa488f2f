import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the page on :5173 and sends chatfn's routes (and the dev routes that mint
// tokens) to the local server, so the page and its backend share an origin as in production.
const target = process.env.CHATFN_URL ?? 'http://127.0.0.1:8787';
// The dev routes refuse requests from other origins: the proxied request drops the page's Origin.
const dropOrigin = (proxy) => proxy.on('proxyReq', (request) => request.removeHeader('origin'));
const proxy = Object.fromEntries(
  ['/api', '/realtime', '/dev'].map((path) => [path, { target, changeOrigin: true, configure: dropOrigin }]),
);

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    // The Trigger.dev SDK is the bulk of the bundle; one chunk is fine for a local page.
    chunkSizeWarningLimit: 2000,
  },
});

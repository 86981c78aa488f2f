// A tiny HTTP server that answers every request with a fixed SSE body, used only to check that
// the harness (DefaultChatTransport + readUIMessageStream via readChunks) rejects bad streams.
// It writes; it never parses chunks.

import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export async function startSseFixture() {
  let events = [];
  let delayMs = 0;
  const server = http.createServer(async (req, res) => {
    for await (const _ of req) {
      // drain the request body
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-vercel-ai-ui-message-stream': 'v1' });
    for (const event of events) {
      if (res.destroyed) return;
      res.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
      if (delayMs) await sleep(delayMs);
    }
    res.end('data: [DONE]\n\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${server.address().port}`,
    /** The events the next responses carry: chunk objects or raw `data:` strings. */
    serve(nextEvents, { delay = 0 } = {}) {
      events = nextEvents;
      delayMs = delay;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

// A webhook receiver for chatfn's turn events: every delivery is verified with the npm
// `standardwebhooks` package (the reference verifier of the Standard Webhooks specification) and
// recorded. A test can make the first delivery of a chat's events fail (503), to see it retried.
//
// The port and the secret come from CHATFN_E2E_WEBHOOK_PORT and CHATFN_E2E_WEBHOOK_SECRET when
// the functions under test were configured before the tests started (scripts/lambda-e2e.sh);
// otherwise a free port and a fresh secret, passed to the server the suite starts (`env()`).

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Webhook } from 'standardwebhooks';
import { freePort } from './worker.js';

/** Starts the receiver. */
export async function startWebhookReceiver() {
  const port = Number(process.env.CHATFN_E2E_WEBHOOK_PORT) || await freePort();
  const secret = process.env.CHATFN_E2E_WEBHOOK_SECRET || `whsec_${randomBytes(32).toString('base64')}`;
  const verifier = new Webhook(secret);
  /** Every delivery: `{ id, status, verified, event, at }`. */
  const deliveries = [];
  /** `chatId type` of the next deliveries to answer with a 503. */
  const failNext = new Set();
  /** Deliveries that did not verify, with why. */
  const rejected = [];

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      let event;
      try {
        event = verifier.verify(body, req.headers);
      } catch (error) {
        rejected.push({ headers: req.headers, body, error: String(error) });
        res.writeHead(401).end();
        return;
      }
      const status = failNext.delete(`${event?.data?.chatId} ${event?.type}`) ? 503 : 204;
      deliveries.push({ id: req.headers['webhook-id'], status, event, at: Date.now() });
      res.writeHead(status).end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  const forChat = (chatId, type) => deliveries.filter(
    (d) => d.event?.data?.chatId === chatId && (!type || d.event.type === type),
  );
  return {
    url: `http://127.0.0.1:${port}/hooks/chatfn`,
    secret,
    deliveries,
    rejected,
    /** The server's environment for this receiver. */
    env() {
      return { CHATFN_WEBHOOK_URL: this.url, CHATFN_WEBHOOK_SECRET: secret };
    },
    /** Answers the next delivery of a `type` event about `chatId` with a 503. */
    failNextFor(chatId, type) {
      failNext.add(`${chatId} ${type}`);
    },
    /** Deliveries about `chatId` (of `type`, when given), in arrival order. */
    forChat,
    /** The accepted events about `chatId` (of `type`), one per id. */
    accepted(chatId, type) {
      const seen = new Map();
      for (const d of forChat(chatId, type)) if (d.status < 300 && !seen.has(d.id)) seen.set(d.id, d.event);
      return [...seen.entries()].map(([id, event]) => ({ id, event }));
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

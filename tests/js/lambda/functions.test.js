// What only the Lambda functions do (run by scripts/lambda-e2e.sh under `cargo lambda watch`):
// each function answers only its own routes, and an invocation's response lasts until the turns
// it started are persisted (Lambda freezes the process when the response ends). The deadline
// handling is tested in shared/tests/lambda_host.rs: cargo lambda watch 1.9.2 gives every
// invocation the same 600 s deadline, whatever its --timeout.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { e2eSuite } from '../support/harness.js';
import { functionFor } from '../support/lambda-router.js';
import { getMessages, request, sessionBody } from '../support/server.js';
import { textOf, userMessage } from '../support/stream.js';

const lambdaUrl = () => process.env.CHATFN_LAMBDA_URL.replace(/\/+$/, '');
const direct = (fn, path) => `${lambdaUrl()}/lambda-url/${fn}${path}`;

e2eSuite('the Lambda functions', (ctx, e2e) => {
  e2e('each function answers only its own routes', async () => {
    assert.ok(ctx.server.lambda, 'run this file with scripts/lambda-e2e.sh (CHATFN_LAMBDA_URL)');
    const { chatId, token } = await ctx.newChat('routes');
    const key = ctx.server.secretKey;
    const routes = [
      ['POST', '/api/v1/sessions', key, sessionBody(chatId)],
      ['GET', `/api/v1/sessions/${chatId}`, key],
      ['POST', `/api/v1/sessions/${chatId}/token`, key],
      ['POST', '/api/v1/auth/jwt/claims', key, { scopes: [`read:sessions:${chatId}`] }],
      ['GET', `/api/chat/${chatId}/messages`, token],
      ['GET', `/realtime/v1/sessions/${chatId}/out/records`, token],
    ];
    for (const [method, path, auth, body] of routes) {
      const owner = functionFor(path);
      for (const fn of ['session-start', 'token-refresh', 'agent-turn']) {
        const res = await request(direct(fn, path), { method, token: auth, body });
        if (fn === owner) {
          assert.ok(res.status < 400, `${method} ${path} on ${fn} (its owner): ${res.status} ${res.text}`);
        } else {
          assert.equal(res.status, 404, `${method} ${path} on ${fn} (not its owner): ${res.text}`);
          assert.equal(res.json?.code, 'not_found');
        }
      }
    }
  });

  e2e('a turn started without a reader is persisted before the response ends', async () => {
    // A server-side append (secret key) runs the turn in the background. On Lambda the process
    // is frozen once the response ends, so the response must last until the turn is persisted.
    const { chatId, token } = await ctx.newChat('headless');
    const deltas = Array.from({ length: 8 }, (_, i) => `bg${i} `);
    ctx.mock.handle(() => ({ text: deltas, delayMs: 150 }));
    const started = performance.now();
    const res = await request(`${ctx.server.baseUrl}/realtime/v1/sessions/${chatId}/in/append`, {
      method: 'POST',
      token: ctx.server.secretKey,
      headers: { 'x-part-id': `part-${chatId}` },
      body: {
        kind: 'message',
        payload: { chatId, trigger: 'submit-message', message: userMessage('Run without me') },
      },
      timeout: 20_000,
    });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.ok, true);
    assert.ok(elapsed > 7 * 150, `the response ended after ${elapsed.toFixed(0)} ms, before the model could finish`);
    // No waiting: the reply is in the history the moment the response has ended.
    const messages = await getMessages(ctx.server, chatId, token);
    assert.equal(messages.length, 2, `history right after the response: ${JSON.stringify(messages)}`);
    assert.equal(textOf(messages[1]), deltas.join(''));
    assert.equal(ctx.mock.requests[0]?.completed, true, 'the model call ran to its end');
  });
});

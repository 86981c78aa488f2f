// What only the Lambda functions do (run by scripts/lambda-e2e.sh under `cargo lambda watch`):
// each function answers only its own routes, and an invocation's response lasts until the turns
// it started are persisted (Lambda freezes the process when the response ends). The deadline
// handling is tested in functions/lambda/tests/lambda_host.rs: cargo lambda watch 1.9.2 gives
// every invocation the same 600 s deadline, whatever its --timeout.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { e2eSuite } from '../support/harness.js';
import { lambdaInstances, pidsHoldingPort } from '../support/lambda-instances.js';
import { functionFor } from '../support/lambda-router.js';
import { chatUrl, getMessages, request, sessionBody } from '../support/server.js';
import { textOf, userMessage } from '../support/stream.js';

const lambdaUrl = () => process.env.CHATFN_LAMBDA_URL.replace(/\/+$/, '');
const direct = (fn, path) => `${lambdaUrl()}/lambda-url/${fn}${path}`;

/** The agent-turn instance that made the model call from `clientPort`: the one to kill. */
function agentTurnPidCalling(clientPort) {
  const instances = lambdaInstances('agent-turn');
  const owners = pidsHoldingPort(instances, clientPort);
  assert.equal(owners.length, 1, `one of the ${instances.length} agent-turn instances holds port ${clientPort}: ${owners}`);
  return owners[0];
}

/** The data chunks of an SSE body, parsed. */
function chunksOf(text) {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: ') && line !== 'data: [DONE]')
    .map((line) => JSON.parse(line.slice(6)));
}

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

  e2e('killing the agent-turn process mid-turn loses nothing: the next reader gets the reply closed', async () => {
    const { chatId, token } = await ctx.newChat('killed');
    const deltas = Array.from({ length: 400 }, (_, i) => `k${i} `);
    ctx.mock.handle(() => ({ text: deltas, delayMs: 50 }));
    const controller = new AbortController();
    const response = await fetch(`${ctx.server.baseUrl}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: chatId, trigger: 'submit-message', messages: [userMessage('Talk until killed')] }),
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body.getReader();
    let seen = '';
    // Past the first batch: on DynamoDB, while no reader elsewhere follows, a turn writes its
    // deltas every 10 s, so a crash loses at most the last 10 s of them.
    while (chunksOf(seen).filter((c) => c.type === 'text-delta').length < 240) {
      const { done, value } = await reader.read();
      assert.ok(!done, 'the stream ended before the kill');
      seen += new TextDecoder().decode(value);
    }
    const call = ctx.mock.requests.at(-1);
    assert.ok(call && !call.completed, 'the model call of the turn is under way');
    process.kill(agentTurnPidCalling(call.clientPort), 'SIGKILL');
    // The stream breaks with the process (cargo lambda watch may end it or error it).
    await reader.read().then(() => reader.cancel()).catch(() => {});
    controller.abort();
    // The lease of the killed turn expires (30 s); the next reader then recovers and closes it.
    let replay;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const res = await request(chatUrl(ctx.server, chatId, 'stream'), { token, timeout: 60_000 });
      if (res.status === 204) break;
      assert.equal(res.status, 200, res.text);
      const chunks = chunksOf(res.text);
      if (chunks.at(-1)?.type === 'finish' || chunks.some((c) => c.type === 'abort')) {
        replay = chunks;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const live = chunksOf(seen);
    assert.ok(replay, 'a reader got the reply closed within 90 s of the kill');
    // The replay is what was written before the kill, exactly as it was streamed (the deltas of
    // the last unflushed batch are gone with the process), then the recovery's closing chunks.
    let kept = 0;
    while (kept < replay.length && kept < live.length && JSON.stringify(replay[kept]) === JSON.stringify(live[kept])) kept++;
    const closing = replay.slice(kept).map((c) => c.type);
    const closers = new Set(['text-end', 'reasoning-end', 'error', 'abort', 'finish-step', 'finish']);
    assert.ok(closing.every((type) => closers.has(type)), `after the kept chunks only closing ones: ${closing.join(' ')}`);
    assert.ok(closing.includes('abort') || closing.includes('error'), `the reply says it was interrupted: ${closing.join(' ')}`);
    assert.ok(replay.slice(0, kept).filter((c) => c.type === 'text-delta').length >= 100, `the deltas flushed before the kill were kept: ${kept} chunks`);
    const messages = await getMessages(ctx.server, chatId, token);
    assert.equal(messages.length, 2, `the message and the partial reply are in the history: ${JSON.stringify(messages)}`);
    assert.ok(textOf(messages[1]).startsWith('k0 k1 k2 '), textOf(messages[1]));
    // The chat is free: the next turn runs on another instance.
    ctx.mock.handle(() => ({ text: ['after ', 'the kill'] }));
    const next = await fetch(`${ctx.server.baseUrl}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: chatId, trigger: 'submit-message', messages: [userMessage('Still there?')] }),
    });
    assert.equal(next.status, 200);
    const nextChunks = chunksOf(await next.text());
    assert.equal(nextChunks.filter((c) => c.type === 'text-delta').map((c) => c.delta).join(''), 'after the kill');
  }, { timeout: 150_000 });

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

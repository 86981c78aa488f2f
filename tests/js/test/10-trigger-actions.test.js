// The SDK's server actions against chatfn: `chat.createStartSessionAction` creates the session
// (and is idempotent per chat), `auth.createPublicToken` signs tokens locally that chatfn accepts.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { decodeJwt, verifyHs256 } from '../support/jwt.js';
import { chatUrl, newChatId } from '../support/server.js';
import { describeExchanges, rawFetch, readOut, tapFetch, triggerServerActions } from '../support/trigger.js';

e2eSuite('trigger: server actions', (ctx, e2e) => {
  let actions;
  const setup = () => {
    actions ??= triggerServerActions(ctx.server);
    return actions;
  };

  e2e('createStartSessionAction creates the session once; a repeat returns the same session', async () => {
    const { startSession, sessions } = setup();
    const chatId = newChatId('actions');
    const tap = tapFetch();
    let first;
    let second;
    try {
      first = await startSession({ chatId, clientData: { plan: 'free' } });
      second = await startSession({ chatId });
    } finally {
      tap.restore();
    }

    const creates = tap.to('/api/v1/sessions', 'POST');
    assert.equal(creates.length, 2, `one POST /api/v1/sessions per call:\n${describeExchanges(tap.exchanges)}`);
    await Promise.all(creates.map((e) => e.done));
    assert.equal(creates[0].status, 201, creates[0].text);
    assert.equal(creates[0].json.isCached, false);
    assert.equal(creates[1].status, 200, creates[1].text);
    assert.equal(creates[1].json.isCached, true);
    assert.equal(creates[0].requestHeaders.authorization, `Bearer ${ctx.server.secretKey}`);
    const sent = JSON.parse(creates[0].requestBody);
    assert.equal(sent.externalId, chatId);
    assert.equal(sent.taskIdentifier, 'chat');
    assert.deepEqual(sent.triggerConfig.basePayload, { messages: [], trigger: 'preload', metadata: { plan: 'free' }, chatId });

    // What the action returns.
    for (const result of [first, second]) {
      assert.equal(typeof result.publicAccessToken, 'string');
      assert.equal(typeof result.runId, 'string');
      assert.match(result.sessionId, /^session_/);
    }
    assert.equal(second.sessionId, first.sessionId, 'a repeat call returns the same session');

    // The returned token is the chat's: it reads the chat's history.
    const messages = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token: first.publicAccessToken });
    assert.equal(messages.status, 200, messages.text);
    assert.deepEqual(messages.json.messages, []);

    // The SDK reads the session back by chat id and by session id.
    const byChat = await sessions.retrieve(chatId);
    assert.equal(byChat.id, first.sessionId);
    assert.equal(byChat.externalId, chatId);
    assert.equal(byChat.closedAt, null);
    const byId = await sessions.retrieve(first.sessionId);
    assert.equal(byId.externalId, chatId);
  });

  e2e('auth.createPublicToken signs locally with the claims from chatfn, and chatfn accepts the token', async () => {
    const { startSession, mint } = setup();
    const chatId = newChatId('mint');
    await startSession({ chatId });

    const tap = tapFetch();
    let token;
    try {
      token = await mint(chatId);
    } finally {
      tap.restore();
    }
    // One exchange: the claims, then the SDK signs with the secret key.
    assert.deepEqual(tap.exchanges.map((e) => `${e.method} ${e.path}`), ['POST /api/v1/auth/jwt/claims'], describeExchanges(tap.exchanges));
    await tap.exchanges[0].done;
    assert.equal(tap.exchanges[0].status, 200);
    assert.equal(tap.exchanges[0].json.pub, true);
    assert.equal(typeof tap.exchanges[0].json.sub, 'string');

    const { header, payload } = decodeJwt(token);
    assert.deepEqual(header, { alg: 'HS256' });
    assert.ok(verifyHs256(token, ctx.server.secretKey), 'signed with the secret key');
    assert.deepEqual(payload.scopes, [`read:sessions:${chatId}`, `write:sessions:${chatId}`]);
    assert.equal(payload.sub, tap.exchanges[0].json.sub);
    assert.ok(payload.exp - payload.iat === 3600, `expirationTime "1h": iat ${payload.iat}, exp ${payload.exp}`);

    // Accepted for the chat's history, its .out stream and its session.
    const messages = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token });
    assert.equal(messages.status, 200, messages.text);
    assert.deepEqual(messages.json.messages, []);
    const out = await readOut(ctx.server, chatId, token, { peekSettled: true, stopWhen: null, timeout: 5000 });
    assert.equal(out.status, 200, out.text);
    assert.equal(out.headers.get('x-stream-version'), 'v2');
    assert.equal(out.headers.get('x-session-settled'), 'true');
    assert.deepEqual(out.records, []);
    const session = await rawFetch(`${ctx.server.baseUrl}/api/v1/sessions/${chatId}`, { token });
    assert.equal(session.status, 200, session.text);
    assert.equal(session.json.externalId, chatId);

    // A token of another chat is refused here.
    const other = await mint(newChatId('other'));
    const refused = await rawFetch(chatUrl(ctx.server, chatId, 'messages'), { token: other });
    assert.equal(refused.status, 403, refused.text);
  });
});

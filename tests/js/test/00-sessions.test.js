// Sessions and tokens: what the browser gets before it can chat.

import assert from 'node:assert/strict';
import { e2eSuite } from '../support/harness.js';
import { decodeJwt, nowSeconds, verifyHs256 } from '../support/jwt.js';
import { createSessionRaw, getMessages, mintTokenRaw, newChatId } from '../support/server.js';

function assertSessionToken(token, chatId, secretKey) {
  assert.equal(typeof token, 'string');
  const { header, payload } = decodeJwt(token);
  assert.deepEqual(header, { alg: 'HS256' }, 'the token header must be exactly {"alg":"HS256"}');
  assert.ok(verifyHs256(token, secretKey), 'the token must be signed with the UTF-8 bytes of the secret key');
  assert.equal(typeof payload.sub, 'string', 'sub');
  assert.equal(payload.pub, true, 'pub');
  assert.deepEqual(
    [...payload.scopes].sort(),
    [`read:sessions:${chatId}`, `write:sessions:${chatId}`].sort(),
    'scopes',
  );
  assert.ok(Number.isInteger(payload.iat) && Math.abs(payload.iat - nowSeconds()) < 300, `iat ${payload.iat} is not now`);
  assert.ok(Number.isInteger(payload.exp) && payload.exp > nowSeconds(), `exp ${payload.exp} is not in the future`);
  return payload;
}

e2eSuite('sessions and tokens', (ctx, e2e) => {
  e2e('POST /api/v1/sessions creates once, then answers from cache', async () => {
    const chatId = newChatId('session');
    const first = await createSessionRaw(ctx.server, chatId);
    assert.equal(first.status, 201, `first create: ${first.text}`);
    assert.equal(first.json.externalId, chatId);
    assert.equal(first.json.type, 'chat.agent');
    assert.equal(first.json.taskIdentifier, 'chat');
    assert.equal(first.json.isCached, false);
    for (const key of ['id', 'tags', 'metadata', 'closedAt', 'closedReason', 'expiresAt', 'createdAt', 'updatedAt', 'runId']) {
      assert.ok(key in first.json, `the session response lacks ${key} (the Trigger.dev SDK requires it)`);
    }
    assertSessionToken(first.json.publicAccessToken, chatId, ctx.server.secretKey);

    const second = await createSessionRaw(ctx.server, chatId);
    assert.equal(second.status, 200, `second create: ${second.text}`);
    assert.equal(second.json.isCached, true);
    assert.equal(second.json.id, first.json.id, 'the cached session has the same id');
    assertSessionToken(second.json.publicAccessToken, chatId, ctx.server.secretKey);

    // A fresh chat has an empty history.
    assert.deepEqual(await getMessages(ctx.server, chatId, first.json.publicAccessToken), []);
  });

  e2e('POST /api/v1/sessions/<chatId>/token mints a session token', async () => {
    const { chatId } = await ctx.newChat('token');
    const res = await mintTokenRaw(ctx.server, chatId);
    assert.equal(res.status, 200, res.text);
    const payload = assertSessionToken(res.json.publicAccessToken, chatId, ctx.server.secretKey);
    assert.equal(typeof res.json.expiresAt, 'string');
    const expiresAt = Date.parse(res.json.expiresAt);
    assert.ok(Number.isFinite(expiresAt), `expiresAt is not an ISO date: ${res.json.expiresAt}`);
    assert.ok(Math.abs(expiresAt / 1000 - payload.exp) <= 1, 'expiresAt matches the token exp');
    assert.deepEqual(await getMessages(ctx.server, chatId, res.json.publicAccessToken), []);
  });

  e2e('session routes need the secret key', async () => {
    const chatId = newChatId('nokey');
    for (const key of [undefined, 'not-the-key', `${ctx.server.secretKey}x`]) {
      const created = await createSessionRaw(ctx.server, chatId, { key });
      assert.equal(created.status, 401, `create with key ${key}: ${created.text}`);
      assert.equal(typeof created.json?.error, 'string');
      const minted = await mintTokenRaw(ctx.server, chatId, { key });
      assert.equal(minted.status, 401, `token with key ${key}: ${minted.text}`);
      assert.equal(typeof minted.json?.error, 'string');
    }
  });
});

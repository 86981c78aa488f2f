// End users with an OpenID Connect ID token on the Worker: the chat's Durable Object fetches the
// issuer's keys with the Worker's fetch, checks the token (RS256, issuer, audience, expiry) on
// JavaScript's clock, records the owner, and only the owner may refresh the chat's token.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AUDIENCE, startIssuer } from '../support/oidc-issuer.js';
import { newChatId, request, sessionBody } from '../support/server.js';
import { startWorker } from '../support/worker.js';

describe('the Worker: OIDC callers', () => {
  let issuer;
  let worker;

  before(async () => {
    issuer = await startIssuer();
    worker = await startWorker({ env: { CHATFN_OIDC_ISSUER: issuer.url, CHATFN_OIDC_AUDIENCE: AUDIENCE } });
  }, { timeout: 120_000 });

  after(async () => {
    await worker?.stop();
    await issuer?.close();
  });

  test('an ID token starts a session its user owns; only the owner refreshes it', { timeout: 60_000 }, async () => {
    const chatId = newChatId('oidc');
    const alice = issuer.idToken('alice');
    const created = await request(`${worker.baseUrl}/api/v1/sessions`, { method: 'POST', token: alice, body: sessionBody(chatId) });
    assert.equal(created.status, 201, created.text);
    assert.ok(created.json.publicAccessToken, 'a session token for the chat');
    assert.ok(issuer.fetches() >= 1, 'the keys were fetched from the issuer');

    const refresh = (token) => request(`${worker.baseUrl}/api/v1/sessions/${chatId}/token`, { method: 'POST', token, body: {} });
    const mine = await refresh(issuer.idToken('alice'));
    assert.equal(mine.status, 200, mine.text);
    const theirs = await refresh(issuer.idToken('bob'));
    assert.equal(theirs.status, 403, theirs.text);
    assert.match(theirs.json.error, /another user/);
  });

  test('expired, wrong-audience and forged ID tokens are refused', { timeout: 60_000 }, async () => {
    const chatId = newChatId('oidc-bad');
    const start = (token) => request(`${worker.baseUrl}/api/v1/sessions`, { method: 'POST', token, body: sessionBody(chatId) });
    const expired = await start(issuer.idToken('alice', { expiresIn: -120 }));
    assert.equal(expired.status, 401, expired.text);
    assert.match(expired.json.error, /expired/);
    const wrongAudience = await start(issuer.idToken('alice', { audience: 'someone-else' }));
    assert.equal(wrongAudience.status, 401, wrongAudience.text);
    const [header, payload] = issuer.idToken('alice').split('.');
    const forged = await start(`${header}.${payload}.${Buffer.from('not a signature').toString('base64url')}`);
    assert.equal(forged.status, 401, forged.text);
  });
});

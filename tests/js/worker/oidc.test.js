// End users with an OpenID Connect ID token on the Worker: the chat's Durable Object fetches the
// issuer's keys with the Worker's fetch, checks the token (RS256, issuer, audience, expiry) on
// JavaScript's clock, records the owner, and only the owner may refresh the chat's token.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { newChatId, request, sessionBody } from '../support/server.js';
import { startWorker } from '../support/worker.js';

const AUDIENCE = 'chatfn-worker-tests';

/** An issuer on loopback: discovery document and JWKS, one RSA key. */
async function startIssuer() {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'key-1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const server = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }));
    } else if (req.url === '/jwks') {
      fetches += 1;
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return {
    url,
    fetches: () => fetches,
    idToken(sub, { expiresIn = 600, audience = AUDIENCE } = {}) {
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64({ alg: 'RS256', kid: 'key-1', typ: 'JWT' })}.${b64({ iss: url, sub, aud: audience, iat: now, exp: now + expiresIn })}`;
      return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

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

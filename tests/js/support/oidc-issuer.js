// An OpenID Connect issuer on loopback for the tests of end users' ID tokens: a discovery
// document and a JWKS with one RSA key, and ID tokens signed with it.

import { generateKeyPairSync, sign } from 'node:crypto';
import http from 'node:http';

/** The audience the issuer's ID tokens name unless told otherwise. */
export const AUDIENCE = 'chatfn-worker-tests';

/** An issuer on loopback: discovery document and JWKS, one RSA key. */
export async function startIssuer() {
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

// Minimal HS256 JWTs with node:crypto, for positive controls and forged/expired token tests.

import { createHmac, timingSafeEqual } from 'node:crypto';

export function base64url(input) {
  return Buffer.from(typeof input === 'string' ? input : JSON.stringify(input)).toString('base64url');
}

function sign(signingInput, secret) {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(signingInput).digest('base64url');
}

/** Signs `payload` with HS256 and the UTF-8 bytes of `secret`. The header defaults to `{"alg":"HS256"}`. */
export function signHs256(payload, secret, { header = { alg: 'HS256' } } = {}) {
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  return `${signingInput}.${sign(signingInput, secret)}`;
}

/** An unsigned token (`alg: none`, empty signature). */
export function unsignedJwt(payload, { header = { alg: 'none', typ: 'JWT' } } = {}) {
  return `${base64url(header)}.${base64url(payload)}.`;
}

/** Replaces the payload of `token` and keeps its header and (now wrong) signature. */
export function tamperPayload(token, mutate) {
  const [header, , signature] = token.split('.');
  const payload = decodeJwt(token).payload;
  const changed = mutate(structuredClone(payload)) ?? payload;
  return `${header}.${base64url(changed)}.${signature}`;
}

/** Decodes without verifying. Throws on a malformed token. */
export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWS: ${parts.length} segment(s)`);
  return {
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    signature: parts[2],
  };
}

/** True when `token` carries a valid HS256 signature made with `secret`. */
export function verifyHs256(token, secret) {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  const expected = Buffer.from(sign(`${parts[0]}.${parts[1]}`, secret));
  const actual = Buffer.from(parts[2]);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The claims `auth.createPublicToken` from @trigger.dev/sdk signs for a chat (see observed-client-traffic.md §2). */
export function sessionClaims(chatId, { ttlSeconds = 3600, iat = nowSeconds(), extra = {} } = {}) {
  return {
    sub: 'env_test',
    pub: true,
    scopes: [`read:sessions:${chatId}`, `write:sessions:${chatId}`],
    iss: 'https://id.trigger.dev',
    aud: 'https://api.trigger.dev',
    iat,
    exp: iat + ttlSeconds,
    ...extra,
  };
}

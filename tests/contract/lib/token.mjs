// The app's access token: a SimpleJWT HS256 token, signed here as the Django backend signs it
// (DESIGN §5: `token_type` "access", `exp`, `iat`, `jti`, `user_id`), with node:crypto only.

import { createHmac, randomBytes } from 'node:crypto';

const base64url = (data) => Buffer.from(data).toString('base64url');

/** A compact JWS of `claims` under HS256 with `key` (a string, used as its UTF-8 bytes). */
export function signHs256(claims, key) {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/**
 * An access token for `userId`, valid `ttlSeconds` from `now` (negative: already expired).
 * `overrides` replaces claims (e.g. `{ token_type: 'refresh' }`).
 */
export function accessToken(userId, key, { ttlSeconds = 300, now = Math.floor(Date.now() / 1000), overrides = {} } = {}) {
  if (!key) throw new Error('no signing key (JWT_SIGNING_KEY)');
  const claims = {
    token_type: 'access',
    exp: now + ttlSeconds,
    iat: ttlSeconds > 0 ? now : now + ttlSeconds - 300,
    jti: randomBytes(16).toString('hex'),
    user_id: userId,
    ...overrides,
  };
  return signHs256(claims, key);
}

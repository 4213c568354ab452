// The client's own pieces, without the stack: key conversion, the cookie jar, the token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { CookieJar, camelKey, snakeKey, toCamel, toSnake } from './lib/client.mjs';
import { accessToken, signHs256 } from './lib/token.mjs';

test('keys to snake_case, deep, arrays too; values untouched', () => {
  assert.equal(snakeKey('phoneNumber'), 'phone_number');
  assert.equal(snakeKey('smsBattleReminders'), 'sms_battle_reminders');
  assert.equal(snakeKey('already_snake'), 'already_snake');
  assert.equal(snakeKey('action'), 'action');
  assert.deepEqual(
    toSnake({ phoneNumber: '+13125550100', timeZone: 'America/Chicago', nested: [{ smsAchievements: true }], list: ['keepThis'] }),
    { phone_number: '+13125550100', time_zone: 'America/Chicago', nested: [{ sms_achievements: true }], list: ['keepThis'] },
  );
  assert.equal(toSnake('a string body'), 'a string body');
  assert.equal(toSnake(undefined), undefined);
  assert.deepEqual(toSnake([{ aB: null }]), [{ a_b: null }]);
});

test('keys to camelCase, deep, arrays too; values untouched', () => {
  assert.equal(camelKey('attempts_remaining'), 'attemptsRemaining');
  assert.equal(camelKey('sms_battle_reminders'), 'smsBattleReminders');
  assert.equal(camelKey('show_prompt'), 'showPrompt');
  assert.equal(camelKey('error'), 'error');
  assert.equal(camelKey('_private'), '_private');
  assert.deepEqual(
    toCamel({ success: true, updated: ['phone_number'], details: { sms_battle_reminders: ['must be a boolean'] }, retry_after_seconds: 30 }),
    { success: true, updated: ['phone_number'], details: { smsBattleReminders: ['must be a boolean'] }, retryAfterSeconds: 30 },
  );
  assert.deepEqual(toCamel(toSnake({ consentGivenAt: null, allowSmsInvitations: false })), { consentGivenAt: null, allowSmsInvitations: false });
});

test('the cookie jar takes Set-Cookie and gives a Cookie header', () => {
  const jar = new CookieJar({ access_token: 'abc' });
  assert.equal(jar.header(), 'access_token=abc');
  jar.store(['csrftoken=xyz; Path=/; SameSite=Lax', 'sessionid=1; HttpOnly']);
  assert.equal(jar.header(), 'access_token=abc; csrftoken=xyz; sessionid=1');
  jar.store('sessionid=; Max-Age=0; Path=/');
  jar.store('access_token=gone; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
  assert.equal(jar.header(), 'csrftoken=xyz');
  assert.equal(new CookieJar().header(), undefined);
});

test('the token is a SimpleJWT HS256 access token', () => {
  // Reference made with Python's hmac and base64 (as PyJWT encodes), key with a non-ASCII byte.
  const claims = { token_type: 'access', exp: 1700000300, iat: 1700000000, jti: '00ff', user_id: 42 };
  assert.equal(
    signHs256(claims, 'local-test-key-é'),
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNzAwMDAwMzAwLCJpYXQiOjE3MDAwMDAwMDAsImp0aSI6IjAwZmYiLCJ1c2VyX2lkIjo0Mn0.KdarVR0YTjy8mEza8ak_ZvMLVrdxbSSIiSUtg0esq3E',
  );

  const now = 1_800_000_000;
  const token = accessToken(7, 'k', { now });
  const [header, payload, signature] = token.split('.');
  assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url')), { alg: 'HS256', typ: 'JWT' });
  const body = JSON.parse(Buffer.from(payload, 'base64url'));
  assert.equal(body.token_type, 'access');
  assert.equal(body.user_id, 7);
  assert.equal(body.iat, now);
  assert.equal(body.exp, now + 300);
  assert.match(body.jti, /^[0-9a-f]{32}$/);
  assert.equal(signature, createHmac('sha256', 'k').update(`${header}.${payload}`).digest('base64url'));

  const expired = JSON.parse(Buffer.from(accessToken(7, 'k', { now, ttlSeconds: -600 }).split('.')[1], 'base64url'));
  assert.equal(expired.exp, now - 600);
  assert.ok(expired.iat < expired.exp);
  assert.throws(() => accessToken(7, undefined), /JWT_SIGNING_KEY/);
});

// The user's story against the real functions behind the local gateway (DESIGN §5), through
// the web app's own HTTP client (lib/client.mjs): snake_case on the wire, camelCase in JS,
// cookie authentication with the CSRF pair. scripts/contract_test.sh starts the stack and
// sets API_ORIGIN, SMS_STUB_URL, ALLOWED_ORIGINS and JWT_SIGNING_KEY; without them these
// tests are skipped.
//
// The story's steps share one user and run in order; once a step fails the rest are skipped.
// The tests after it are independent, each with its own user.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CookieJar, createApiClient, createRawClient, failing } from './lib/client.mjs';
import { accessToken } from './lib/token.mjs';
import { env, eventually, feedback, freshPhoneNumber, freshUserId, messagesTo, missingStack } from './lib/stack.mjs';

const skip = missingStack();
const OPT_IN = '/notifications/sms-opt-in/';
const PREFERENCES = '/notifications/me/sms-preferences/';
const VERIFICATION = '/notifications/me/phone-verification/';
const CHECK = '/notifications/me/phone-verification/check/';
const TOGGLES = [
  'sms_battle_invitations',
  'sms_battle_results',
  'sms_battle_reminders',
  'sms_streak_alerts',
  'sms_direct_messages',
  'sms_achievements',
];
const PREFERENCE_FIELDS = [
  'allow_sms_invitations',
  'phone_number',
  'phone_verified',
  ...TOGGLES,
  'time_zone',
  'locale',
  'has_consent',
  'consent_given_at',
];
const EVIL_ORIGIN = 'https://evil.example';

const csrfToken = () => randomBytes(16).toString('hex');
const token = (userId, options) => accessToken(userId, env.jwtKey, options);

/** What the app's login leaves in the browser: the access token cookie and the CSRF cookie. */
function loggedIn(userId, { csrf = true } = {}) {
  const jar = new CookieJar({ access_token: token(userId) });
  if (csrf) jar.set('csrftoken', csrfToken());
  return createApiClient({
    origin: env.origin,
    basePath: env.basePath,
    jar,
    // The app's `POST /auth/refresh/` answers with a fresh access_token cookie.
    refresh: async () => {
      jar.set('access_token', token(userId));
      return true;
    },
  });
}

/** Every key of a wire body, at any depth, is snake_case. */
function assertSnakeWire(body) {
  const walk = (value, path) => {
    if (Array.isArray(value)) return value.forEach((item, i) => walk(item, `${path}[${i}]`));
    if (value === null || typeof value !== 'object') return;
    for (const [key, item] of Object.entries(value)) {
      assert.match(key, /^[a-z][a-z0-9_]*$/, `wire key ${path}.${key} is not snake_case`);
      walk(item, `${path}.${key}`);
    }
  };
  walk(body, 'body');
}

/** The error shape of §5 on the wire and as the app reads it. */
function assertError(response, status, code) {
  assert.equal(response.status, status, JSON.stringify(response.wire));
  assertSnakeWire(response.wire);
  assert.equal(typeof response.data.error, 'string');
  assert.ok(response.data.error.length > 0, 'error is a human text');
  if (code) assert.equal(response.data.code, code, JSON.stringify(response.wire));
  else assert.equal(typeof response.data.code, 'string');
}

const sentBody = (response) => JSON.parse(response.config.data);

// ---------------------------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------------------------

const story = { failed: false, userId: freshUserId(), number: freshPhoneNumber() };
story.api = skip ? undefined : loggedIn(story.userId);

function step(name, fn) {
  test(`story: ${name}`, { skip }, async (t) => {
    if (story.failed) return t.skip('an earlier step of the story failed');
    try {
      await fn(t);
    } catch (error) {
      story.failed = true;
      throw error;
    }
  });
}

step('1. first visit: the opt-in prompt is shown once', async () => {
  const first = await story.api.get(OPT_IN);
  assert.equal(first.status, 200);
  assert.deepEqual(first.wire, { show_prompt: true, already_opted_in: false, phone_number: '', phone_verified: false });
  assert.deepEqual(first.data, { showPrompt: true, alreadyOptedIn: false, phoneNumber: '', phoneVerified: false });
  assert.equal(first.config.headers.get('X-CSRFToken'), undefined, 'no CSRF header on a GET');
  assert.match(first.config.headers.get('Cookie'), /access_token=/);

  const again = await story.api.get(OPT_IN);
  assert.equal(again.data.showPrompt, false, 'shown in the last 24 h');
});

step('2. the modal opts in without a number', async () => {
  const response = await story.api.post(OPT_IN, { action: 'opt_in' });
  assert.equal(response.status, 200);
  assert.deepEqual(sentBody(response), { action: 'opt_in' });
  assert.equal(response.config.headers.get('X-CSRFToken'), story.api.jar.get('csrftoken'));
  assertSnakeWire(response.wire);
  assert.equal(response.data.success, true);
  assert.equal(response.data.allowSmsInvitations, true);
});

step('3. the settings page saves a phone number', async () => {
  const response = await story.api.patch(PREFERENCES, { phoneNumber: story.number });
  assert.equal(response.status, 200);
  assert.deepEqual(sentBody(response), { phone_number: story.number }, 'snake_case on the wire');
  assertSnakeWire(response.wire);
  assert.equal(response.data.success, true);
  assert.ok(response.data.updated.includes('phone_number'), `updated: ${response.data.updated}`);
  assert.equal(response.data.phoneVerified, false);
  assert.equal(response.data.phoneNumber, story.number);
});

step('4. verification starts: 202 with a masked number', async () => {
  const response = await story.api.post(VERIFICATION, { phoneNumber: story.number });
  assert.equal(response.status, 202, JSON.stringify(response.wire));
  assert.deepEqual(sentBody(response), { phone_number: story.number });
  assertSnakeWire(response.wire);
  assert.equal(response.data.expiresInSeconds, 600);
  assert.equal(response.data.resendAfterSeconds, 30);
  const masked = response.data.phoneNumber;
  assert.equal(typeof masked, 'string');
  assert.ok(masked.length > 0);
  assert.notEqual(masked, story.number);
  assert.ok(!masked.replace(/\D/g, '').includes(story.number.slice(2)), `${masked} shows the whole number`);
});

step('5. the code arrives by SMS', async () => {
  const message = await eventually(async () => {
    const sent = await messagesTo(story.number);
    return sent.at(-1);
  });
  assert.ok(message, `no SMS to ${story.number}`);
  const match = /code is (\d{6})\b/.exec(message.body);
  assert.ok(match, `no code in ${JSON.stringify(message.body)}`);
  story.code = match[1];
  story.codeMessageId = message.message_id;
});

step('6. a wrong code is 422 with the attempts left', async () => {
  const wrong = story.code === '000000' ? '111111' : '000000';
  const response = await failing(story.api.post(CHECK, { code: wrong }));
  assertError(response, 422, 'incorrect_code');
  assert.equal(response.wire.attempts_remaining, 4);
  assert.equal(response.data.attemptsRemaining, 4);
});

step('7. the right code verifies the phone (and AWS hears it was received)', async () => {
  const response = await story.api.post(CHECK, { code: story.code });
  assert.equal(response.status, 200);
  assertSnakeWire(response.wire);
  assert.equal(response.data.phoneVerified, true);
  assert.equal(response.data.phoneNumber, story.number);
  const reported = await eventually(async () =>
    (await feedback()).find((f) => f.message_id === story.codeMessageId),
  );
  assert.equal(reported?.status, 'RECEIVED', 'PutMessageFeedback for the code message');
});

step('8. preferences: verified, consented, every category on', async () => {
  const response = await story.api.get(PREFERENCES);
  assert.equal(response.status, 200);
  assertSnakeWire(response.wire);
  for (const field of PREFERENCE_FIELDS) assert.ok(field in response.wire, `wire has ${field}`);
  const prefs = response.data;
  assert.equal(prefs.phoneVerified, true);
  assert.equal(prefs.hasConsent, true, 'the modal grant bound to the verified number');
  assert.notEqual(prefs.consentGivenAt, null);
  assert.equal(prefs.allowSmsInvitations, true);
  assert.equal(prefs.phoneNumber, story.number);
  for (const key of Object.keys(prefs).filter((k) => /^sms[A-Z]/.test(k))) {
    assert.equal(prefs[key], true, key);
  }
  assert.equal(Object.keys(prefs).filter((k) => /^sms[A-Z]/.test(k)).length, TOGGLES.length);
  assert.ok('locale' in prefs);
  assert.ok('timeZone' in prefs);
});

step('9. a category is switched off', async () => {
  const response = await story.api.patch(PREFERENCES, { smsBattleReminders: false });
  assert.equal(response.status, 200);
  assert.deepEqual(sentBody(response), { sms_battle_reminders: false });
  assert.ok(response.data.updated.includes('sms_battle_reminders'), `updated: ${response.data.updated}`);
  assert.equal(response.data.smsBattleReminders, false);
  const after = await story.api.get(PREFERENCES);
  assert.equal(after.data.smsBattleReminders, false);
  assert.equal(after.data.smsBattleInvitations, true);
  assert.equal(after.data.hasConsent, true);
});

step('10. a wrong type is 400 with field details named as on the wire', async () => {
  const response = await failing(story.api.patch(PREFERENCES, { smsBattleReminders: 'yes' }));
  assertError(response, 400);
  const details = response.wire.details;
  assert.ok(details && typeof details === 'object' && !Array.isArray(details), JSON.stringify(response.wire));
  const messages = details.sms_battle_reminders;
  assert.ok(Array.isArray(messages) && messages.length > 0, JSON.stringify(details));
  for (const message of messages) assert.equal(typeof message, 'string');
  assert.deepEqual(response.data.details.smsBattleReminders, messages, 'the app reads it camelCased');

  const unchanged = await story.api.get(PREFERENCES);
  assert.equal(unchanged.data.smsBattleReminders, false);
});

step('10b. unknown fields are 400, camelCase on the wire included (never ignored)', async () => {
  const unknown = await failing(story.api.patch(PREFERENCES, { notAField: true }));
  assertError(unknown, 400);
  // A client that forgot the snake_case conversion (the old contract) is told, not ignored.
  const raw = await createRawClient({ origin: env.origin }).patch(
    `${env.basePath}${PREFERENCES}`,
    { smsBattleReminders: true },
    {
      headers: {
        Cookie: story.api.jar.header(),
        'X-CSRFToken': story.api.jar.get('csrftoken'),
      },
    },
  );
  assert.equal(raw.status, 400, JSON.stringify(raw.data));
  const after = await story.api.get(PREFERENCES);
  assert.equal(after.data.smsBattleReminders, false);
});

// ---------------------------------------------------------------------------------------------
// Independent checks, each with its own user
// ---------------------------------------------------------------------------------------------

test('11. missing, expired or bad credentials are 401; the app refreshes and retries', { skip }, async () => {
  const userId = freshUserId();
  const now = Math.floor(Date.now() / 1000);
  const bad = {
    'no credentials': new CookieJar(),
    'expired 10 minutes ago': new CookieJar({ access_token: token(userId, { ttlSeconds: -600, now }) }),
    'signed with another key': new CookieJar({ access_token: accessToken(userId, `${env.jwtKey}-not`) }),
    'a refresh token': new CookieJar({ access_token: token(userId, { overrides: { token_type: 'refresh' } }) }),
    'not a token': new CookieJar({ access_token: 'not.a.token' }),
  };
  for (const [what, jar] of Object.entries(bad)) {
    const api = createApiClient({ origin: env.origin, basePath: env.basePath, jar });
    const response = await failing(api.get(PREFERENCES));
    assert.equal(response.status, 401, `${what}: ${JSON.stringify(response.wire)}`);
    assertError(response, 401);
  }

  // The app on a 401: `POST /auth/refresh/` sets a fresh access_token cookie, then one retry.
  const jar = new CookieJar({ access_token: token(userId, { ttlSeconds: -600, now }) });
  let refreshed = 0;
  const api = createApiClient({
    origin: env.origin,
    basePath: env.basePath,
    jar,
    refresh: async () => {
      refreshed += 1;
      jar.set('access_token', token(userId));
      return true;
    },
  });
  const response = await api.get(PREFERENCES);
  assert.equal(response.status, 200);
  assert.equal(refreshed, 1);
  assert.equal(response.data.phoneNumber, '');
});

test('12. a cookie-authenticated write needs the CSRF pair and an allowed origin', { skip }, async () => {
  const userId = freshUserId();
  const raw = createRawClient({ origin: env.origin });
  const url = (path) => `${env.basePath}${path}`;

  // The app without a csrftoken cookie sends no X-CSRFToken.
  const noCookie = loggedIn(userId, { csrf: false });
  const post = await failing(noCookie.post(OPT_IN, { action: 'remind_later' }));
  assert.equal(post.config.headers.get('X-CSRFToken'), undefined);
  assertError(post, 403, 'csrf_failed');
  const patch = await failing(noCookie.patch(PREFERENCES, { smsAchievements: false }));
  assertError(patch, 403, 'csrf_failed');

  const csrf = csrfToken();
  const cookie = `access_token=${token(userId)}; csrftoken=${csrf}`;
  const attempts = {
    'no header': { Cookie: cookie },
    'a mismatching header': { Cookie: cookie, 'X-CSRFToken': csrfToken() },
    'an empty header': { Cookie: cookie, 'X-CSRFToken': '' },
    'a foreign origin': { Cookie: cookie, 'X-CSRFToken': csrf, Origin: EVIL_ORIGIN },
  };
  for (const [what, headers] of Object.entries(attempts)) {
    const response = await raw.post(url(OPT_IN), { action: 'remind_later' }, { headers });
    assert.equal(response.status, 403, `${what}: ${JSON.stringify(response.data)}`);
    assert.equal(response.data.code, 'csrf_failed', what);
    assert.equal(typeof response.data.error, 'string', what);
  }

  // The control: the same request with the pair and an allowed origin passes.
  const ok = await raw.post(url(OPT_IN), { action: 'remind_later' }, {
    headers: { Cookie: cookie, 'X-CSRFToken': csrf, Origin: env.allowedOrigin },
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.data));
  assert.equal(ok.data.success, true);
});

test('13. a Bearer-authenticated write is exempt from CSRF', { skip }, async () => {
  const api = createApiClient({
    origin: env.origin,
    basePath: env.basePath,
    jar: new CookieJar(),
    headers: { Authorization: `Bearer ${token(freshUserId())}` },
  });
  const response = await api.post(OPT_IN, { action: 'dismiss' });
  assert.equal(response.status, 200, JSON.stringify(response.wire));
  assert.equal(response.config.headers.get('Cookie'), undefined);
  assert.equal(response.config.headers.get('X-CSRFToken'), undefined);
  assert.deepEqual(response.data, { success: true, allowSmsInvitations: false });
});

test('14. CORS: credentials for the allowed origin only', { skip }, async () => {
  const raw = createRawClient({ origin: env.origin });
  const preflight = (origin) =>
    raw.options(`${env.basePath}${PREFERENCES}`, {
      headers: {
        Origin: origin,
        'Access-Control-Request-Method': 'PATCH',
        'Access-Control-Request-Headers': 'content-type,x-csrftoken',
      },
    });

  const allowed = await preflight(env.allowedOrigin);
  assert.ok(allowed.status >= 200 && allowed.status < 300, `preflight status ${allowed.status}`);
  assert.equal(allowed.headers['access-control-allow-origin'], env.allowedOrigin);
  assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
  const allowHeaders = (allowed.headers['access-control-allow-headers'] ?? '').toLowerCase().split(/\s*,\s*/);
  for (const header of ['content-type', 'x-csrftoken']) {
    assert.ok(allowHeaders.includes(header), `allow-headers ${allowHeaders} lacks ${header}`);
  }
  const allowMethods = (allowed.headers['access-control-allow-methods'] ?? '').toUpperCase().split(/\s*,\s*/);
  assert.ok(allowMethods.includes('PATCH'), `allow-methods ${allowMethods} lacks PATCH`);

  const evil = await preflight(EVIL_ORIGIN);
  assert.equal(evil.headers['access-control-allow-origin'], undefined, `preflight status ${evil.status}`);

  // The actual response carries the headers too, or the browser hides it from the app.
  const api = loggedIn(freshUserId());
  const get = await api.get(PREFERENCES, { headers: { Origin: env.allowedOrigin } });
  assert.equal(get.status, 200);
  assert.equal(get.headers['access-control-allow-origin'], env.allowedOrigin);
  assert.equal(get.headers['access-control-allow-credentials'], 'true');
  const foreign = await api.get(PREFERENCES, { headers: { Origin: EVIL_ORIGIN } });
  assert.equal(foreign.headers['access-control-allow-origin'], undefined);
});

test('paths: the trailing slash is optional', { skip }, async () => {
  const api = loggedIn(freshUserId());
  const response = await api.get(PREFERENCES.replace(/\/$/, ''));
  assert.equal(response.status, 200);
  assert.equal(response.data.phoneVerified, false);
});

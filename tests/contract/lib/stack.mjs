// What scripts/contract_test.sh hands the test: the gateway's origin, the SMS stub, the
// allowed origins and the signing key; and reading the codes the stub received.

import { randomInt } from 'node:crypto';

export const env = {
  origin: process.env.API_ORIGIN,
  basePath: process.env.API_BASE_PATH || '/api/v1',
  smsStub: process.env.SMS_STUB_URL,
  allowedOrigin: (process.env.ALLOWED_ORIGINS || '').split(',')[0].trim(),
  jwtKey: process.env.JWT_SIGNING_KEY,
};

/** Why the stack tests cannot run here, or `undefined` when they can. */
export function missingStack() {
  const missing = Object.entries({
    API_ORIGIN: env.origin,
    SMS_STUB_URL: env.smsStub,
    ALLOWED_ORIGINS: env.allowedOrigin,
    JWT_SIGNING_KEY: env.jwtKey,
  })
    .filter(([, value]) => !value)
    .map(([name]) => name);
  return missing.length ? `${missing.join(', ')} not set (scripts/contract_test.sh sets them)` : undefined;
}

/** A user id no other run has used (the stack may be shared). */
export const freshUserId = () => randomInt(1_000_000, 2_000_000_000);

/** A fictional Chicago number, +1 312 555 01xx. */
export const freshPhoneNumber = () => `+1312555${String(randomInt(100, 200)).padStart(4, '0')}`;

async function getJson(path) {
  const response = await fetch(`${env.smsStub}${path}`);
  if (!response.ok) throw new Error(`SMS stub ${path}: ${response.status}`);
  return response.json();
}

/** Messages the stub accepted for `number`, oldest first. */
export async function messagesTo(number) {
  return (await getJson('/messages')).filter((m) => m.destination === number);
}

/** `PutMessageFeedback` calls the stub received: `[{message_id, status}]`. */
export const feedback = () => getJson('/feedback');

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function eventually(probe, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

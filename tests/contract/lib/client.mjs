// The web app's HTTP client, configured as the React app configures it (DESIGN §5):
//   * axios, baseURL `<origin>/api/v1`, withCredentials (cookies go with every request);
//   * request bodies converted to snake_case, response bodies (errors too) to camelCase;
//   * on POST/PUT/PATCH/DELETE, `X-CSRFToken` = the `csrftoken` cookie when that cookie exists;
//   * a 401 makes it refresh the access token and retry once.
// Node has no browser cookie jar, so `CookieJar` plays the browser's: fed from `Set-Cookie`,
// sent as `Cookie`. Test hooks beyond the app's: `response.wire` keeps the body as it came
// off the wire (before camelCase), and `response.config.data` is the body as sent.

import axios from 'axios';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `phoneNumber` → `phone_number`; snake_case keys are left as they are. */
export function snakeKey(key) {
  return key.replace(/[A-Z]/g, (c, offset) => (offset === 0 ? '' : '_') + c.toLowerCase());
}

/** `phone_number` → `phoneNumber`; a leading underscore is kept. */
export function camelKey(key) {
  return key.replace(/_+([a-z0-9])/g, (match, c, offset) => (offset === 0 ? match : c.toUpperCase()));
}

function deepKeys(value, convert) {
  if (Array.isArray(value)) return value.map((item) => deepKeys(item, convert));
  if (!isPlainObject(value)) return value;
  const out = {};
  for (const [key, item] of Object.entries(value)) out[convert(key)] = deepKeys(item, convert);
  return out;
}

/** Every key of plain objects, at any depth (arrays too), to snake_case. Values are untouched. */
export const toSnake = (value) => deepKeys(value, snakeKey);
/** Every key of plain objects, at any depth (arrays too), to camelCase. Values are untouched. */
export const toCamel = (value) => deepKeys(value, camelKey);

/** A browser's cookie store for one site, reduced to what the app needs: name → value. */
export class CookieJar {
  constructor(entries = {}) {
    this.cookies = new Map(Object.entries(entries));
  }

  set(name, value) {
    this.cookies.set(name, value);
    return this;
  }

  get(name) {
    return this.cookies.get(name);
  }

  delete(name) {
    this.cookies.delete(name);
    return this;
  }

  has(name) {
    return this.cookies.has(name);
  }

  /** The `Cookie` request header, or `undefined` when the jar is empty. */
  header() {
    if (this.cookies.size === 0) return undefined;
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  /** Applies `Set-Cookie` headers (a string or a list): sets, or deletes on `Max-Age=0`/past `Expires`. */
  store(setCookie) {
    if (!setCookie) return;
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((attribute) => {
        const [key, val = ''] = attribute.split('=').map((s) => s.trim());
        if (/^max-age$/i.test(key)) return Number(val) <= 0;
        if (/^expires$/i.test(key)) return Date.parse(val) <= Date.now();
        return false;
      });
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/**
 * The app's API client.
 * @param {object} options
 * @param {string} options.origin  the app's origin, e.g. `http://127.0.0.1:8080`
 * @param {CookieJar} [options.jar]  the browser's cookies for that origin
 * @param {string} [options.basePath]  `/api/v1`
 * @param {() => Promise<boolean>} [options.refresh]  what the app's `POST /api/v1/auth/refresh/`
 *   does (a Django route outside this stack): put a fresh `access_token` in the jar and say
 *   whether it worked. Without it a 401 is final.
 * @param {object} [options.headers]  extra default headers (e.g. `Authorization`)
 */
export function createApiClient({ origin, jar = new CookieJar(), basePath = '/api/v1', refresh, headers = {} }) {
  const api = axios.create({
    baseURL: `${origin}${basePath}`,
    withCredentials: true,
    headers: { 'Content-Type': 'application/json', ...headers },
    proxy: false,
    timeout: 30_000,
  });

  api.interceptors.request.use((config) => {
    if (config.data !== undefined) config.data = toSnake(config.data);
    const cookie = jar.header();
    if (cookie) config.headers.set('Cookie', cookie);
    const method = (config.method ?? 'get').toUpperCase();
    if (UNSAFE_METHODS.has(method) && jar.has('csrftoken')) {
      config.headers.set('X-CSRFToken', jar.get('csrftoken'));
    }
    return config;
  });

  const receive = (response) => {
    jar.store(response.headers?.['set-cookie']);
    response.wire = response.data;
    response.data = toCamel(response.data);
    return response;
  };

  api.interceptors.response.use(receive, async (error) => {
    if (error.response) {
      receive(error.response);
      // Test readability, not the app's: say what the server said.
      error.message += `: ${JSON.stringify(error.response.wire)}`;
    }
    const config = error.config;
    if (error.response?.status === 401 && refresh && config && !config.retriedAfterRefresh) {
      config.retriedAfterRefresh = true;
      if (await refresh()) return api.request(config);
    }
    throw error;
  });

  api.jar = jar;
  return api;
}

/** A plain client with none of the app's behaviour, for requests the app never makes. */
export function createRawClient({ origin }) {
  return axios.create({ baseURL: origin, proxy: false, timeout: 30_000, validateStatus: () => true });
}

/** The error response of a request that must fail (throws when it succeeded). */
export async function failing(promise) {
  try {
    const response = await promise;
    throw new Error(`expected an error status, got ${response.status} ${JSON.stringify(response.wire)}`);
  } catch (error) {
    if (!error.response) throw error;
    return error.response;
  }
}

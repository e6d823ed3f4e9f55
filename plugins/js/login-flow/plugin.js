// login-flow, in JavaScript: a scenario (the probe of a `script` site). The same as
// plugins/login-flow (Rust). It logs in to a shop, lists the orders with the token it got and
// checks the first order, in three steps:
//
// 1. `login`: POST {url}/login with {"user": ..., "password": ...}; expects 200 and a "token";
// 2. `orders`: GET {url}/api/orders with `authorization: Bearer <token>`; expects 200 and
//    {"orders": [{"id": 7, ...}, ...]}, at least one;
// 3. `order`: GET {url}/api/orders/<first id>; expects 200 and a "status" equal to
//    "expect_status" ("paid" by default).
//
// Config: {"url": "http://127.0.0.1:8080", "user": "alice", "password": "${SHOP_PASSWORD}"},
// optionally "expect_status". The plugin sees ${SHOP_PASSWORD} as written and puts it in the
// body; the host sends the secret in its place. Records `orders.count`.
//
// Run it once (plugins/scenario-demo/server.py is a shop to run it against):
//
//   SHOP_PASSWORD=s3cret sitewatch plugin test target/plugins/login-flow-js.wasm \
//       --allow 127.0.0.1 --config '{"url": "http://127.0.0.1:8080", "user": "alice",
//       "password": "${SHOP_PASSWORD}"}'
import { send as hostSend, step } from 'sitewatch:plugin/scenario-host@0.4.0';

const FIELDS = ['url', 'user', 'password', 'expect_status'];

/** The error result of `run`: `throw fail(...)` (a plain object, not an Error). */
function fail(kind, message) {
  return { kind, message, step: undefined, metrics: [] };
}

function parseConfig(text) {
  let config;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw fail('config', `invalid config: ${e.message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw fail('config', 'invalid config: expected an object');
  }
  for (const [key, value] of Object.entries(config)) {
    if (!FIELDS.includes(key)) throw fail('config', `invalid config: unknown field \`${key}\``);
    if (typeof value !== 'string') throw fail('config', `invalid config: \`${key}\` must be a string`);
  }
  for (const key of FIELDS.slice(0, 3)) {
    if (!(key in config)) throw fail('config', `invalid config: missing field \`${key}\``);
  }
  return config;
}

/** Sends a request. One that got no answer fails the run with the host's kind and message. */
function send(method, url, headers, body) {
  const request = {
    method,
    url,
    headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
    body: body === undefined ? undefined : new TextEncoder().encode(body),
    timeoutMs: undefined,
  };
  try {
    return hostSend(request);
  } catch (e) {
    // A `send-error` arrives as the `payload` of what the import throws.
    throw fail(e.payload.kind, e.payload.message);
  }
}

/** The JSON of a 200 answer; another status fails with kind `status`. */
function expectJson(response, what) {
  if (response.status !== 200) {
    throw fail('status', `${what}: status ${response.status}, expected 200`);
  }
  try {
    return JSON.parse(new TextDecoder().decode(response.body));
  } catch {
    throw fail('assertion', `${what}: the answer is not JSON`);
  }
}

/** `value[key]` when `value` is an object, else undefined. */
function field(value, key) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value[key] : undefined;
}

// The export of the `scenario` world: interface `script`, function `run`.
export const script = {
  run(configText) {
    const config = parseConfig(configText);
    const base = config.url.replace(/\/+$/, '');

    step('login');
    const body = JSON.stringify({ user: config.user, password: config.password });
    const login = send('POST', `${base}/login`, { 'content-type': 'application/json' }, body);
    const token = field(expectJson(login, 'POST /login'), 'token');
    if (typeof token !== 'string' || token === '') {
      throw fail('assertion', 'POST /login: no "token" in the answer');
    }
    const bearer = { authorization: `Bearer ${token}` };

    step('orders');
    const orders = field(expectJson(send('GET', `${base}/api/orders`, bearer), 'GET /api/orders'), 'orders');
    if (!Array.isArray(orders)) throw fail('assertion', 'GET /api/orders: no "orders" list in the answer');
    if (orders.length === 0) throw fail('assertion', 'GET /api/orders: no orders');
    const id = field(orders[0], 'id');
    if (typeof id !== 'number' && typeof id !== 'string') {
      throw fail('assertion', 'GET /api/orders: the first order has no "id"');
    }

    step('order');
    const path = `/api/orders/${encodeURIComponent(id)}`;
    const status = field(expectJson(send('GET', base + path, bearer), `GET ${path}`), 'status');
    const want = config.expect_status ?? 'paid';
    if (typeof status !== 'string') throw fail('assertion', `order ${id} has no "status"`);
    if (status !== want) throw fail('assertion', `order ${id} is "${status}", expected "${want}"`);
    return { metrics: [{ name: 'orders.count', value: orders.length }] };
  },
};

// oauth2-flow, in JavaScript: a scenario (the probe of a `script` site). The same as
// plugins/oauth2-flow (Rust). It takes a token with the OAuth 2.0 client credentials grant
// (RFC 6749 section 4.4, the client authenticating in the body, section 2.3.1) and calls an API
// with it:
//
// 1. `token`: POST {token_url}, form-encoded grant_type=client_credentials&client_id=...&
//    client_secret=...&scope=...; expects 200 and JSON with an "access_token" and a
//    "token_type" of Bearer (any case);
// 2. `api`: GET {api_url} with `authorization: Bearer <access_token>`; expects 200 and, when the
//    config names a "scope", a JSON "scope" (space-separated) that holds each of its scopes.
//
// Config: {"token_url": "http://127.0.0.1:8080/oauth/token", "api_url":
// "http://127.0.0.1:8080/api/me", "client_id": "sitewatch", "client_secret":
// "${OAUTH_CLIENT_SECRET}", "scope": "read"} ("scope" optional). A value that is a ${NAME}
// placeholder goes into the form as written: the host form-encodes the secret it sends in its
// place. Records `token.expires_in` when the token answer has it.
//
// Run it once (plugins/scenario-demo/server.py is a server to run it against):
//
//   OAUTH_CLIENT_SECRET=s3cret sitewatch plugin test target/plugins/oauth2-flow-js.wasm \
//       --allow 127.0.0.1 --config '{"token_url": "http://127.0.0.1:8080/oauth/token",
//       "api_url": "http://127.0.0.1:8080/api/me", "client_id": "sitewatch",
//       "client_secret": "${OAUTH_CLIENT_SECRET}", "scope": "read"}'
import { send as hostSend, step } from 'sitewatch:plugin/scenario-host@0.4.0';

const FIELDS = ['token_url', 'api_url', 'client_id', 'client_secret', 'scope'];

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
  for (const key of FIELDS.slice(0, 4)) {
    if (!(key in config)) throw fail('config', `invalid config: missing field \`${key}\``);
  }
  return config;
}

/** Percent-encoded, except a ${NAME} placeholder, which goes in as written (the host
 * form-encodes the secret it sends in its place). */
function formValue(value) {
  if (/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(value)) return value;
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
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

/** `value[key]` when `value` is an object, else undefined. */
function field(value, key) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value[key] : undefined;
}

function parseJson(response) {
  try {
    return JSON.parse(new TextDecoder().decode(response.body));
  } catch {
    return undefined;
  }
}

/** Kind `status`, with the OAuth "error" code (RFC 6749 section 5.2) when the answer has one. */
function wrongStatus(response, what) {
  const error = field(parseJson(response), 'error');
  const code = typeof error === 'string' ? ` (${error})` : '';
  return fail('status', `${what}: status ${response.status}, expected 200${code}`);
}

/** The JSON of a 200 answer; another status fails with kind `status`. */
function expectJson(response, what) {
  if (response.status !== 200) throw wrongStatus(response, what);
  const answer = parseJson(response);
  if (answer === undefined) throw fail('assertion', `${what}: the answer is not JSON`);
  return answer;
}

// The export of the `scenario` world: interface `script`, function `run`.
export const script = {
  run(configText) {
    const config = parseConfig(configText);

    step('token');
    let form = `grant_type=client_credentials&client_id=${formValue(config.client_id)}`
      + `&client_secret=${formValue(config.client_secret)}`;
    if (config.scope !== undefined) form += `&scope=${formValue(config.scope)}`;
    const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    let what = `POST ${config.token_url}`;
    const answer = expectJson(send('POST', config.token_url, headers, form), what);
    const accessToken = field(answer, 'access_token');
    if (typeof accessToken !== 'string' || accessToken === '') {
      throw fail('assertion', `${what}: no "access_token" in the answer`);
    }
    const tokenType = field(answer, 'token_type');
    if (typeof tokenType !== 'string') throw fail('assertion', `${what}: no "token_type" in the answer`);
    if (tokenType.toLowerCase() !== 'bearer') {
      throw fail('assertion', `${what}: token_type is "${tokenType}", expected "Bearer"`);
    }
    const metrics = [];
    const expiresIn = field(answer, 'expires_in');
    if (typeof expiresIn === 'number') metrics.push({ name: 'token.expires_in', value: expiresIn });

    step('api');
    what = `GET ${config.api_url}`;
    const api = send('GET', config.api_url, { authorization: `Bearer ${accessToken}` });
    if (config.scope !== undefined) {
      const granted = field(expectJson(api, what), 'scope');
      if (typeof granted !== 'string') throw fail('assertion', `${what}: no "scope" in the answer`);
      const scopes = granted.split(/\s+/);
      for (const scope of config.scope.split(/\s+/).filter((s) => s !== '')) {
        if (!scopes.includes(scope)) {
          throw fail('assertion', `${what}: scope "${scope}" not granted (scope "${granted}")`);
        }
      }
    } else if (api.status !== 200) {
      throw wrongStatus(api, what);
    }
    return { metrics };
  },
};

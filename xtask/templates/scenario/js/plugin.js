// {{name}}: a sitewatch scenario in JavaScript (componentize-js), the probe of a `script` site.
// One step, `get`: GET the config's "url" and expect 200. Add steps with step() and more requests
// with send() (plugins/js/login-flow is a longer example). The site's `config` arrives as JSON
// text, its ${NAME} placeholders as written: put them in requests, and the host sends the secrets
// in their place.
//
// `cargo xtask build-plugins` builds target/plugins/{{name}}-js.wasm; run it once with
//   sitewatch plugin test target/plugins/{{name}}-js.wasm --config '{"url": "http://127.0.0.1:8080/"}'
import { send, step } from 'sitewatch:plugin/scenario-host@0.4.0';

/** The error result of `run`: `throw fail(...)` (a plain object: throwing an Error crashes). */
function fail(kind, message) {
  return { kind, message, step: undefined, metrics: [] };
}

export const script = {
  run(config) {
    let url;
    try {
      url = JSON.parse(config).url;
    } catch (e) {
      throw fail('config', `invalid config: ${e.message}`);
    }
    if (typeof url !== 'string') throw fail('config', 'invalid config: missing field `url`');
    step('get');
    let response;
    try {
      response = send({ method: 'GET', url, headers: [], body: undefined, timeoutMs: undefined });
    } catch (e) {
      // No answer: the run fails with the host's kind and message (the `payload` of what it threw).
      throw fail(e.payload.kind, e.payload.message);
    }
    if (response.status !== 200) {
      throw fail('status', `GET ${url}: status ${response.status}, expected 200`);
    }
    // Metrics: {name: '{{name}}.something', value: 1.0} in the list.
    return { metrics: [] };
  },
};

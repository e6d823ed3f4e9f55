// {{name}}: a sitewatch check in JavaScript (componentize-js). It fails when the response body is
// empty; change `judge` to decide what you need. `cargo xtask build-plugins` builds
// target/plugins/{{name}}-js.wasm. The site's `config` for this check arrives as JSON text.
import { log } from 'sitewatch:plugin/host@0.3.0';

/** The failure reason, or null when the response passes. */
function judge(settings, response) {
  return response.body.length === 0 ? 'the body is empty' : null;
}

export const check = {
  // response: {url, method, status, headers: [{name, value}], body: Uint8Array, bodyTruncated,
  // timings: {ttfbMs, responseMs, dnsMs, connectMs, tlsMs}, tls: undefined for plain HTTP, or
  // {version, cipher, chain: [{subject, issuer, sans, notBefore, notAfter, serial}],
  // earliestExpiry} with times in Unix seconds (BigInt), kind: 'http' | 'tcp' | 'dns' |
  // 'websocket', observed: {tag: 'http'} or {tag: 'tcp' | 'dns' | 'websocket', val: the answer}}.
  check(config, response) {
    let settings;
    try {
      settings = JSON.parse(config);
    } catch (e) {
      // An error result is a thrown string; any other thrown value makes the call crash.
      throw `invalid config: ${e.message}`;
    }
    log('debug', `status ${response.status}, ${response.body.length} body bytes`);
    const reason = judge(settings, response);
    // Metrics: {name: '{{name}}.something', value: 1.0} in the list.
    return { verdict: reason === null ? { tag: 'pass' } : { tag: 'fail', val: reason }, metrics: [] };
  },
};

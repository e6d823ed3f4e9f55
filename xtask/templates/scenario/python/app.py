"""{{name}}: a sitewatch scenario in Python (componentize-py), the probe of a `script` site. One
step, `get`: GET the config's "url" and expect 200. Add steps with scenario_host.step() and more
requests with scenario_host.send() (plugins/python/login-flow is a longer example). The site's
`config` arrives as JSON text, its ${NAME} placeholders as written: put them in requests, and the
host sends the secrets in their place.

`cargo xtask build-plugins` builds target/plugins/{{name}}-python.wasm (against the WIT version
named in `wit-version`); run it once with

    sitewatch plugin test target/plugins/{{name}}-python.wasm --config '{"url": "http://127.0.0.1:8080/"}'
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.script import Failure, Outcome
from wit_world.imports import scenario_host
from wit_world.imports.scenario_host import FailureKind, Request


def fail(kind, message):
    """The error result of `run`: `raise fail(...)`. Any other exception crashes the run."""
    return Err(Failure(kind=kind, message=message, step=None, metrics=[]))


class Script(exports.Script):
    def run(self, config: str) -> Outcome:
        try:
            url = json.loads(config).get("url")
        except (ValueError, AttributeError) as e:
            raise fail(FailureKind.CONFIG, f"invalid config: {e}")
        if not isinstance(url, str):
            raise fail(FailureKind.CONFIG, "invalid config: missing field `url`")
        scenario_host.step("get")
        request = Request(method="GET", url=url, headers=[], body=None, timeout_ms=None)
        try:
            response = scenario_host.send(request)
        except Err as e:  # no answer: the run fails with the host's kind and message
            raise fail(e.value.kind, e.value.message)
        if response.status != 200:
            raise fail(FailureKind.STATUS, f"GET {url}: status {response.status}, expected 200")
        # Metrics: wit_world.imports.types.Metric(name="{{name}}.something", value=1.0) in the list.
        return Outcome(metrics=[])

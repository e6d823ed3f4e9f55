"""{{name}}: a sitewatch check in Python (componentize-py). It fails when the response body is
empty; change `judge` to decide what you need. `cargo xtask build-plugins` builds
target/plugins/{{name}}-python.wasm (against the WIT version named in `wit-version`). The site's
`config` for this check arrives as JSON text.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types


def judge(settings, response):
    """The failure reason, or None when the response passes."""
    if len(response.body) == 0:
        return "the body is empty"
    return None


class Check(exports.Check):
    def check(self, config: str, response: types.Response) -> types.CheckResult:
        try:
            settings = json.loads(config)
        except ValueError as e:
            raise Err(f"invalid config: {e}")  # an error result: the probe fails, kind `plugin`
        host.log(host.Level.DEBUG, f"status {response.status}, {len(response.body)} body bytes")
        reason = judge(settings, response)
        verdict = types.Verdict_Pass() if reason is None else types.Verdict_Fail(reason)
        # Metrics: types.Metric(name="{{name}}.something", value=1.0) in the list.
        return types.CheckResult(verdict=verdict, metrics=[])

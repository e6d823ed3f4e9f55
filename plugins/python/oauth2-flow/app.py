"""oauth2-flow, in Python: a scenario (the probe of a `script` site). The same as
plugins/oauth2-flow (Rust). It takes a token with the OAuth 2.0 client credentials grant (RFC 6749
section 4.4, the client authenticating in the body, section 2.3.1) and calls an API with it:

1. `token`: POST {token_url}, form-encoded grant_type=client_credentials&client_id=...&
   client_secret=...&scope=...; expects 200 and JSON with an "access_token" and a "token_type"
   of Bearer (any case);
2. `api`: GET {api_url} with `authorization: Bearer <access_token>`; expects 200 and, when the
   config names a "scope", a JSON "scope" (space-separated) that holds each of its scopes.

Config: {"token_url": "http://127.0.0.1:8080/oauth/token", "api_url":
"http://127.0.0.1:8080/api/me", "client_id": "sitewatch", "client_secret":
"${OAUTH_CLIENT_SECRET}", "scope": "read"} ("scope" optional). A value that is a ${NAME}
placeholder goes into the form as written: the host form-encodes the secret it sends in its place.
Records `token.expires_in` when the token answer has it.

Run it once (plugins/scenario-demo/server.py is a server to run it against):

    OAUTH_CLIENT_SECRET=s3cret sitewatch plugin test target/plugins/oauth2-flow-python.wasm \
        --allow 127.0.0.1 --config '{"token_url": "http://127.0.0.1:8080/oauth/token",
        "api_url": "http://127.0.0.1:8080/api/me", "client_id": "sitewatch",
        "client_secret": "${OAUTH_CLIENT_SECRET}", "scope": "read"}'
"""

import json
import re
from urllib.parse import quote

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.script import Failure, Outcome
from wit_world.imports import scenario_host
from wit_world.imports.scenario_host import FailureKind, Request
from wit_world.imports.types import Header, Metric

FIELDS = ("token_url", "api_url", "client_id", "client_secret", "scope")


def fail(kind, message):
    """The error result of `run`: `raise fail(...)`."""
    return Err(Failure(kind=kind, message=message, step=None, metrics=[]))


def parse_config(text):
    try:
        config = json.loads(text)
    except ValueError as e:
        raise fail(FailureKind.CONFIG, f"invalid config: {e}")
    if not isinstance(config, dict):
        raise fail(FailureKind.CONFIG, "invalid config: expected an object")
    for key, value in config.items():
        if key not in FIELDS:
            raise fail(FailureKind.CONFIG, f"invalid config: unknown field `{key}`")
        if not isinstance(value, str):
            raise fail(FailureKind.CONFIG, f"invalid config: `{key}` must be a string")
    for key in FIELDS[:4]:
        if key not in config:
            raise fail(FailureKind.CONFIG, f"invalid config: missing field `{key}`")
    return config


def form_value(value):
    """Percent-encoded, except a ${NAME} placeholder, which goes in as written (the host
    form-encodes the secret it sends in its place)."""
    if re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value):
        return value
    return quote(value, safe="")


def send(method, url, headers, body=None):
    """Sends a request. One that got no answer fails the run with the host's kind and message."""
    request = Request(method=method, url=url,
                      headers=[Header(name=name, value=value) for name, value in headers.items()],
                      body=None if body is None else body.encode(), timeout_ms=None)
    try:
        return scenario_host.send(request)
    except Err as e:
        raise fail(e.value.kind, e.value.message)


def field(value, key):
    """`value[key]` when `value` is an object that has it, else None."""
    return value.get(key) if isinstance(value, dict) else None


def wrong_status(response, what):
    """Kind `status`, with the OAuth "error" code (RFC 6749 section 5.2) when the answer has one."""
    try:
        error = field(json.loads(response.body), "error")
    except ValueError:
        error = None
    code = f" ({error})" if isinstance(error, str) else ""
    return fail(FailureKind.STATUS, f"{what}: status {response.status}, expected 200{code}")


def expect_json(response, what):
    """The JSON of a 200 answer; another status fails with kind `status`."""
    if response.status != 200:
        raise wrong_status(response, what)
    try:
        return json.loads(response.body)
    except ValueError:
        raise fail(FailureKind.ASSERTION, f"{what}: the answer is not JSON")


class Script(exports.Script):
    def run(self, config: str) -> Outcome:
        config = parse_config(config)

        scenario_host.step("token")
        form = (f"grant_type=client_credentials&client_id={form_value(config['client_id'])}"
                f"&client_secret={form_value(config['client_secret'])}")
        if "scope" in config:
            form += f"&scope={form_value(config['scope'])}"
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        what = f"POST {config['token_url']}"
        answer = expect_json(send("POST", config["token_url"], headers, form), what)
        access_token = field(answer, "access_token")
        if not isinstance(access_token, str) or not access_token:
            raise fail(FailureKind.ASSERTION, f'{what}: no "access_token" in the answer')
        token_type = field(answer, "token_type")
        if not isinstance(token_type, str):
            raise fail(FailureKind.ASSERTION, f'{what}: no "token_type" in the answer')
        if token_type.lower() != "bearer":
            raise fail(FailureKind.ASSERTION,
                       f'{what}: token_type is "{token_type}", expected "Bearer"')
        metrics = []
        expires_in = field(answer, "expires_in")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
            metrics.append(Metric(name="token.expires_in", value=float(expires_in)))

        scenario_host.step("api")
        what = f"GET {config['api_url']}"
        api = send("GET", config["api_url"], {"authorization": f"Bearer {access_token}"})
        if "scope" in config:
            granted = field(expect_json(api, what), "scope")
            if not isinstance(granted, str):
                raise fail(FailureKind.ASSERTION, f'{what}: no "scope" in the answer')
            for scope in config["scope"].split():
                if scope not in granted.split():
                    raise fail(FailureKind.ASSERTION,
                               f'{what}: scope "{scope}" not granted (scope "{granted}")')
        elif api.status != 200:
            raise wrong_status(api, what)
        return Outcome(metrics=metrics)

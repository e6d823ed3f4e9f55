"""login-flow, in Python: a scenario (the probe of a `script` site). The same as
plugins/login-flow (Rust). It logs in to a shop, lists the orders with the token it got and checks
the first order, in three steps:

1. `login`: POST {url}/login with {"user": ..., "password": ...}; expects 200 and a "token";
2. `orders`: GET {url}/api/orders with `authorization: Bearer <token>`; expects 200 and
   {"orders": [{"id": 7, ...}, ...]}, at least one;
3. `order`: GET {url}/api/orders/<first id>; expects 200 and a "status" equal to
   "expect_status" ("paid" by default).

Config: {"url": "http://127.0.0.1:8080", "user": "alice", "password": "${SHOP_PASSWORD}"},
optionally "expect_status". The plugin sees ${SHOP_PASSWORD} as written and puts it in the body;
the host sends the secret in its place. Records `orders.count`.

Run it once (plugins/scenario-demo/server.py is a shop to run it against):

    SHOP_PASSWORD=s3cret sitewatch plugin test target/plugins/login-flow-python.wasm \
        --allow 127.0.0.1 --config '{"url": "http://127.0.0.1:8080", "user": "alice",
        "password": "${SHOP_PASSWORD}"}'
"""

import json
from urllib.parse import quote

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.script import Failure, Outcome
from wit_world.imports import scenario_host
from wit_world.imports.scenario_host import FailureKind, Request
from wit_world.imports.types import Header, Metric

FIELDS = ("url", "user", "password", "expect_status")


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
    for key in FIELDS[:3]:
        if key not in config:
            raise fail(FailureKind.CONFIG, f"invalid config: missing field `{key}`")
    return config


def send(method, url, headers, body=None):
    """Sends a request. One that got no answer fails the run with the host's kind and message."""
    request = Request(method=method, url=url,
                      headers=[Header(name=name, value=value) for name, value in headers.items()],
                      body=None if body is None else body.encode(), timeout_ms=None)
    try:
        return scenario_host.send(request)
    except Err as e:
        raise fail(e.value.kind, e.value.message)


def expect_json(response, what):
    """The JSON of a 200 answer; another status fails with kind `status`."""
    if response.status != 200:
        raise fail(FailureKind.STATUS, f"{what}: status {response.status}, expected 200")
    try:
        return json.loads(response.body)
    except ValueError:
        raise fail(FailureKind.ASSERTION, f"{what}: the answer is not JSON")


def field(value, key):
    """`value[key]` when `value` is an object that has it, else None."""
    return value.get(key) if isinstance(value, dict) else None


class Script(exports.Script):
    def run(self, config: str) -> Outcome:
        config = parse_config(config)
        base = config["url"].rstrip("/")

        scenario_host.step("login")
        body = json.dumps({"user": config["user"], "password": config["password"]})
        login = send("POST", f"{base}/login", {"content-type": "application/json"}, body)
        token = field(expect_json(login, "POST /login"), "token")
        if not isinstance(token, str) or not token:
            raise fail(FailureKind.ASSERTION, 'POST /login: no "token" in the answer')
        bearer = {"authorization": f"Bearer {token}"}

        scenario_host.step("orders")
        answer = expect_json(send("GET", f"{base}/api/orders", bearer), "GET /api/orders")
        orders = field(answer, "orders")
        if not isinstance(orders, list):
            raise fail(FailureKind.ASSERTION, 'GET /api/orders: no "orders" list in the answer')
        if not orders:
            raise fail(FailureKind.ASSERTION, "GET /api/orders: no orders")
        order_id = field(orders[0], "id")
        if isinstance(order_id, bool) or not isinstance(order_id, (int, str)):
            raise fail(FailureKind.ASSERTION, 'GET /api/orders: the first order has no "id"')

        scenario_host.step("order")
        path = f"/api/orders/{quote(str(order_id), safe='')}"
        status = field(expect_json(send("GET", base + path, bearer), f"GET {path}"), "status")
        want = config.get("expect_status", "paid")
        if not isinstance(status, str):
            raise fail(FailureKind.ASSERTION, f'order {order_id} has no "status"')
        if status != want:
            raise fail(FailureKind.ASSERTION, f'order {order_id} is "{status}", expected "{want}"')
        return Outcome(metrics=[Metric(name="orders.count", value=float(len(orders)))])

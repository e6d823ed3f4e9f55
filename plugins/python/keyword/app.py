"""keyword, in Python: checks the response body for a string or a regular expression.

The same check as plugins/keyword (Rust) and plugins/c/keyword; plugins/conformance/keyword.json
holds the answers every build must give. Config (at least one key): {"contains": "OK"},
{"lacks": "error"}, {"matches": "version [0-9]+"}, {"not_matches": "maint(enance)?"},
{"case_insensitive": true} (for contains/lacks). Regular expressions are Python's `re`.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

TEXT_KEYS = ("contains", "lacks", "matches", "not_matches")


def parse_config(text):
    """The config as a dict; raises Err (the check's error result) when it is unusable."""
    try:
        config = json.loads(text)
    except ValueError as e:
        raise Err(f"invalid config: {e}")
    if not isinstance(config, dict):
        raise Err(f"invalid config: expected an object, got {type(config).__name__}")
    for key, value in config.items():
        if key == "case_insensitive":
            if not isinstance(value, bool):
                raise Err("invalid config: `case_insensitive` must be true or false")
        elif key not in TEXT_KEYS:
            raise Err(f"invalid config: unknown field `{key}`, expected one of "
                      "`contains`, `lacks`, `matches`, `not_matches`, `case_insensitive`")
        elif value is not None and not isinstance(value, str):
            raise Err(f"invalid config: `{key}` must be a string")
    if all(config.get(k) is None for k in TEXT_KEYS):
        raise Err('config needs one of "contains", "lacks", "matches", "not_matches"')
    return config


def search(pattern, text):
    try:
        return re.search(pattern, text) is not None
    except re.error as e:
        raise Err(f'invalid regex "{pattern}": {e}')


def judge(config, body):
    """The failure reason, or None when the body passes."""
    text = body.decode("utf-8", errors="replace")
    fold = str.lower if config.get("case_insensitive") else str
    haystack = fold(text)
    contains, lacks = config.get("contains"), config.get("lacks")
    matches, not_matches = config.get("matches"), config.get("not_matches")
    if contains is not None and fold(contains) not in haystack:
        return f'body does not contain "{contains}"'
    if lacks is not None and fold(lacks) in haystack:
        return f'body contains "{lacks}"'
    if matches is not None and not search(matches, text):
        return f"body does not match /{matches}/"
    if not_matches is not None and search(not_matches, text):
        return f"body matches /{not_matches}/"
    return None


class Check(exports.Check):
    def check(self, config: str, response: types.Response) -> types.CheckResult:
        reason = judge(parse_config(config), response.body)
        verdict = types.Verdict_Pass() if reason is None else types.Verdict_Fail(reason)
        return types.CheckResult(verdict=verdict, metrics=[])

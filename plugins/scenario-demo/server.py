#!/usr/bin/env python3
"""A server to run the example scenarios against: the shop of `login-flow` and the OAuth2
authorization server and API of `oauth2-flow`, on 127.0.0.1. Python's standard library only.

    SHOP_PASSWORD=s3cret OAUTH_CLIENT_SECRET=s3cret python3 plugins/scenario-demo/server.py 8080

then, in another terminal, the command at the top of any example (`plugins/login-flow/src/lib.rs`,
`plugins/c/oauth2-flow/oauth2.c`, ...), with the same variables set. Port 0 (the default) takes a
free port; the first line printed says which: `listening on http://127.0.0.1:PORT`.

The shop (`login-flow`):
  POST /login            JSON {"user", "password"}: any user, with the password SHOP_PASSWORD;
                         200 {"token", "expires_in"}, else 401
  GET  /api/orders       (bearer token) 200 {"orders": [{"id": 7, ...}, {"id": 8, ...}]}
  GET  /api/orders/<id>  (bearer token) 200 {"id", "status"}; order 7's status is --order-status
The OAuth2 side (`oauth2-flow`, RFC 6749 §4.4, client authentication in the body):
  POST /oauth/token      form grant_type=client_credentials, client_id (`sitewatch` or
                         `ops & co`), client_secret (OAUTH_CLIENT_SECRET), optional scope; grants
                         the requested scopes that are among --scopes (default `read profile`)
  GET  /api/me           (bearer token) 200 {"client_id", "scope"}

Options: --order-status STATUS (default `paid`), --scopes "SCOPE ..." (default `read profile`).
"""

import argparse
import json
import os
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CLIENTS = ("sitewatch", "ops & co")


class Handler(BaseHTTPRequestHandler):
    shop_tokens = set()
    oauth_tokens = {}  # access token -> (client id, granted scope)

    def log_message(self, *args):
        pass

    def answer(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def bearer(self):
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def do_POST(self):
        if self.path == "/login":
            try:
                login = json.loads(self.body())
            except ValueError:
                return self.answer(400, {"error": "the body is not JSON"})
            if not isinstance(login, dict) or login.get("password") != self.server.password:
                return self.answer(401, {"error": "bad user or password"})
            token = secrets.token_hex(16)
            self.shop_tokens.add(token)
            return self.answer(200, {"token": token, "expires_in": 3600})
        if self.path == "/oauth/token":
            if self.headers.get("content-type") != "application/x-www-form-urlencoded":
                return self.answer(400, {"error": "invalid_request"})
            form = {k: v[0] for k, v in parse_qs(self.body().decode(), strict_parsing=True).items()}
            if form.get("grant_type") != "client_credentials":
                return self.answer(400, {"error": "unsupported_grant_type"})
            client = form.get("client_id")
            if client not in CLIENTS or form.get("client_secret") != self.server.client_secret:
                return self.answer(401, {"error": "invalid_client"})
            asked = form.get("scope", "").split()
            granted = " ".join(s for s in asked if s in self.server.scopes)
            token = secrets.token_hex(16)
            self.oauth_tokens[token] = (client, granted)
            return self.answer(200, {"access_token": token, "token_type": "Bearer",
                                     "expires_in": 3600, "scope": granted})
        self.answer(404, {"error": "not found"})

    def do_GET(self):
        if self.path == "/api/me":
            if self.bearer() not in self.oauth_tokens:
                return self.answer(401, {"error": "invalid_token"})
            client, scope = self.oauth_tokens[self.bearer()]
            return self.answer(200, {"client_id": client, "scope": scope})
        if self.path.startswith("/api/orders"):
            if self.bearer() not in self.shop_tokens:
                return self.answer(401, {"error": "log in first"})
            orders = [{"id": 7, "status": self.server.order_status}, {"id": 8, "status": "pending"}]
            if self.path == "/api/orders":
                return self.answer(200, {"orders": orders})
            for order in orders:
                if self.path == f"/api/orders/{order['id']}":
                    return self.answer(200, order)
        self.answer(404, {"error": "not found"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--order-status", default="paid")
    parser.add_argument("--scopes", default="read profile")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.password = os.environ.get("SHOP_PASSWORD", "s3cret")
    server.client_secret = os.environ.get("OAUTH_CLIENT_SECRET", "s3cret")
    server.order_status = args.order_status
    server.scopes = args.scopes.split()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

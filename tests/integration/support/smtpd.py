# A real SMTP server for the tests (aiosmtpd, Debian's python3-aiosmtpd): it listens on
# 127.0.0.1:PORT and saves each message it accepts into OUT_DIR, where `smtp.rs` reads them.
#
#   /usr/bin/python3 smtpd.py OUT_DIR PORT [USER PASSWORD]
#
# With USER and PASSWORD, AUTH (PLAIN, LOGIN) is offered without TLS and required before
# MAIL; only that user and password are accepted. Every AUTH attempt is saved too.
#
# Files appear whole (written under a dot-name, then renamed): `mail-N.eml` (the raw message as
# received, dot-stuffing removed), then `mail-N.json` (its envelope), `login-N.json`, and
# `ready` once the server answers.

import json
import os
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out = sys.argv[1]
port = int(sys.argv[2])
user = sys.argv[3].encode() if len(sys.argv) > 4 else None
password = sys.argv[4].encode() if len(sys.argv) > 4 else None
# AUTH without TLS is what the tests want; aiosmtpd warns about it on every connection.
warnings.filterwarnings("ignore")
lock = threading.Lock()
counts = {"mail": 0, "login": 0}


def publish(name, data):
    tmp = os.path.join(out, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(out, name))


def next_number(kind):
    with lock:
        counts[kind] += 1
        return counts[kind]


def text(b):
    if b is None:
        return None
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def authenticator(server, session, envelope, mechanism, auth_data):
    is_pair = isinstance(auth_data, LoginPassword)
    ok = is_pair and auth_data.login == user and auth_data.password == password
    record = {
        "mechanism": mechanism,
        "user": text(auth_data.login) if is_pair else None,
        "ok": bool(ok),
    }
    publish("login-%06d.json" % next_number("login"), json.dumps(record).encode())
    # handled=False: aiosmtpd itself answers 535 to a failure (its default sends nothing).
    return AuthResult(success=bool(ok), handled=False, auth_data=auth_data)


def login(session):
    data = getattr(session, "auth_data", None)
    if not session.authenticated or not isinstance(data, LoginPassword):
        return None
    return text(data.login)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = next_number("mail")
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        publish("mail-%06d.eml" % n, raw)
        meta = {
            "mail_from": text(envelope.mail_from),
            "rcpt_tos": [text(r) for r in envelope.rcpt_tos],
            "login": login(session),
        }
        publish("mail-%06d.json" % n, json.dumps(meta).encode())
        return "250 2.0.0 Message accepted for delivery"


kwargs = {"hostname": "127.0.0.1", "port": port, "enable_SMTPUTF8": True}
if user is not None:
    kwargs.update(authenticator=authenticator, auth_require_tls=False, auth_required=True)
controller = Controller(Handler(), **kwargs)
controller.start()
publish("ready", b"")
print("smtpd: listening on 127.0.0.1:%d" % port, flush=True)
# SIGTERM (the default action) ends the process.
threading.Event().wait()

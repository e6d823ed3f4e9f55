"""Test servers for sitewatch's probe kinds, on 127.0.0.1, driven by a state file the test
rewrites: `ws PORT STATE` (a WebSocket server, python3-websockets) answers each message with the
state file's text (`close` closes the socket instead); `grpc PORT STATE` (python3-grpcio) answers
grpc.health.v1.Health/Check with the status the state file names for the service asked about
(lines `service=SERVING`; an empty service is the line `=...`), NOT_FOUND for another service.
With a certificate and key file after the state file, each speaks TLS. Prints `ready` once
listening."""

import asyncio
import sys


def state(path):
    with open(path) as f:
        return f.read()


def tls_context(cert):
    if cert is None:
        return None
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def ws(port, path, cert=None):
    import websockets

    async def handler(socket, *_):
        async for message in socket:
            text = state(path)
            if text.strip() == "close":
                await socket.close()
                return
            await socket.send(text)

    async def main():
        async with websockets.serve(handler, "127.0.0.1", port, ssl=tls_context(cert)):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


def grpc_server(port, path, cert=None):
    from concurrent import futures

    import grpc

    codes = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3}

    def service_of(request):
        # HealthCheckRequest: field 1 (service), a string.
        if len(request) >= 2 and request[0] == 0x0A:
            return request[2 : 2 + request[1]].decode()
        return ""

    def check(request, context):
        wanted = service_of(request)
        statuses = dict(
            line.split("=", 1) for line in state(path).splitlines() if "=" in line
        )
        if wanted not in statuses:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service " + wanted)
        return bytes([0x08, codes[statuses[wanted].strip()]])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=lambda b: b,
                response_serializer=lambda b: b,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if cert is None:
        server.add_insecure_port("127.0.0.1:%d" % port)
    else:
        with open(cert[0], "rb") as c, open(cert[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port("127.0.0.1:%d" % port, creds)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    kind, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cert = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else None
    {"ws": ws, "grpc": grpc_server}[kind](port, path, cert)

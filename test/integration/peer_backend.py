"""A test backend with behaviours wsbal-echo does not have; run with Debian's python3.

  peer_backend.py --port P --id NAME [--mode echo|silent|503|drop] [--protocol P]
                  [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]   (echo mode over wss,
                  with --tls-client-ca requiring a client certificate from that CA)

echo:   python3-websockets echo server; "close:CODE" makes it close with CODE; "who" answers
        with its id; "halfdie:ID" (its own id) sends half a fragmented message and kills the process;
        "halfhold" sends half a fragmented message and never the rest. Logs "connect
        reconnect=VALUE path=PATH" for every session.
silent: accepts TCP and never answers the upgrade.
503:    answers every request with 503.
drop:   answers a valid 101, then drops the connection at once.
mute:   answers a valid 101, then reads everything and answers nothing, not even pings.
--delay-101 SEC (echo mode): waits that long before answering an upgrade.
In echo mode (ws or wss) plain GET /healthCheck answers 200 {"status":"200"} and GET /metric
{"agentsConnections": N} with N from --report (default 0), as wsbal-echo does.
Prints "listening on 127.0.0.1:PORT" once ready.
"""
import argparse
import asyncio
import base64
import hashlib
import http
import os
import ssl
import sys

import websockets

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(line):
    print(line, flush=True)


async def echo_server(args):
    async def handler(ws, path=None):
        ssl_object = ws.transport.get_extra_info("ssl_object")
        resumed = f" tls_resumed={ssl_object.session_reused}" if ssl_object is not None else ""
        log(f"connect reconnect={ws.request_headers.get('X-Balancer-Reconnect', '-')} path={ws.path}"
            f"{resumed}")
        try:
            async for msg in ws:
                if isinstance(msg, str) and msg.startswith("close:"):
                    await ws.close(int(msg[6:]), "test close")
                    return
                if msg == "who":
                    await ws.send(args.id)
                    continue
                if msg == "halfhold":
                    # The first fragment of a message goes out, and the rest never does.
                    async def held():
                        yield "first half of a message held open"
                        await asyncio.Event().wait()
                    await ws.send(held())
                    continue
                if msg == f"halfdie:{args.id}":
                    # The first fragment of a message goes out, then the process dies.
                    async def fragments():
                        yield "first half of a message that never ends"
                        await asyncio.sleep(0.3)
                        os._exit(1)
                    await ws.send(fragments())
                    continue
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def process_request(path, headers):
        # Health checks and load reports are plain GETs, not upgrades.
        if headers.get("Upgrade") is None and path in ("/healthCheck", "/metric"):
            body = (b'{"status":"200"}' if path == "/healthCheck"
                    else b'{"agentsConnections":%d}' % args.report)
            log(f"probe {path}")
            return http.HTTPStatus.OK, [("Content-Type", "application/json"), ("Connection", "close")], body
        if args.delay_101:
            await asyncio.sleep(args.delay_101)
        return None  # then the upgrade goes on

    protocols = [args.protocol] if args.protocol else None
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the proxy must show a certificate
            tls.load_verify_locations(args.tls_client_ca)
    async with websockets.serve(handler, "127.0.0.1", args.port, subprotocols=protocols,
                                compression=None, max_size=None, ping_interval=None,
                                process_request=process_request,
                                ssl=tls) as server:
        log(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}")
        await asyncio.Future()


async def answer_101(head, writer):
    """A valid 101 for the request head, written by hand."""
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    await writer.drain()


async def raw_server(args):
    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if args.mode == "silent":
            await reader.read()  # until the peer gives up
        elif args.mode == "503":
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        elif args.mode == "mute":
            # A valid 101, then silence: it reads everything and answers nothing, not even pings.
            await answer_101(head, writer)
            while await reader.read(65536):
                pass
        elif args.mode == "drop":
            await answer_101(head, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    log(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}")
    await asyncio.Future()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--id", default="peer")
    p.add_argument("--mode", default="echo", choices=["echo", "silent", "503", "drop", "mute"])
    p.add_argument("--protocol")
    p.add_argument("--delay-101", type=float, default=0)
    p.add_argument("--report", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-client-ca")
    args = p.parse_args()
    try:
        asyncio.run(echo_server(args) if args.mode == "echo" else raw_server(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

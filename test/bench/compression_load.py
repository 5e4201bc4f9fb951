#!/usr/bin/python3
"""The client of test/bench/compare's compression scenario: one python3-websockets connection
sends N JSON-like messages of 1 KiB (deterministic) to an echo behind wsbal, with a window of
messages in flight, and checks every echo. compression: "deflate" (permessage-deflate offered,
as browsers do) or none. Prints one JSON line: messages, seconds, the negotiated extension.

    compression_load.py URL N on|off
"""
import asyncio
import json
import sys
import time

import websockets

WINDOW = 32


def message(i):
    """A telemetry/chat-like JSON object of exactly 1024 bytes, the same for the same i."""
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    words = ["ok", "temperature", "pressure", "hello", "update", "ack", "sensor", "room"]
    s = '{"seq":%d,"ts":%d,"user":"%s","readings":[' % (i, 1700000000 + 7 * i, users[i % 6])
    k = i + 1
    while len(s) < 1024 - 80:
        k = (k * 1103515245 + 12345) & 0x7FFFFFFF
        s += '{"k":"%s","v":%d.%02d,"ok":%s},' % (words[k % 8], k % 1000, k % 100,
                                                   "true" if k & 1 else "false")
    s += '{}],"text":"'
    while len(s) < 1022:
        k = (k * 1103515245 + 12345) & 0x7FFFFFFF
        s += "abcdefghij klmnop"[k % 17]
    return s + '"}'


async def main(url, n, comp):
    msgs = [message(i) for i in range(256)]
    async with websockets.connect(url, compression="deflate" if comp == "on" else None,
                                  max_queue=None, ping_interval=None) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        wrong = 0
        start = time.monotonic()
        sent = got = 0
        while got < n:
            while sent < n and sent - got < WINDOW:
                await ws.send(msgs[sent % 256])
                sent += 1
            wrong += await asyncio.wait_for(ws.recv(), 10) != msgs[got % 256]
            got += 1
        secs = time.monotonic() - start
    print(json.dumps({"messages": n, "seconds": secs, "wrong": wrong, "extensions": ext}))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]), 300))

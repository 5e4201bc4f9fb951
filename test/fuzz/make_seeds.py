#!/usr/bin/env python3
"""Writes the hand-made seeds of test/fuzz/corpus/TARGET/ (seed-* files), in each target's
input format: real frames, upgrade requests and 101 answers, admin JSON bodies, PROXY headers,
probe answers and configuration values. Files libFuzzer added (hash names) are left alone.

    test/fuzz/make_seeds.py [TARGET...]
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# --- frame: byte 0 = sender (bit 0: client) and message limit (rest * 16); frames follow ---


def frame(opcode, payload=b"", fin=True, mask=None, rsv=0, length_form=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    form = length_form or (7 if n <= 125 else 16 if n <= 0xFFFF else 64)
    m = 0x80 if mask else 0
    if form == 7:
        head = bytes([b0, m | n])
    elif form == 16:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


MASK = b"\x37\xfa\x21\x3d"
CLIENT, SERVER = 0x01, 0x00


def frame_seeds():
    close_reason = struct.pack(">H", 1000) + "normal closure, café".encode()
    s = {
        "text_client": [CLIENT, frame(1, b"Hello", mask=MASK)],
        "text_server": [SERVER, frame(1, b"Hello")],
        "binary_client": [CLIENT, frame(2, bytes(range(40)), mask=MASK)],
        "ping_pong": [CLIENT, frame(9, b"ping", mask=MASK) + frame(10, b"ping", mask=MASK)],
        "ping_empty_server": [SERVER, frame(9) + frame(10)],
        "close_reason": [CLIENT, frame(8, close_reason, mask=MASK)],
        "close_empty": [SERVER, frame(8)],
        "close_1001": [SERVER, frame(8, struct.pack(">H", 1001))],
        "close_bad_code": [SERVER, frame(8, struct.pack(">H", 1005))],
        "close_one_byte": [SERVER, frame(8, b"\x03")],
        "close_bad_utf8": [SERVER, frame(8, struct.pack(">H", 1000) + b"\xc3\x28")],
        "fragmented_text": [CLIENT, frame(1, "frag".encode(), fin=False, mask=MASK) +
                            frame(9, b"", mask=MASK) +
                            frame(0, "ment é".encode(), fin=False, mask=MASK) +
                            frame(0, "€".encode(), mask=MASK)],
        "utf8_split": [SERVER, frame(1, "x€".encode()[:2], fin=False) +
                       frame(0, "x€".encode()[2:])],
        "fragmented_binary": [SERVER, frame(2, b"\x00\x01", fin=False) + frame(0, b"\x02")],
        "len16": [SERVER, frame(2, b"\xab" * 300)],
        "len16_126": [CLIENT, frame(1, b"a" * 126, mask=MASK)],
        "len64": [SERVER, frame(2, b"\xcd" * 70000)[:200]],
        "len64_small": [SERVER, frame(2, b"z" * 10, length_form=64)],
        "len16_small": [SERVER, frame(2, b"z" * 10, length_form=16)],
        "len64_msb": [SERVER, bytes([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1])],
        "rsv1": [SERVER, frame(1, b"x", rsv=4)],
        "opcode_3": [SERVER, frame(3, b"x")],
        "opcode_b": [SERVER, frame(11, b"x")],
        "ping_fragmented": [SERVER, frame(9, b"x", fin=False)],
        "ping_too_long": [SERVER, frame(9, b"p" * 126)],
        "cont_without_start": [SERVER, frame(0, b"x")],
        "text_in_text": [SERVER, frame(1, b"a", fin=False) + frame(1, b"b")],
        "client_unmasked": [CLIENT, frame(1, b"x")],
        "server_masked": [SERVER, frame(1, b"x", mask=MASK)],
        "too_big": [0x02, frame(2, b"y" * 20)],  # limit 16 bytes
        "too_big_fragments": [0x03, frame(2, b"y" * 10, fin=False, mask=MASK) +
                              frame(0, b"y" * 10, mask=MASK)],
        "bad_utf8_text": [SERVER, frame(1, b"\xed\xa0\x80")],
        "partial_header": [SERVER, bytes([0x81, 126, 0x01])],
        "partial_payload": [CLIENT, frame(1, b"abcdef", mask=MASK)[:8]],
    }
    return {k: bytes([v[0]]) + v[1] for k, v in s.items()}


# --- http: byte 0 = mode (bit 0 response; bits 1-2 kind: 0 raw, 1 line, 2 offset, 3 words;
#     rest position), byte 1 = where the input is split; then the bytes ---

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request(path="/chat", extra="", version="HTTP/1.1", key=KEY, method="GET"):
    return (f"{method} {path} {version}\r\nHost: ws.example:8080\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extra}\r\n").encode()


def response(status="101 Switching Protocols", extra="", accept=ACCEPT):
    return (f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n").encode()


def http_seeds():
    raw_req = {
        "req_plain": request(),
        "req_query": request("/chat?room=1&user=a%20b"),
        "req_protocols": request(extra="Sec-WebSocket-Protocol: chat, superchat\r\n"),
        "req_extensions": request(
            extra="Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
        "req_origin_xff": request(extra="Origin: https://app.example\r\n"
                                  "X-Forwarded-For: 192.0.2.1, 10.0.0.7\r\n"
                                  "Cookie: a=1; sid=abc\r\n"),
        "req_dot_segments": request("/a/./b/../c/%2e%2e/d"),
        "req_double_slash": request("//x//y?z"),
        "req_absolute_form": request("http://ws.example/chat"),
        "req_asterisk": request("*"),
        "req_http10": request(version="HTTP/1.0"),
        "req_post": request(method="POST"),
        "req_bad_key": request(key="short"),
        "req_version_8": request().replace(b"Version: 13", b"Version: 8"),
        "req_no_upgrade": request().replace(b"Upgrade: websocket\r\n", b""),
        "req_connection_list": request().replace(b"Connection: Upgrade",
                                                 b"Connection: keep-alive,  upgrade"),
        "req_two_hosts": request(extra="Host: other\r\n"),
        "req_two_keys": request(extra=f"Sec-WebSocket-Key: {KEY}\r\n"),
        "req_obs_fold": request(extra="X-Folded: a\r\n b\r\n"),
        "req_tabs": request(extra="X-Tab:\t v \t\r\n"),
        "req_empty_value": request(extra="X-Empty:\r\n"),
        "req_content_length": request(extra="Content-Length: 0\r\n"),
        "req_chunked": request(extra="Transfer-Encoding: chunked\r\n"),
        "req_te_trailers": request(extra="TE: trailers\r\nProxy-Connection: x\r\n"),
        "req_lf_only": request().replace(b"\r\n", b"\n"),
        "req_frame_after": request() + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        "req_many_headers": request(extra="".join(f"X-H{i}: {i}\r\n" for i in range(70))),
        "req_long_value": request(extra="X-Long: " + "v" * 3000 + "\r\n"),
        "req_nul": request(extra="X-Nul: a\0b\r\n"),
        "req_space_before_colon": request(extra="X-Bad : v\r\n"),
    }
    raw_resp = {
        "resp_101": response(),
        "resp_101_protocol": response(extra="Sec-WebSocket-Protocol: chat\r\n"),
        "resp_101_unoffered": response(extra="Sec-WebSocket-Protocol: other\r\n"),
        "resp_101_extension": response(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "resp_101_bad_accept": response(accept="AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        "resp_101_frame_after": response() + b"\x81\x02hi",
        "resp_101_set_cookie": response(extra="Set-Cookie: a=b\r\nServer: echo\r\n"),
        "resp_200": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "resp_503": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n",
        "resp_100_then_101": b"HTTP/1.1 100 Continue\r\n\r\n" + response(),
        "resp_http10": response().replace(b"HTTP/1.1", b"HTTP/1.0"),
        "resp_no_reason": response(status="101"),
    }
    out = {}
    for name, body in raw_req.items():
        out[name] = bytes([0x00, 0x35]) + body
    for name, body in raw_resp.items():
        out[name] = bytes([0x01, 0x35]) + body
    # Bytes spliced into the templates: a header line before the n-th line (kind 1).
    spliced = {
        "splice_req_header": (0x02 | (3 << 3), b"X-Forwarded-For: 203.0.113.9\r\n"),
        "splice_req_protocol": (0x02 | (2 << 3), b"Sec-WebSocket-Protocol: a\r\n"),
        "splice_resp_header": (0x03 | (2 << 3), b"Sec-WebSocket-Extensions: x\r\n"),
        "splice_offset": (0x04 | (9 << 3), b"%2e%2e/"),
        # kind 3: each byte picks a word of fuzz_http.c's list.
        "words_req": (0x06 | (1 << 3), bytes([11, 2, 12, 0, 32, 2, 12, 0])),
        "words_resp": (0x07 | (1 << 3), bytes([27, 2, 28, 0, 30, 2, 31, 0])),
    }
    for name, (mode, body) in spliced.items():
        out[name] = bytes([mode, 0x11]) + body
    return out


# --- json: byte 0 = flags (1 any value, 2 generate, 4 mutate, rest token cap); then the text ---


def json_seeds():
    texts = {
        "add_backend": b'{"name":"b3","url":"ws://127.0.0.1:9003/","weight":5,'
                       b'"max_sessions":1000,"backup":false}',
        "add_backend_wss": b'{"name": "tls-1", "url": "wss://[::1]:9443/ws?x=1", "backup": true}',
        "patch_backend": b'{"weight": 100, "enabled": true}',
        "patch_disable": b'{"enabled":false}',
        "failover": b'{"backend":"b2"}',
        "empty_object": b"{}",
        "health_status": b'{"status":"200","uptime":12.5}',
        "health_numeric": b'{"status": 503, "detail": null}',
        "load_report": b'{"agentsConnections": 1234, "connections": "99"}',
        "load_nested": b'{"data":{"list":[1,2,3,{"a":[[]]}]},"connections":7}',
        "escapes": b'{"s":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/","k\\u006b":"\\u0000"}',
        "utf8_raw": '{"name":"café ☕ 😀"}'.encode(),
        "numbers": b'{"a":-0,"b":1e3,"c":-1.5E-7,"d":18446744073709551615,'
                   b'"e":18446744073709551616,"f":-9223372036854775808}',
        "whitespace": b' \t\r\n{ "a" : [ true , false , null ] } \n',
        "deep": b'{"a":' + b"[" * 30 + b"]" * 30 + b"}",
        "dup_key": b'{"a":1,"a":2}',
        "trailing_comma": b'{"a":1,}',
        "bad_escape": b'{"a":"\\x"}',
        "lone_surrogate": b'{"a":"\\ud800"}',
        "bad_utf8": b'{"a":"\xc3\x28"}',
        "control_char": b'{"a":"\x01"}',
        "leading_zero": b'{"a":01}',
        "unterminated": b'{"a":"b',
        "trailing_garbage": b'{"a":1} x',
    }
    out = {f"text_{k}": b"\x00" + v for k, v in texts.items()}
    out["any_array"] = b"\x01[1,\"two\",{\"three\":3}]"
    out["any_number"] = b"\x0112345"
    out["any_string"] = b'\x01"just a string"'
    out["tokens_cap_3"] = bytes([3 << 3]) + texts["patch_backend"]
    # Generated texts: the bytes after the flags steer the generator.
    out["gen_object"] = b"\x02" + bytes(range(5, 70))
    out["gen_any"] = b"\x03" + bytes(range(200, 256)) + bytes(range(0, 60))
    out["gen_mutated"] = b"\x06" + bytes(range(5, 70)) + b"\x41\x00\x07"
    return out


# --- proxy_protocol: byte 0 = framing (0 raw, 1 "PROXY " in front, 2 v2 header, 3 v2
#     signature), then the bytes; the same bytes are also read as an address and a CIDR list ---

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return V2SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def pp_seeds():
    tcp4 = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 51000, 443)
    tcp6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 1, 2)
    tlv = b"\x01\x00\x02h2" + b"\x02\x00\x0bexample.com" + b"\x04\x00\x00"
    return {
        "v1_tcp4_full": b"\x00PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\nGET /",
        "v1_tcp6_full": b"\x00PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
        "v1_unknown_full": b"\x00PROXY UNKNOWN\r\n",
        "v1_unknown_addrs": b"\x00PROXY UNKNOWN ff:: 1.2.3.4 1 2\r\n",
        "v1_after_prefix": b"\x01TCP4 10.0.0.1 10.0.0.2 1 2\r\n",
        "v1_bad_port": b"\x01TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",
        "v1_leading_zero": b"\x01TCP4 010.0.0.1 10.0.0.2 01 2\r\n",
        "v1_no_crlf": b"\x01TCP4 10.0.0.1 10.0.0.2 1 2\n",
        "v1_too_long": b"\x01TCP6 " + b"f" * 120 + b"\r\n",
        "v2_tcp4_full": b"\x00" + v2(1, 0x11, tcp4),
        "v2_tcp6_full": b"\x00" + v2(1, 0x21, tcp6),
        "v2_udp4": b"\x00" + v2(1, 0x12, tcp4),
        "v2_unix": b"\x00" + v2(1, 0x31, bytes(216)),
        "v2_local_full": b"\x00" + v2(0, 0x00, b""),
        "v2_tlvs": b"\x00" + v2(1, 0x11, tcp4 + tlv),
        "v2_short_body": b"\x00" + v2(1, 0x21, tcp4),
        "v2_bad_version": b"\x00" + V2SIG + b"\x11\x11\x00\x0c" + tcp4,
        "v2_bad_command": b"\x00" + V2SIG + b"\x2f\x11\x00\x0c" + tcp4,
        "v2_framed_tcp4": b"\x02" + tcp4,
        "v2_framed_tcp6": b"\x0a" + tcp6,
        "v2_after_sig": b"\x03\x21\x11\x00\x0c" + tcp4,
        "http_not_proxy": b"\x00GET / HTTP/1.1\r\n",
        "addr_v4": b"\x00" + b"203.0.113.9",
        "addr_v6": b"\x00" + b"2001:db8::a:b",
        "addr_v4_mapped": b"\x00" + b"::ffff:192.0.2.1",
        "cidr_list": b"\x0010.0.0.0/8, 192.168.1.0/24 ::1/128,fd00::/8",
        "cidr_all": b"\x000.0.0.0/0, ::/0",
        "cidr_bad_bits": b"\x0010.0.0.0/33",
    }


# --- probe: byte 0 = eof (bit 0), framing (bits 1-2: 0 raw, 1 Content-Length body, 2 chunked
#     body with chunks of (bits 3-7) + 1 bytes, 3 the input's head then a Content-Length body) ---


def probe_seeds():
    raw = {
        "health_200_json": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                           b'Content-Length: 17\r\n\r\n{"status":"200"}\n',
        "health_503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        "health_204": b"HTTP/1.1 204 No Content\r\n\r\n",
        "health_100_then_200": b"HTTP/1.1 100 Continue\r\n\r\n"
                               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "load_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"a\r\n{\"connecti\r\n0f;ext=1\r\nons\": 1234  }\n\r\n0\r\nX-T: 1\r\n\r\n",
        "until_close_http10": b"HTTP/1.0 200 OK\r\n\r\n{\"agentsConnections\":7}",
        "partial_head": b"HTTP/1.1 200 OK\r\nContent-Len",
        "short_body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "not_http": b"SSH-2.0-OpenSSH_9.2\r\n",
        "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "two_lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    }
    out = {f"raw_{k}": b"\x00" + v for k, v in raw.items()}
    out["raw_until_close_eof"] = b"\x01" + raw["until_close_http10"]
    out["raw_short_body_eof"] = b"\x01" + raw["short_body"]
    bodies = {
        "status_string": b'{"status":"200"}',
        "status_number_bad": b'{"status": 500, "error": "db down"}',
        "status_not_digits": b'{"status":"ok"}',
        "load_agents": b'{"agentsConnections": 42, "connections": 7}',
        "load_connections_string": b'{"connections":"123456789012345678"}',
        "load_19_digits": b'{"connections":"1234567890123456789"}',
        "load_negative": b'{"connections":-1}',
        "load_float": b'{"connections":1.5}',
        "load_huge": b'{"connections":18446744073709551615}',
        "array_body": b"[1,2,3]",
        "text_body": b"OK",
        "many_tokens": b'{"a":[' + b",".join([b"1"] * 300) + b'],"connections":1}',
    }
    for k, v in bodies.items():
        out[f"cl_{k}"] = b"\x02" + v
    out["chunked_load"] = bytes([0x04 | (4 << 3)]) + bodies["load_agents"]
    out["chunked_bytewise"] = bytes([0x04]) + bodies["status_string"]
    out["head_503_json"] = b"\x06HTTP/1.1 503 Unavailable\r\nServer: x\r\n\r\n" + bodies[
        "status_string"]
    out["head_keepalive"] = b"\x06HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n" + bodies[
        "load_agents"]
    return out


# --- values: byte 0 = '+' decoding (bit 0) and decoder room (rest - 1; 0 = plenty), bytes 1-2
#     = bounds of the number check; then the value ---


def values_seeds():
    vals = ["250ms", "10s", "5m", "1h", "30", "0", "18446744073709551615", "18446744073709551616",
            "99999999999999999999x", "16k", "1M", "2g", "4G", "yes", "Off", "TRUE", "2",
            "127.0.0.1:8080", "[::]:8080", "[::1]:9", "localhost:80", "::1:80", "host:0",
            "host:65536", "999.1.1.1:80", "a..b:1", "my_backend-1.svc.:443",
            "[fe80::1%eth0]:1", "ws://127.0.0.1:9001/", "wss://[::1]:8443/ws/a%20b/",
            "WS://Example.COM", "ws://host:80/p?q", "ws://user@host/", "ws://host/#f",
            "http://host/", "ws://:80/", "ws://[::1/x]", "ws://h/%zz", "ws://h/" + "p" * 1100,
            "/api/v1/backends/b%231", "room%3D1+2&x=%00", "%", "%4", "%41%42%43", "a+b+c"]
    out = {}
    for i, v in enumerate(vals):
        mode = 0x01 if "+" in v else 0x00
        out[f"{i:02d}"] = bytes([mode, 1, 100]) + v.encode()
    out["decode_room_4"] = bytes([0x0a, 0, 0]) + b"%41bcdefgh"
    out["decode_room_0"] = bytes([0x02, 0, 0]) + b"abc"
    return out


# --- session_state: byte 0 bit 0 = the message as it is, else a header of the current version
#     (2) is put before the rest; fields as common/session_state.h lists them, little-endian ---


def state_body(nused=2, protocol=b"chat", replay=b"", legs=None, flags=1, family=2, backend=b"b1",
               last_rx=1765000000300, version=2, pmd=(7, 15), route=b"chat-route"):
    def blob(b):
        return struct.pack("<I", len(b)) + b

    head = b"GET /chat HTTP/1.1\r\nHost: h.test\r\nUser-Agent: u\r\n\r\n"
    body = struct.pack("<Q", 7) + blob(b"default") + blob(backend) + blob(protocol)
    body += bytes([nused]) + b"".join(blob(b"b%d" % i) for i in range(nused))
    body += blob(head) + struct.pack("<IIIIHHH", 4, 5, 26, 48, 6, 1, 0)
    body += struct.pack("<QQQ", 1765000000000, 1765000000100, 1765000000200)
    body += struct.pack("<QQQQII", 3, 90, 4, 120, 1, 12) + bytes([flags])
    address = bytes([127, 0, 0, 1]) + bytes(12)
    body += bytes([family]) + address
    body += bytes([2]) + address + struct.pack("<H", 40000)
    body += bytes([2]) + address + struct.pack("<H", 8080)
    body += blob(replay) + struct.pack("<II", 0, len(replay))
    for leg in legs or [(b"", b"", b"", 0, 0, 0), (b"", b"", b"", 0, 0, 0)]:
        pending, queued, hold, msg_len, opcode, lflags = leg
        body += blob(pending) + blob(queued) + blob(hold) + struct.pack("<QB", msg_len, opcode)
        body += bytes([lflags]) + struct.pack("<QQ", last_rx, 0)
    if version >= 2:  # compression (flags: on, server and client no_context_takeover; bits), route
        body += bytes(pmd) + blob(route)
    return body


def state_message(body, version=2):
    return struct.pack("<4sHHII", b"WSBS", version, 0, 16 + len(body), 0) + body


def session_state_seeds():
    ping = b"\x89\x80abcd"
    out = {
        "plain": b"\x00" + state_body(),
        "whole": b"\x01" + state_message(state_body()),
        "version1": b"\x01" + state_message(state_body(version=1), version=1),
        "version3": b"\x01" + state_message(state_body(), version=3),
        "no_compression": b"\x00" + state_body(pmd=(0, 0), route=b""),
        "window_9": b"\x00" + state_body(pmd=(7, 9)),
        "takeover": b"\x00" + state_body(pmd=(1, 15)),
        "route_63": b"\x00" + state_body(route=b"r" * 63),
        "route_64": b"\x00" + state_body(route=b"r" * 64),
        "no_protocol": b"\x00" + state_body(protocol=b"", nused=1, flags=7),
        "used_8": b"\x00" + state_body(nused=8),
        "replay": b"\x00" + state_body(replay=b"\x81\x83abcdxyz" * 3),
        "legs": b"\x00" + state_body(legs=[(ping[:3], b"\x81\x01x", b"", 5, 1, 3),
                                            (b"\x82", b"\x89\x00", b"\x02\x01z", 1, 2, 2)]),
        "ipv6": b"\x00" + state_body(family=10),
        "truncated": b"\x01" + state_message(state_body())[:40],
    }
    return out


# --- pmd: byte 0 = kind (bits 0-1: 0/3 offer, 1 inflate, 2 round trip) and a flag or piece size
#     (bits 2-7); inflate inputs have the limit / 64 in byte 1 ---


def deflate_raw(data, level=6, bits=15):
    import zlib
    c = zlib.compressobj(level, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def pmd_seeds():
    offers = ["permessage-deflate", "permessage-deflate; client_max_window_bits",
              "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
              'permessage-deflate; server_max_window_bits="10"',
              "permessage-deflate; server_max_window_bits=8, permessage-deflate",
              "x-webkit-deflate-frame, permessage-deflate; bogus, permessage-deflate; x=1",
              "permessage-deflate; server_no_context_takeover=1",
              "permessage-deflate;;", 'permessage-deflate; a="b\\"c"', " , ,permessage-deflate ,"]
    out = {}
    for i, o in enumerate(offers):
        out[f"offer_{i:02d}"] = bytes([0x00 if i % 2 else 0x04]) + o.encode()
    hello = b"\xf2\x48\xcd\xc9\xc9\x07\x00"
    out["inflate_hello"] = bytes([0x01 | (6 << 2), 0]) + hello
    out["inflate_final"] = bytes([0x01, 1]) + b"\xf3\x48\xcd\xc9\xc9\x07\x00"
    out["inflate_stored"] = bytes([0x01 | (2 << 2), 0]) + b"\x00\x05\x00\xfa\xffHello\x00"
    out["inflate_json"] = bytes([0x01 | (63 << 2), 0]) + deflate_raw(
        b'{"id":1,"user":"alice","text":"hi there","tags":["a","b"]}' * 20)
    out["inflate_bomb"] = bytes([0x01 | (63 << 2), 16]) + deflate_raw(b"\x00" * 200000, 9)
    out["inflate_small_window"] = bytes([0x01 | (9 << 2), 0]) + deflate_raw(b"abcabcabd" * 100, 1, 9)
    out["round_trip_json"] = bytes([0x02 | (30 << 2)]) + b'{"k":"v","n":[1,2,3]}' * 30
    out["round_trip_keep"] = bytes([0x02 | (1 << 2)]) + b"hello hello hello"
    out["round_trip_empty"] = bytes([0x02, 0])
    return out


TARGETS = {"frame": frame_seeds, "http": http_seeds, "json": json_seeds, "probe": probe_seeds,
           "pmd": pmd_seeds, "proxy_protocol": pp_seeds, "values": values_seeds,
           "session_state": session_state_seeds}


def main():
    names = sys.argv[1:] or sorted(TARGETS)
    for t in names:
        d = os.path.join(HERE, "corpus", t)
        os.makedirs(d, exist_ok=True)
        seeds = TARGETS[t]()
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print(f"{t}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()

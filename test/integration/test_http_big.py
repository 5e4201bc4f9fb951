"""1 GiB up and 1 GiB down through wsbal's plain HTTP proxy, with the worker's memory bounded.

A streaming client (a raw socket sending a Content-Length body in 1 MiB writes, and reading the
answer into one 1 MiB buffer) and a streaming backend (a raw socket server in a thread that
checksums what it reads and writes its answer from one buffer) move the bytes; both sides
compute a CRC-32 of the whole stream, so a lost, repeated or reordered span fails the check.

The bound: a worker holds, per connection, at most one 64 KiB read buffer (shared by the loop),
a leg's write queue up to its 256 KiB high-water mark plus the one 64 KiB read that crossed it,
for each leg, and a 16 KiB answer head: about 0.7 MiB. The worker's peak resident size (VmHWM)
during the transfer may exceed its resident size just before it by at most BOUND_KB = 4 MiB:
the buffers' worst case with room for the allocator's rounding and arenas, and more than 250
times less than what passes through. Memory growing with the transfer would blow it at once.

Both builds move 1 GiB each way (a few seconds plain, about 10 s under ASan). Under ASan
(WSBAL_SANITIZED=1) this wsbal runs with its quarantine of freed memory cut to 1 MiB, which would
otherwise hold up to 256 MiB on purpose, and the bound grows by that 1 MiB.
"""
import os
import re
import socket
import sys
import threading
import time
import zlib

from httpraw import RawServer, content_length, read_answer, read_head
from wsbtest import Checks, Wsbal, run_tests

c = Checks()
SANITIZED = os.environ.get("WSBAL_SANITIZED") == "1"
SIZE = 1 << 30
BOUND_KB = 4096 + (1024 if SANITIZED else 0)
# An odd length, so that the pattern's repetitions never line up with the proxy's reads.
BLOCK = os.urandom((1 << 20) + 7)


def pattern_crc(size):
    crc, left = 0, size
    while left > 0:
        n = min(left, len(BLOCK))
        crc = zlib.crc32(BLOCK[:n] if n < len(BLOCK) else BLOCK, crc)
        left -= n
    return crc


def send_pattern(sock, size):
    view = memoryview(BLOCK)
    left = size
    while left > 0:
        n = min(left, len(BLOCK))
        sock.sendall(view[:n])
        left -= n


def recv_crc(sock, size, crc=0):
    """Reads size bytes (fewer if the peer closes), continuing crc: (bytes read, CRC-32)."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view, min(len(buf), size - got))
        if n == 0:
            break
        crc = zlib.crc32(view[:n], crc)
        got += n
    return got, crc


class Streamer(RawServer):
    """The backend: POST reads its Content-Length body and answers "BYTES CRC"; GET /down/N
    answers N bytes of the pattern."""

    def __init__(self):
        super().__init__(self.handle)

    def handle(self, conn, n):
        conn.settimeout(60)
        rest = b""
        try:
            while True:
                head, rest = read_head(conn, rest)
                line = head.split(b"\r\n")[0].split()
                length = content_length(head)
                if line[0] == b"POST":
                    got, crc = len(rest[:length]), zlib.crc32(rest[:length])
                    rest = rest[length:]
                    more, crc = recv_crc(conn, length - got, crc)
                    body = b"%d %d" % (got + more, crc)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" %
                                 (len(body), body))
                else:
                    size = int(line[1].rsplit(b"/", 1)[1])
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                    send_pattern(conn, size)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()


class Peak:
    """Samples a worker's VmRSS while a transfer runs; VmHWM gives the true peak."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(key + r":\s+(\d+)", f.read()).group(1))

    def run(self):
        while self.running:
            self.samples.append(self.status("VmRSS"))
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()
        return max(self.samples), self.status("VmHWM")


B = Streamer()
ASAN = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
        ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64"} if SANITIZED else {}
W = Wsbal([("b1", B.url)], workers=1, extra_env=ASAN, sections={
    "listen": {"http": "proxy", "max_body_bytes": "2g"}, "upstream": {"http_timeout": "20s"}})


def connect():
    s = socket.create_connection(("127.0.0.1", W.port), timeout=30)
    return s


def test_big_both_ways():
    worker = W.pids()[1]
    # One small exchange each way first: the connection pool and the loop's buffers exist.
    s = connect()
    s.sendall(b"POST /warm HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    head, rest = read_head(s)
    s.sendall(b"GET /down/10 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, rest = read_head(s)
    s.close()
    peak = Peak(worker)
    before = peak.status("VmRSS")
    want = pattern_crc(SIZE)
    t0 = time.monotonic()
    s = connect()
    s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % SIZE)
    send_pattern(s, SIZE)
    head, rest, _ = read_answer(s)
    up = time.monotonic() - t0
    t0 = time.monotonic()
    s.sendall(b"GET /down/%d HTTP/1.1\r\nHost: x\r\n\r\n" % SIZE)
    head2, rest2 = read_head(s)
    got, crc = recv_crc(s, SIZE - len(rest2), zlib.crc32(rest2))
    got += len(rest2)
    s.close()
    down = time.monotonic() - t0
    rss_max, hwm = peak.stop()
    print(f"{SIZE >> 20} MiB up in {up:.1f} s, down in {down:.1f} s; worker VmRSS {before} kB "
          f"before, {rss_max} kB at most sampled, VmHWM {hwm} kB")
    c.eq("the upload arrives whole (bytes, CRC-32)", b"%d %d" % (SIZE, want), rest)
    c.eq("the download arrives whole", (SIZE, want), (got, crc))
    c.true(f"the worker's peak grows by less than {BOUND_KB} kB",
           max(hwm, rss_max) - before < BOUND_KB, f"{before} kB before, peak {hwm} kB")


code = run_tests(c, test_big_both_ways)
W.stop()
B.stop()
sys.exit(code)

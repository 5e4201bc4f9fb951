"""Raw-socket HTTP pieces the plain-HTTP tests share: a threaded TCP server whose connection
handler the test writes (so it can send exactly the bytes it wants, when it wants), and reading
one answer (head, then a Content-Length body) from a socket."""
import re
import socket
import threading


class RawServer:
    """Listens on 127.0.0.1 (port, and url as a backend URL); handle(conn, n) runs in a thread
    for the n-th connection accepted (from 1), which it owns and must close."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.accepted = 0
        self.lock = threading.Lock()
        self.handle = handle
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.handle, args=(conn, n), daemon=True).start()

    def stop(self):
        self.sock.close()


def read_head(sock, buf=b""):
    """(head without its blank line, the bytes after it); EOFError when the peer closes first."""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        if not more:
            raise EOFError(buf)
        buf += more
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def content_length(head):
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return int(m.group(1)) if m else 0


def read_answer(sock, buf=b"", bodyless=False):
    """One answer: (head, body, rest). Its body is Content-Length bytes (fewer when the peer
    closes), none for a 1xx or when bodyless (the answer to a HEAD)."""
    head, buf = read_head(sock, buf)
    n = 0 if bodyless or head[9:10] == b"1" else content_length(head)
    while len(buf) < n:
        more = sock.recv(65536)
        if not more:
            break
        buf += more
    return head, buf[:n], buf[n:]

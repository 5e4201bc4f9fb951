"""A client's close is answered even when its backend dies before answering it (found by the
soak, test/bench/soak): the backend goes (end of file, or a reset) after wsbal forwarded the
client's close and before its own close came; wsbal must answer the client's close itself, with
the client's code, instead of dropping the connection (which the client sees as 1006).
"""
import socket
import struct
import sys

from test_backend_faults import Scripted, read_client_frame, server_frame
from wsbtest import (OP_CLOSE, OP_TEXT, Checks, RawClient, Wsbal, close_payload, frame,
                     run_tests)

checks = Checks()


class DiesOnClose(Scripted):
    """test_backend_faults' raw backend, echoing, that goes without answering a close frame:
    its end of file, or with reset an RST (SO_LINGER 0)."""

    def __init__(self, reset):
        self.reset = reset
        self.closes_seen = 0
        super().__init__("dies", lambda path: ("echo",))

    def _echo(self, conn, buf):
        while True:
            got = read_client_frame(conn, buf)
            if got is None:
                return
            op, data, buf = got
            if op == OP_CLOSE:
                self.closes_seen += 1
                if self.reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # the caller closes the connection
            conn.sendall(server_frame(op, data))


def client_close_answered(reset):
    what = "reset" if reset else "end of file"
    backend = DiesOnClose(reset)
    lb = Wsbal([("dies", backend.url)])
    try:
        cl, _ = RawClient.upgraded(lb.port)
        cl.send(frame(OP_TEXT, b"hello"))
        checks.eq(f"{what}: the echo comes through", (True, OP_TEXT, b"hello"), cl.read_frame())
        cl.send(frame(OP_CLOSE, close_payload(1000, b"bye")))
        try:
            _, op, payload = cl.read_frame()
        except (EOFError, ConnectionResetError) as e:
            op, payload = None, repr(e)
        checks.eq(f"{what}: the backend got the client's close", 1, backend.closes_seen)
        checks.eq(f"{what}: the client's close is answered with its own code", (OP_CLOSE, 1000),
                  (op, struct.unpack("!H", payload[:2])[0] if op == OP_CLOSE else payload))
        checks.true(f"{what}: then its connection ends", cl.closed_by_peer())
        cl.close()
    finally:
        lb.stop()
        backend.stop()


if __name__ == "__main__":
    sys.exit(run_tests(checks, lambda: client_close_answered(False),
                       lambda: client_close_answered(True)))

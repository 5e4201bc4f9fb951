"""wsbal's control plane: graceful stop, a second stop signal, a dead master, respawn counts.

Real processes on 127.0.0.1, real clients; every wait has a deadline.
"""
import os
import signal
import socket
import struct
import sys
import time

from wsbtest import (OP_CLOSE, OP_TEXT, T, Checks, Echo, RawClient, Wsbal, close_payload, frame,
                     run)

c = Checks()


def open_session(lb):
    cl = RawClient(lb.port)
    cl.request("/")
    status = cl.read_head()[0]
    c.eq("session upgrades", 101, status)
    return cl


def echo_once(cl, text):
    cl.send(frame(OP_TEXT, text))
    fin, op, payload = cl.read_frame()
    return op, payload


def close_code(cl, timeout=T):
    fin, op, payload = cl.read_frame(timeout=timeout)
    if op != OP_CLOSE:
        return (op, payload)
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except OSError:
        return True


def test_graceful_stop(echo):
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "2s"}})
    cl = open_session(lb)
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGTERM)
    c.true("master logs the stop", lb.wait_line(r"stopping; sessions have 2000 ms") is not None,
           lb.output()[-1000:])
    # Within the grace period the session still works and nothing new is accepted.
    c.eq("a live session still relays while draining", (OP_TEXT, b"still"), echo_once(cl, b"still"))
    deadline = time.monotonic() + 1.5
    while not refused(lb.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    c.true("new connections are refused while draining", refused(lb.port), "port still accepts")
    c.eq("the live session still relays after that", (OP_TEXT, b"more"), echo_once(cl, b"more"))
    c.eq("after shutdown_timeout the client gets close 1001", 1001, close_code(cl, timeout=6))
    took = time.monotonic() - t0
    c.true("no sooner than shutdown_timeout", took >= 1.8, f"{took:.2f}s")
    cl.send(frame(OP_CLOSE, close_payload(1001)))
    c.eq("wsbal exits 0 after a graceful stop", 0, lb.stop(sig=0))
    cl.close()

    # Sessions that end by themselves let wsbal exit before the timeout.
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "30s"}})
    cl = open_session(lb)
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGTERM)
    lb.wait_line(r"stopping;")
    cl.send(frame(OP_CLOSE, close_payload(1000)))
    c.eq("the client's own close is answered while draining", 1000, close_code(cl))
    cl.close()
    c.eq("wsbal exits 0 once its last session ended", 0, lb.stop(sig=0, timeout=10))
    c.true("well before shutdown_timeout", time.monotonic() - t0 < 10, "")

    # A second stop signal closes every session at once.
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "60s"}})
    cl = open_session(lb)
    lb.proc.send_signal(signal.SIGTERM)
    lb.wait_line(r"stopping;")
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGINT)
    c.eq("a second stop signal sends 1001 at once", 1001, close_code(cl, timeout=5))
    c.true("at once", time.monotonic() - t0 < 3, f"{time.monotonic() - t0:.2f}s")
    cl.close()
    c.eq("wsbal exits 0 after the second signal", 0, lb.stop(sig=0))


def test_master_gone(echo):
    """Workers notice a dead master (EOF on their control socket) and drain rather than linger."""
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "1s"}})
    workers = [p for p in lb.pids() if p != lb.proc.pid]
    cl = open_session(lb)
    lb.proc.send_signal(signal.SIGKILL)
    c.eq("its client hears 1001 once the drain ends", 1001, close_code(cl, timeout=6))
    cl.close()
    deadline = time.monotonic() + T
    while any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
              for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in workers
             if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    c.eq("workers exit when the master is gone", [], alive)
    c.true("they said why", lb.wait_line(r"master gone") is not None, lb.output()[-1000:])
    lb.stop()


def main():
    echo = Echo("e1")
    try:
        test_graceful_stop(echo)
        test_master_gone(echo)
    except Exception as e:  # a crash of the test itself is a failure, never a pass
        import traceback
        traceback.print_exc()
        c.true("test ran to the end", False, repr(e))
    finally:
        echo.stop()
    return c.summary()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""End-to-end tests of the network edge's operational side, with the real
server over loopback: a stalled client (TLS or plain) with a backlog is
closed as too slow within the documented bound.

Usage: test_edge_ops.py CASE --server BIN --testdata DIR"""
import os
import re
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import run_cases as server_run_cases, wait_for  # noqa: E402
import test_edge  # noqa: E402
from test_edge import Certs, Conn, metric, socket_owners, tls_ctx, tls_server  # noqa: E402

ARGS = None


def server(**kw):
    test_edge.ARGS = ARGS   # test_edge's helpers start the server from its ARGS
    return test_edge.server(**kw)


def established(port, cport):
    """True while the server still holds the connection from client port cport."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( sport = :%d and dport = :%d )" % (port, cport)],
                         capture_output=True, text=True, check=True).stdout
    return bool(out.strip())


def sse_first_id(s, ca=None):
    """The id of the first event an SSE client gets (a ring position)."""
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock = tls_ctx(ca).wrap_socket(raw, server_hostname="localhost") if ca else raw
    try:
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while not re.search(rb"\nid: (\d+)\n", buf):
            d = sock.recv(65536)
            assert d, buf
            buf += d
        return int(re.search(rb"\nid: (\d+)\n", buf).group(1))
    finally:
        sock.close()


def stalled_client(s, path, ca=None):
    """A client with a 4 KiB receive buffer that completes the handshake
    (TLS when ca is given, then the WebSocket upgrade) and never reads again."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", s.port))
    cport = raw.getsockname()[1]
    sock = tls_ctx(ca).wrap_socket(raw, server_hostname="localhost") if ca else raw
    c = Conn(s.port, path, sock=sock)
    assert c.status == 101, c.head
    return c, cport


def stalled_case(tls):
    """A client that stops reading while it has a backlog larger than its
    socket's send buffer (1 MiB, the default limits.send_buffer_bytes) is
    closed as too slow: the documented bound is "socket full and more than
    buffer_size (1000) records behind". It resumes 999 records back (5.5 MB of
    full messages), so the bound is reached as soon as its socket is full.

    The defect this guards: a pass that stopped at a budget (the TLS
    ciphertext buffer, or the plain pass's byte budget) with every byte
    accepted by the socket waited for the socket to become writable without
    being marked blocked. When that write left the send queue above the
    kernel's wake-up mark (2/3 of the buffer), the wake-up never came for a
    client that does not read, and the client was never judged."""
    test_edge.ARGS = ARGS
    certs = Certs() if tls else None
    try:
        if tls:
            chain, key, _ = certs.server_cert("s")
            s = tls_server(certs, chain, key, workers=1, rate=200, ring_size=1 << 25)
        else:
            s = server(workers=1, rate=200, ring_size=1 << 25)
        with s:
            first = sse_first_id(s, certs.ca if tls else None)
            seq = metric(s, "certstream_entries_published_total")
            wait_for(lambda: metric(s, "certstream_entries_published_total") > seq + 1100, 60, "1100 more records")
            assert metric(s, "certstream_slow_client_drops_total") == 0
            c, cport = stalled_client(s, "/full-stream?resume=%d" % first, certs.ca if tls else None)
            # bound: at 200 records/s the client is over buffer_size at once;
            # its socket fills within a second; generous for a loaded machine
            wait_for(lambda: metric(s, "certstream_slow_client_drops_total") == 1, 20, "the stalled client judged slow")
            # the Close frame cannot reach a client that does not read: the
            # server gives up after CLOSING_TIMEOUT_SECS (5 s) and closes
            wait_for(lambda: not established(s.port, cport), 15, "the server to close the stalled connection")
            assert metric(s, "certstream_slow_client_drops_total") == 1
            c.close()
    finally:
        if certs:
            certs.cleanup()


def case_tls_stalled():
    stalled_case(True)


def case_plain_stalled():
    stalled_case(False)


def s_client(port, ca, sess_flag, sess_file):
    """openssl s_client's summary line ("New, ..." or "Reused, ...")."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca,
                        "-servername", "localhost", "-verify_return_error", sess_flag, sess_file],
                       input=b"", capture_output=True, timeout=30)
    lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith(("New, ", "Reused, "))]
    assert r.returncode == 0 and len(lines) == 1, r.stdout.decode() + r.stderr.decode()
    return lines[0]


def case_tls_resume():
    """Session tickets (docs/operations.md): openssl s_client resumes with
    -sess_in ("Reused"); a ticket one worker issued resumes on the other
    worker (Python's ssl with the session, owner process from ss); the
    resumed handshakes are counted exactly; with tls.session_tickets off the
    same client gets a full handshake."""
    test_edge.ARGS = ARGS
    certs = Certs()
    try:
        chain, key, _ = certs.server_cert("s")
        sess = certs.p("session.pem")
        with tls_server(certs, chain, key, workers=2, rate=20) as s:
            hs0 = metric(s, "certstream_edge_tls_handshakes_total")
            assert s_client(s.port, certs.ca, "-sess_out", sess).startswith("New, TLSv1.2, ")
            for _ in range(3):
                assert s_client(s.port, certs.ca, "-sess_in", sess).startswith("Reused, TLSv1.2, ")
            assert metric(s, "certstream_edge_tls_resumed_total") == 3
            # 4 by s_client, and 2 /metrics requests over https (full
            # handshakes: urllib keeps no session), this one included
            assert metric(s, "certstream_edge_tls_handshakes_total") - hs0 == 6

            ctx = tls_ctx(certs.ca)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2

            def connect(session=None):
                raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                t = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
                owner = wait_for(lambda: socket_owners(s.port).get(("127.0.0.1", t.getsockname()[1])),
                                 10, "the connection in ss")
                return t, owner
            first, issuer = connect()
            session = first.session
            assert session is not None and not first.session_reused
            held, others = [], set()
            for _ in range(40):     # SO_REUSEPORT spreads connections over the 2 workers
                t, owner = connect(session)
                assert t.session_reused, "a ticket from worker pid %d not resumed on pid %d" % (issuer, owner)
                held.append(t)
                if owner != issuer:
                    others.add(owner)
                    break
            assert others, "no connection reached the other worker in 40 tries"
            assert metric(s, "certstream_edge_tls_resumed_total") == 3 + len(held)
            for t in held + [first]:
                t.close()
        with tls_server(certs, chain, key, workers=1, rate=20,
                        env={"CERTSTREAM_TLS_SESSION_TICKETS": "false"}) as s:
            assert s_client(s.port, certs.ca, "-sess_out", sess).startswith("New, TLSv1.2, ")
            assert s_client(s.port, certs.ca, "-sess_in", sess).startswith("New, TLSv1.2, ")
            assert metric(s, "certstream_edge_tls_resumed_total") == 0
    finally:
        certs.cleanup()


if __name__ == "__main__":
    sys.exit(server_run_cases(globals()))

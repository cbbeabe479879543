#!/usr/bin/env python3
"""End-to-end tests of the network edge's operational side, with the real
server over loopback: a stalled client (TLS or plain) with a backlog is
closed as too slow within the documented bound.

Usage: test_edge_ops.py CASE --server BIN --testdata DIR"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import HEARTBEAT, run_cases as server_run_cases, wait_for  # noqa: E402
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


def case_tls_ticket_rotation():
    """Ticket key rotation with tls.ticket_rotate_secs: 60 and 2 workers: a
    ticket issued in one period resumes after the key changed (the previous
    period's key, derived again from the key chain in whichever worker takes
    the connection); two periods later it gives a full handshake. Waits for
    the wall-clock minute boundaries (about 90 s)."""
    test_edge.ARGS = ARGS
    certs = Certs()
    try:
        chain, key, _ = certs.server_cert("s")
        sess = certs.p("session.pem")
        with tls_server(certs, chain, key, workers=2, rate=5,
                        env={"CERTSTREAM_TLS_TICKET_ROTATE_SECS": "60"}) as s:
            def after_boundary(period):
                while time.time() < (period + 1) * 60 + 1:
                    time.sleep(0.2)
            while int(time.time()) % 60 in (0, 58, 59):   # not right at a boundary
                time.sleep(0.2)
            issued = int(time.time()) // 60
            assert s_client(s.port, certs.ca, "-sess_out", sess).startswith("New, TLSv1.2, ")
            assert int(time.time()) // 60 == issued, "crossed a boundary while issuing"
            after_boundary(issued)
            # next period, session younger than 60 s: the previous key resumes it
            assert s_client(s.port, certs.ca, "-sess_in", sess).startswith("Reused, TLSv1.2, ")
            assert metric(s, "certstream_edge_tls_resumed_total") == 1
            after_boundary(issued + 1)
            # two periods on: that key is gone
            assert s_client(s.port, certs.ca, "-sess_in", sess).startswith("New, TLSv1.2, ")
            assert metric(s, "certstream_edge_tls_resumed_total") == 1
    finally:
        certs.cleanup()

# ------------------------------------------------------------- access log

def parse_line(line):
    """key=value fields of one access log line (values have no spaces)."""
    return dict(f.split("=", 1) for f in line.split(" "))


def read_lines(path, n, what):
    """The lines of the file other than the test harness's /health checks,
    once there are n of them."""
    def have():
        if not os.path.exists(path):
            return None
        lines = [ln for ln in open(path).read().splitlines() if " path=/health " not in ln]
        return lines if len(lines) >= n else None
    return wait_for(have, 15, what)


def raw_request(port, path, headers, ws=False):
    """Sends a request on a new plain socket; returns the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = "GET %s HTTP/1.1\r\nHost: x\r\n" % path
    if ws:
        req += ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n")
    else:
        req += "Connection: close\r\n"
    for k, v in headers.items():
        req += "%s: %s\r\n" % (k, v)
    sock.sendall((req + "\r\n").encode())
    return sock


def read_all(sock):
    out = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return out
        out += d


def ws_frames(buf):
    """(opcode, payload) of each complete frame in buf (server frames are unmasked)."""
    frames, i = [], 0
    while i + 2 <= len(buf):
        op, n, off = buf[i] & 0x0F, buf[i + 1] & 0x7F, 2
        if n == 126:
            n, off = struct.unpack(">H", buf[i + 2:i + 4])[0], 4
        elif n == 127:
            n, off = struct.unpack(">Q", buf[i + 2:i + 10])[0], 10
        if i + off + n > len(buf):
            break
        frames.append((op, buf[i + off:i + off + n]))
        i += off + n
    return frames


def case_access_log():
    """access_log to a file, with real clients: one line per finished
    connection with the exact fields. Behind a trusted proxy (X-Forwarded-For,
    X-Real-IP) the line names the real address and the proxy as peer; a
    WebSocket stream closed by the client (101: bytes and messages exactly as
    the client received them, ws_close 1000), an SSE stream the client
    leaves (200), a request refused by the allow-list (403) and by the rate
    limit (429) with the exact bytes of those answers; the token query
    parameter is not in the file. SIGHUP reopens the path after logrotate
    moved the file. With no path the lines go to the server's log."""
    test_edge.ARGS = ARGS
    d = tempfile.mkdtemp(prefix="cs-accesslog-")
    try:
        path = os.path.join(d, "access.log")
        yaml = ("trusted_proxies: 127.0.0.1\n"
                "access:\n  streams_allow: \"192.0.2.0/24, 198.51.100.0/24\"\n"
                "rate_limit:\n  connections_per_minute: 1\n  burst: 1\n"
                "auth:\n  enabled: true\n  tokens: [s3cr3t-t0ken]\n  allow_query_token: true\n"
                "access_log:\n  enabled: true\n  path: %s\n" % path)
        with server(workers=1, rate=50, extra_yaml=yaml) as s:
            t0 = time.time()
            # 101: a WebSocket from 192.0.2.7 through the proxy, closed by the client
            ws = raw_request(s.port, "/full-stream?x=1&token=s3cr3t-t0ken&y=%22z", {"X-Forwarded-For": "192.0.2.7"},
                             ws=True)
            got = b""
            while len([f for f in ws_frames(got.split(b"\r\n\r\n", 1)[-1]) if f[0] == 1]) < 5:
                got += ws.recv(65536)
            assert got.startswith(b"HTTP/1.1 101 "), got[:200]
            ws.sendall(bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2]))   # masked Close 1000
            got += read_all(ws)
            ws.close()
            frames = ws_frames(got.split(b"\r\n\r\n", 1)[1])
            msgs = [p for op, p in frames if op == 1 and not p.startswith(HEARTBEAT)]
            assert frames[-1] == (8, struct.pack(">H", 1000)), frames[-1]
            ws_bytes, ws_msgs = len(got), len(msgs)
            # 200: SSE from 192.0.2.8 (X-Real-IP); the client leaves after 3 events
            sse = raw_request(s.port, "/sse?token=s3cr3t-t0ken", {"X-Real-IP": "192.0.2.8"})
            body = b""
            while body.count(b"\n\n") < 4:           # the head's blank line + 3 events
                body += sse.recv(65536)
            sse.close()
            # 403: not in access.streams_allow
            r403 = read_all(raw_request(s.port, "/example.json", {"X-Forwarded-For": "203.0.113.9"}))
            assert r403.startswith(b"HTTP/1.1 403 "), r403
            # 200 then 429: the rate limit (1 a minute, burst 1) for 198.51.100.4
            r200 = read_all(raw_request(s.port, "/example.json", {"X-Forwarded-For": "198.51.100.4"}))
            r429 = read_all(raw_request(s.port, "/example.json", {"X-Forwarded-For": "198.51.100.4"}))
            assert r200.startswith(b"HTTP/1.1 200 ") and r429.startswith(b"HTTP/1.1 429 "), (r200[:80], r429)
            lines = read_lines(path, 5, "5 access log lines")
            t1 = time.time()
            assert len(lines) == 5, lines
            by = {}
            for ln in lines:
                f = parse_line(ln)
                by.setdefault(f["addr"], []).append(f)
            text = open(path).read()
            assert "s3cr3t" not in text, text
            wsl = by["192.0.2.7"][0]
            assert {k: wsl[k] for k in ("peer", "tls", "method", "path", "status", "bytes", "messages", "end",
                                        "ws_close", "requests")} == {
                "peer": "127.0.0.1", "tls": "0", "method": "GET", "path": "/full-stream?x=1&y=%22z",
                "status": "101", "bytes": str(ws_bytes), "messages": str(ws_msgs), "end": "client",
                "ws_close": "1000", "requests": "1"}, wsl
            assert ws_msgs >= 5
            ssel = by["192.0.2.8"][0]
            assert (ssel["path"], ssel["status"], ssel["end"], ssel["ws_close"]) == ("/sse", "200", "client", "-"), ssel
            assert int(ssel["messages"]) >= 3 and int(ssel["bytes"]) >= len(body), ssel
            f403 = by["203.0.113.9"][0]
            assert (f403["path"], f403["status"], f403["bytes"], f403["messages"], f403["end"]) == (
                "/example.json", "403", str(len(r403)), "0", "done"), f403
            f200, f429 = by["198.51.100.4"]
            assert (f200["status"], f200["bytes"], f200["end"]) == ("200", str(len(r200)), "done"), f200
            assert (f429["status"], f429["bytes"], f429["end"]) == ("429", str(len(r429)), "done"), f429
            for f in [wsl, ssel, f403, f200, f429]:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", f["time"]), f
                ts = time.mktime(time.strptime(f["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                assert t0 - 1 <= ts <= t1 + 1, (f["time"], t0, t1)
                assert 0 <= int(f["duration_ms"]) <= (t1 - t0) * 1000 + 1000, f
            # logrotate: the file is moved, SIGHUP, new lines go to a new file
            os.rename(path, path + ".1")
            os.kill(s.proc.pid, signal.SIGHUP)
            wait_for(lambda: os.path.exists(path), 15, "the access log reopened at its path")
            read_all(raw_request(s.port, "/example.json", {"X-Forwarded-For": "203.0.113.10"}))
            new = read_lines(path, 1, "a line in the new file")
            assert len(new) == 1 and parse_line(new[0])["addr"] == "203.0.113.10", new
            assert read_lines(path + ".1", 5, "the old lines") == lines
        # no path: the server's own log
        with server(workers=1, rate=50, extra_yaml="access_log:\n  enabled: true\n") as s:
            read_all(raw_request(s.port, "/example.json", {}))
            line = wait_for(lambda: re.search(r"access (time=\S+ addr=127\.0\.0\.1 .* path=/example\.json .*)", s.logtext()), 15,
                            "the access line in the server log").group(1)
            f = parse_line(line)
            assert (f["method"], f["path"], f["status"], f["end"]) == ("GET", "/example.json", "200", "done"), f
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(server_run_cases(globals()))

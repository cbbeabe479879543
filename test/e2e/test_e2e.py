#!/usr/bin/python3
"""End-to-end tests: the real certstream-server binary, replaying the golden
corpus, against real clients over loopback.

usage: test_e2e.py CASE --server BIN --testdata DIR [--lws-client BIN] [--node-dir DIR]
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server as server_mod  # noqa: E402
from server import FakeLog, Golden, Server, mask_seen, sse_connect, total, wait_for  # noqa: E402
from server import HEARTBEAT, collect_websocket_client, run_cases as server_run_cases  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None
PATHS = {"lite": "/", "full": "/full-stream", "domains": "/domains-only"}
ARGON_URL = "https://ct.googleapis.com/logs/us1/argon2026h2/"
NIMBUS_URL = "https://ct.cloudflare.com/logs/nimbus2026/"


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def collect_websockets(url, n, timeout=20):
    """python3-websockets (asyncio)."""
    import websockets

    async def run():
        out = []
        async with websockets.connect(url, max_size=None, open_timeout=timeout) as ws:
            while len(out) < n:
                m = await asyncio.wait_for(ws.recv(), timeout)
                m = m.encode() if isinstance(m, str) else m
                if not m.startswith(HEARTBEAT):
                    out.append(m)
        return out
    return asyncio.run(run())


def node(script, *args, timeout=30):
    env = dict(os.environ, NODE_PATH=os.path.join(ARGS.node_dir, "node_modules"))
    p = subprocess.run(["node", os.path.join(os.path.dirname(__file__), script)] + list(args),
                       capture_output=True, timeout=timeout, env=env)
    assert p.returncode == 0, "node %s failed (%d): %s" % (script, p.returncode, p.stderr.decode()[-2000:])
    return [l for l in p.stdout.split(b"\n") if l]


def parse_sse(raw):
    """-> list of (id, data bytes) from an SSE byte stream; comments ignored."""
    events, cur_id, data = [], None, []
    for line in raw.split(b"\n"):
        if line == b"":
            if data:
                events.append((cur_id, b"\n".join(data)))
            cur_id, data = None, []
        elif line.startswith(b":"):
            continue
        elif line.startswith(b"id: "):
            cur_id = int(line[4:])
        elif line.startswith(b"data: "):
            data.append(line[6:])
    return events


def curl_sse(port, stream, seconds, headers=()):
    cmd = ["curl", "-sN", "--max-time", str(seconds), "-D", "-"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("http://127.0.0.1:%d/sse?stream=%s" % (port, stream))
    p = subprocess.run(cmd, capture_output=True)
    assert p.returncode in (0, 28), "curl failed %d: %s" % (p.returncode, p.stderr)
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    return head.decode(), body


# ------------------------------------------------------------------- cases

def case_ws_websocket_client():
    with server(rate=100) as s:
        for fmt in ("lite", "full"):
            msgs = collect_websocket_client(s.url(PATHS[fmt]), 40)
            GOLDEN.check_sequence(fmt, msgs)
        msgs = collect_websocket_client(s.url("/domains-only/"), 30)
        GOLDEN.check_sequence("domains", msgs)


def case_ws_websockets():
    with server(rate=100) as s:
        for fmt in ("full", "lite", "domains"):
            msgs = collect_websockets(s.url(PATHS[fmt]), 35)
            GOLDEN.check_sequence(fmt, msgs)
        GOLDEN.check_sequence("full", collect_websockets(s.url("/full-stream/"), 5))


def case_ws_node():
    with server(rate=100) as s:
        for fmt in ("lite", "full", "domains"):
            msgs = node("ws_client.js", s.url(PATHS[fmt]), "30")
            GOLDEN.check_sequence(fmt, msgs)


def case_sse_eventsource():
    with server(rate=100) as s:
        for fmt, q in (("full", "full"), ("lite", "lite"), ("domains", "domains")):
            lines = node("sse_client.js", s.url("/sse?stream=" + q, "http"), "30")
            ids = [int(l.split(b" ", 1)[0]) for l in lines]
            msgs = [l.split(b" ", 1)[1] for l in lines]
            assert ids == sorted(ids) and len(set(ids)) == len(ids), "SSE ids not increasing: %r" % ids
            GOLDEN.check_sequence(fmt, msgs)


def case_sse_curl():
    with server(rate=100) as s:
        head, body = curl_sse(s.port, "lite", 1.5)
        assert "content-type: text/event-stream" in head.lower(), head
        assert "cache-control: no-cache" in head.lower(), head
        ev = parse_sse(body)
        assert len(ev) >= 50, "only %d events in 1.5 s at 100/s" % len(ev)
        GOLDEN.check_sequence("lite", [d for _, d in ev])
        # default stream is lite; domains-only alias
        _, body = curl_sse(s.port, "domains-only", 1)
        GOLDEN.check_sequence("domains", [d for _, d in parse_sse(body)])
        # Last-Event-ID: resume right after an event we saw
        _, body = curl_sse(s.port, "full", 1)
        ev = parse_sse(body)
        GOLDEN.check_sequence("full", [d for _, d in ev])
        mid_id = ev[len(ev) // 2][0]
        _, body = curl_sse(s.port, "full", 1, headers=["Last-Event-ID: %d" % mid_id])
        ev2 = parse_sse(body)
        want = [d for i, d in ev if i > mid_id]
        got = [d for _, d in ev2][:len(want)]
        assert got == want, "resume after id %d did not continue with the next events" % mid_id
        assert ev2[0][0] > mid_id


def case_lws_client():
    assert ARGS.lws_client and os.path.exists(ARGS.lws_client), "lws client binary missing"
    with server(rate=100) as s:
        for fmt in ("lite", "full", "domains"):
            p = subprocess.run([ARGS.lws_client, s.url(PATHS[fmt]), "30"], capture_output=True, timeout=30)
            assert p.returncode == 0, "lws client failed: %s" % p.stderr.decode()[-2000:]
            GOLDEN.check_sequence(fmt, [l for l in p.stdout.split(b"\n") if l])


def spread(workers):
    """Connections land on every fanout worker (SO_REUSEPORT): with 16 per
    worker, each of the `workers` worker processes holds some (the chance
    that a worker gets none is below 1e-7), and every client gets the
    exact stream."""
    with server(workers=workers, rate=100) as s:
        fanout = set(wait_for(lambda: len(s.role_pids("fanout")) == workers and s.role_pids("fanout"),
                              10, "%d fanout workers" % workers).values())
        assert s.health_deep()["workers"]["fanout"] == workers, s.health_deep()["workers"]
        n = 16 * workers
        clients = [WSRaw(s.port, "/") for _ in range(n)]
        ports = [c.sock.getsockname()[1] for c in clients]
        owners = wait_for(lambda: (lambda o: all(p in o for p in ports) and o)(s.socket_owners()), 10,
                          "ss to show all %d connections" % n)
        pids = {owners[p] for p in ports}
        assert pids == fanout, "connections on %r, fanout workers %r" % (sorted(pids), sorted(fanout))
        for c in clients:
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(15)])
            c.close()


def case_workers2():
    spread(2)


def case_workers4():
    spread(4)


def case_kill_worker():
    """SIGKILL of one fanout worker: its clients lose their connection, the
    other worker's clients keep streaming without a gap, the supervisor
    starts a new worker, and /metrics counts exactly one restart and one
    worker panic."""
    with server(workers=2, rate=100) as s:
        m0 = s.metrics()
        assert (m0["certstream_worker_panics"], total(m0, "certstream_process_restarts_total")) == (0, 0), m0
        clients = [WSRaw(s.port, "/") for _ in range(12)]
        ports = [c.sock.getsockname()[1] for c in clients]
        owners = wait_for(lambda: (lambda o: all(p in o for p in ports) and o)(s.socket_owners()), 10,
                          "ss to show the connections")
        by_pid = {}
        for c, p in zip(clients, ports):
            by_pid.setdefault(owners[p], []).append(c)
        assert len(by_pid) == 2, "expected both workers to hold clients: %r" % list(by_pid)
        victim, survivor = sorted(by_pid)
        before = {id(c): [c.recv_message() for _ in range(5)] for c in clients}
        os.kill(victim, signal.SIGKILL)
        for c in by_pid[victim]:
            c.sock.settimeout(10)
            try:
                while True:
                    c.recv_frame()
            except (EOFError, ConnectionResetError):
                pass
        for c in by_pid[survivor]:
            # the 5 read before the kill and 20 after: one contiguous run
            GOLDEN.check_sequence("lite", before[id(c)] + [c.recv_message() for _ in range(20)])
        wait_for(lambda: s.metric_total("certstream_process_restarts_total") == 1, 10, "the restart to be counted")
        new = wait_for(lambda: (lambda k: victim not in k and len(k) == 3 and k)(s.children()), 10,
                       "the supervisor to restart the worker")
        assert set(s.role_pids("fanout").values()) <= set(new) and victim not in s.role_pids("fanout").values()
        m = s.metrics()
        assert (m["certstream_worker_panics"],
                total(m, "certstream_process_restarts_total", role="fanout", cause="signal"),
                total(m, "certstream_process_restarts_total")) == (1, 1, 1), m
        for _ in range(6):
            c = WSRaw(s.port, "/")
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
            c.close()


def case_slow_client():
    """The buffer_size rule: a client whose socket is full while it is more
    than buffer_size messages behind gets close 1008 "client too slow" long
    before the half-ring rule could apply (checked: the ring head had not
    moved half a ring since it connected); a reading client on the same
    worker keeps receiving every message, in order, and is not dropped."""
    with server(rate=500, buffer_size=300) as s:    # default ring: 64 MiB
        ring = s.health_deep()["ring"]
        start, half = ring["tail"], ring["size"] // 2
        stalled = WSRaw(s.port, "/full-stream", rcvbuf=4096)
        good = WSRaw(s.port, "/", rcvbuf=1 << 20)
        got, err = [], []

        def reader():
            try:
                got.extend(good.recv_message() for _ in range(1500))
            except Exception as e:  # reported below
                err.append(e)
        t = threading.Thread(target=reader)
        t.start()
        try:
            def dropped():
                m = s.metrics()
                return total(m, "certstream_slow_client_drops_total") and m
            m = wait_for(dropped, 20, "the stalled client to be dropped", interval=0.02)
        finally:
            t.join(60)
        assert not err, "good client: %r" % err[0]
        assert total(m, "certstream_slow_client_drops_total") == 1, total(m, "certstream_slow_client_drops_total")
        moved = m["certstream_ring_head_sequence"] - start
        assert moved < half, "dropped only after the head moved %d bytes (half the ring: %d)" % (moved, half)
        code = stalled.expect_close(timeout=10)
        assert (code, stalled.close_reason) == (1008, b"client too slow"), (code, stalled.close_reason)
        GOLDEN.check_sequence("lite", got)
        GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(100)])
        assert s.metric_total("certstream_slow_client_drops_total") == 1


def raw_http(port, data, read_timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out


def case_bad_input():
    yaml = "limits:\n  request_timeout_secs: 2\n  max_frame_bytes: 1024\n  max_message_bytes: 2048\n"
    with server(rate=50, extra_yaml=yaml) as s:
        good = WSRaw(s.port, "/")
        r = raw_http(s.port, b"\x16\x03\x01garbage\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 400"), r[:100]
        r = raw_http(s.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 431") or r.startswith(b"HTTP/1.1 400"), r[:100]
        r = raw_http(s.port, b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 405"), r[:100]
        # slowloris: half a request, then silence -> closed by the server
        t0 = time.time()
        sl = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sl.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            d = sl.recv(4096)
            while d:
                d = sl.recv(4096)
        except ConnectionResetError:
            pass
        dt = time.time() - t0
        # request_timeout_secs 2: never sooner, and not much later
        assert 1.9 <= dt <= 2 + 4 * server_mod.time_scale(), "slowloris connection closed after %.1f s" % dt
        sl.close()
        # unmasked client frame -> 1002
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(1, b"hello", mask=False))
        assert c.expect_close() == 1002
        # oversized frame -> 1009
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(2, b"x" * 4096))
        assert c.expect_close() == 1009
        # invalid close code -> 1002
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(8, struct.pack(">H", 999)))
        assert c.expect_close() == 1002
        # valid close -> echoed
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(8, struct.pack(">H", 1000) + b"bye"))
        assert c.expect_close() == 1000
        # fragmented client text messages are reassembled: a character split
        # across fragments is valid UTF-8, a Ping between fragments is
        # answered, and the stream continues
        c = WSRaw(s.port, "/")
        euro = "\u20ac".encode()
        c.send(WSRaw.frame(1, b"h" + euro[:1], fin=False) + WSRaw.frame(9, b"mid") +
               WSRaw.frame(0, euro[1:] + b"llo", fin=True))
        while True:
            fin, op, p = c.recv_frame()
            assert op != 8, "closed: %r" % p
            if op == 10:
                assert p == b"mid"
                break
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
        # ... the reassembled message is what is checked: invalid UTF-8 only
        # in the whole (E2 82 then "A") -> 1007
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(1, b"x" + euro[:2], fin=False) + WSRaw.frame(0, b"A", fin=True))
        assert c.expect_close() == 1007
        # ... and its size: three 1000-byte fragments (each under
        # max_frame_bytes) exceed max_message_bytes 2048 -> 1009
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(1, b"a" * 1000, fin=False) + WSRaw.frame(0, b"b" * 1000, fin=False) +
               WSRaw.frame(0, b"c" * 1000, fin=True))
        assert c.expect_close() == 1009
        # a continuation with no message started -> 1002
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(0, b"orphan", fin=True))
        assert c.expect_close() == 1002
        # everyone else unaffected
        assert s.http("/health")[0] == 200
        GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(20)])


def case_keepalive():
    """WebSocket heartbeats every websocket_heartbeat_secs (timed), server
    Pings answered, client Pings echoed, a silent client closed after
    idle_timeout_secs; SSE ":heartbeat" comments only after
    sse_heartbeat_secs without an event (timed), never while events flow."""
    scale = server_mod.time_scale()
    yaml = ("keepalive:\n  websocket_heartbeat_secs: 1\n  ping_interval_secs: 1\n"
            "  idle_timeout_secs: 3\n  sse_heartbeat_secs: 1\n")
    with server(rate=2, extra_yaml=yaml) as s:
        c = WSRaw(s.port, "/")
        hb_at, seen_ping, got_pong = [], False, False
        c.send(WSRaw.frame(9, b"are you there"))
        deadline = time.time() + 10 * scale
        while time.time() < deadline and not (len(hb_at) >= 4 and seen_ping and got_pong):
            fin, op, p = c.recv_frame()
            if op == 1 and p.startswith(HEARTBEAT):
                hb = json.loads(p)
                assert set(hb) == {"message_type", "timestamp"} and isinstance(hb["timestamp"], float), hb
                assert abs(hb["timestamp"] - time.time()) < 5, "heartbeat timestamp %r" % hb["timestamp"]
                hb_at.append(time.monotonic())
            elif op == 9:
                seen_ping = True
                c.send(WSRaw.frame(10, p))
            elif op == 10:
                assert p == b"are you there"
                got_pong = True
        assert len(hb_at) >= 4 and seen_ping and got_pong, (len(hb_at), seen_ping, got_pong)
        gaps = [b - a for a, b in zip(hb_at, hb_at[1:])]
        # a timer of 1 s: never sooner (0.1 s for scheduling), not much later
        assert all(0.9 <= g <= 1.0 + 0.5 * scale for g in gaps), "heartbeat gaps %r" % gaps
        # a client that answers nothing is closed after idle_timeout_secs
        silent = WSRaw(s.port, "/")
        t0 = time.time()
        code = silent.expect_close(timeout=10 * scale)
        dt = time.time() - t0
        assert 2.9 <= dt <= 3 + 2 * scale, "silent client closed after %.1f s (code %r)" % (dt, code)
        # SSE while events flow (every 0.5 s) faster than sse_heartbeat_secs: no heartbeat
        _, body = curl_sse(s.port, "lite", 2.5)
        assert len(parse_sse(body)) >= 3 and b":heartbeat" not in body, body[:300]
    # SSE: after the replay ends, a ":heartbeat" comment each time
    # sse_heartbeat_secs (2) pass without anything sent (checked once a second)
    yaml = yaml.replace("sse_heartbeat_secs: 1", "sse_heartbeat_secs: 2")
    with server(rate=100, loop=False, extra_yaml=yaml) as s:
        wait_for(lambda: s.metric("certstream_entries_published_total") == 28, 10, "the 28 entries to be out")
        sk, body = sse_connect(s.port, "lite")
        t0 = time.monotonic()
        beats = []
        sk.settimeout(1)
        while time.monotonic() - t0 < 6.5:
            try:
                d = sk.recv(65536)
            except socket.timeout:
                continue
            assert d, "SSE stream ended"
            body += d
            beats += [time.monotonic() - t0] * d.count(b":heartbeat\n\n")
        sk.close()
        assert parse_sse(body) == [], "no events expected after the replay ended"
        assert body.replace(b":heartbeat\n\n", b"") == b"", body[:200]
        gaps = [b - a for a, b in zip([0.0] + beats, beats)]
        assert 2 <= len(beats) <= 3, "heartbeats at %r" % beats
        assert all(1.9 <= g <= 3.1 + scale for g in gaps), "heartbeats at %r" % beats


def split_latest(body):
    """The exact bytes of each message inside {"messages":[...]}."""
    text = body.decode()
    prefix = '{"messages":['
    assert text.startswith(prefix) and text.endswith("]}"), text[:80]
    dec, i, out = json.JSONDecoder(), len(prefix), []
    while text[i] != "]":
        _, end = dec.raw_decode(text, i)
        out.append(text[i:end].encode())
        i = end + (1 if text[end] == "," else 0)
    return out


def case_endpoints():
    with server(rate=100) as s:
        wait_for(lambda: s.metric("certstream_entries_published_total", 0) >= 30, 10, "30 messages published")
        st, h, b = s.http("/health")
        assert st == 200 and b == b"OK"
        st, h, b = s.http("/health/deep")
        d = json.loads(b)
        for k in ("status", "logs_healthy", "logs_degraded", "logs_unhealthy", "logs_total",
                  "active_connections", "uptime_secs"):
            assert k in d, "health/deep lacks %s: %r" % (k, d)
        assert d["status"] == "healthy" and d["logs_total"] == 2 and st == 200, d
        c = WSRaw(s.port, "/")
        c.recv_message()
        d = json.loads(s.http("/health/deep")[2])
        assert d["active_connections"] >= 1, d
        st, h, b = s.http("/metrics")
        assert st == 200 and "text/plain" in h.get("Content-Type", h.get("content-type", ""))
        metrics = {}
        for line in b.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, val = line.rpartition(" ")
                metrics[key] = float(val)
        for name in ("certstream_worker_panics", "certstream_slow_client_drops_total",
                     "certstream_process_restarts_total"):
            assert total(metrics, name) == 0, "%s: %r" % (name, total(metrics, name))
        assert total(metrics, "certstream_client_messages_sent_total") >= 1, "no message counted as sent"
        assert total(metrics, "certstream_clients", protocol="websocket", stream="lite") >= 1, \
            "the open lite WebSocket client is not counted"
        assert metrics.get("certstream_ring_head_sequence", 0) > 0
        for path, fmt in (("/example.json", "lite"), ("/full-stream/example.json", "full"),
                          ("/domains-only/example.json", "domains")):
            st, h, b = s.http(path)
            assert st == 200, path
            exp = GOLDEN.expected[fmt]
            assert (mask_seen(b) if fmt != "domains" else b) in exp, "%s is not a replayed message" % path
            if fmt != "domains":  # a message of this run, not the built-in sample
                assert b'"seen":1700000000.0' not in b, "%s still serves the built-in sample" % path
        st, h, b = s.http("/latest.json")
        msgs = split_latest(b)
        assert len(msgs) == 25, "/latest.json holds %d messages after 30+ were published" % len(msgs)
        # newest first: reversed, they are a contiguous run of the replay, byte for byte
        GOLDEN.check_sequence("lite", list(reversed(msgs)))
        st, h, b = s.http("/nope")
        assert st == 404 and json.loads(b) == {"error": "Not Found"}
        assert "application/json" in h.get("Content-Type", h.get("content-type", ""))
        st, h, b = s.http("/full-stream")
        assert st == 426 and b"full-stream" in b, (st, b)


def case_auth_and_limits():
    yaml = ("auth:\n  enabled: true\n  tokens: [\"s3cret\", \"other\"]\n"
            "connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 3\n")
    with server(rate=50, extra_yaml=yaml) as s:
        c = WSRaw(s.port, "/")
        assert c.status == 401, c.head
        c = WSRaw(s.port, "/", headers={"Authorization": "Bearer wrong"})
        assert c.status == 401
        st, _, _ = s.http("/latest.json")
        assert st == 401
        assert s.http("/health")[0] == 200 and s.http("/metrics")[0] == 200
        assert s.http("/example.json")[0] == 200
        assert s.http("/latest.json", headers={"Authorization": "s3cret"})[0] == 200
        ok = [WSRaw(s.port, "/", headers={"Authorization": "Bearer s3cret"}) for _ in range(3)]
        assert all(c.status == 101 for c in ok)
        extra = WSRaw(s.port, "/", headers={"Authorization": "other"})
        assert extra.status == 429, extra.head
        ok[0].close()
        wait_for(lambda: s.metric_total("certstream_clients", protocol="websocket", stream="lite") == 2, 10,
                 "the closed connection to be released")
        again = WSRaw(s.port, "/", headers={"Authorization": "other"})
        assert again.status == 101, again.head
        GOLDEN.check_sequence("lite", [again.recv_message() for _ in range(5)])


def case_sigterm():
    with server(workers=2, rate=50) as s:
        ws = [WSRaw(s.port, p) for p in ("/", "/full-stream", "/domains-only")]
        for c in ws:
            c.recv_message()
        sse = subprocess.Popen(["curl", "-sN", "--max-time", "20", s.url("/sse", "http")],
                               stdout=subprocess.PIPE)
        wait_for(lambda: s.metric_total("certstream_clients", protocol="sse", stream="lite") == 1, 10,
                 "the SSE client to be streaming")
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        for c in ws:
            assert c.expect_close(timeout=5) == 1001
        out, _ = sse.communicate(timeout=10)
        assert sse.returncode == 0, "SSE response did not end cleanly (curl %d)" % sse.returncode
        rc = s.proc.wait(10)
        assert rc == 0, "exit status %d\n%s" % (rc, s.logtext())
        assert time.time() - t0 < 6 * server_mod.time_scale(), "shutdown took %.1f s" % (time.time() - t0)


def case_offline_default():
    """No --replay and no reachable log list (as on a box without network):
    the server still starts, answers /health, and reports the logs unhealthy."""
    yaml = "ct_logs_url: http://127.0.0.1:9/all_logs_list.json\n"
    with server(replay=False, extra_yaml=yaml, env={"CERTSTREAM_CT_LOG_REQUEST_TIMEOUT_SECS": "2"}) as s:
        st, _, b = wait_for(lambda: (lambda r: json.loads(r[2])["logs_unhealthy"] >= 1 and r)(
            s.http("/health/deep")), 15, "the logs to be reported unhealthy", interval=0.2)
        d = json.loads(b)
        assert st == 503 and d["status"] == "unhealthy", (st, d)
        assert s.http("/health") == (200, s.http("/health")[1], b"OK")
        c = WSRaw(s.port, "/")
        assert c.status == 101
        c.close()
        assert s.proc.poll() is None, "server exited"
    assert s.proc.returncode == 0, s.logtext()


def case_reload():
    """SIGHUP and hot_reload re-read and validate the configuration; a bad edit
    is refused with file, line and key, and the server keeps serving: same
    processes, no restart, an open client streams on without a gap."""
    with server(rate=50, extra_yaml="hot_reload:\n  enabled: true\n") as s:
        c = WSRaw(s.port, "/")
        got = [c.recv_message() for _ in range(3)]
        kids = sorted(s.children())   # after messages arrive: the replay child exists by then
        time.sleep(1.1)   # the file's mtime has a 1 s granularity on some file systems
        with open(s.config, "a") as f:
            f.write("workers: lots\n")
        wait_for(lambda: "hot_reload: configuration refused" in s.logtext(), 10, "hot_reload to refuse the edit")
        log = s.logtext()
        n = open(s.config).read().count("\n")
        assert re.search(r"config\.yaml:%d\b.*workers" % n, log), log
        with open(s.config) as f:
            good = f.read().replace("workers: lots\n", "")
        with open(s.config, "w") as f:
            f.write(good)
        wait_for(lambda: "is valid" in s.logtext().split("refused")[-1], 10, "hot_reload to accept the fix")
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration" in s.logtext(), 10, "SIGHUP to be handled")
        assert "SIGHUP: configuration %s is valid" % s.config in s.logtext(), s.logtext()
        got += [c.recv_message() for _ in range(50)]
        GOLDEN.check_sequence("lite", got)
        assert s.proc.poll() is None and sorted(s.children()) == kids, (kids, s.children())
        assert s.metric_total("certstream_process_restarts_total") == 0
        GOLDEN.check_sequence("lite", [WSRaw(s.port, "/").recv_message() for _ in range(1)])


def case_replay_get_entries():
    """--replay of a plain get-entries response (no log identity): entries
    replayed as log "Replay" with indexes from 0; each certificate's fields
    are the fixture's own."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cs-e2e-") as d:
        replay_get_entries(os.path.join(d, "entries.json"))


def replay_get_entries(path):
    with open(path, "w") as f:
        json.dump({"entries": [{"leaf_input": r["leaf_input"], "extra_data": r["extra_data"]}
                               for r in GOLDEN.records]}, f)
    with server(rate=100, replay=path) as s:
        c = WSRaw(s.port, "/")
        for _ in range(40):
            m = json.loads(c.recv_message())["data"]
            i = m["cert_index"]
            want = json.loads(GOLDEN.records[i]["expected_lite"])["data"]
            assert m["leaf_cert"] == want["leaf_cert"], "entry %d: leaf_cert differs" % i
            assert m["update_type"] == want["update_type"]
            assert m["source"] == {"name": "Replay", "url": "https://replay.invalid/entries.json"}, m["source"]
            assert m["cert_link"].endswith("/ct/v1/get-entries?start=%d&end=%d" % (i, i)), m["cert_link"]


def case_check_config():
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cs-e2e-") as d:
        check_config(d)


def check_config(d):
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("port: 8080\nworkers: lots\n")
    p = subprocess.run([ARGS.server, "--check-config", "--config", bad], capture_output=True, text=True)
    assert p.returncode == 2, p
    assert "bad.yaml:2" in p.stderr and "workers" in p.stderr, p.stderr
    good = os.path.join(d, "good.yaml")
    with open(good, "w") as f:
        f.write("port: 9999\n")
    p = subprocess.run([ARGS.server, "--check-config", "--config", good], capture_output=True, text=True)
    assert p.returncode == 0 and "9999" in p.stdout, p
    p = subprocess.run([ARGS.server, "--replay", "/nonexistent.json"], capture_output=True, text=True,
                       env=dict(os.environ, CERTSTREAM_PORT="1"), timeout=10)
    assert p.returncode == 2 and "nonexistent" in p.stderr, p


# ------------------------------------------------- following the fake CT log

def golden_of(url):
    """{cert_index: record} of the golden corpus for one log."""
    return {int(r["cert_index"]): r for r in GOLDEN.records if r["log_url"] == url}


def follow_server(fl, **kw):
    """A server that follows the fake log's log list (no --replay)."""
    ct = {"poll_interval_ms": 100, "retry_initial_delay_ms": 50, "retry_max_delay_ms": 400,
          "operator_rate_limit_ms": 0, "batch_size": 8}
    ct.update(kw.pop("ct_log", {}))
    env = {"CERTSTREAM_CT_LOGS_URL": fl.url("/loglist.json")}
    env.update(kw.pop("env", {}))
    return server(replay=False, ct_log=ct, env=env, **kw)


def log_positions(s):
    """{log url: next_index} from /health/deep."""
    return {l["url"]: l["next_index"] for l in s.health_deep()["logs"]}


def wait_positions(s, want, timeout=30):
    last = [None]

    def reached():
        last[0] = log_positions(s)
        return last[0] == want
    try:
        wait_for(reached, timeout, "log positions %r" % want)
    except AssertionError as e:
        raise AssertionError("%s; last seen %r" % (e, last[0]))


def latest_lite(s):
    """The messages of /latest.json, decoded, oldest first."""
    st, _, body = s.http("/latest.json")
    assert st == 200, st
    return [json.loads(m)["data"] for m in reversed(split_latest(body))]


def check_against_golden(msgs, url_of_source, golden, indexes):
    """msgs (decoded lite data) must be exactly the golden records at indexes,
    in order, each with the fixture's certificate fields."""
    got = [m["cert_index"] for m in msgs]
    assert got == indexes, "published cert_index %r, want %r" % (got, indexes)
    for m in msgs:
        want = json.loads(golden[m["cert_index"]]["expected_lite"])["data"]
        assert m["leaf_cert"] == want["leaf_cert"], "index %d: leaf_cert differs" % m["cert_index"]
        assert m["update_type"] == want["update_type"], m["cert_index"]
        assert m["source"]["url"] == url_of_source, m["source"]


def case_state_file():
    """The supervisor saves each log's position to ct_log.state_file at exit
    and a restart continues from it: entries that appeared while the server
    was down are published, nothing twice."""
    argon, nimbus = golden_of(ARGON_URL), golden_of(NIMBUS_URL)
    a0, n0 = min(argon), min(nimbus)
    args = ["--golden", "a=" + ARGON_URL, "--golden", "b=" + NIMBUS_URL, "--size", "a=10", "--size", "b=10"]
    with FakeLog(ARGS.testdata, args) as fl:
        ua, ub = fl.url("/a/"), fl.url("/b/")
        with follow_server(fl) as s:
            # no saved position: each log starts at its tree size
            wait_positions(s, {ua: a0 + 10, ub: n0 + 10})
            fl.control("size", log="a", size=15)
            wait_positions(s, {ua: a0 + 15, ub: n0 + 10})
            first = [i for i in sorted(argon) if a0 + 10 <= i < a0 + 15]
            wait_for(lambda: s.metric("certstream_entries_published_total") == len(first), 10,
                     "%d entries published" % len(first))
            check_against_golden(latest_lite(s), ua, argon, first)
            assert s.stop() == 0, s.logtext()
            with open(s.state_file) as f:
                state = json.load(f)
            assert state == {"logs": {ua: {"next_index": a0 + 15, "tree_size": a0 + 15},
                                      ub: {"next_index": n0 + 10, "tree_size": n0 + 10}}}, state
            # the logs grow while the server is down; the restart resumes
            fl.control("size", log="a", size=20)
            fl.control("size", log="b", size=20)
            s.start()
            wait_positions(s, {ua: a0 + 20, ub: n0 + 20})
            more_a = [i for i in sorted(argon) if i >= a0 + 15]
            more_b = [i for i in sorted(nimbus) if i >= n0 + 10]
            wait_for(lambda: s.metric("certstream_entries_published_total") == len(more_a) + len(more_b), 10,
                     "%d entries published after the restart" % (len(more_a) + len(more_b)))
            msgs = latest_lite(s)
            check_against_golden([m for m in msgs if m["source"]["url"] == ua], ua, argon, more_a)
            check_against_golden([m for m in msgs if m["source"]["url"] == ub], ub, nimbus, more_b)
            assert s.stop() == 0
            with open(s.state_file) as f:
                state = json.load(f)
            assert state["logs"][ua]["next_index"] == a0 + 20 and state["logs"][ub]["next_index"] == n0 + 20, state


def case_dedup():
    """Two logs serving the same certificates, each followed by its own ingest
    process: every certificate is published once (the shared dedup table of
    the real server), the other copy counted in certstream_duplicates_filtered."""
    argon = golden_of(ARGON_URL)
    a0 = min(argon)
    args = ["--golden", "a=" + ARGON_URL, "--golden", "b=" + ARGON_URL, "--size", "a=0", "--size", "b=0"]
    with FakeLog(ARGS.testdata, args) as fl:
        ua, ub = fl.url("/a/"), fl.url("/b/")
        with follow_server(fl) as s:
            wait_positions(s, {ua: a0, ub: a0})
            assert s.health_deep()["workers"]["ingest"] == 2, s.health_deep()
            fl.control("size", log="a", size=20)
            fl.control("size", log="b", size=20)
            wait_positions(s, {ua: a0 + 20, ub: a0 + 20})
            n = len(argon)
            # every entry of both logs is either published or dropped as a duplicate
            m = wait_for(lambda: (lambda m: m.get("certstream_entries_published_total", 0) +
                                  m.get("certstream_duplicates_filtered", 0) >= 2 * n and m)(s.metrics()),
                         10, "%d entries published or dropped" % (2 * n))
            assert (m["certstream_entries_published_total"], m["certstream_duplicates_filtered"]) == (n, n), \
                "published %d, dropped as duplicates %d; want %d and %d" % (
                    m["certstream_entries_published_total"], m["certstream_duplicates_filtered"], n, n)
            msgs = latest_lite(s)
            assert sorted(x["cert_index"] for x in msgs) == sorted(argon), [x["cert_index"] for x in msgs]
            for x in msgs:
                assert x["source"]["url"] in (ua, ub), x["source"]
                want = json.loads(argon[x["cert_index"]]["expected_lite"])["data"]
                assert x["leaf_cert"] == want["leaf_cert"], x["cert_index"]


def sse_read(sk, body, n_events, timeout=10):
    """Reads until n_events complete events; returns parse_sse of them."""
    sk.settimeout(timeout)
    while body.count(b"\n\n") < n_events:
        d = sk.recv(65536)
        assert d, "SSE stream ended"
        body += d
    return parse_sse(body)[:n_events]


def case_sse_resume_overwritten():
    """docs/wire-format.md: a Last-Event-ID already overwritten in the ring
    (or whose memory the ring gave back) resumes at the oldest intact
    message, not live. docs/configuration.md (ring_size): the ring keeps the
    last 3/4 + 1/16 of its size when the byte bound is the one that applies
    (here: 1 MiB at ~360 KB/s, under the 10 s bound), at most 7/8 of it
    (ring_oldest_position), and /health/deep says where that is."""
    with server(rate=100, ring_size=1 << 20) as s:
        sk, body = sse_connect(s.port, "lite")
        old_id = sse_read(sk, body, 1)[0][0]
        sk.close()
        size = s.health_deep()["ring"]["size"]
        keep = size * 3 // 4 + size // 16
        wait_for(lambda: s.health_deep()["ring"]["tail"] - size > old_id + 65536, 30,
                 "the ring to overwrite id %d" % old_id)
        r1 = s.health_deep()["ring"]
        sk, body = sse_connect(s.port, "full", old_id)
        r2 = s.health_deep()["ring"]
        ev = sse_read(sk, body, 20)
        sk.close()
        first = ev[0][0]
        for r in (r1, r2):
            # the kept history: at least the byte bound (records are
            # < 16 KiB), at most 7/8 of the ring (the supervisor gives pages
            # back every 100 ms: it may be a few records late)
            assert r["tail"] - size + size // 8 <= r["oldest"] <= r["tail"] - keep + 16384, (r, keep)

        def given_back():
            r = s.health_deep()["ring"]
            return r["oldest"] > r["tail"] - size + size // 8 + 16384
        # and the ring does give back what is older than the bound
        wait_for(given_back, 20, "the oldest kept record to move past 7/8 of the ring", interval=0.02)
        # the oldest intact message at the moment of the request: the first
        # record at or after the oldest position (records are < 16 KiB)
        assert r1["oldest"] <= first <= r2["oldest"] + 16384, \
            "resumed at %d; oldest intact was between %d and %d (live %d)" % (
                first, r1["oldest"], r2["oldest"], r2["tail"])
        ids = [i for i, _ in ev]
        assert ids == sorted(set(ids)), ids
        GOLDEN.check_sequence("full", [d for _, d in ev])


def case_limits_workers():
    """connection_limit is shared by all fanout workers (shared memory): the
    total and the per-IP limit hold across 4 workers, and a closed
    connection gives its place back."""
    yaml = "connection_limit:\n  enabled: true\n  max_connections: 6\n  per_ip_limit: 6\n"
    with server(workers=4, rate=50, extra_yaml=yaml) as s:
        ok = [WSRaw(s.port, "/") for _ in range(6)]
        assert [c.status for c in ok] == [101] * 6, [c.status for c in ok]
        ports = [c.sock.getsockname()[1] for c in ok]
        owners = wait_for(lambda: (lambda o: all(p in o for p in ports) and o)(s.socket_owners()), 10, "ss")
        assert len({owners[p] for p in ports}) >= 2, "all on one worker: the test shows nothing"
        for _ in range(8):  # each lands on some worker: every one refuses
            extra = WSRaw(s.port, "/full-stream")
            assert extra.status == 429, extra.head
            extra.close()
        st, _, _ = s.http("/health")
        assert st == 200, "the small endpoints are not counted"
        assert s.metric_total("certstream_handshake_failures_total", reason="connection_limit") == 8
        ok[0].close()
        wait_for(lambda: s.health_deep()["active_connections"] == 5, 10, "the closed connection to be released")
        again = WSRaw(s.port, "/domains-only")
        assert again.status == 101, again.head
        GOLDEN.check_sequence("domains", [again.recv_message() for _ in range(3)])
        assert WSRaw(s.port, "/").status == 429
    # per IP: 127.0.0.1 may hold 3, whichever worker accepts them
    yaml = "connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 3\n"
    with server(workers=4, rate=50, extra_yaml=yaml) as s:
        ok = [WSRaw(s.port, "/") for _ in range(3)]
        assert [c.status for c in ok] == [101] * 3
        for _ in range(8):
            assert WSRaw(s.port, "/").status == 429
        ok[1].close()
        wait_for(lambda: s.health_deep()["active_connections"] == 2, 10, "the release")
        assert WSRaw(s.port, "/").status == 101


def case_auth_header():
    """auth.header_name: the token is read from that header only."""
    yaml = "auth:\n  enabled: true\n  tokens: [\"s3cret\"]\n  header_name: X-Api-Key\n"
    with server(rate=50, extra_yaml=yaml) as s:
        assert WSRaw(s.port, "/", headers={"Authorization": "Bearer s3cret"}).status == 401
        assert WSRaw(s.port, "/", headers={"X-Api-Key": "wrong"}).status == 401
        assert WSRaw(s.port, "/", headers={"X-Api-Key": "s3cre"}).status == 401
        assert WSRaw(s.port, "/", headers={"X-Api-Key": "s3cret2"}).status == 401
        c = WSRaw(s.port, "/", headers={"x-api-key": "s3cret"})   # header names are case-insensitive
        assert c.status == 101, c.head
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
        assert s.http("/latest.json", headers={"X-Api-Key": "s3cret"})[0] == 200
        assert s.http("/latest.json", headers={"Authorization": "s3cret"})[0] == 401
        head, body = curl_sse(s.port, "lite", 1, headers=["X-Api-Key: s3cret"])
        assert head.startswith("HTTP/1.1 200"), head
        assert s.metric_total("certstream_handshake_failures_total", reason="unauthorized") == 5


def case_kill_ingest():
    """kill -9 of an ingest process of the real server: the supervisor
    restarts it and it resumes from the position in shared memory: every
    entry of the log published exactly once, in order."""
    argon = golden_of(ARGON_URL)
    a0 = min(argon)
    with FakeLog(ARGS.testdata, ["--golden", "a=" + ARGON_URL, "--size", "a=0"]) as fl:
        ua = fl.url("/a/")
        with follow_server(fl) as s:
            wait_positions(s, {ua: a0})
            fl.control("size", log="a", size=10)
            wait_positions(s, {ua: a0 + 10})
            first = [i for i in sorted(argon) if i < a0 + 10]
            wait_for(lambda: s.metric("certstream_entries_published_total") == len(first), 10, "the first entries")
            ingest = s.role_pids("ingest")
            assert len(ingest) == 1, ingest
            victim = ingest[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: s.metric_total("certstream_process_restarts_total", role="ingest") == 1, 10,
                     "the ingest restart")
            wait_for(lambda: s.role_pids("ingest").get(0, victim) != victim, 10, "a new ingest process")
            fl.control("size", log="a", size=20)
            wait_positions(s, {ua: a0 + 20})
            wait_for(lambda: s.metric("certstream_entries_published_total") >= len(argon), 10, "all entries")
            # let a poll or two pass: nothing more may come
            n = fl.stats().get("a sth", 0)
            wait_for(lambda: fl.stats().get("a sth", 0) >= n + 2, 10, "two more polls")
            assert s.metric("certstream_entries_published_total") == len(argon), s.metric("certstream_entries_published_total")
            check_against_golden(latest_lite(s), ua, argon, sorted(argon))


def proc_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def case_supervisor_dies():
    """SIGKILL of the supervisor: its children (fanout workers, the replay
    producer) exit too, the port is closed, clients see the end."""
    with server(workers=2, rate=50) as s:
        kids = wait_for(lambda: len(s.children()) == 3 and s.children(), 10, "3 children")
        c = WSRaw(s.port, "/")
        c.recv_message()
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
        wait_for(lambda: not any(proc_alive(k) for k in kids), 10,
                 "the children %r to exit after the supervisor" % kids)
        c.sock.settimeout(10)
        try:
            while True:
                c.recv_frame()
        except (EOFError, ConnectionResetError):
            pass
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            raise AssertionError("port %d still accepts connections" % s.port)
        except ConnectionRefusedError:
            pass


def case_tile_partial_gone():
    """static-ct-api: the checkpoint says 778 but the log already has the
    full tile 3, so the partial tile 3.p/10 is gone (404): the server asks for
    the full tile instead and publishes entries 768..777 from it, then the
    rest once the checkpoint moves on; every entry once, in order, with the
    fields of navigli2025h2.computed/expected_entries.jsonl."""
    path = os.path.join(ARGS.testdata, "static-ct", "navigli2025h2.computed", "expected_entries.jsonl")
    with open(path) as f:
        expected = {e["leaf_index"]: e for e in map(json.loads, f)}
    args = ["--tiled", "navigli=static-ct/navigli2025h2", "--size", "navigli=768"]
    with FakeLog(ARGS.testdata, args) as fl:
        u = fl.url("/navigli/")
        with follow_server(fl) as s:
            wait_positions(s, {u: 768})
            c = WSRaw(s.port, "/")
            fl.control("checkpoint", log="navigli", size=778)
            fl.control("size", log="navigli", size=1024)
            wait_positions(s, {u: 778}, timeout=10)
            assert fl.stats().get("navigli tile", 0) >= 2, fl.stats()
            fl.control("checkpoint", log="navigli", size="live")
            wait_positions(s, {u: 1024})
            msgs = [json.loads(c.recv_message())["data"] for _ in range(256)]
            assert [m["cert_index"] for m in msgs] == list(range(768, 1024)), [m["cert_index"] for m in msgs]
            for m in msgs:
                e = expected[m["cert_index"]]
                assert m["source"]["url"] == u, m["source"]
                if e.get("subject_cn"):
                    assert m["leaf_cert"]["subject"].get("CN") == e["subject_cn"], (m["cert_index"], e)
                assert set(e["dns_names"]) <= set(m["leaf_cert"]["all_domains"]), (m["cert_index"], e["dns_names"])
            wait_for(lambda: s.metric("certstream_entries_published_total") == 256, 10, "256 entries published")
            m = s.metrics()
            assert any(k.startswith("certstream_log_request_failures_total{") for k in m), sorted(m)
            assert total(m, "certstream_log_request_failures_total") == 0, "the gone partial tile counted as a failure"


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "lws-client", "node-dir"))

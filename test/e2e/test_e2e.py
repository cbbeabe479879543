#!/usr/bin/python3
"""End-to-end tests: the real certstream-server binary, replaying the golden
corpus, against real clients over loopback.

usage: test_e2e.py CASE --server BIN --testdata DIR [--lws-client BIN] [--node-dir DIR]
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import argparse
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
from server import Golden, Server, mask_seen  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None
PATHS = {"lite": "/", "full": "/full-stream", "domains": "/domains-only"}
HEARTBEAT = b'{"message_type":"heartbeat"'


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def collect_websocket_client(url, n, timeout=20):
    """python3-websocket (websocket-client), synchronous."""
    import websocket
    ws = websocket.create_connection(url, timeout=timeout)
    out = []
    try:
        while len(out) < n:
            m = ws.recv()
            m = m.encode() if isinstance(m, str) else m
            if not m.startswith(HEARTBEAT):
                out.append(m)
    finally:
        ws.close()
    return out


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
        time.sleep(0.5)
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
    with server(workers=workers, rate=100) as s:
        n = 8 * workers
        clients = [WSRaw(s.port, "/") for _ in range(n)]
        time.sleep(0.3)
        owners = s.socket_owners()
        ports = [c.sock.getsockname()[1] for c in clients]
        pids = {owners.get(p) for p in ports}
        assert None not in pids, "ss did not show every connection: %r" % owners
        assert len(pids) >= 2, "all %d connections landed on one worker: %r" % (n, pids)
        for c in clients:
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(15)])
            c.close()


def case_workers2():
    spread(2)


def case_workers4():
    spread(4)


def case_kill_worker():
    with server(workers=2, rate=100) as s:
        clients = [WSRaw(s.port, "/") for _ in range(12)]
        time.sleep(0.3)
        owners = s.socket_owners()
        by_pid = {}
        for c in clients:
            by_pid.setdefault(owners[c.sock.getsockname()[1]], []).append(c)
        assert len(by_pid) == 2, "expected both workers to hold clients: %r" % list(by_pid)
        victim, survivor = sorted(by_pid)
        for c in clients:
            c.recv_message()
        os.kill(victim, signal.SIGKILL)
        for c in by_pid[victim]:
            c.sock.settimeout(5)
            try:
                while True:
                    c.recv_frame()
            except (EOFError, ConnectionResetError):
                pass
        for c in by_pid[survivor]:
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(20)])
        deadline = time.time() + 10
        while time.time() < deadline:
            kids = s.children()
            if victim not in kids and len(kids) == 3:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("supervisor did not restart the worker: %r" % s.children())
        for _ in range(6):
            c = WSRaw(s.port, "/")
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
            c.close()
        st, _, body = s.http("/metrics")
        n = sum(int(v) for v in re.findall(
            rb'^certstream_process_restarts_total\{role="fanout",cause="[a-z_]+"\} (\d+)', body, re.M))
        assert n >= 1, "restart not counted in /metrics"
        assert b"certstream_worker_panics" in body


def case_slow_client():
    """A client that stops reading is dropped as too slow; a reading client on
    the same worker keeps receiving every message, in order, on time."""
    with server(rate=500, ring_size=1 << 20) as s:
        stalled = WSRaw(s.port, "/full-stream", rcvbuf=4096)
        good = WSRaw(s.port, "/", rcvbuf=1 << 20)
        t0 = time.time()
        msgs = [good.recv_message() for _ in range(1500)]
        took = time.time() - t0
        GOLDEN.check_sequence("lite", msgs)
        # 1500 messages are published over 3 s; allow for a loaded machine
        assert took < 6.0, "good client needed %.1f s for 3 s of messages" % took
        deadline = time.time() + 10
        while time.time() < deadline:
            _, _, body = s.http("/metrics")
            m = re.search(rb'^certstream_slow_client_drops_total\{worker="0"\} (\d+)', body, re.M)
            if m and int(m.group(1)) >= 1:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("stalled client not counted as slow")
        assert int(m.group(1)) == 1, "more than the one stalled client was dropped: %s" % m.group(1)
        # the stalled connection is gone: draining it reaches EOF (maybe after a 1008 close)
        code = stalled.expect_close(timeout=10)
        assert code in (None, 1008), "stalled client closed with %r" % code
        GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(100)])


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
    yaml = "limits:\n  request_timeout_secs: 2\n  max_frame_bytes: 1024\n"
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
        assert 1.5 <= dt <= 6, "slowloris connection closed after %.1f s" % dt
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
        # fragmented client text message is reassembled and ignored; stream continues
        c = WSRaw(s.port, "/")
        c.send(WSRaw.frame(1, b"hel", fin=False) + WSRaw.frame(0, b"lo", fin=True))
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
        # everyone else unaffected
        assert s.http("/health")[0] == 200
        GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(20)])


def case_keepalive():
    yaml = ("keepalive:\n  websocket_heartbeat_secs: 1\n  ping_interval_secs: 1\n"
            "  idle_timeout_secs: 3\n  sse_heartbeat_secs: 1\n")
    with server(rate=2, extra_yaml=yaml) as s:
        c = WSRaw(s.port, "/")
        seen_hb = seen_ping = False
        t0 = time.time()
        c.send(WSRaw.frame(9, b"are you there"))
        got_pong = False
        while time.time() - t0 < 5 and not (seen_hb and seen_ping and got_pong):
            fin, op, p = c.recv_frame()
            if op == 1 and p.startswith(HEARTBEAT):
                hb = json.loads(p)
                assert set(hb) == {"message_type", "timestamp"} and isinstance(hb["timestamp"], float)
                seen_hb = True
            elif op == 9:
                seen_ping = True
                c.send(WSRaw.frame(10, p))
            elif op == 10:
                assert p == b"are you there"
                got_pong = True
        assert seen_hb and seen_ping and got_pong, (seen_hb, seen_ping, got_pong)
        # a client that answers nothing is closed after idle_timeout_secs
        silent = WSRaw(s.port, "/")
        t0 = time.time()
        code = silent.expect_close(timeout=10)
        dt = time.time() - t0
        assert 2 <= dt <= 10, "silent client closed after %.1f s (code %r)" % (dt, code)
        # SSE while events flow (every 0.5 s) faster than sse_heartbeat_secs: no heartbeat
        _, body = curl_sse(s.port, "lite", 2.5)
        assert len(parse_sse(body)) >= 3 and b":heartbeat" not in body, body[:300]
    # SSE: a ":heartbeat" comment after sse_heartbeat_secs without an event, and
    # none while events flow faster than that
    with server(rate=100, loop=False, extra_yaml=yaml) as s:
        time.sleep(0.6)  # the 28 entries are out: silence from here on
        _, body = curl_sse(s.port, "lite", 3.5)
        assert body.count(b":heartbeat\n\n") >= 2, body[:300]
        assert parse_sse(body) == [], "no events expected after the replay ended"


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
        time.sleep(0.6)
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
        for name in ("certstream_worker_panics", 'certstream_slow_client_drops_total{worker="0"}',
                     'certstream_process_restarts_total{role="fanout",cause="signal"}'):
            assert metrics.get(name) == 0, "%s: %r" % (name, metrics.get(name))
        assert sum(v for k, v in metrics.items() if k.startswith("certstream_client_messages_sent_total{")) >= 1, \
            "no message counted as sent"
        assert metrics.get('certstream_clients{worker="0",protocol="websocket",stream="lite"}', 0) >= 1, \
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
        assert 1 <= len(msgs) <= 25, len(msgs)
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
        time.sleep(0.3)
        again = WSRaw(s.port, "/", headers={"Authorization": "other"})
        assert again.status == 101, again.head
        GOLDEN.check_sequence("lite", [again.recv_message() for _ in range(5)])


def case_sigterm():
    s = server(workers=2, rate=50)
    s.start()
    try:
        ws = [WSRaw(s.port, p) for p in ("/", "/full-stream", "/domains-only")]
        for c in ws:
            c.recv_message()
        sse = subprocess.Popen(["curl", "-sN", "--max-time", "20", s.url("/sse", "http")],
                               stdout=subprocess.PIPE)
        time.sleep(0.5)
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        for c in ws:
            assert c.expect_close(timeout=5) == 1001
        out, _ = sse.communicate(timeout=10)
        assert sse.returncode == 0, "SSE response did not end cleanly (curl %d)" % sse.returncode
        rc = s.proc.wait(10)
        assert rc == 0, "exit status %d\n%s" % (rc, s.logtext())
        assert time.time() - t0 < 6
    finally:
        s.stop()


def case_offline_default():
    """No --replay and no reachable log list (as on a box without network):
    the server still starts, answers /health, and reports the logs unhealthy."""
    yaml = "ct_logs_url: http://127.0.0.1:9/all_logs_list.json\n"
    with server(replay=False, extra_yaml=yaml, env={"CERTSTREAM_CT_LOG_REQUEST_TIMEOUT_SECS": "2"}) as s:
        deadline = time.time() + 15
        while time.time() < deadline:
            st, _, b = s.http("/health/deep")
            d = json.loads(b)
            if d["logs_unhealthy"] >= 1:
                break
            time.sleep(0.2)
        assert st == 503 and d["status"] == "unhealthy", (st, d)
        assert s.http("/health") == (200, s.http("/health")[1], b"OK")
        c = WSRaw(s.port, "/")
        assert c.status == 101
        c.close()
        assert s.proc.poll() is None, "server exited"
    assert s.proc.returncode == 0, s.logtext()


def case_reload():
    """SIGHUP and hot_reload re-read and validate the configuration; a bad edit
    is refused with file, line and key, and the server keeps serving."""
    with server(rate=50, extra_yaml="hot_reload:\n  enabled: true\n") as s:
        time.sleep(1.2)
        with open(s.config, "a") as f:
            f.write("workers: lots\n")
        deadline = time.time() + 6
        while time.time() < deadline and "hot_reload: configuration refused" not in s.logtext():
            time.sleep(0.2)
        log = s.logtext()
        assert "hot_reload: configuration refused" in log, log
        assert "config.yaml:" in log and "workers" in log, log
        with open(s.config) as f:
            good = f.read().replace("workers: lots\n", "")
        with open(s.config, "w") as f:
            f.write(good)
        deadline = time.time() + 6
        while time.time() < deadline and "hot_reload: configuration" not in s.logtext().split("refused")[-1]:
            time.sleep(0.2)
        assert "is valid" in s.logtext().split("refused")[-1], s.logtext()
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and "SIGHUP: configuration" not in s.logtext():
            time.sleep(0.1)
        assert "SIGHUP: configuration" in s.logtext() and s.proc.poll() is None
        c = WSRaw(s.port, "/")
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])


def case_replay_get_entries():
    """--replay of a plain get-entries response (no log identity): entries
    replayed as log "Replay" with indexes from 0; each certificate's fields
    are the fixture's own."""
    import tempfile
    d = tempfile.mkdtemp()
    path = os.path.join(d, "entries.json")
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
    d = tempfile.mkdtemp()
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


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


def main():
    global ARGS, GOLDEN
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--lws-client")
    ap.add_argument("--node-dir")
    ARGS = ap.parse_args()
    GOLDEN = Golden(ARGS.testdata)
    try:
        CASES[ARGS.case]()
    except Exception:
        import traceback
        traceback.print_exc()
        print("0 passed, 1 failed")
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

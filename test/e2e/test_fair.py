#!/usr/bin/env python3
"""Fair delivery of bursts (fanout/pump.c): a static-ct-api tile lands 256
entries in the ring at once; the server must give every client the first
entries of the burst before it gives anyone the last ones, and still deliver
the whole burst, in order, to every client.

The clients are raw WebSocket sockets read by one loop that sweeps them all
over and over (non-blocking reads, parsing left for the end). A client's
first message of the burst is "seen in sweep a" and its last "in sweep b".
If some client's first message is seen two or more sweeps after another
client's last one, the server wrote that first message after that last one
(the late client was read, still without it, after the early client's last
message had been read): the property is broken. Reading late can only hide
a violation, never invent one, so a slow or loaded machine cannot make this
test fail wrongly.

  test_fair.py burst_order --server BIN --testdata DIR
"""
import errno
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import FakeLog, Server, run_cases, wait_for  # noqa: E402

ARGS = None
TILE = 256
FIRST = 768               # the burst is entries 768..1023 (tile 3 of navigli2025h2)


def ws_connect(port, path="/"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (path, port)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise ConnectionError("closed during the handshake")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    s.setblocking(False)
    return s, rest


def frames(data):
    """Text messages of a server's WebSocket byte stream: [(end offset, payload)]."""
    out, o = [], 0
    while o + 2 <= len(data):
        b0, b1 = data[o], data[o + 1]
        n, h = b1 & 0x7F, 2
        if n == 126:
            n, h = struct.unpack(">H", data[o + 2:o + 4])[0], 4
        elif n == 127:
            n, h = struct.unpack(">Q", data[o + 2:o + 10])[0], 10
        if o + h + n > len(data):
            break
        assert b1 & 0x80 == 0, "a server frame is masked"
        assert b0 == 0x81, "frame 0x%02x: want one unfragmented text frame per message" % b0
        out.append((o + h + n, data[o + h:o + h + n]))
        o += h + n
    return out


def follow_server(fl, **kw):
    ct = {"poll_interval_ms": 100, "retry_initial_delay_ms": 50, "retry_max_delay_ms": 400,
          "operator_rate_limit_ms": 0}
    return Server(ARGS.server, ARGS.testdata, replay=False, ct_log=ct,
                  env={"CERTSTREAM_CT_LOGS_URL": fl.url("/loglist.json")}, **kw)


def positions(s):
    return {lg["url"]: lg["next_index"] for lg in s.health_deep()["logs"]}


def case_burst_order():
    """400 lite clients on one worker; the log grows by one full tile (256
    entries, one burst): every client's first message of the burst is
    written before any client's last, and every client gets all 256, in
    order, byte-identical across clients, with the fixture's fields."""
    n_clients = 400
    path = os.path.join(ARGS.testdata, "static-ct", "navigli2025h2.computed", "expected_entries.jsonl")
    with open(path) as f:
        expected = {e["leaf_index"]: e for e in map(json.loads, f)}
    with FakeLog(ARGS.testdata, ["--tiled", "navigli=static-ct/navigli2025h2", "--size", "navigli=%d" % FIRST]) as fl:
        u = fl.url("/navigli/")
        with follow_server(fl, workers=1) as s:
            wait_for(lambda: positions(s) == {u: FIRST}, 60, "the server to reach %d" % FIRST)
            socks = [ws_connect(s.port) for _ in range(n_clients)]
            wait_for(lambda: s.metric("certstream_active_connections", 0) >= n_clients, 30,
                     "%d streaming clients" % n_clients)
            data = [bytearray(rest) for _, rest in socks]
            # per client: (sweep, bytes so far) after each read that got something
            marks = [[] for _ in socks]
            fl.control("size", log="navigli", size=FIRST + TILE)
            sweep, done_at = 0, None
            deadline = time.monotonic() + 120
            want = [None] * n_clients   # (end of first message, end of last message) once known
            while time.monotonic() < deadline:
                sweep += 1
                for i, (sk, _) in enumerate(socks):
                    try:
                        d = sk.recv(1 << 20)
                    except OSError as e:
                        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                            continue
                        raise
                    if not d:
                        raise AssertionError("client %d: the server closed the stream" % i)
                    data[i] += d
                    marks[i].append((sweep, len(data[i])))
                if sweep % 64 == 0:
                    msgs = [frames(bytes(d)) for d in data]
                    if all(len([m for m in ms if not m[1].startswith(b'{"message_type":"heartbeat"')]) >= TILE
                           for ms in msgs):
                        done_at = sweep
                        break
            assert done_at, "not every client got %d messages in time: %r" % (
                TILE, [len(frames(bytes(d))) for d in data])
            for sk, _ in socks:
                sk.close()
            first_sweep, last_sweep, streams = [], [], []
            for i in range(n_clients):
                ms = [(end, p) for end, p in frames(bytes(data[i])) if not p.startswith(b'{"message_type":"heartbeat"')]
                assert len(ms) == TILE, "client %d: %d messages, want exactly %d" % (i, len(ms), TILE)
                streams.append([p for _, p in ms])
                want[i] = (ms[0][0], ms[-1][0])
                first_sweep.append(next(sw for sw, got in marks[i] if got >= want[i][0]))
                last_sweep.append(next(sw for sw, got in marks[i] if got >= want[i][1]))
            # complete and exact: entries 768..1023 in order with the fixture's fields, and every client the same bytes
            for k, p in enumerate(streams[0]):
                m = json.loads(p)["data"]
                e = expected[FIRST + k]
                assert m["cert_index"] == FIRST + k, (k, m["cert_index"])
                assert m["source"]["url"] == u, m["source"]
                if e.get("subject_cn"):
                    assert m["leaf_cert"]["subject"].get("CN") == e["subject_cn"], (m["cert_index"], e["subject_cn"])
                assert set(e["dns_names"]) <= set(m["leaf_cert"]["all_domains"]), (m["cert_index"], e["dns_names"])
            for i in range(1, n_clients):
                assert streams[i] == streams[0], "client %d got other bytes than client 0" % i
            wait_for(lambda: s.metric("certstream_entries_published_total") == TILE, 10, "256 entries published")
            # fairness: no first message written after another client's last one
            late_first = max(range(n_clients), key=lambda i: first_sweep[i])
            early_last = min(range(n_clients), key=lambda i: last_sweep[i])
            print("sweeps: %d in all; first messages seen in sweeps %d..%d, last messages in %d..%d"
                  % (done_at, min(first_sweep), max(first_sweep), min(last_sweep), max(last_sweep)))
            assert first_sweep[late_first] <= last_sweep[early_last] + 1, (
                "client %d got its first message of the burst (sweep %d) after client %d had its last "
                "(sweep %d): the burst went to one client before the next"
                % (late_first, first_sweep[late_first], early_last, last_sweep[early_last]))


if __name__ == "__main__":
    sys.exit(run_cases(globals()))

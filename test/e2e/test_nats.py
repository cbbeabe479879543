#!/usr/bin/python3
"""Scale-out end-to-end tests: real nats-server -js processes on free loopback
ports, the fake CT log serving the real Navigli tiles (test/data/static-ct),
ingest nodes (nats.publish) and edge nodes (ingest.source: nats) running the
real binary, and SSE clients on every node.

usage: test_nats.py CASE --server BIN --testdata DIR --fakelog PY
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Golden, Server, free_port, mask_seen  # noqa: E402
from server import run_cases as server_run_cases  # noqa: E402

ARGS = None
LOG = "navigli"
CERT_INDEX_RE = re.compile(rb'"cert_index":([0-9]+)')
SEEN_RE = re.compile(rb'"seen":([0-9.]+)')


def wait_for(what, cond, timeout=60, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


class Nats:
    """One nats-server -js; optionally a member of a cluster (routes)."""

    def __init__(self, name="n0", cluster_port=None, routes=()):
        self.name = name
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cs-nats-")
        self.cluster_port = cluster_port
        self.routes = routes
        self.proc = None
        self.log = open(os.path.join(self.dir, "nats.log"), "wb")

    def start(self):
        args = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir,
                "-n", self.name]
        if self.cluster_port:
            args += ["--cluster_name", "cs", "--cluster", "nats://127.0.0.1:%d" % self.cluster_port,
                     "--routes", ",".join("nats://127.0.0.1:%d" % p for p in self.routes)]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        wait_for("nats-server on %d" % self.port, self.accepting, timeout=20)

    def accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError("nats-server exited:\n" + self.logtext())
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def logtext(self):
        self.log.flush()
        with open(os.path.join(self.dir, "nats.log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def cleanup(self):
        self.stop(signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeLog:
    """test/fakelog/fakelog.py serving the Navigli tiles, starting empty."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cs-fakelog-")
        pf = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([sys.executable, ARGS.fakelog, "--testdata", ARGS.testdata,
                                      "--tiled", "%s=static-ct/navigli2025h2" % LOG,
                                      "--size", "%s=0" % LOG, "--port-file", pf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("fakelog port", lambda: os.path.exists(pf) and open(pf).read().strip(), timeout=20)
        self.port = int(open(pf).read().strip())
        self.size = 0

    def grow(self, size):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/control/size?log=%s&size=%d"
                                    % (self.port, LOG, size), timeout=5) as r:
            assert json.loads(r.read())["size"] == size
        self.size = size

    def grow_to(self, total, step=20, pause=0.1, during=None):
        """Grows the log step by step (a steady load); during(size) runs between steps."""
        while self.size < total:
            self.grow(min(total, self.size + step))
            if during:
                during(self.size)
            time.sleep(pause)

    def cleanup(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def node(kind, fakelog, nats_urls, ring_size=None, extra="", top=""):
    """An ingest node (publishes what it follows) or an edge node (fed by NATS)."""
    y = ([top] if top else []) + ["ct_logs_url: http://127.0.0.1:%d/loglist.json" % fakelog.port,
         "nats:",
         "  url: \"%s\"" % ",".join(nats_urls)]
    if "duplicate_window" not in extra:
        y.append("  duplicate_window: 30s")
    if kind == "ingest":
        y.append("  publish: true")
    else:
        y.append("  position_file: POSFILE")
    if extra:
        y.append(extra)
    if kind == "edge":
        y += ["ingest:", "  source: nats"]
    s = Server(ARGS.server, ARGS.testdata, workers=1, replay=False, ring_size=ring_size,
               ct_log={"poll_interval_ms": 100, "operator_rate_limit_ms": 0},
               extra_yaml="\n".join(y) + "\n")
    s.posfile = os.path.join(s.dir, "nats.pos")
    with open(s.config) as f:
        text = f.read().replace("POSFILE", s.posfile)
    with open(s.config, "w") as f:
        f.write(text)
    s.kind = kind
    return s


def metric(srv, name, role):
    _, _, body = srv.http("/metrics")
    m = re.search(r'^%s\{role="%s"\} ([0-9.]+)$' % (name, role), body.decode(), re.M)
    return float(m.group(1)) if m else None


def edge_ready(srv):
    """The edge has subscribed and filled its ring: it serves stream clients."""
    def ready():
        st, _, body = srv.http("/health/deep")
        return json.loads(body).get("nats", {}).get("ready") is True
    return wait_for("edge ready", ready, timeout=60)


def ingest_ready(srv):
    """The ingest node follows the (still empty) log from index 0."""
    return wait_for("ingest following the log",
                    lambda: "starting at index 0 (tree size 0)" in srv.logtext(), timeout=30)


def stored_position(path):
    """The edge's position file: the newer of two checked copies (nats/position.c)."""
    with open(path, "rb") as f:
        data = f.read(64)
    magic = struct.unpack_from("<Q", data, 0)[0]
    best = None
    for i in range(2):
        seq, check, gen = struct.unpack_from("<QQQ", data, 8 + 24 * i)
        want = seq ^ magic ^ ((gen * 0x9e3779b97f4a7c15) & 0xFFFFFFFFFFFFFFFF)
        if check == want and (best is None or gen > best[1]):
            best = (seq, gen)
    assert best, "no valid copy in the position file"
    return best[0]


class SSE(threading.Thread):
    """An SSE client (stream=full) on one node: keeps (id, data bytes) events."""

    def __init__(self, srv, last_event_id=None, query=""):
        super().__init__(daemon=True)
        self.events = []
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        hdr = "GET /sse?stream=full%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" % query
        if last_event_id is not None:
            hdr += "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall((hdr + "\r\n").encode())
        self.closed = False
        self.start()

    def run(self):
        buf = b""
        headers_done = False
        try:
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    break
                buf += d
                if not headers_done:
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        continue
                    buf = buf[i + 4:]
                    headers_done = True
                # chunked or identity: strip chunk-size lines if present
                while True:
                    i = buf.find(b"\n\n")
                    if i < 0:
                        break
                    block, buf = buf[:i], buf[i + 2:]
                    ev_id, data = None, None
                    for line in block.split(b"\n"):
                        if line.startswith(b"id: "):
                            ev_id = int(line[4:])
                        elif line.startswith(b"data: "):
                            data = line[6:]
                    if data is not None:
                        self.events.append((ev_id, data))
        except OSError:
            pass
        self.closed = True

    def indexes(self):
        return [int(CERT_INDEX_RE.search(d).group(1)) for _, d in self.events]

    def datas(self):
        return [d for _, d in self.events]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class DeflateWS(threading.Thread):
    """python3-websockets on /full-stream, permessage-deflate negotiated:
    keeps the (decompressed) messages and the negotiated extensions."""

    def __init__(self, srv, n, query=""):
        super().__init__(daemon=True)
        self.url = "ws://127.0.0.1:%d/full-stream%s" % (srv.port, query)
        self.n = n
        self.msgs = []
        self.extensions = None
        self.error = None
        self.start()

    def run(self):
        import asyncio
        import websockets

        async def go():
            async with websockets.connect(self.url, max_size=None, compression="deflate") as ws:
                self.extensions = [e.name for e in ws.protocol.extensions] if hasattr(ws, "protocol") \
                    else [e.name for e in ws.extensions]
                while len(self.msgs) < self.n:
                    m = await asyncio.wait_for(ws.recv(), 60)
                    if '"heartbeat"' not in m:
                        self.msgs.append(m.encode())
        try:
            asyncio.run(go())
        except Exception as e:  # reported by the test
            self.error = e


def connected(srv, n=1):
    wait_for("%d client(s) on %s" % (n, srv.kind),
             lambda: b'"active_connections":%d' % n in srv.http("/health/deep")[2], timeout=20)


class Cluster:
    """Everything a case started, stopped in reverse order whatever happens."""

    def __init__(self):
        self.items = []

    def add(self, x):
        self.items.append(x)
        return x

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for x in reversed(self.items):
            try:
                if isinstance(x, Server):
                    if exc[0] is not None:
                        sys.stderr.write("--- %s log:\n%s\n" % (x.kind, x.logtext()))
                    if x.proc and x.proc.poll() is None:
                        os.killpg(x.proc.pid, signal.SIGKILL)
                        x.proc.wait()
                    x.log.close()
                    shutil.rmtree(x.dir, ignore_errors=True)
                elif isinstance(x, SSE):
                    x.close()
                else:
                    if exc[0] is not None and isinstance(x, Nats):
                        sys.stderr.write("--- nats %s log:\n%s\n" % (x.name, x.logtext()))
                    x.cleanup()
            except Exception as e:  # keep cleaning up
                sys.stderr.write("cleanup: %r\n" % e)
        return False


def wait_count(client, n, timeout=60):
    try:
        wait_for("%d messages" % n, lambda: len(client.events) >= n, timeout=timeout)
    except AssertionError as e:
        raise AssertionError("%s (have %d)" % (e, len(client.events))) from None


# ------------------------------------------------------------------ cases

def case_fanout():
    """One ingest node + two edges: clients of all three get the same
    certificates in the same order, byte for byte (seen included)."""
    total = 240
    with Cluster() as c:
        n, fl, edges = nats_log_edges(c, 2)
        ing = add_ingest(c, n, fl)
        clients = []
        for s in [ing] + edges:
            clients.append(c.add(SSE(s)))
            connected(s)
        # and a WebSocket client with permessage-deflate on the first edge
        dws = DeflateWS(edges[0], total)
        connected(edges[0], 2)
        fl.grow_to(total)
        for cl in clients:
            wait_count(cl, total)
        time.sleep(0.5)
        ref = clients[0]
        assert ref.indexes() == list(range(total)), ref.indexes()[:20]
        for cl, e in zip(clients[1:], edges):
            assert len(cl.events) == total, (len(cl.events), total)
            assert [i for i, _ in cl.events] == list(range(1, total + 1))   # SSE id = stream sequence
            for k, (a, b) in enumerate(zip(ref.datas(), cl.datas())):
                assert a == b, "message %d differs on the edge:\n%r\n%r" % (k, a[:300], b[:300])
        dws.join(60)
        assert dws.error is None, dws.error
        assert dws.extensions == ["permessage-deflate"], dws.extensions
        assert dws.msgs == ref.datas()
        # sent compressed (the edge made the payloads as an ingest node does):
        # edge 0 carried one SSE and one deflate client, edge 1 the same SSE
        # client only, so the difference is what the WebSocket client cost
        def sent(s):
            body = s.http("/metrics")[2].decode()
            return sum(int(v) for v in re.findall(r"^certstream_client_bytes_sent_total\{[^}]*\} (\d+)$", body, re.M))
        ws_bytes = sent(edges[0]) - sent(edges[1])
        plain = sum(len(m) for m in dws.msgs)
        assert 0 < ws_bytes < 0.9 * plain, (ws_bytes, plain)
        # the stream holds each entry once, and the edges consumed it all
        assert metric(ing, "certstream_nats_published_total", "publisher") == total
        assert metric(ing, "certstream_nats_stream_sequence", "publisher") == total
        for e in edges:
            wait_for("edge consumed all", lambda: metric(e, "certstream_nats_stream_sequence", "consumer") == total)
            assert metric(e, "certstream_nats_consumed_total", "consumer") == total
            assert metric(e, "certstream_nats_missed_total", "consumer") == 0
            st, _, body = e.http("/health/deep")
            h = json.loads(body)
            assert st == 200 and h["status"] == "healthy", body
            assert h["nats"]["role"] == "consumer" and h["nats"]["connected"] is True, body
            # an edge follows no log: its one producer, the NATS process, is
            # counted and shown as ingest (shm/roles.h, role_reported)
            assert sorted({p["role"] for p in h["processes"]}) == ["fanout", "ingest"], body
            assert [p["index"] for p in h["processes"] if p["role"] == "ingest"] == [0], body
            assert metric(e, "certstream_processes", "ingest") == 1
            assert metric(e, "certstream_processes", "replay") == 0
        # every NATS metric docs/monitoring.md lists is served, with its type
        docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "monitoring.md")
        rows = re.findall(r"^\| `(certstream_nats_[a-z_]+)` \| `role` \| (counter|gauge) \|", open(docs).read(), re.M)
        assert len(rows) == 16, rows
        for srv, role in ((ing, "publisher"), (edges[0], "consumer")):
            body = srv.http("/metrics")[2].decode()
            for name, typ in rows:
                fam = name[:-6] if typ == "counter" and name.endswith("_total") else name
                assert re.search(r"^# TYPE %s %s$" % (re.escape(name), typ), body, re.M) or \
                    re.search(r"^# TYPE %s %s$" % (re.escape(fam), typ), body, re.M), (name, typ)
                assert metric(srv, name, role) is not None, (name, role)
        # the lag gauge is refreshed once a second (nats/natsnode.c INFO_PERIOD_MS)
        wait_for("publisher lag 0", lambda: json.loads(ing.http("/health/deep")[2])["nats"]["lag_messages"] == 0)
        st, _, body = ing.http("/health/deep")
        assert json.loads(body)["nats"] == {"role": "publisher", "connected": True, "ready": True,
                                            "stream_sequence": total,
                                            "lag_messages": 0, "lag_seconds": 0.0}, body


def nats_log_edges(c, edges=1, **edge_kw):
    """One NATS server, the fake log and `edges` edge nodes (node() keywords
    edge_kw), each ready; returns (nats, fakelog, [edge, ...])."""
    n = c.add(Nats())
    n.start()
    fl = c.add(FakeLog())
    out = [c.add(node("edge", fl, [n.url()], **edge_kw)) for _ in range(edges)]
    for e in out:
        e.start()
        edge_ready(e)
    return n, fl, out


def nats_log_edge(c, **edge_kw):
    """nats_log_edges with one edge; returns (nats, fakelog, edge)."""
    n, fl, edges = nats_log_edges(c, 1, **edge_kw)
    return n, fl, edges[0]


def add_ingest(c, n, fl, **kw):
    """An ingest node following the fake log through NATS n, ready."""
    ing = c.add(node("ingest", fl, [n.url()], **kw))
    ing.start()
    ingest_ready(ing)
    return ing


def edge_then_ingest(c, edge_kw=None, **ing_kw):
    """nats_log_edge (edge_kw), then an ingest node (ing_kw) following the
    fake log, ready; returns (nats, fakelog, edge, ingest)."""
    n, fl, edge = nats_log_edge(c, **(edge_kw or {}))
    return n, fl, edge, add_ingest(c, n, fl, **ing_kw)


def case_edge_restart():
    """kill -9 an edge under load and start it again: its new ring continues at
    the stream sequence after the one in its position file, no gap, no dup."""
    total = 300
    with Cluster() as c:
        n, fl, edge, ing = edge_then_ingest(c)
        ref = c.add(SSE(ing))
        connected(ing)
        state = {}

        def during(size):
            if size >= 100 and "killed" not in state:
                os.killpg(edge.proc.pid, signal.SIGKILL)
                edge.proc.wait()
                state["killed"] = stored_position(edge.posfile)
            elif size >= 180 and "restarted" not in state:
                edge.start()
                edge_ready(edge)
                state["restarted"] = True
                # a client resuming at the stored position, connected from now on
                state["live"] = c.add(SSE(edge, last_event_id=state["killed"]))
            elif size >= 240 and "child" not in state:
                # the edge's NATS process alone: the supervisor restarts it
                # and it goes on in the same ring, without repeating one
                pid = int(re.findall(r"started nats\[0\] pid=(\d+)", edge.logtext())[-1])
                os.kill(pid, signal.SIGKILL)
                state["child"] = pid

        fl.grow_to(total, during=during)
        wait_count(ref, total)
        p = state["killed"]
        assert 0 < p <= total, p
        wait_for("edge caught up", lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == total)
        assert "resuming CERTSTREAM after stream sequence %d" % p in edge.logtext(), edge.logtext()
        # SSE ids are stream sequences (one ingest node, a log from index 0:
        # sequence s = cert_index s - 1). A client resuming at the stored
        # position gets exactly what follows it; the restarted edge also
        # filled its fresh ring with the entries before (buffer_size of them),
        # so a client resuming from further back finds those too.
        after = state["live"]
        wait_count(after, total - p)
        wait_for("NATS process restarted",
                 lambda: re.findall(r"started nats\[0\] pid=(\d+)", edge.logtext())[-1] != str(state["child"]))
        full = c.add(SSE(edge, last_event_id=0))
        wait_count(full, total)
        time.sleep(0.5)
        assert [i for i, _ in after.events] == list(range(p + 1, total + 1)), (p, after.events[:3])
        assert after.indexes() == list(range(p, total)), (p, after.indexes()[:10])
        assert [i for i, _ in full.events] == list(range(1, total + 1))
        assert full.datas() == ref.datas()
        assert metric(edge, "certstream_nats_missed_total", "consumer") == 0
        assert metric(edge, "certstream_nats_consumed_total", "consumer") == total - p
        assert metric(edge, "certstream_nats_backfilled_total", "consumer") == p


def case_nats_outage():
    """NATS stopped for 10 s under load: the ingest node keeps its entries (its
    producers pause once half its ring is unacknowledged), the edge resumes;
    the edge's client gets every certificate once, in order."""
    total = 400
    with Cluster() as c:
        # records carry no compressed frames (the workers compress): ~2.5 KB
        # each, so half of a 1 MiB ring holds about 200 of the 400
        n, fl, edge, ing = edge_then_ingest(c, {"top": "watchdog_secs: 4"}, ring_size=1 << 20,
                                            top="watchdog_secs: 4")
        ref = c.add(SSE(ing))
        out = c.add(SSE(edge))
        connected(ing)
        connected(edge)
        state = {}

        def during(size):
            if size >= 100 and "down" not in state:
                state["down"] = time.time()
                n.stop(signal.SIGKILL)
                wait_for("ingest sees NATS down",
                         lambda: metric(ing, "certstream_nats_connected", "publisher") == 0, timeout=20)
                st, _, body = ing.http("/health/deep")
                assert json.loads(body)["status"] == "degraded", body
                # the edge says so too (its stream row, updated every second)
                wait_for("edge degraded", lambda: json.loads(edge.http("/health/deep")[2])["status"] == "degraded",
                         timeout=8)
            if "down" in state and "up" not in state and time.time() - state["down"] >= 10:
                # half the ingest node's ring is unacknowledged: it stopped fetching
                _, _, body = ing.http("/metrics")
                held = int(re.search(r"^certstream_entries_published_total (\d+)$", body.decode(), re.M).group(1))
                assert held < fl.size, (held, fl.size)
                assert "fetch" not in state
                state["held"] = (held, fl.size)
                n.start()
                state["up"] = True

        fl.grow_to(total, step=20, pause=0.1, during=during)
        while "up" not in state:
            during(total)
            time.sleep(0.1)
        wait_count(out, total, timeout=90)
        wait_count(ref, total, timeout=30)
        time.sleep(0.5)
        assert out.indexes() == list(range(total)), out.indexes()
        assert out.datas() == ref.datas()
        assert metric(ing, "certstream_nats_disconnects_total", "publisher") >= 1
        assert metric(ing, "certstream_nats_stream_sequence", "publisher") == total
        assert metric(edge, "certstream_nats_missed_total", "consumer") == 0
        wait_for("ingest healthy again", lambda: json.loads(ing.http("/health/deep")[2])["status"] == "healthy",
                 timeout=20)
        # through the outage the NATS processes kept beating the supervisor's
        # watchdog (watchdog_secs 4 here): none was killed
        for s in (ing, edge):
            assert "SIGKILL, it will be replaced" not in s.logtext(), s.logtext()


def case_two_ingest():
    """Two ingest nodes following the same log: the stream holds each
    certificate once (message id = the certificate's SHA-256)."""
    total = 200
    with Cluster() as c:
        n, fl, edge = nats_log_edge(c)
        ings = [c.add(node("ingest", fl, [n.url()])) for _ in range(2)]
        for i in ings:
            i.start()
        out = c.add(SSE(edge))
        connected(edge)
        # both follow the log before it grows
        for i in ings:
            ingest_ready(i)
        fl.grow_to(total)
        wait_count(out, total)
        for i in ings:
            wait_for("publisher done", lambda: metric(i, "certstream_nats_lag_messages", "publisher") == 0)
        time.sleep(1.0)
        idx = out.indexes()
        assert sorted(idx) == list(range(total)), (len(idx), sorted(set(range(total)) - set(idx))[:10])
        pub = sum(metric(i, "certstream_nats_published_total", "publisher") for i in ings)
        dup = sum(metric(i, "certstream_nats_duplicates_total", "publisher") for i in ings)
        assert pub == total, pub
        assert dup >= total, dup   # every certificate came twice; a retried batch adds more
        assert metric(edge, "certstream_nats_stream_sequence", "consumer") == total


def case_retention():
    """An edge down longer than the stream keeps entries (nats.max_age 5 s):
    on restart it says which sequences are gone, counts them, and goes on
    with what the stream still holds, in order."""
    extra = "  max_age: 5s\n  duplicate_window: 1s"
    with Cluster() as c:
        n, fl, edge, ing = edge_then_ingest(c, {"extra": extra}, extra=extra)
        fl.grow_to(40)
        wait_for("edge at 40", lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == 40)
        os.killpg(edge.proc.pid, signal.SIGKILL)
        edge.proc.wait()
        p = stored_position(edge.posfile)
        assert p == 40, p
        fl.grow_to(80)            # sequences 41..80, expired before the edge is back
        wait_for("publisher at 80", lambda: metric(ing, "certstream_nats_stream_sequence", "publisher") == 80)
        time.sleep(6)
        fl.grow_to(100)           # 81..100 still held
        wait_for("publisher at 100", lambda: metric(ing, "certstream_nats_stream_sequence", "publisher") == 100)
        edge.start()
        edge_ready(edge)
        out = c.add(SSE(edge, last_event_id=40))
        wait_for("edge at 100", lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == 100)
        missed = metric(edge, "certstream_nats_missed_total", "consumer")
        m = re.search(r"stream sequences 41\.\.(\d+) \((\d+) entries\) are no longer in CERTSTREAM",
                      edge.logtext())
        assert m, edge.logtext()
        last_gone = int(m.group(1))
        assert 80 <= last_gone < 100 and int(m.group(2)) == last_gone - 40 == missed, (last_gone, missed)
        wait_count(out, 100 - last_gone)
        time.sleep(0.3)
        assert [i for i, _ in out.events] == list(range(last_gone + 1, 101)), out.events[:2]


def case_sse_resume():
    """A client moves from one edge to the other: SSE Last-Event-ID (and
    WebSocket ?resume=ID) continue with no gap and no duplicate."""
    total = 200
    with Cluster() as c:
        n, fl, edges = nats_log_edges(c, 2)
        ing = add_ingest(c, n, fl)
        ref = c.add(SSE(ing))
        connected(ing)
        first = c.add(SSE(edges[0]))
        connected(edges[0])
        fl.grow_to(90)
        wait_count(first, 90)
        first.close()
        fl.grow_to(total)
        last_id = first.events[-1][0]
        assert last_id == 90, last_id
        second = c.add(SSE(edges[1], last_event_id=last_id))
        wait_count(ref, total)
        wait_count(second, total - last_id)
        time.sleep(0.5)
        got = first.events + second.events
        assert [i for i, _ in got] == list(range(1, total + 1)), [i for i, _ in got][85:95]
        assert [d for _, d in got] == ref.datas()
        # WebSocket ?resume=ID on the other edge: the messages after ID
        import websocket
        ws = websocket.create_connection("ws://127.0.0.1:%d/full-stream?resume=150" % edges[1].port, timeout=20)
        msgs = []
        while len(msgs) < total - 150:
            m = ws.recv()
            if '"heartbeat"' not in m:
                msgs.append(m.encode())
        ws.close()
        assert msgs == ref.datas()[150:], [CERT_INDEX_RE.search(m).group(1) for m in msgs[:3]]


def case_replay():
    """--replay with nats.publish: the recorded entries reach an edge's
    clients as the golden corpus's expected messages (seen masked), and as
    the very bytes the ingest node's own clients get (seen included)."""
    golden = Golden(ARGS.testdata)
    n_rec = len(golden.records)
    with Cluster() as c:
        n = c.add(Nats())
        n.start()
        edge = Server(ARGS.server, ARGS.testdata, workers=1, replay=False,
                      extra_yaml="ingest:\n  source: nats\nnats:\n  url: \"%s\"\n  position_file: POS\n" % n.url())
        edge.kind = "edge"
        with open(edge.config) as f:
            text = f.read().replace("POS", os.path.join(edge.dir, "nats.pos"))
        with open(edge.config, "w") as f:
            f.write(text)
        c.add(edge)
        edge.start()
        edge_ready(edge)
        out = c.add(SSE(edge))
        connected(edge)
        ing = Server(ARGS.server, ARGS.testdata, workers=1, rate=10, loop=False,
                     extra_yaml="nats:\n  url: \"%s\"\n  publish: true\n" % n.url())
        ing.kind = "ingest"
        c.add(ing)
        ing.start()
        ref = c.add(SSE(ing))   # connected once the replay has started: a suffix
        wait_count(out, n_rec)
        wait_for("ingest client at the end", lambda: ref.events and
                 CERT_INDEX_RE.search(ref.events[-1][1]).group(1) == str(golden.records[-1]["cert_index"]).encode())
        time.sleep(0.5)
        assert len(out.events) == n_rec
        assert [mask_seen(d) for d in out.datas()] == golden.expected["full"]
        k = len(ref.events)
        assert k >= 5 and out.datas()[n_rec - k:] == ref.datas(), k
        assert [i for i, _ in out.events] == list(range(1, n_rec + 1))


def case_cluster():
    """A 3-node NATS cluster, stream replicas 3: one NATS node killed under
    load, nothing lost, nothing twice."""
    total = 300
    with Cluster() as c:
        cports = [free_port() for _ in range(3)]
        nodes = [c.add(Nats("n%d" % i, cports[i], [p for p in cports if p != cports[i]])) for i in range(3)]
        threads = [threading.Thread(target=x.start) for x in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        urls = [x.url() for x in nodes]
        fl = c.add(FakeLog())
        edge = c.add(node("edge", fl, urls[::-1], extra="  replicas: 3"))
        ing = c.add(node("ingest", fl, urls, extra="  replicas: 3"))
        # the stream needs a meta leader: the edge retries until it has one
        edge.start()
        edge_ready(edge)
        ing.start()
        ingest_ready(ing)
        out = c.add(SSE(edge))
        connected(edge)
        killed = {}

        assert "3 replica(s)" in edge.logtext() + ing.logtext()

        def during(size):
            if size >= 120 and not killed:
                # the NATS node the ingest node publishes through
                victim = nats_peer(ing, nodes)
                victim.stop(signal.SIGKILL)
                killed["node"] = victim.name

        fl.grow_to(total, during=during)
        wait_count(out, total, timeout=90)
        time.sleep(0.5)
        # Each certificate once. Not necessarily in order: what was in
        # flight when the node died may reach the stream after later records
        # (docs/scale-out.md, failure modes).
        got = out.indexes()
        assert sorted(got) == list(range(total)), got
        late = sum(1 for i, x in enumerate(got) if x != i)
        print("%d of %d certificates out of place after the failover" % (late, total))
        # the last acknowledgements may be the duplicates of messages sent
        # again after the failover: they too give the stream's sequence
        wait_for("publisher at %d" % total,
                 lambda: metric(ing, "certstream_nats_stream_sequence", "publisher") == total, timeout=20)
        assert metric(ing, "certstream_nats_disconnects_total", "publisher") >= 1, killed


def published(srv):
    """Entries the server put in its ring (certstream_entries_published_total)."""
    _, _, body = srv.http("/metrics")
    return int(re.search(r"^certstream_entries_published_total (\d+)$", body.decode(), re.M).group(1))


def each_once(out, ing, edge, total):
    """The edge's client got certificates 0..total-1 once each, in order; the
    ingest node's stream and the edge's consumer are both at total."""
    wait_count(out, total, timeout=90)
    wait_for("publisher at %d" % total,
             lambda: metric(ing, "certstream_nats_stream_sequence", "publisher") == total)
    time.sleep(0.5)
    assert out.indexes() == list(range(total)), out.indexes()
    assert metric(edge, "certstream_nats_consumed_total", "consumer") == total


def case_ingest_crash():
    """A lone ingest node loses its machine (kill -9 of all its processes)
    while NATS is unreachable and its ring holds entries JetStream never
    acknowledged, which its CT position is already past. Restarted, it resumes
    the log at the last entry JetStream acknowledged (nats/ackstore.h), so
    every certificate reaches the stream exactly once."""
    total = 300
    with Cluster() as c:
        n, fl, edge = nats_log_edge(c)
        ing = c.add(node("ingest", fl, [n.url()], ring_size=2 << 20))
        ing.start()
        ingest_ready(ing)
        out = c.add(SSE(edge))
        connected(edge)
        fl.grow_to(60)
        wait_for("stream at 60", lambda: metric(ing, "certstream_nats_stream_sequence", "publisher") == 60)
        n.stop(signal.SIGKILL)
        wait_for("ingest sees NATS down",
                 lambda: metric(ing, "certstream_nats_connected", "publisher") == 0, timeout=20)
        # under load: entries keep entering the ring (and the CT position
        # moves past them) with nothing acknowledged
        fl.grow_to(200, step=20, pause=0.1)
        wait_for("60 entries ingested with NATS down", lambda: published(ing) >= 120)
        os.killpg(ing.proc.pid, signal.SIGKILL)
        ing.proc.wait()
        n.start()
        ing.start()
        m = wait_for("resume line", lambda: re.search(
            r": resuming at index (\d+), the last one JetStream acknowledged, rather than (\d+): "
            r"entries \1\.\.(\d+) were ingested but not acknowledged", ing.logtext()), timeout=30)
        print(m.group(0))
        assert int(m.group(1)) == 60, m.group(0)
        assert int(m.group(2)) >= 120 and int(m.group(3)) == int(m.group(2)) - 1, m.group(0)
        fl.grow_to(total)
        each_once(out, ing, edge, total)
        # the stream holds exactly total: SSE ids 1..total
        assert [i for i, _ in out.events] == list(range(1, total + 1))
        assert metric(edge, "certstream_nats_missed_total", "consumer") == 0


def case_ingest_crash_first():
    """An ingest node starts following a log while NATS is unreachable, so
    JetStream never acknowledged any entry of it, and loses its machine
    (kill -9 of all its processes) once its CT position is past 80 entries.
    Restarted, it resumes the log where it first started it (index 0, recorded
    in the acknowledged-position store before the first entry entered the
    ring), not at its CT position: every certificate reaches the stream once."""
    total = 150
    with Cluster() as c:
        n, fl, edge = nats_log_edge(c)
        out = c.add(SSE(edge))
        connected(edge)
        n.stop(signal.SIGKILL)
        ing = c.add(node("ingest", fl, [n.url()]))
        ing.start()
        ingest_ready(ing)
        fl.grow_to(80, step=20, pause=0.1)
        wait_for("80 entries ingested with NATS down", lambda: published(ing) == 80)
        assert metric(ing, "certstream_nats_published_total", "publisher") == 0
        os.killpg(ing.proc.pid, signal.SIGKILL)
        ing.proc.wait()
        n.start()
        ing.start()
        m = wait_for("resume line", lambda: re.search(
            r": resuming at index (\d+), the last one JetStream acknowledged, rather than (\d+)",
            ing.logtext()), timeout=30)
        assert (int(m.group(1)), int(m.group(2))) == (0, 80), m.group(0)
        fl.grow_to(total, step=35, pause=0.05)
        each_once(out, ing, edge, total)


def case_ingest_crash_live():
    """kill -9 of a lone ingest node while the log grows and NATS is up
    (entries in flight between its ring and JetStream), restart: every
    certificate reaches the stream exactly once."""
    total = 400
    with Cluster() as c:
        n, fl, edge, ing = edge_then_ingest(c)
        out = c.add(SSE(edge))
        connected(edge)
        state = {}

        def during(size):
            if size >= 200 and "killed" not in state:
                os.killpg(ing.proc.pid, signal.SIGKILL)
                ing.proc.wait()
                state["killed"] = size
                ing.start()

        fl.grow_to(total, step=40, pause=0.05, during=during)
        each_once(out, ing, edge, total)


def case_deep_resume():
    """Resume from further back than the edge's ring (ring_size 1 MiB: about
    a hundred entries): an SSE client (Last-Event-ID) and a WebSocket client
    with permessage-deflate (?resume=) get the older entries from JetStream,
    then the ring, then live entries: exactly the entries after their id, no
    gap, no duplicate, byte-identical to the ingest node's clients'."""
    total, more = 400, 40
    with Cluster() as c:
        n, fl, edge, ing = edge_then_ingest(c, {"ring_size": 1 << 20})
        ref = c.add(SSE(ing))
        connected(ing)
        fl.grow_to(total, step=40)
        wait_count(ref, total)
        wait_for("edge at %d" % total, lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == total)
        # the edge's ring no longer holds id 10: a resume from it before
        # this change started at the ring's oldest entry
        out = c.add(SSE(edge, last_event_id=9))
        ws = DeflateWS(edge, total + more - 5, query="?resume=5")
        # a filtered client: the entries from the stream pass its filter too
        pre = c.add(SSE(edge, last_event_id=9, query="&domain=*.com"))
        wait_count(out, total - 9)
        wait_for("the WebSocket client resumed", lambda: len(ws.msgs) >= total - 5)
        join_re = r"resume from id (\d+): (\d+) entries sent from the stream; continuing on the ring at (\d+)"
        joins = wait_for("three joins", lambda: len(re.findall(join_re, edge.logtext())) == 3 and
                         [tuple(map(int, j)) for j in re.findall(join_re, edge.logtext())])
        assert metric(edge, "certstream_nats_resumes_from_stream_total", "consumer") == 3
        from_stream = metric(edge, "certstream_nats_resume_entries_total", "consumer")
        assert sum(b for _, b, _ in joins) == from_stream > 300, (joins, from_stream)
        # the unfiltered ones got every entry from after their id to the
        # ring's join point from the stream: no gap between the two parts
        # (the filtered one got only its matches from that span)
        full = sorted((a, j) for a, b, j in joins if a + b + 1 == j)
        assert [a for a, _ in full] == [5, 9], joins
        assert all(b < j - a - 1 for a, b, j in joins if (a, j) not in full), joins
        # then live
        fl.grow_to(total + more, step=20)
        wait_count(ref, total + more)
        wait_count(out, total + more - 9)
        ws.join(60)
        time.sleep(0.5)
        assert [i for i, _ in out.events] == list(range(10, total + more + 1)), out.events[:3]
        assert out.datas() == ref.datas()[9:]
        assert ws.error is None, ws.error
        assert ws.extensions == ["permessage-deflate"], ws.extensions
        assert ws.msgs == ref.datas()[5:]
        want = [d for d in ref.datas()[9:]
                if any(n.lower().endswith(".com") for n in json.loads(d)["data"]["leaf_cert"]["all_domains"])]
        assert 0 < len(want) < total + more - 9, len(want)
        wait_count(pre, len(want))
        assert pre.datas() == want
        assert metric(edge, "certstream_nats_resume_gone_total", "consumer") == 0


def case_deep_resume_gone():
    """A resume from further back than the stream still holds (nats.max_age
    8 s): a log line says which entries are gone, they are counted, and the
    client starts at the oldest entry the stream holds."""
    extra = "  max_age: 8s\n  duplicate_window: 1s"
    with Cluster() as c:
        n, fl, edge, ing = edge_then_ingest(c, {"ring_size": 1 << 20, "extra": extra}, extra=extra)
        fl.grow_to(40)
        wait_for("edge at 40", lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == 40)
        time.sleep(9)             # sequences 1..40 expire
        fl.grow_to(300, step=40)  # 41..300 held; the edge's ring holds only the newest ~100
        wait_for("edge at 300", lambda: metric(edge, "certstream_nats_stream_sequence", "consumer") == 300)
        out = c.add(SSE(edge, last_event_id=10))
        wait_count(out, 260)
        time.sleep(0.3)
        assert [i for i, _ in out.events] == list(range(41, 301)), out.events[:2]
        assert "resume from id 10: entries 11..40 (30) are no longer in the stream" in edge.logtext(), \
            edge.logtext()[-2000:]
        assert metric(edge, "certstream_nats_resume_gone_total", "consumer") == 30
        assert metric(edge, "certstream_nats_resumes_from_stream_total", "consumer") == 1


def nats_peer(srv, nodes):
    """The NATS node srv's NATS process is connected to (from ss)."""
    pids = set(str(p) for p in srv.children())
    out = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        for x in nodes:
            if re.search(r"127\.0\.0\.1:%d\s" % x.port, line + " ") and \
               any("pid=%s," % p in line for p in pids):
                return x
    raise AssertionError("no NATS connection found for %s:\n%s" % (srv.kind, out))


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}



if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "fakelog!"))

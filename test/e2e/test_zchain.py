#!/usr/bin/python3
"""End-to-end tests of permessage-deflate with the stream's shared context
(compression.shared_context, fanout/zchain.c): real clients that keep an
inflate context (python websockets, npm ws, libwebsockets, a raw client
inflating with Python's zlib) must get exactly the golden corpus's bytes
after inflating, whether they join at the start or mid-stream, across
compressed heartbeats, behind the worker's cache of chained frames, and
across ring laps; clients that do not allow context takeover, filtered
clients and clients without deflate keep frames that stand alone.

usage: test_zchain.py CASE --server BIN --testdata DIR [--lws-client BIN] [--node-dir DIR]
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import asyncio
import os
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server import Server, wait_for  # noqa: E402
from server import HEARTBEAT, collect_websocket_client, run_cases as server_run_cases  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None

SHARED = "compression:\n  shared_context: true\n"
TAKEOVER_EXT = "permessage-deflate"
OWN_EXT = "permessage-deflate; server_no_context_takeover"


def server(extra_yaml="", **kw):
    return Server(ARGS.server, ARGS.testdata, extra_yaml=SHARED + extra_yaml, **kw)


class Inflating:
    """A raw client that inflates as RFC 7692 says for server context
    takeover: one raw inflater for the whole connection, 00 00 ff ff
    appended to each compressed message. Records for each data message
    (compressed?, stands alone?, wire payload bytes, text)."""

    def __init__(self, port, path="/", offer="permessage-deflate; client_max_window_bits", rcvbuf=None):
        self.c = WSRaw(port, path, headers={"Sec-WebSocket-Extensions": offer} if offer else None, rcvbuf=rcvbuf)
        assert self.c.status == 101, self.c.head
        self.ext = None
        for line in self.c.head.split("\r\n"):
            if line.lower().startswith("sec-websocket-extensions:"):
                self.ext = line.split(":", 1)[1].strip()
        self.z = zlib.decompressobj(-15)
        self.frames = []

    def recv(self):
        """-> the next data message's text (heartbeats included)."""
        while True:
            self.c._need(2)
            rsv1 = bool(self.c.buf[0] & 0x40)
            fin, op, payload = self.c.recv_frame()
            if op not in (1, 2):
                continue
            assert fin, "the server sends whole messages"
            if rsv1:
                text = self.z.decompress(payload + b"\x00\x00\xff\xff")
                try:
                    alone = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == text
                except zlib.error:
                    alone = False
            else:
                text, alone = payload, True
            self.frames.append((rsv1, alone, len(payload), text))
            return text

    def messages(self, n):
        out = []
        while len(out) < n:
            t = self.recv()
            if not t.startswith(HEARTBEAT):
                out.append(t)
        return out

    def close(self):
        self.c.close()

    def chained(self):
        """frames that inflate only with the history (chained frames)"""
        return [f for f in self.frames if f[0] and not f[1]]


def ratio(frames):
    plain = sum(len(f[3]) for f in frames)
    wire = sum(f[2] for f in frames)
    return plain / wire


def case_raw_chained():
    """A client that allows context takeover gets the answer without
    server_no_context_takeover and, after its first 32 KiB, chained frames
    (they do not inflate alone), >= 3x smaller than the text for lite; the
    bytes are the corpus's. An offer with server_no_context_takeover, a
    filtered client and a client without deflate keep frames that stand alone."""
    with server(rate=400) as s:
        for fmt, path, n in (("lite", "/", 400), ("full", "/full-stream", 200), ("domains", "/domains-only", 400)):
            c = Inflating(s.port, path)
            assert c.ext == TAKEOVER_EXT, c.ext
            GOLDEN.check_sequence(fmt, c.messages(n))
            ch = c.chained()
            assert ch, "no chained frame for %s" % fmt
            # every frame is compressed; the first ones (32 KiB of history) stand alone
            assert all(f[0] for f in c.frames)
            first = next(i for i, f in enumerate(c.frames) if not f[1])
            assert sum(len(f[3]) for f in c.frames[:first]) >= 32768 or fmt == "domains", first
            r = ratio(c.frames[first + 20:])
            print("%s: chained %.2fx (%d frames)" % (fmt, r, len(ch)))
            if fmt in ("lite", "full"):
                assert r >= 3.0, "%s chained ratio %.2f" % (fmt, r)
            c.close()
        # the three streams' clients are gone; one chained frame per message
        # and format while a client of it was there
        deadline = time.time() + 10
        while s.metric_total("certstream_clients_deflate_shared") != 0 and time.time() < deadline:
            time.sleep(0.05)
        assert s.metric_total("certstream_clients_deflate_shared") == 0
        assert s.metric_total("certstream_deflate_chained_frames_total") >= 400 + 200 + 400
        # server_no_context_takeover asked for: frames compressed alone
        c = Inflating(s.port, "/", offer="permessage-deflate; server_no_context_takeover")
        assert c.ext == OWN_EXT, c.ext
        GOLDEN.check_sequence("lite", c.messages(100))
        assert all(f[0] and f[1] for f in c.frames)
        c.close()
        # a filtered client skips records: frames compressed alone, with the
        # answer that says so
        c = Inflating(s.port, "/?domain=*workday*")
        assert c.ext == OWN_EXT, c.ext
        msgs = c.messages(5)
        assert all(b"workday" in m for m in msgs)
        assert all(f[0] and f[1] for f in c.frames)
        c.close()
        # no offer: plain frames
        c = Inflating(s.port, "/", offer=None)
        assert c.ext is None
        GOLDEN.check_sequence("lite", c.messages(50))
        assert not any(f[0] for f in c.frames)
        c.close()
    # compression.min_size: the short messages go plain (RSV1 clear) to
    # every client and stay out of the stream, the others are chained
    with server(rate=400, extra_yaml="  min_size: 1500\n") as s:
        c = Inflating(s.port, "/")
        GOLDEN.check_sequence("lite", c.messages(300))
        plain = [f for f in c.frames if not f[0]]
        assert plain and all(len(f[3]) < 1500 for f in plain)
        assert all(len(f[3]) >= 1500 for f in c.frames if f[0])
        assert c.chained()
        c.close()
    # the default is on: the same answer without the key
    with Server(ARGS.server, ARGS.testdata, rate=200) as s:
        c = Inflating(s.port, "/")
        assert c.ext == TAKEOVER_EXT, c.ext
        c.close()
    # compression.shared_context off: frames compressed alone for everyone
    with Server(ARGS.server, ARGS.testdata, rate=200, extra_yaml="compression:\n  shared_context: false\n") as s:
        c = Inflating(s.port, "/")
        assert c.ext == OWN_EXT, c.ext
        GOLDEN.check_sequence("lite", c.messages(60))
        assert all(f[0] and f[1] for f in c.frames)
        c.close()


def read_for(clients, secs):
    """Reads every client in its own thread for secs seconds."""
    errors = []

    def run(c):
        try:
            t0 = time.time()
            while time.time() - t0 < secs:
                c.recv()
        except Exception as e:  # reported below
            errors.append(e)
    ths = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=secs + 60)
    assert not errors, errors


def case_midstream_heartbeats():
    """Clients joining one after another on two workers, heartbeats every
    second (compressed, outside the stream: each restarts a client's run),
    a 1 MiB ring that laps many times: every client inflates exactly the
    corpus, gets chained frames, and after a heartbeat only frames that
    stand alone until it has 32 KiB of history again."""
    with server(rate=300, workers=2, ring_size=1048576,
                extra_yaml="keepalive:\n  websocket_heartbeat_secs: 1\n") as s:
        clients = []
        for i in range(6):
            fmt, path = (("lite", "/"), ("full", "/full-stream"))[i % 2]
            clients.append((fmt, Inflating(s.port, path)))
            read_for([c for _, c in clients], 1.0)
        read_for([c for _, c in clients], 3.0)
        for fmt, c in clients:
            GOLDEN.check_sequence(fmt, [f[3] for f in c.frames if not f[3].startswith(HEARTBEAT)])
            beats = [i for i, f in enumerate(c.frames) if f[3].startswith(HEARTBEAT)]
            assert beats, "no heartbeat"
            assert all(c.frames[i][0] for i in beats), "heartbeats are compressed"
            for b in [-1] + beats:
                hist = 0
                for f in c.frames[b + 1:]:
                    if f[3].startswith(HEARTBEAT):
                        break
                    if not f[1]:
                        assert hist >= 32768, "chained after only %d bytes of history" % hist
                        break
                    hist += len(f[3])
            assert c.chained(), "%s client never got a chained frame" % fmt
            c.close()
        # 1 MiB ring, > 6 KiB per record: it lapped several times
        pub = s.metric_total("certstream_entries_published_total")
        assert pub * 6144 > 3 * 1048576, pub


def case_real_clients():
    """python websockets, npm ws and the libwebsockets client (each inflates
    with its own context) on every format, plus websocket-client (what
    certstream-python uses, no deflate: plain frames)."""
    import websockets

    async def ws_collect(url, n):
        out = []
        async with websockets.connect(url, max_size=None, open_timeout=20, compression="deflate") as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            while len(out) < n:
                m = await asyncio.wait_for(ws.recv(), 20)
                m = m.encode() if isinstance(m, str) else m
                if not m.startswith(HEARTBEAT):
                    out.append(m)
        return out, ext

    with server(rate=300, extra_yaml="keepalive:\n  websocket_heartbeat_secs: 2\n") as s:
        for fmt, path, n in (("lite", "/", 300), ("full", "/full-stream", 150), ("domains", "/domains-only", 300)):
            msgs, ext = asyncio.run(ws_collect(s.url(path), n))
            assert ext == TAKEOVER_EXT, ext
            GOLDEN.check_sequence(fmt, msgs)
        # one client at a time: the chained frames counter grows only for a
        # client that allows server context takeover
        def chained():
            return s.metric_total("certstream_deflate_chained_frames_total")
        before = chained()
        env = dict(os.environ, NODE_PATH=os.path.join(ARGS.node_dir, "node_modules"))
        p = subprocess.run(["node", os.path.join(HERE, "ws_client.js"), s.url("/"), "300", "on"],
                           capture_output=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        lines = [l for l in p.stdout.split(b"\n") if l]
        assert lines[0] == b'"permessage-deflate"', lines[0]
        GOLDEN.check_sequence("lite", lines[1:])
        assert chained() >= before + 250, (before, chained())   # npm ws: server context takeover
        for fmt, path, n in (("lite", "/", 300), ("full", "/full-stream", 150)):
            before = chained()
            p = subprocess.run([ARGS.lws_client, "--deflate", "--heartbeats", s.url(path), str(n)],
                               capture_output=True, timeout=90)
            assert p.returncode == 0, p.stderr.decode()[-2000:]
            lines = [l for l in p.stdout.split(b"\n") if l]
            GOLDEN.check_sequence(fmt, [l for l in lines if not l.startswith(HEARTBEAT)])
            assert chained() >= before + n - 50, (before, chained())   # libwebsockets too
        GOLDEN.check_sequence("lite", collect_websocket_client(s.url("/"), 50))
        deflated = s.metric_total("certstream_deflate_negotiated_total")
        assert deflated == 3 + 1 + 2, deflated


def case_behind_cache():
    """A client that stops reading (small socket buffers) falls behind the
    worker's cache of chained frames (64 KiB here) but not behind the ring:
    it gets frames compressed alone (the worker's cache) until it is back within the
    cache, then chained frames again, and every message inflates to the
    corpus; a reader at the head keeps getting chained frames meanwhile."""
    with server(rate=300, ring_size=33554432, buffer_size=100000,
                extra_yaml="  shared_cache_size: 65536\nlimits:\n  send_buffer_bytes: 16384\n") as s:
        fast = Inflating(s.port, "/full-stream")
        slow = Inflating(s.port, "/full-stream", rcvbuf=16384)
        read_for([fast, slow], 1.0)
        assert slow.chained()
        n0 = len(slow.frames)
        stop = threading.Event()
        errors = []

        def read_fast():
            try:
                while not stop.is_set():
                    fast.recv()
            except Exception as e:  # reported below
                errors.append(e)
        th = threading.Thread(target=read_fast)
        th.start()
        time.sleep(1.5)       # the slow client reads nothing: its socket fills
        read_for([slow], 3.0)
        stop.set()
        th.join(timeout=30)
        assert not errors, errors
        GOLDEN.check_sequence("full", [f[3] for f in slow.frames])
        GOLDEN.check_sequence("full", [f[3] for f in fast.frames])
        assert fast.chained()
        # after the pause: frames that stand alone (behind the cache), then
        # chained ones again
        kinds = [f[1] for f in slow.frames[n0:]]
        assert True in kinds, "the slow client was never behind the cache"
        assert False in kinds[kinds.index(True):], "no chained frame after catching up"
        fast.close()
        slow.close()


def case_alone_cache():
    """Frames compressed alone are made once per message and worker and then
    taken from the worker's cache: two filtered clients (each filter walks
    the ring on its own) that both match every entry read the same live
    messages; every message they both got was compressed for the first and
    found in the cache for the second, as the two counters show, and each
    message inflates to the corpus."""
    with server(rate=200) as s:
        a = Inflating(s.port, "/?domain=*")
        b = Inflating(s.port, "/?domain=*.*")
        assert a.ext == OWN_EXT and b.ext == OWN_EXT, (a.ext, b.ext)
        ma, mb = a.messages(100), b.messages(100)
        a.close()
        b.close()
        GOLDEN.check_sequence("lite", ma)
        GOLDEN.check_sequence("lite", mb)
        assert all(f[0] and f[1] for f in a.frames + b.frames)
        # the same ring record has the same bytes, "seen" included (which
        # tells apart the corpus's loops)
        both = len(set(ma) & set(mb))
        wait_for(lambda: s.metric_total("certstream_clients") == 0, 10, "the clients gone")

        def counters():
            return (s.metric_total("certstream_deflate_alone_compressed_total"),
                    s.metric_total("certstream_deflate_alone_cache_hits_total"))
        made, hits = wait_for(lambda: counters()[0] >= 100 and counters(), 10, "the counters published")
        print("compressed %d, cache hits %d, messages both clients read %d" % (made, hits, both))
        assert hits >= both > 50, (hits, both)
        assert made >= 100 and made + hits >= 200, (made, hits)


def case_chromium():
    """Headless Chromium (a real browser's permessage-deflate, which keeps
    its inflate context): the live page's own connection, and a WebSocket
    opened by a script in the page whose messages are compared with the
    corpus, 300 of them (so well past the first 32 KiB)."""
    from test_stream_features import Chrome
    with server(rate=300) as s:
        chrome = Chrome()
        try:
            chrome.navigate("http://127.0.0.1:%d/" % s.port)
            chrome.wait("document.querySelectorAll('#rows tr').length >= 5", what="rows on the live page")
            chrome.eval("window.zmsgs = []; window.zws = new WebSocket('ws://127.0.0.1:%d/');"
                        "window.zws.onmessage = e => { if (!e.data.startsWith('{\"message_type\":\"heartbeat\"'))"
                        " window.zmsgs.push(e.data); }; true" % s.port)
            chrome.wait("window.zmsgs.length >= 300", timeout=60, what="300 messages")
            assert chrome.eval("window.zws.extensions") == TAKEOVER_EXT
            msgs = chrome.eval("window.zmsgs.slice(0, 300)")
            GOLDEN.check_sequence("lite", [m.encode() for m in msgs])
            assert s.metric_total("certstream_deflate_negotiated_total") == 2
            assert s.metric_total("certstream_clients_deflate_shared") == 2
            assert s.metric_total("certstream_deflate_chained_frames_total") >= 300
        finally:
            chrome.close()


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "lws-client", "node-dir"))

#!/usr/bin/python3
"""End-to-end tests of the slow-client bounds in seconds and bytes
(limits.slow_client_seconds, limits.slow_client_bytes; docs/operations.md)
and of the SSE resume depth they set (docs/wire-format.md), with the real
server binary replaying the golden corpus and raw clients over loopback.

usage: test_slow.py CASE --server BIN --testdata DIR"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Golden, Server, run_cases, sse_connect, wait_for  # noqa: E402,F401
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def reader(client, n, got, err):
    def run():
        try:
            got.extend(client.recv_message() for _ in range(n))
        except Exception as e:  # reported by the case
            err.append(e)
    t = threading.Thread(target=run)
    t.start()
    return t


def case_seconds():
    """A client whose socket is full is closed with 1008 "client too slow"
    once it is more than limits.slow_client_seconds behind by commit time:
    never before that many seconds after it connected (it started live, so
    it cannot be further behind than that) and long before the byte bound
    (3/4 of the 64 MiB ring) could apply, and the reading client on the same
    worker gets every message in order."""
    yaml = "limits:\n  slow_client_seconds: 2\n"
    with server(rate=200, extra_yaml=yaml) as s:
        ring = s.health_deep()["ring"]
        start, bound = ring["tail"], ring["size"] * 3 // 4
        t0 = time.time()
        stalled = WSRaw(s.port, "/full-stream", rcvbuf=4096)
        good = WSRaw(s.port, "/", rcvbuf=1 << 20)
        got, err = [], []
        t = reader(good, 600, got, err)
        try:
            wait_for(lambda: s.metric_total("certstream_slow_client_drops_total") >= 1, 60,
                     "the stalled client to be dropped", interval=0.02)
            dropped_after = time.time() - t0
            moved = s.health_deep()["ring"]["tail"] - start
        finally:
            t.join(90)
        assert not err, "good client: %r" % err[0]
        assert dropped_after >= 2.0, "dropped %.2f s after connecting, before it could be 2 s behind" % dropped_after
        assert moved < bound, "dropped only after the head moved %d bytes (byte bound %d)" % (moved, bound)
        assert s.metric_total("certstream_slow_client_drops_total") == 1
        code = stalled.expect_close(timeout=10)
        assert (code, stalled.close_reason) == (1008, b"client too slow"), (code, stalled.close_reason)
        GOLDEN.check_sequence("lite", got)


def case_no_message_count():
    """Without buffer_size there is no message-count bound any more: a
    stalled client 2,000 messages behind (twice the old default) is kept
    while it is less than limits.slow_client_seconds behind."""
    yaml = "limits:\n  slow_client_seconds: 120\n"
    with server(rate=400, extra_yaml=yaml) as s:
        p0 = s.metric_total("certstream_entries_published_total")
        stalled = WSRaw(s.port, "/full-stream", rcvbuf=4096)
        good = WSRaw(s.port, "/", rcvbuf=1 << 20)
        got, err = [], []
        t = reader(good, 2400, got, err)
        wait_for(lambda: s.metric_total("certstream_entries_published_total") - p0 >= 2400, 100,
                 "2,400 entries published")
        t.join(60)
        assert not err, "good client: %r" % err[0]
        assert s.metric_total("certstream_slow_client_drops_total") == 0
        # the stalled client is still served: what it reads now is the stream
        # from where it stopped, in order
        GOLDEN.check_sequence("full", [stalled.recv_message() for _ in range(50)])
        GOLDEN.check_sequence("lite", got)


def case_bytes():
    """limits.slow_client_bytes: with the time bound off, a stalled client is
    closed once it is more than that many ring bytes behind, not before (the
    ring's head had moved at least that far since it connected)."""
    yaml = "limits:\n  slow_client_seconds: 0\n  slow_client_bytes: 2097152\n"
    with server(rate=300, extra_yaml=yaml) as s:
        start = s.health_deep()["ring"]["tail"]
        stalled = WSRaw(s.port, "/full-stream", rcvbuf=4096)
        wait_for(lambda: s.metric_total("certstream_slow_client_drops_total") >= 1, 60,
                 "the stalled client to be dropped", interval=0.02)
        moved = s.health_deep()["ring"]["tail"] - start
        assert moved > 2097152, "dropped after the head moved only %d bytes" % moved
        code = stalled.expect_close(timeout=10)
        assert (code, stalled.close_reason) == (1008, b"client too slow"), (code, stalled.close_reason)


def sse_events(sk, body, n):
    """n events as (id, data) after the response head."""
    sk.settimeout(10)
    while body.count(b"\n\n") < n:
        d = sk.recv(65536)
        assert d, "SSE stream ended"
        body += d
    out = []
    for block in body.split(b"\n\n")[:n]:
        lines = [ln for ln in block.split(b"\n") if ln and not ln.startswith(b":")]
        i = [int(ln[4:]) for ln in lines if ln.startswith(b"id: ")]
        d = [ln[6:] for ln in lines if ln.startswith(b"data: ")]
        if d:
            out.append((i[0] if i else None, d[0]))
    return out


def case_sse_resume_depth():
    """SSE Last-Event-ID resume goes back at most limits.slow_client_seconds
    (a client further behind would be dropped at once): an id from less
    than that ago resumes exactly after it; an id from longer ago, though
    still in the ring, resumes at the oldest message at most that many
    seconds older than the newest (by its `seen`, stamped at publish)."""
    import json
    yaml = "limits:\n  slow_client_seconds: 2\n"
    with server(rate=100, extra_yaml=yaml) as s:
        sk, body = sse_connect(s.port, "lite")
        ev = sse_events(sk, body, 3)
        sk.close()
        old_id, recent_ids = ev[0][0], [i for i, _ in ev]
        # within the window: exactly the next records
        sk, body = sse_connect(s.port, "lite", recent_ids[0])
        again = sse_events(sk, body, 2)
        sk.close()
        assert [i for i, _ in again] == recent_ids[1:3], (again, recent_ids)
        # older than the window (the ring, 64 MiB, still holds it)
        t0 = time.time()
        wait_for(lambda: time.time() - t0 > 4, 10, "4 s")
        asked = time.time()
        sk, body = sse_connect(s.port, "lite", old_id)
        late = sse_events(sk, body, 30)
        sk.close()
        assert late[0][0] > recent_ids[2], "resumed at %d, right after %d" % (late[0][0], old_id)
        seen = json.loads(late[0][1])["data"]["seen"]
        assert seen >= asked - 2.0 - 0.5, "resumed %.2f s back (bound 2 s)" % (asked - seen)
        ids = [i for i, _ in late]
        assert ids == sorted(set(ids)), ids
        GOLDEN.check_sequence("lite", [d for _, d in late])


if __name__ == "__main__":
    sys.exit(run_cases(globals()))

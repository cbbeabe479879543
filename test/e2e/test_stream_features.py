#!/usr/bin/python3
"""End-to-end tests of the stream features: classic-client compatibility of
absent name fields, HEAD /sse, configurable endpoint paths, server-side
filters, permessage-deflate and the live page, each against the real binary
replaying the golden corpus and real clients over loopback.

usage: test_stream_features.py CASE --server BIN --testdata DIR [--lws-client BIN] [--node-dir DIR]
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pipeline"))
from absent_names import null_form  # noqa: E402
from server import Golden, Server, mask_seen  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None
HEARTBEAT = b'{"message_type":"heartbeat"'


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def golden_null():
    """The corpus with subject/issuer in the null form (the server's default)."""
    g = Golden(ARGS.testdata)
    for fmt in ("full", "lite"):
        g.expected[fmt] = [null_form(m) for m in g.expected[fmt]]
    return g


def collect_websocket_client(url, n, timeout=20, **kw):
    """python3-websocket (websocket-client, what certstream-python uses)."""
    import websocket
    ws = websocket.create_connection(url, timeout=timeout, **kw)
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


def collect_websockets(url, n, timeout=20, compression="deflate"):
    """python3-websockets (asyncio); returns (messages, negotiated extensions header)."""
    import websockets

    async def run():
        out = []
        async with websockets.connect(url, max_size=None, open_timeout=timeout,
                                      compression=compression) as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            while len(out) < n:
                m = await asyncio.wait_for(ws.recv(), timeout)
                m = m.encode() if isinstance(m, str) else m
                if not m.startswith(HEARTBEAT):
                    out.append(m)
        return out, ext
    return asyncio.run(run())


def http_raw(port, request, timeout=5):
    """Sends raw request bytes; returns everything until the server closes
    (or the head and Content-Length bytes of a kept-alive answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if b"\r\n\r\n" in buf:
                head, body = buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                if m and len(body) >= int(m.group(1)) and b"keep-alive" in head.lower():
                    break
    finally:
        s.close()
    return buf


def classic_cli_line(message):
    """What certstream-python's CLI (text mode) reads of every
    certificate_update: a KeyError here is the reported incompatibility."""
    m = json.loads(message)
    if m["message_type"] != "certificate_update":
        return None
    d = m["data"]
    return "%s %s %s" % (d["leaf_cert"]["subject"]["CN"], d["leaf_cert"]["issuer"]["O"],
                         ", ".join(d["leaf_cert"]["all_domains"]))


# ------------------------------------------------------------------- cases

def case_names_null_default():
    """Default config: the null form, byte for byte (corpus rewritten), over
    a whole loop of the corpus, through websocket-client and npm ws; the
    classic CLI's accesses never raise."""
    n = len(GOLDEN.records)
    g = golden_null()
    with server(rate=100, absent_name_fields=None) as s:
        for fmt, path in (("lite", "/"), ("full", "/full-stream")):
            msgs = collect_websocket_client(s.url(path), n + 3)
            g.check_sequence(fmt, msgs)
            for m in msgs:
                classic_cli_line(m)
        # domains-only has no names: unchanged
        GOLDEN.check_sequence("domains", collect_websocket_client(s.url("/domains-only"), 10))
        # /example.json and /latest.json carry the same form
        st, _, body = s.http("/example.json")
        assert st == 200 and mask_seen(body) in g.expected["lite"], body[:300]
        st, _, body = s.http("/latest.json")
        latest = json.loads(body)["messages"]
        assert latest, "no latest messages"
        for m in latest:
            assert mask_seen(json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode()) \
                in g.expected["lite"], "latest message not in the null form"


def case_names_omit():
    """absent_name_fields: omit keeps the Rust server's bytes; the classic CLI
    fails exactly on the corpus record without a subject CN."""
    no_cn = [r for r in GOLDEN.records if '"CN"' not in r["expected_lite"].split('"issuer"')[0]]
    assert len(no_cn) == 1, "the corpus should hold one certificate without a subject CN"
    n = len(GOLDEN.records)
    with server(rate=100, absent_name_fields="omit") as s:
        msgs = collect_websocket_client(s.url("/"), n + 3)
        GOLDEN.check_sequence("lite", msgs)
        errors = 0
        for m in msgs:
            try:
                classic_cli_line(m)
            except KeyError as e:
                assert e.args == ("CN",), e.args
                errors += 1
        assert errors >= 1, "the omit form should break the classic CLI on the CN-less certificate"
    with server(rate=100, absent_name_fields="null") as s:
        msgs = collect_websocket_client(s.url("/"), n + 3)
        golden_null().check_sequence("lite", msgs)
        for m in msgs:
            classic_cli_line(m)


SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\nX-Accel-Buffering: no\r\n\r\n")


def metric(s, name):
    """The value of one unlabelled or labelled sample from /metrics."""
    st, _, body = s.http("/metrics")
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("metric %s missing" % name)


def case_head_sse():
    """HEAD /sse answers exactly GET's head and no body, then closes; the
    query is checked as for GET; auth applies; no stream is held."""
    with server(rate=50, extra_yaml="auth:\n  enabled: true\n  tokens: [t0k]\n") as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(4096)
        sock.close()
        get = buf.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        assert get == SSE_HEAD, get
        for q in ("", "?stream=full", "?stream=domains-only"):
            got = http_raw(s.port, ("HEAD /sse%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\r\n"
                                    % q).encode())
            assert got == SSE_HEAD, "HEAD /sse%s: %r" % (q, got)
        got = http_raw(s.port, b"HEAD /sse?stream=bogus HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n") and got.endswith(b"\r\n\r\n"), got
        assert b"Content-Length: 50\r\n" in got, got   # the GET body's length, not sent
        got = http_raw(s.port, b"HEAD /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 401 Unauthorized\r\n") and got.endswith(b"\r\n\r\n"), got
        # curl -I, a real client
        p = subprocess.run(["curl", "-sI", "--max-time", "5", "-H", "Authorization: t0k",
                            "http://127.0.0.1:%d/sse" % s.port], capture_output=True)
        assert p.returncode == 0 and p.stdout == SSE_HEAD, (p.returncode, p.stdout)
        assert metric(s, "certstream_active_connections") == 0
    with server(rate=50, extra_yaml="protocols:\n  sse: false\n") as s:
        got = http_raw(s.port, b"HEAD /sse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 404 Not Found\r\n") and got.endswith(b"\r\n\r\n"), got


def case_custom_paths():
    """streams.*_path: every stream at its configured path (and with a
    trailing /), examples following, the default paths gone."""
    yaml = ("streams:\n  lite_path: /v1/lite\n  full_path: /v1/full\n  domains_path: /dom\n"
            "  sse_path: /v1/events\n")
    with server(rate=100, extra_yaml=yaml) as s:
        GOLDEN.check_sequence("lite", collect_websocket_client(s.url("/v1/lite"), 8))
        GOLDEN.check_sequence("lite", collect_websocket_client(s.url("/v1/lite/"), 3))
        GOLDEN.check_sequence("full", collect_websocket_client(s.url("/v1/full"), 8))
        GOLDEN.check_sequence("domains", collect_websocket_client(s.url("/dom/"), 8))
        lines = node("ws_client.js", s.url("/v1/full"), "5")
        GOLDEN.check_sequence("full", lines)
        p = subprocess.run(["curl", "-sN", "--max-time", "1.5", "http://127.0.0.1:%d/v1/events?stream=full" % s.port],
                           capture_output=True)
        events = [l[6:] for l in p.stdout.split(b"\n") if l.startswith(b"data: ")]
        assert len(events) >= 20, "SSE at the configured path: %d events" % len(events)
        GOLDEN.check_sequence("full", events)
        for path, fmt in (("/v1/lite/example.json", "lite"), ("/v1/full/example.json", "full"),
                          ("/dom/example.json", "domains")):
            st, _, body = s.http(path)
            assert st == 200, (path, st)
            exp = GOLDEN.expected[fmt]
            assert (mask_seen(body) if fmt != "domains" else body) in exp, (path, body[:200])
        # the defaults are gone (404), except what is fixed
        for path in ("/full-stream", "/domains-only", "/sse", "/full-stream/example.json", "/example.json"):
            st, _, body = s.http(path)
            assert st == 404 and body == b'{"error":"Not Found"}', (path, st, body)
        st, _, body = s.http("/v1/full")
        assert st == 426 and b"/v1/full (full stream) is a WebSocket endpoint" in body, (st, body)
        assert s.http("/health")[0] == 200 and s.http("/latest.json")[0] == 200


def node(script, *args, timeout=30):
    env = dict(os.environ, NODE_PATH=os.path.join(ARGS.node_dir, "node_modules"))
    p = subprocess.run(["node", os.path.join(HERE, script)] + list(args), capture_output=True,
                       timeout=timeout, env=env)
    assert p.returncode == 0, "node %s failed (%d): %s" % (script, p.returncode, p.stderr.decode()[-2000:])
    return [l for l in p.stdout.split(b"\n") if l]


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

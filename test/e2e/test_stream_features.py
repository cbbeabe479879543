#!/usr/bin/python3
"""End-to-end tests of the stream features: classic-client compatibility of
absent name fields, HEAD /sse, configurable endpoint paths, server-side
filters, permessage-deflate and the live page, each against the real binary
replaying the golden corpus and real clients over loopback.

usage: test_stream_features.py CASE --server BIN --testdata DIR [--lws-client BIN] [--node-dir DIR]
Each CASE is one CTest test; the last line is `N passed, N failed`."""
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
from server import Golden, Server, free_port, mask_seen  # noqa: E402
from server import HEARTBEAT, collect_websocket_client, run_cases as server_run_cases  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def golden_null():
    """The corpus with subject/issuer in the null form (the server's default)."""
    g = Golden(ARGS.testdata)
    for fmt in ("full", "lite"):
        g.expected[fmt] = [null_form(m) for m in g.expected[fmt]]
    return g


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


# ---- filters: the expected messages come from the corpus's own fields,
# selected in Python (fnmatch, re), independently of the server's code.

def record_fields(rec):
    d = json.loads(rec["expected_lite"])["data"]
    url = d["source"]["url"].lower()
    for pre in ("https://", "http://"):
        if url.startswith(pre):
            url = url[len(pre):]
    return {"domains": d["leaf_cert"]["all_domains"], "issuer": d["leaf_cert"]["issuer"]["aggregated"].lower(),
            "precert": d["update_type"] == "PrecertLogEntry", "ca": d["leaf_cert"]["is_ca"],
            "name": d["source"]["name"].lower(), "url": url.rstrip("/")}


def filtered(pred):
    """A Golden whose expected lists hold only the records pred selects."""
    import fnmatch  # noqa: F401
    g = Golden(ARGS.testdata)
    keep = [pred(record_fields(r)) for r in g.records]
    for fmt in ("full", "lite", "domains"):
        g.expected[fmt] = [m for m, k in zip(g.expected[fmt], keep) if k]
    assert g.expected["lite"], "the filter selects nothing from the corpus"
    return g


def glob(pattern):
    import fnmatch
    return lambda f: any(fnmatch.fnmatchcase(d.lower(), pattern) for d in f["domains"])


FILTERS = [
    # (query, predicate over a record's fields)
    ("domain=*.workdaysuv.com", glob("*.workdaysuv.com")),
    ("domain=RuralUs.com.", glob("ruralus.com")),
    ("domain=*workday*", glob("*workday*")),
    ("domain=ruralus.com,salings.com&domain=casa-laguna.de",
     lambda f: any(d in ("ruralus.com", "salings.com", "casa-laguna.de") for d in f["domains"])),
    ("regex=%5E%5Ba-z%5D%2B%5C.com%24", lambda f: any(re.search(r"^[a-z]+\.com$", d, re.I) for d in f["domains"])),
    ("issuer=let%27s+encrypt&precert=false", lambda f: "let's encrypt" in f["issuer"] and not f["precert"]),
    ("precert=true", lambda f: f["precert"]),
    ("log=Cloudflare+%27Nimbus2026%27", lambda f: f["name"] == "cloudflare 'nimbus2026'"),
    ("log=https://ct.googleapis.com/logs/us1/argon2026h2/&ca=false",
     lambda f: f["url"] == "ct.googleapis.com/logs/us1/argon2026h2" and not f["ca"]),
    ("domain=*.workdaysuv.com&regex=%5Emaya", lambda f: glob("*.workdaysuv.com")(f) and
     any(d.startswith("maya") for d in f["domains"])),
    # "*.NAME" is any name under NAME, never NAME itself: the corpus has a
    # certificate for casa-laguna.de alone (no subdomain), so this selects
    # only portal.dragonjar.org's record
    ("domain=*.casa-laguna.de,*.dragonjar.org", lambda f: glob("*.casa-laguna.de")(f) or glob("*.dragonjar.org")(f)),
]


def case_filter_clients():
    """Every filter through websocket-client, each expected run of corpus
    messages exactly; a few through python websockets, npm ws, the
    libwebsockets client and curl (SSE, lite/full/domains)."""
    with server(rate=200) as s:
        for q, pred in FILTERS:
            g = filtered(pred)
            n = min(len(g.expected["lite"]) + 2, 12)
            g.check_sequence("lite", collect_websocket_client(s.url("/?" + q), n))
        q, pred = FILTERS[0]
        g = filtered(pred)
        msgs, _ = collect_websockets(s.url("/full-stream?" + q), 6, compression=None)
        g.check_sequence("full", msgs)
        g.check_sequence("domains", node("ws_client.js", s.url("/domains-only?" + q), "6"))
        q, pred = FILTERS[5]
        g = filtered(pred)
        p = subprocess.run([ARGS.lws_client, s.url("/?" + q), "10"], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        g.check_sequence("lite", [l for l in p.stdout.split(b"\n") if l])
        q, pred = FILTERS[7]
        g = filtered(pred)
        p = subprocess.run(["curl", "-sN", "--max-time", "2", "http://127.0.0.1:%d/sse?stream=full&%s" % (s.port, q)],
                           capture_output=True)
        events = [l[6:] for l in p.stdout.split(b"\n") if l.startswith(b"data: ")]
        assert len(events) >= 10, len(events)
        g.check_sequence("full", events)


def sse_events(port, query, seconds, last_id=None):
    cmd = ["curl", "-sN", "--max-time", str(seconds)]
    if last_id is not None:
        cmd += ["-H", "Last-Event-ID: %d" % last_id]
    p = subprocess.run(cmd + ["http://127.0.0.1:%d/sse?%s" % (port, query)], capture_output=True)
    out, cur = [], None
    for line in p.stdout.split(b"\n"):
        if line.startswith(b"id: "):
            cur = int(line[4:])
        elif line.startswith(b"data: "):
            out.append((cur, line[6:]))
    return out


def case_filter_sse_resume():
    """Last-Event-ID with a filter: the resumed stream is exactly the
    matching events after that id, none of the others."""
    q, pred = FILTERS[6]   # precert=true: 10 of 28
    g = filtered(pred)
    with server(rate=100) as s:
        ev = sse_events(s.port, "stream=lite&" + q, 1.5)
        assert len(ev) >= 8, len(ev)
        g.check_sequence("lite", [d for _, d in ev])
        mid = ev[2][0]
        time.sleep(0.3)
        ev2 = sse_events(s.port, "stream=lite&" + q, 1.0, last_id=mid)
        want = [d for i, d in ev if i > mid]
        got = [d for _, d in ev2][:len(want)]
        assert got == want, "filtered resume after %d: got %d, want %d events" % (mid, len(got), len(want))
        assert all(i > mid for i, _ in ev2)
        g.check_sequence("lite", [d for _, d in ev2])


def case_filter_errors():
    """Bad filters are a 400 before the upgrade, with the reason; one
    distinct filter over filters.max_per_worker is a 429."""
    yaml = "filters:\n  max_per_worker: 2\n  max_patterns: 4\n  max_pattern_bytes: 64\n"
    cases = [
        ("regex=(", 400, b"Bad filter: regex \"(\": missing closing parenthesis at offset 1.\n"),
        ("regex=%28a%2B%29%2B%24", 400, b"Bad filter: regex \"(a+)+$\" is too costly: match limit exceeded on a test domain.\n"),
        ("domain=a..b", 400, b"Bad filter: empty label in domain pattern \"a..b\".\n"),
        ("domain=a%20b.com", 400, b"Bad filter: domain pattern \"a b.com\" has a character that is not in domain "
                                  b"names (letters, digits, -, _, . and * only).\n"),
        ("precert=maybe", 400, b"Bad filter: precert must be true or false.\n"),
        ("ca=true&ca=false", 400, b"Bad filter: ca is given as both true and false.\n"),
        ("domain=a,b,c,d,e", 400, b"Bad filter: more than 4 filter values (filters.max_patterns).\n"),
        ("issuer=" + "x" * 65, 400, b"Bad filter: a filter value is longer than 64 bytes (filters.max_pattern_bytes).\n"),
        ("domain=%ZZ", 400, b"Bad filter: bad percent-escape in the domain value.\n"),
        ("domain=*b%C3%BCcher.de", 400, b"Bad filter: a label with * must be ASCII in domain pattern \"*b\xc3\xbccher.de\".\n"),
    ]
    with server(rate=50, extra_yaml=yaml) as s:
        for q, status, body in cases:
            for path in ("/?" + q, "/sse?" + q):
                c = WSRaw(s.port, path) if path.startswith("/?") else None
                if c:
                    resp = c.head.encode() + b"\r\n\r\n" + c.buf
                    c.sock.settimeout(3)
                    try:
                        while True:
                            d = c.sock.recv(4096)
                            if not d:
                                break
                            resp += d
                    except OSError:
                        pass
                    c.sock.close()
                else:
                    resp = http_raw(s.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
                assert resp.startswith(b"HTTP/1.1 %d " % status), (path, resp[:200])
                assert resp.endswith(b"\r\n\r\n" + body), (path, resp[-300:], body)
        # the same filter written differently is one filter; a third distinct one is 429
        a = WSRaw(s.port, "/?domain=a.com,b.com")
        b = WSRaw(s.port, "/?domain=B.com.&domain=a.com&domain=a.com")
        c = WSRaw(s.port, "/full-stream?domain=xn--bcher-kva.de")
        d = WSRaw(s.port, "/?domain=b%C3%BCcher.de")          # IDNA: the same as c's
        assert a.status == b.status == c.status == d.status == 101
        assert metric(s, "certstream_filters_distinct") == 2
        assert metric(s, "certstream_clients_filtered") == 4
        resp = http_raw(s.port, b"GET /sse?issuer=x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), resp[:100]
        assert b"Retry-After: 5\r\n" in resp and resp.endswith(
            b"Too many filters: too many distinct filters on this worker (filters.max_per_worker = 2); "
            b"try again later or use a filter other clients use.\n"), resp
        for x in (a, b, c, d):
            x.close()
        deadline = time.time() + 10
        while metric(s, "certstream_filters_distinct") != 0 and time.time() < deadline:
            time.sleep(0.05)
        assert metric(s, "certstream_filters_distinct") == 0 and metric(s, "certstream_clients_filtered") == 0
        assert metric(s, "certstream_filter_rejected_total") == 2 * len(cases) + 1
    with server(rate=50, extra_yaml="filters:\n  enabled: false\n") as s:
        resp = http_raw(s.port, b"GET /sse?domain=a.com HTTP/1.1\r\nHost: x\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 400 ") and resp.endswith(
            b"Bad filter: filters are disabled on this server (filters.enabled).\n"), resp


def case_filter_shared_cost():
    """40 clients on 2 distinct filters: the worker evaluates each filter at
    most once per message (evaluations <= 2 x messages published), and every
    client still gets exactly its messages."""
    qa, pa = FILTERS[0]
    qb, pb = FILTERS[6]
    ga, gb = filtered(pa), filtered(pb)
    with server(rate=200) as s:
        before_pub = metric(s, "certstream_entries_published_total")
        clients = [WSRaw(s.port, "/?" + (qa if i % 2 else qb)) for i in range(40)]
        for i, c in enumerate(clients):
            (ga if i % 2 else gb).check_sequence("lite", [c.recv_message() for _ in range(6)])
        # an unfiltered client alongside, read at once (an unread one would
        # fall buffer_size messages behind on a slow machine)
        plain = WSRaw(s.port, "/")
        GOLDEN.check_sequence("lite", [plain.recv_message() for _ in range(30)])
        evals = metric(s, "certstream_filter_evaluations_total")
        pub = metric(s, "certstream_entries_published_total") - before_pub
        assert metric(s, "certstream_filters_distinct") == 2 and metric(s, "certstream_clients_filtered") == 40
        assert 0 < evals <= 2 * (pub + 1), "evaluations %d for %d messages and 2 filters" % (evals, pub)
        matches = metric(s, "certstream_filter_matches_total")
        assert 0 < matches < evals
        for c in clients + [plain]:
            c.close()
        deadline = time.time() + 10
        while metric(s, "certstream_filters_distinct") != 0 and time.time() < deadline:
            time.sleep(0.05)
        # a new filter takes a freed filter's place in the per-record results:
        # none of the old results may leak into it
        qc, pc = FILTERS[7]
        c = WSRaw(s.port, "/?" + qc)
        filtered(pc).check_sequence("lite", [c.recv_message() for _ in range(20)])
        c.close()


# ---- permessage-deflate

DEFLATE_EXT = "permessage-deflate; server_no_context_takeover"


def raw_frames(port, path, n, offer=None):
    """n data frames (FIN, opcode, RSV1, payload) of a raw client; offer is
    the Sec-WebSocket-Extensions header, or None for no offer."""
    c = WSRaw(port, path, headers={"Sec-WebSocket-Extensions": offer} if offer else None)
    assert c.status == 101, c.head
    ext = None
    for line in c.head.split("\r\n"):
        if line.lower().startswith("sec-websocket-extensions:"):
            ext = line.split(":", 1)[1].strip()
    out = []
    while len(out) < n:
        c._need(2)
        rsv1 = bool(c.buf[0] & 0x40)
        fin, op, payload = c.recv_frame()
        if op == 1:
            out.append((fin, op, rsv1, payload))
    c.close()
    return ext, out


def inflate(payload):
    """RFC 7692 7.2.2, by Python's zlib: append 00 00 ff ff, raw inflate."""
    import zlib
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff") + d.flush()


def case_deflate_clients():
    """Real clients with and without permessage-deflate get exactly the
    corpus's messages; the negotiation shows in the answer and the counters."""
    with server(rate=200) as s:
        for fmt, path in (("lite", "/"), ("full", "/full-stream"), ("domains", "/domains-only")):
            msgs, ext = collect_websockets(s.url(path), 30)                     # offers deflate
            assert ext == DEFLATE_EXT, ext
            GOLDEN.check_sequence(fmt, msgs)
            msgs, ext = collect_websockets(s.url(path), 10, compression=None)   # no offer
            assert ext is None, ext
            GOLDEN.check_sequence(fmt, msgs)
        assert metric(s, "certstream_deflate_negotiated_total") == 3
        lines = node("ws_client.js", s.url("/"), "30", "on")
        assert json.loads(lines[0]) == "permessage-deflate", lines[0]
        GOLDEN.check_sequence("lite", lines[1:])
        lines = node("ws_client.js", s.url("/full-stream"), "10", "off")
        assert json.loads(lines[0]) == "", lines[0]
        GOLDEN.check_sequence("full", lines[1:])
        assert metric(s, "certstream_deflate_negotiated_total") == 4
        p = subprocess.run([ARGS.lws_client, "--deflate", s.url("/full-stream"), "30"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        GOLDEN.check_sequence("full", [l for l in p.stdout.split(b"\n") if l])
        p = subprocess.run([ARGS.lws_client, "--deflate", s.url("/domains-only"), "30"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        GOLDEN.check_sequence("domains", [l for l in p.stdout.split(b"\n") if l])
        assert metric(s, "certstream_deflate_negotiated_total") == 6
        p = subprocess.run([ARGS.lws_client, s.url("/"), "10"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        GOLDEN.check_sequence("lite", [l for l in p.stdout.split(b"\n") if l])
        # websocket-client (what certstream-python uses) offers nothing: plain frames
        GOLDEN.check_sequence("lite", collect_websocket_client(s.url("/"), 10))
        assert metric(s, "certstream_deflate_negotiated_total") == 6
        assert metric(s, "certstream_deflate_messages_sent_total") >= 30 * 4 + 30 * 2


def case_deflate_frames():
    """The frames themselves: RSV1 set and raw DEFLATE that Python's zlib
    inflates to the corpus bytes; heartbeats and messages under
    compression.min_size uncompressed; refused parameter sets fall back to
    plain frames; compression.enabled: false never negotiates."""
    with server(rate=200, extra_yaml="keepalive:\n  websocket_heartbeat_secs: 1\n") as s:
        ext, frames = raw_frames(s.port, "/", 30, "permessage-deflate; client_max_window_bits")
        assert ext == DEFLATE_EXT, ext
        assert all(f[0] and f[2] for f in frames), "every lite message compressed (RSV1)"
        GOLDEN.check_sequence("lite", [inflate(f[3]) for f in frames])
        comp = sum(len(f[3]) for f in frames)
        plain = sum(len(inflate(f[3])) for f in frames)
        # per message, without context: about 1.9x for lite (docs/benchmarks.md)
        assert comp * 1.6 < plain, "lite compressed %d -> %d bytes" % (plain, comp)
        # domains-only: every message compressed too, even the short ones
        # that do not shrink (compression.min_size 0)
        ext, frames = raw_frames(s.port, "/domains-only", 60, "permessage-deflate")
        assert all(f[2] for f in frames)
        GOLDEN.check_sequence("domains", [inflate(f[3]) for f in frames])
        # offers the server cannot honour are declined: plain frames
        for offer in ("permessage-deflate; server_max_window_bits=10",
                      "permessage-deflate; x-unknown",
                      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                      "permessage-deflate; client_max_window_bits=7",
                      "x-webkit-deflate-frame"):
            ext, frames = raw_frames(s.port, "/", 5, offer)
            assert ext is None, (offer, ext)
            assert not any(f[2] for f in frames)
            GOLDEN.check_sequence("lite", [f[3] for f in frames])
        # the first acceptable offer of a list wins
        ext, frames = raw_frames(s.port, "/", 5, "permessage-deflate; server_max_window_bits=9, "
                                                 "permessage-deflate; server_max_window_bits=15")
        assert ext == DEFLATE_EXT and all(f[2] for f in frames)
        # heartbeats are compressed for deflate clients (once per heartbeat),
        # plain for the others
        for offer in ("permessage-deflate", None):
            c = WSRaw(s.port, "/", headers={"Sec-WebSocket-Extensions": offer} if offer else None)
            deadline = time.time() + 15
            while time.time() < deadline:
                c._need(2)
                rsv1 = bool(c.buf[0] & 0x40)
                _, op, payload = c.recv_frame()
                text = inflate(payload) if rsv1 else payload
                if text.startswith(HEARTBEAT):
                    assert rsv1 == bool(offer), (offer, rsv1)
                    assert re.fullmatch(rb'\{"message_type":"heartbeat","timestamp":[0-9]+(\.[0-9]+)?\}', text), text
                    break
            else:
                raise AssertionError("no heartbeat in 15 s")
            if offer:
                break
        # (c: the deflate client, used below)
        # a compressed client message is accepted (and ignored), the stream goes on
        c.sock.sendall(bytes([0xC1, 0x80 | 5]) + b"\0\0\0\0" + b"\xf2\x48\xcd\xc9\xc9")
        c._need(2)
        c.close()
    with server(rate=200, extra_yaml="compression:\n  enabled: false\n") as s:
        ext, frames = raw_frames(s.port, "/", 5, "permessage-deflate")
        assert ext is None and not any(f[2] for f in frames)
        GOLDEN.check_sequence("lite", [f[3] for f in frames])


# ---- the live page, in a real headless Chromium driven over the DevTools
# protocol (its WebSocket, through python3-websocket)

class Chrome:
    def __init__(self, flags=()):
        import tempfile
        import urllib.request
        import websocket
        self.dir = tempfile.mkdtemp(prefix="cs-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + os.path.join(self.dir, "profile"), "--remote-debugging-port=0"]
            + list(flags) + ["about:blank"], stdout=self.log, stderr=self.log, start_new_session=True,
            env=dict(os.environ, TMPDIR=self.dir))   # its scratch files go where we clean up
        portfile = os.path.join(self.dir, "profile", "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(portfile) and open(portfile).read().strip()):
            assert self.proc.poll() is None and time.time() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(open(portfile).read().split()[0])
        while True:
            targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10))
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            assert time.time() < deadline, "no page target"
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.n:
                assert "error" not in r, r
                return r["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expr, timeout=30, what=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s" % (what or expr))

    def navigate(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!document.getElementById('rows')", what="page load")

    def helpers(self):
        """pids of the processes this browser started (its profile directory
        is on their command line; some leave its process group)."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        if self.dir.encode() in f.read():
                            out.append(int(d))
                except OSError:
                    pass
        return out

    def close(self):
        import shutil
        import signal
        try:
            try:
                self.call("Browser.close")   # an orderly exit writes its files first
            except Exception:  # noqa: BLE001 - it may already be gone
                pass
            self.ws.close()
        finally:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.time() + 10
            while True:
                left = self.helpers()
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL if time.time() > deadline else signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.log.close()
            for _ in range(100):   # a file closed a moment ago may reappear once
                shutil.rmtree(self.dir, ignore_errors=True)
                if not os.path.exists(self.dir):
                    break
                time.sleep(0.1)


ROWS = "Array.from(document.querySelectorAll('#rows tr')).map(r => Array.from(r.cells).map(c => c.textContent))"


def corpus_rows():
    """domains cell text -> (issuer cell, log cell) as the page renders them."""
    out = {}
    for r in GOLDEN.records:
        d = json.loads(r["expected_lite"])["data"]
        lc = d["leaf_cert"]
        iss = lc["issuer"].get("O") or lc["issuer"].get("CN") or lc["issuer"]["aggregated"]
        out[" ".join(lc["all_domains"])] = (iss, d["source"]["name"])
    return out


def case_web_page_chromium():
    """The live page in headless Chromium: messages appear in the DOM (each
    row a corpus certificate), the domain filter narrows them (a server-side
    filter), pause holds the table, the stream switch works, and the
    connection negotiated permessage-deflate (the server's counters)."""
    rows_of = corpus_rows()
    with server(rate=50) as s:
        st, hdr, body = s.http("/")
        assert st == 200 and hdr["Content-Type"] == "text/html; charset=utf-8", (st, hdr)
        assert "connect-src 'self' ws: wss:" in hdr["Content-Security-Policy"] and hdr["X-Content-Type-Options"] == "nosniff"
        assert b'const CFG = {"lite":"/","full":"/full-stream","domains":"/domains-only","auth":false,"query_token":false};' in body
        assert b"http://" not in body and b"https://" not in body, "the page must load nothing from elsewhere"
        chrome = Chrome()
        try:
            chrome.navigate("http://127.0.0.1:%d/" % s.port)
            chrome.wait("document.querySelectorAll('#rows tr').length >= 10", what="10 rows")
            assert chrome.eval("document.getElementById('state').textContent") == "open"
            rows = chrome.eval(ROWS)
            for t, doms, iss, log in rows:
                assert doms in rows_of and rows_of[doms] == (iss, log), (doms, iss, log)
            assert metric(s, "certstream_deflate_negotiated_total") >= 1
            assert metric(s, "certstream_clients_deflate") == 1, "Chromium's WebSocket did not negotiate deflate"
            chrome.wait("parseFloat(document.getElementById('rate').textContent) > 0", what="a rate")

            # the filter narrows the table to matching certificates
            chrome.eval("document.getElementById('filter').value = '*.workdaysuv.com';"
                        "document.getElementById('apply').click(); true")
            chrome.wait("document.querySelectorAll('#rows tr').length >= 3", what="3 filtered rows")
            rows = chrome.eval(ROWS)
            assert all(re.search(r"\.workdaysuv\.com( |$)", r[1]) for r in rows), rows
            assert metric(s, "certstream_clients_filtered") == 1
            assert metric(s, "certstream_clients_deflate") == 1

            # pause: the table holds still while messages go on arriving
            chrome.eval("document.getElementById('filter').value = ''; document.getElementById('apply').click(); true")
            chrome.wait("document.querySelectorAll('#rows tr').length >= 5", what="rows after clearing the filter")
            chrome.eval("document.getElementById('pause').click(); true")
            held = chrome.eval("document.getElementById('count').textContent")
            time.sleep(1.5)
            assert chrome.eval("document.getElementById('count').textContent") == held
            chrome.eval("document.getElementById('pause').click(); true")
            chrome.wait("document.getElementById('count').textContent !== %s" % json.dumps(held), what="resume")

            # stream switch: domains only
            chrome.eval("const s = document.getElementById('stream'); s.value = 'domains';"
                        "s.dispatchEvent(new Event('change')); true")
            chrome.wait("document.querySelectorAll('#rows tr').length >= 5", what="domains rows")
            rows = chrome.eval(ROWS)
            assert all(r[1] in rows_of and r[2] == "" and r[3] == "" for r in rows), rows
            chrome.wait("document.getElementById('state').textContent === 'open'")
        finally:
            chrome.close()
        got = http_raw(s.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\n"), got[:200]
    with server(rate=50, extra_yaml="protocols:\n  web_page: false\n") as s:
        st, _, body = s.http("/")
        assert st == 426 and b"/ (lite stream) is a WebSocket endpoint" in body, (st, body)


def case_web_page_token():
    """With auth, the page's token field works only when
    auth.allow_query_token is on; the page follows configured paths."""
    yaml = ("auth:\n  enabled: true\n  tokens: [s3cret]\n  allow_query_token: true\n"
            "streams:\n  lite_path: /v1/lite\n")
    with server(rate=50, extra_yaml=yaml) as s:
        _, _, body = s.http("/")
        assert b'"lite":"/v1/lite"' in body and b'"auth":true,"query_token":true' in body
        chrome = Chrome()
        try:
            chrome.navigate("http://127.0.0.1:%d/" % s.port)
            assert chrome.eval("!document.getElementById('tokenbox').hidden")
            chrome.wait("document.getElementById('state').textContent.startsWith('closed') || "
                        "document.getElementById('state').textContent === 'error'", what="refused without token")
            assert chrome.eval("document.querySelectorAll('#rows tr').length") == 0
            chrome.eval("document.getElementById('token').value = 's3cret'; document.getElementById('apply').click(); true")
            chrome.wait("document.querySelectorAll('#rows tr').length >= 3", what="rows with the token")
        finally:
            chrome.close()
        # the token in the query works for any client, and only the right one
        assert WSRaw(s.port, "/v1/lite?token=s3cret").status == 101
        assert WSRaw(s.port, "/v1/lite?token=wrong").status == 401
    yaml = "auth:\n  enabled: true\n  tokens: [s3cret]\n"
    with server(rate=50, extra_yaml=yaml) as s:
        _, _, body = s.http("/")
        assert b'"auth":true,"query_token":false' in body
        assert WSRaw(s.port, "/?token=s3cret").status == 401   # off by default
        assert WSRaw(s.port, "/", headers={"Authorization": "Bearer s3cret"}).status == 101


class TLSPrefixProxy:
    """HAProxy terminating TLS (a throw-away self-signed certificate) and
    serving the server under /certstream/: the path prefix is removed on
    the way in, WebSocket upgrades pass through."""

    def __init__(self, backend_port):
        import shutil
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="cs-haproxy-")
        self.proc = None
        try:
            self.start(backend_port)
        except BaseException:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def start(self, backend_port):
        self.port = free_port()
        key, crt = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "crt.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
        pem = os.path.join(self.dir, "both.pem")
        with open(pem, "wb") as f:
            f.write(open(crt, "rb").read() + open(key, "rb").read())
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n  maxconn 256\n"
                    "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n"
                    "  timeout server 60s\n  timeout tunnel 120s\n"
                    "frontend fe\n  bind 127.0.0.1:%d ssl crt %s\n"
                    "  http-request replace-path ^/certstream(/.*)$ \\1\n  default_backend be\n"
                    "backend be\n  server s1 127.0.0.1:%d\n" % (self.port, pem, backend_port))
        self.log = open(os.path.join(self.dir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.time() < deadline, "haproxy did not start"
                time.sleep(0.1)

    def close(self):
        import shutil
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def case_web_page_tls_prefix():
    """The page behind a TLS-terminating proxy under a path prefix: loaded
    as https://.../certstream/, it opens wss://.../certstream/ (relative URL,
    scheme from the page) and shows messages; the stream switch and the
    filter go through the prefix too."""
    rows_of = corpus_rows()
    with server(rate=50) as s:
        proxy = TLSPrefixProxy(s.port)
        chrome = None
        try:
            chrome = Chrome(["--ignore-certificate-errors"])
            chrome.navigate("https://127.0.0.1:%d/certstream/" % proxy.port)
            chrome.wait("document.querySelectorAll('#rows tr').length >= 5", what="rows through the proxy")
            assert chrome.eval("document.getElementById('state').textContent") == "open"
            assert all(r[1] in rows_of for r in chrome.eval(ROWS))
            assert chrome.eval("performance.getEntriesByType('navigation')[0].name") == \
                "https://127.0.0.1:%d/certstream/" % proxy.port
            chrome.eval("const s = document.getElementById('stream'); s.value = 'full';"
                        "document.getElementById('filter').value = '*.workdaysuv.com';"
                        "s.dispatchEvent(new Event('change')); true")
            chrome.wait("document.querySelectorAll('#rows tr').length >= 2", what="filtered full rows")
            assert all(".workdaysuv.com" in r[1] for r in chrome.eval(ROWS))
            assert metric(s, "certstream_clients_filtered") == 1
            # what the server saw came through the prefix, over the proxy
            assert s.metric_total("certstream_connections_accepted_total") >= 2
        finally:
            if chrome:
                chrome.close()
            proxy.close()


def case_deflate_lws_heartbeats():
    """The libwebsockets client with permessage-deflate across heartbeats
    (every second here): it only ever gets compressed messages, which it
    needs (its 4.1 decoder loses track on a plain message after compressed
    ones)."""
    with server(rate=20, extra_yaml="keepalive:\n  websocket_heartbeat_secs: 1\n") as s:
        p = subprocess.run([ARGS.lws_client, "--deflate", "--heartbeats", s.url("/full-stream"), "80"],
                           capture_output=True, timeout=90)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        lines = [l for l in p.stdout.split(b"\n") if l]
        beats = [l for l in lines if l.startswith(HEARTBEAT)]
        assert len(beats) >= 2, "no heartbeats in %d messages" % len(lines)
        GOLDEN.check_sequence("full", [l for l in lines if not l.startswith(HEARTBEAT)])
        assert metric(s, "certstream_deflate_negotiated_total") == 1


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "lws-client", "node-dir"))

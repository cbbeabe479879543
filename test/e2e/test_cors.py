#!/usr/bin/python3
"""CORS end to end: cors.allowed_origins (a YAML sequence, the comma string,
the environment variable) and the OPTIONS preflight, against the real server
replaying the golden corpus, with curl over loopback. Every answer's status
line and header lines are compared exactly.

usage: test_cors.py CASE --server BIN --testdata DIR
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import base64
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Golden, Server, mask_seen  # noqa: E402
from server import run_cases as server_run_cases  # noqa: E402

ARGS = None
GOLDEN = None

DASH = "https://dash.example.org"
LOCAL = "http://localhost:3000"
# RFC 6455 section 1.3: this key's Sec-WebSocket-Accept
WS_KEY, WS_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

PREFLIGHT_METHODS = "Access-Control-Allow-Methods: GET, HEAD, OPTIONS"
ALLOW = "Allow: GET, HEAD, OPTIONS"


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def curl(port, path, method="GET", headers=(), max_time=5):
    """(status line, [header lines in order], body) of one request by curl."""
    cmd = ["curl", "-si", "--max-time", str(max_time), "-X", method]
    if method == "HEAD":
        cmd = ["curl", "-si", "--max-time", str(max_time), "-I"]
    for h in headers:
        cmd += ["-H", h]
    p = subprocess.run(cmd + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True, timeout=30)
    out = p.stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return lines[0], lines[1:], body


def preflight(port, path, origin, headers=("Access-Control-Request-Method: GET",)):
    h = list(headers)
    if origin:
        h.append("Origin: " + origin)
    return curl(port, path, "OPTIONS", h)


def allowed(origin, vary=True, header="Authorization"):
    """The exact header lines of a preflight answer for an allowed origin."""
    return (["Access-Control-Allow-Origin: " + origin] + (["Vary: Origin"] if vary else []) +
            [PREFLIGHT_METHODS, "Access-Control-Allow-Headers: " + header, "Access-Control-Max-Age: 7200",
             ALLOW, "Connection: close"])


def not_allowed():
    return ["Vary: Origin", ALLOW, "Connection: close"]


def check_405(port, path):
    st, hs, body = curl(port, path, "OPTIONS", ["Origin: " + DASH, "Access-Control-Request-Method: GET"])
    assert st == "HTTP/1.1 405 Method Not Allowed", (path, st)
    assert "Allow: GET, HEAD" in hs and not any(h.startswith("Access-Control-") for h in hs), (path, hs)
    assert body == b"Method Not Allowed.\n", (path, body)


def header(hs, name):
    got = [h.split(": ", 1)[1] for h in hs if h.lower().startswith(name.lower() + ": ")]
    assert len(got) <= 1, (name, hs)
    return got[0] if got else None


def case_preflight_list():
    """cors.allowed_origins as a YAML sequence, auth on: the preflight of
    /api/*, /example.json and /latest.json answers 204 with exactly the
    Access-Control-* headers for a listed origin and none for another; the
    request that follows carries Access-Control-Allow-Origin (a 401 too);
    the stream paths are never preflighted (405) and a WebSocket upgrade
    with an Origin needs none."""
    yaml = ("cors:\n  allowed_origins:\n    - %s\n    - \"%s\"\n"
            "auth:\n  enabled: true\n  tokens: [\"s3cret\"]\n" % (DASH, LOCAL))
    with server(rate=50, extra_yaml=yaml) as s:
        for path in ("/api/stats", "/api/logs", "/api/cert/" + "ab" * 32, "/example.json",
                     "/full-stream/example.json", "/domains-only/example.json", "/latest.json"):
            st, hs, body = preflight(s.port, path, DASH, ["Access-Control-Request-Method: GET",
                                                          "Access-Control-Request-Headers: authorization"])
            assert st == "HTTP/1.1 204 No Content" and hs == allowed(DASH) and body == b"", (path, st, hs, body)
            st, hs, body = preflight(s.port, path, LOCAL)
            assert st == "HTTP/1.1 204 No Content" and hs == allowed(LOCAL) and body == b"", (path, st, hs, body)
            # not listed (the scheme or the port differs), or no Origin at all
            for origin in ("https://evil.example.com", "http://dash.example.org", "http://localhost:3001", None):
                st, hs, body = preflight(s.port, path, origin)
                assert st == "HTTP/1.1 204 No Content" and hs == not_allowed() and body == b"", \
                    (path, origin, st, hs)

        # the requests a page makes after the preflight
        st, hs, body = curl(s.port, "/latest.json", headers=["Origin: " + LOCAL, "Authorization: Bearer s3cret"])
        assert st == "HTTP/1.1 200 OK", (st, hs)
        assert header(hs, "Access-Control-Allow-Origin") == LOCAL and header(hs, "Vary") == "Origin", hs
        assert body.startswith(b'{"messages":[{"message_type":"certificate_update"'), body[:200]
        st, hs, body = curl(s.port, "/latest.json", headers=["Origin: " + LOCAL])
        assert st == "HTTP/1.1 401 Unauthorized" and body == b"Unauthorized.\n", (st, body)
        assert header(hs, "WWW-Authenticate") == "Bearer" and header(hs, "Access-Control-Allow-Origin") == LOCAL, hs
        st, hs, body = curl(s.port, "/latest.json", headers=["Origin: https://evil.example.com",
                                                             "Authorization: Bearer s3cret"])
        assert st == "HTTP/1.1 200 OK" and header(hs, "Access-Control-Allow-Origin") is None, hs
        assert header(hs, "Vary") == "Origin", hs
        st, hs, body = curl(s.port, "/api/stats", headers=["Origin: " + DASH])
        assert st == "HTTP/1.1 200 OK" and header(hs, "Access-Control-Allow-Origin") == DASH, hs
        st, hs, body = curl(s.port, "/example.json", headers=["Origin: " + DASH])
        assert st == "HTTP/1.1 200 OK" and header(hs, "Access-Control-Allow-Origin") == DASH, hs
        assert mask_seen(body) in GOLDEN.expected["lite"], body[:200]

        # no preflight for the streams, the live page and the operator endpoints
        for path in ("/", "/full-stream", "/domains-only", "/sse", "/sse?stream=full", "/health",
                     "/health/deep", "/metrics", "/nothing"):
            check_405(s.port, path)

        # a WebSocket upgrade from a page on a listed origin or not: no
        # preflight, the same 101 (the RFC's accept value for its key)
        for origin in (DASH, "https://evil.example.com"):
            st, hs, _ = curl(s.port, "/", headers=["Connection: Upgrade", "Upgrade: websocket",
                                                   "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: " + WS_KEY,
                                                   "Origin: " + origin, "Authorization: Bearer s3cret"],
                             max_time=1)
            assert st == "HTTP/1.1 101 Switching Protocols", (origin, st, hs)
            assert header(hs, "Sec-WebSocket-Accept") == WS_ACCEPT, hs
            assert header(hs, "Access-Control-Allow-Origin") is None, hs
        assert base64.b64encode(hashlib.sha1((WS_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                .digest()).decode() == WS_ACCEPT


def case_preflight_string_env():
    """The comma string in the file, then "*" from
    CERTSTREAM_CORS_ALLOWED_ORIGINS over it; a custom auth.header_name is the
    header the preflight allows."""
    yaml = ("cors:\n  allowed_origins: \"%s, %s\"\n"
            "auth:\n  enabled: true\n  tokens: [\"s3cret\"]\n  header_name: X-Api-Key\n" % (DASH, LOCAL))
    with server(rate=50, extra_yaml=yaml) as s:
        st, hs, _ = preflight(s.port, "/latest.json", LOCAL)
        assert st == "HTTP/1.1 204 No Content" and hs == allowed(LOCAL, header="X-Api-Key"), (st, hs)
        st, hs, _ = preflight(s.port, "/api/logs", "https://other.example")
        assert st == "HTTP/1.1 204 No Content" and hs == not_allowed(), (st, hs)
    with server(rate=50, extra_yaml=yaml, env={"CERTSTREAM_CORS_ALLOWED_ORIGINS": "*"}) as s:
        for origin in (DASH, "https://other.example"):
            st, hs, _ = preflight(s.port, "/api/logs", origin)
            assert st == "HTTP/1.1 204 No Content" and hs == allowed("*", vary=False, header="X-Api-Key"), \
                (origin, st, hs)
        st, hs, _ = curl(s.port, "/latest.json", headers=["Origin: https://other.example", "X-Api-Key: s3cret"])
        assert st == "HTTP/1.1 200 OK" and header(hs, "Access-Control-Allow-Origin") == "*", hs
        assert header(hs, "Vary") is None, hs


def case_preflight_off():
    """CORS off (the default): OPTIONS of a CORS endpoint is 204 with Allow
    only; an endpoint switched off answers 404 as for GET."""
    with server(rate=50, env={"CERTSTREAM_API_ENABLED": "false", "CERTSTREAM_EXAMPLE_JSON_ENABLED": "false"}) as s:
        st, hs, _ = preflight(s.port, "/latest.json", DASH)
        assert st == "HTTP/1.1 204 No Content" and hs == [ALLOW, "Connection: close"], (st, hs)
        for path in ("/api/stats", "/example.json"):
            st, hs, body = preflight(s.port, path, DASH)
            assert st == "HTTP/1.1 404 Not Found" and body == b'{"error":"Not Found"}', (path, st, body)
            assert not any(h.startswith("Access-Control-") for h in hs), hs
        check_405(s.port, "/")


class PageServer:
    """A page origin of its own (another port): an empty HTML page."""

    def __init__(self):
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<!doctype html><title>other origin</title>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.origin = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def in_page(chrome, origin, expr):
    """Opens origin's page in Chromium and evaluates expr there (awaiting a
    promise): its value."""
    chrome.call("Page.navigate", url=origin + "/")
    chrome.wait("document.readyState === 'complete' && location.origin === '%s'" % origin,
                what="the page of " + origin)
    r = chrome.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
    assert "exceptionDetails" not in r, r
    return r["result"].get("value")


def case_preflight_chromium():
    """A real browser: a page on a listed origin fetches /latest.json with
    its token in a header (which makes Chromium preflight) and reads it, and
    /api/stats; the same fetch from a page on an origin not listed fails."""
    from test_stream_features import Chrome
    good, bad = PageServer(), PageServer()
    chrome = None
    yaml = ("cors:\n  allowed_origins:\n    - %s\n"
            "auth:\n  enabled: true\n  tokens: [\"s3cret\"]\n" % good.origin)
    try:
        with server(rate=50, extra_yaml=yaml) as s:
            chrome = Chrome()
            fetch = ("fetch('http://127.0.0.1:%d/latest.json', {headers: {'Authorization': 'Bearer s3cret'}})"
                     ".then(r => r.text().then(t => r.status + ' ' + t.slice(0, 13)), e => 'failed: ' + e.name)"
                     % s.port)
            stats = ("fetch('http://127.0.0.1:%d/api/stats').then(r => r.json()).then(j => 'stats ' + j.status,"
                     " e => 'failed: ' + e.name)" % s.port)

            def run(origin, expr):
                return in_page(chrome, origin, expr)
            assert run(good.origin, fetch) == '200 {"messages":[', run(good.origin, fetch)
            assert run(good.origin, stats) == "stats healthy", run(good.origin, stats)
            assert run(bad.origin, fetch) == "failed: TypeError"
            assert run(bad.origin, stats) == "failed: TypeError"
    finally:
        if chrome:
            chrome.close()
        good.close()
        bad.close()


SSE_HEAD = ["Content-Type: text/event-stream", "Cache-Control: no-cache"]
SSE_TAIL = ["Connection: close", "X-Accel-Buffering: no"]


def sse_head(port, origin, path="/sse?stream=domains"):
    """Status line, header lines and the first bytes of the SSE stream, by curl
    (cut after a second: the stream does not end)."""
    h = ["Origin: " + origin] if origin else []
    st, hs, body = curl(port, path, headers=h, max_time=1.5)
    return st, hs, body


def case_sse_headers():
    """The SSE stream answers an allowed Origin with Access-Control-Allow-Origin
    (so an EventSource on that origin may read it), anything else with Vary:
    Origin only; with "*" the allow header alone; with CORS off neither. Exact
    header lines, GET and HEAD, and the stream still streams."""
    with server(rate=50, extra_yaml="cors:\n  allowed_origins: [\"%s\", \"%s\"]\n" % (DASH, LOCAL)) as s:
        for origin in (DASH, LOCAL):
            st, hs, body = sse_head(s.port, origin)
            assert st == "HTTP/1.1 200 OK", st
            assert hs == SSE_HEAD + ["Access-Control-Allow-Origin: " + origin, "Vary: Origin"] + SSE_TAIL, hs
            assert body.startswith(b"id: ") and b"\ndata: {" in body, body[:80]
        for origin in ("https://evil.example", None):
            st, hs, body = sse_head(s.port, origin)
            assert st == "HTTP/1.1 200 OK" and hs == SSE_HEAD + ["Vary: Origin"] + SSE_TAIL, (origin, hs)
            assert body.startswith(b"id: "), body[:80]
        st, hs, _ = curl(s.port, "/sse", "HEAD", ["Origin: " + DASH])
        assert st == "HTTP/1.1 200 OK", st
        assert hs == SSE_HEAD + ["Access-Control-Allow-Origin: " + DASH, "Vary: Origin"] + SSE_TAIL, hs
    with server(rate=50, extra_yaml="cors:\n  allowed_origins: \"*\"\n") as s:
        st, hs, _ = sse_head(s.port, DASH)
        assert hs == SSE_HEAD + ["Access-Control-Allow-Origin: *"] + SSE_TAIL, hs
    with server(rate=50) as s:
        st, hs, _ = sse_head(s.port, DASH)
        assert hs == SSE_HEAD + SSE_TAIL, hs


def case_sse_chromium():
    """A real browser: an EventSource on a listed origin reads three messages
    of the SSE stream from the server's origin, each the golden corpus's
    domains-only message in order; on an origin not listed it gets only an error."""
    from test_stream_features import Chrome
    good, bad = PageServer(), PageServer()
    chrome = None
    try:
        with server(rate=50, extra_yaml="cors:\n  allowed_origins:\n    - %s\n" % good.origin) as s:
            chrome = Chrome()
            listen = ("new Promise(done => { const got = []; const es = new EventSource("
                      "'http://127.0.0.1:%d/sse?stream=domains');"
                      " es.onmessage = e => { got.push(e.data); if (got.length == 3) { es.close(); done(got); } };"
                      " es.onerror = () => { if (!got.length) { es.close(); done('error'); } }; })" % s.port)

            def run(origin):
                return in_page(chrome, origin, listen)
            got = run(good.origin)
            assert isinstance(got, list) and len(got) == 3, got
            GOLDEN.check_sequence("domains", [m.encode() for m in got])
            assert run(bad.origin) == "error"
    finally:
        if chrome:
            chrome.close()
        good.close()
        bad.close()


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    sys.exit(server_run_cases(globals()))

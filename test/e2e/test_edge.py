#!/usr/bin/env python3
"""End-to-end tests of the network edge with real processes over loopback:
exact per-address limits (several 127.x.y.z source addresses, ::1, a /64
through X-Forwarded-For), the real client address behind proxies
(X-Forwarded-For, X-Real-IP, hand-built PROXY v1/v2 headers, HAProxy in
front both TLS-terminating and with send-proxy-v2), allow-lists, the rate
limit, and the TLS listener with real clients (python websocket-client and
websockets, npm ws, curl), certificate rotation and bad certificates.

Usage: test_edge.py CASE --server BIN --testdata DIR [--node-dir DIR]"""
import asyncio
import base64
import json
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
from server import Golden, Server, free_port, mask_seen  # noqa: E402
from server import HEARTBEAT, run_cases as server_run_cases  # noqa: E402

ARGS = None
GOLDEN = None


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def wait_for(cond, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ---------------------------------------------------------------- clients

class Conn:
    """A raw client: optional source address, optional bytes before the
    request (a PROXY header), a WebSocket upgrade or a plain GET. Keeps the
    socket open so the connection keeps counting."""

    def __init__(self, port, path="/", src=None, headers=None, ws=True, pre=b"", host="127.0.0.1",
                 timeout=10, sock=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        if sock is None:
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            if src:
                self.sock.bind((src, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = sock
        req = "GET %s HTTP/1.1\r\nHost: x\r\n" % path
        if ws:
            key = base64.b64encode(os.urandom(16)).decode()
            req += ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                    "Sec-WebSocket-Version: 13\r\n" % key)
        else:
            req += "Connection: close\r\n"
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall(pre + (req + "\r\n").encode())
        self.buf = b""
        try:
            while b"\r\n\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    break
                self.buf += d
        except ConnectionResetError:
            pass
        if b"\r\n\r\n" not in self.buf:
            self.status, self.head = None, self.buf.decode(errors="replace")   # closed without answer
            return
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode(errors="replace")
        self.status = int(head.split(b" ")[1])

    def header(self, name):
        m = re.search(r"^%s:\s*(.*?)\s*$" % re.escape(name), self.head, re.M | re.I)
        return m.group(1) if m else None

    def body(self):
        out = self.buf
        while True:
            try:
                d = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
        return out

    def recv_message(self):
        while True:
            while len(self.buf) < 2:
                self._more()
            b1 = self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                while len(self.buf) < 4:
                    self._more()
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                while len(self.buf) < 10:
                    self._more()
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            while len(self.buf) < off + n:
                self._more()
            op, p = self.buf[0] & 0x0F, self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            if op == 1 and not p.startswith(HEARTBEAT):
                return p
            if op == 8:
                raise EOFError("close %r" % p)

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += d

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def get(port, path, src=None, headers=None, host="127.0.0.1"):
    c = Conn(port, path, src=src, headers=headers, ws=False, host=host)
    body = c.body() if c.status else b""
    c.close()
    return c.status, c, body


def socket_owners(port):
    """{(client address, client port): server pid} from ss (several source
    addresses may use the same port)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    owners = {}
    for line in out.splitlines():
        m = re.search(r"127\.0\.0\.1:%d\s+(\S+):(\d+).*pid=(\d+)" % port, line)
        if m:
            owners[(m.group(1), int(m.group(2)))] = int(m.group(3))
    return owners


def metric(s, name):
    """The sum of every series of a metric (per-worker labels included)."""
    st, _, body = s.http("/metrics")
    vals = re.findall(rb"^%s(?:\{[^}]*\})? (\d+)" % name.encode(), body, re.M)
    assert vals, "no %s in /metrics" % name
    return sum(int(v) for v in vals)


def addr(i):
    """The i-th of 200 distinct loopback addresses other than 127.0.0.1."""
    return "127.%d.%d.%d" % (1 + i // 100, (i * 37) % 256, 2 + i % 100)


# ------------------------------------------------------------------ cases

def case_per_address():
    """per_ip_limit 2 is exact per address, across 2 workers: 127.0.0.1 full
    does not touch 127.0.66.180 (same old hash bucket or not), 200 other
    addresses each get their own 2; a killed worker releases exactly its
    slots; the table being full answers 503."""
    yaml = "connection_limit:\n  enabled: true\n  max_connections: 5000\n  per_ip_limit: 2\n"
    with server(workers=2, rate=20, extra_yaml=yaml) as s:
        held = [Conn(s.port, "/") for _ in range(2)]
        assert all(c.status == 101 for c in held), [c.head for c in held]
        assert Conn(s.port, "/").status == 429
        for a in ("127.0.66.180", "127.0.0.2"):
            c = Conn(s.port, "/", src=a)
            assert c.status == 101, (a, c.head)
            held.append(c)
        by_addr = {}
        for i in range(200):
            a = addr(i)
            if a in ("127.0.66.180", "127.0.0.2"):
                continue
            pair = [Conn(s.port, "/", src=a) for _ in range(2)]
            assert [c.status for c in pair] == [101, 101], (a, [c.head for c in pair])
            third = Conn(s.port, "/", src=a)
            assert third.status == 429, (a, third.head)
            third.close()
            by_addr[a] = pair
            held += pair
        assert metric(s, "certstream_edge_addresses") == 3 + len(by_addr)
        GOLDEN.check_sequence("lite", [held[0].recv_message() for _ in range(3)])

        # kill one worker: exactly its connections are released
        owners = socket_owners(s.port)
        pids = sorted(set(owners.values()))
        assert len(pids) == 2, pids
        victim = pids[0]
        on_victim = {a: sum(1 for c in pair if owners[c.sock.getsockname()] == victim)
                     for a, pair in by_addr.items()}
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in s.children() and len(s.children()) == 3, what="worker restart")
        # the supervisor has reaped it (and reset its slots) once it is gone from children()
        checked = {0: 0, 1: 0, 2: 0}
        for a, k in sorted(on_victim.items())[:60]:
            got = [Conn(s.port, "/", src=a) for _ in range(k + 1)]
            st = [c.status for c in got]
            assert st == [101] * k + [429], (a, k, st)
            checked[k] += 1
            held += got
        assert checked[1] > 0 and (checked[0] > 0 or checked[2] > 0), checked
        for c in held:
            c.close()

    # a table of 16 addresses: the 17th distinct address gets 503, counted
    yaml = ("connection_limit:\n  enabled: true\n  max_connections: 5000\n  per_ip_limit: 2\n"
            "  address_table_size: 16\n")
    with server(workers=1, rate=20, extra_yaml=yaml) as s:
        held = []
        for i in range(16):
            c = Conn(s.port, "/", src=addr(i))
            assert c.status == 101, c.head
            held.append(c)
        c = Conn(s.port, "/", src=addr(16))
        assert c.status == 503 and c.header("Retry-After") == "5", c.head
        assert metric(s, "certstream_edge_address_table_full_total") == 1
        held[0].close()
        wait_for(lambda: Conn(s.port, "/", src=addr(16)).status == 101, what="a freed entry")
        for c in held:
            c.close()


def case_ipv6():
    """::1 is counted as itself; IPv6 clients named by a trusted proxy are
    counted per /64 (connection_limit.ipv6_prefix), and /128 when set so."""
    for prefix, same64 in ((64, 429), (128, 101)):
        yaml = ("connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 2\n"
                "  ipv6_prefix: %d\ntrusted_proxies: \"127.0.0.1\"\n" % prefix)
        with server(workers=2, rate=20, extra_yaml=yaml, env={"CERTSTREAM_HOST": "::"}) as s:
            six = [Conn(s.port, "/", host="::1") for _ in range(2)]
            assert [c.status for c in six] == [101, 101], [c.head for c in six]
            assert Conn(s.port, "/", host="::1").status == 429
            assert Conn(s.port, "/").status == 101          # 127.0.0.1 is another address
            xff = lambda a: {"X-Forwarded-For": a}
            a = [Conn(s.port, "/", headers=xff("2001:db8:1:2::1")),
                 Conn(s.port, "/", headers=xff("2001:db8:1:2:ffff::9"))]
            assert [c.status for c in a] == [101, 101]
            c = Conn(s.port, "/", headers=xff("2001:db8:1:2:abcd::1"))   # same /64
            assert c.status == same64, (prefix, c.head)
            c = Conn(s.port, "/", headers=xff("2001:db8:1:3::1"))        # next /64
            assert c.status == 101, c.head


def case_xff():
    """X-Forwarded-For and X-Real-IP are believed only from trusted_proxies;
    the right-most untrusted hop is the client; limits and allow-lists use it."""
    yaml = ("connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 3\n"
            "trusted_proxies: \"127.0.0.1, 10.0.0.0/8\"\n"
            "access:\n  streams_allow: \"198.51.100.0/24, 127.0.0.2, 127.0.0.3\"\n")
    with server(workers=2, rate=20, extra_yaml=yaml) as s:
        # the case: 4 clients behind one proxy, per_ip_limit 3
        four = [Conn(s.port, "/", headers={"X-Forwarded-For": "198.51.100.%d" % i}) for i in range(1, 5)]
        assert [c.status for c in four] == [101] * 4, [c.head for c in four]
        GOLDEN.check_sequence("lite", [four[3].recv_message() for _ in range(3)])
        same = [Conn(s.port, "/", headers={"X-Forwarded-For": "198.51.100.9"}) for _ in range(4)]
        assert [c.status for c in same] == [101, 101, 101, 429]
        # right-most untrusted hop: proxies 10.x appended after the client
        chain = [Conn(s.port, "/", headers={"X-Forwarded-For": "203.0.113.5, 198.51.100.20, 10.1.2.3"})
                 for _ in range(4)]
        assert [c.status for c in chain] == [101, 101, 101, 429]
        # several header lines are one list
        c = Conn(s.port, "/", headers={"X-Forwarded-For": "198.51.100.20", "x-forwarded-for": "10.9.9.9"})
        assert c.status == 429, c.head
        # a hop the allow-list does not cover
        assert Conn(s.port, "/", headers={"X-Forwarded-For": "203.0.113.5"}).status == 403
        assert Conn(s.port, "/", headers={"X-Forwarded-For": "198.51.100.30:51234"}).status == 101
        assert Conn(s.port, "/", headers={"X-Forwarded-For": "[2001:db8::1]:443"}).status == 403
        # X-Real-IP when there is no X-Forwarded-For
        assert Conn(s.port, "/", headers={"X-Real-IP": "198.51.100.40"}).status == 101
        assert Conn(s.port, "/", headers={"X-Real-IP": "203.0.113.40"}).status == 403
        # an unparsable chain is ignored: the proxy itself (127.0.0.1) is the client
        assert Conn(s.port, "/", headers={"X-Forwarded-For": "unknown"}).status == 403
        # from an untrusted peer the headers are ignored: 127.0.0.2 is limited as itself
        un = [Conn(s.port, "/", src="127.0.0.2", headers={"X-Forwarded-For": "198.51.100.%d" % (50 + i)})
              for i in range(4)]
        assert [c.status for c in un] == [101, 101, 101, 429], [c.head for c in un]
        c = Conn(s.port, "/", src="127.0.0.3", headers={"X-Real-IP": "203.0.113.1"})
        assert c.status == 101, c.head                 # not 403: the header was ignored


def proxy_v1(src, sport=40000, dst="127.0.0.1", dport=80):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def proxy_v2(src, sport=40000, dst="127.0.0.1", dport=80, local=False, tlv=b""):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if local:
        return sig + b"\x20\x00\x00\x00"
    if ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst or "::1")
        fam = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body += struct.pack(">HH", sport, dport) + tlv
    return sig + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def case_proxy_protocol():
    """Hand-built PROXY v1 and v2 headers: required when on, believed only
    from trusted_proxies; the source address is the client."""
    yaml = ("connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 1\n"
            "trusted_proxies: 127.0.0.1\nproxy_protocol: true\n"
            "access:\n  streams_allow: \"192.0.2.0/24, 2001:db8::/32\"\n  metrics_allow: 127.0.0.1\n")
    # the health check of server.py cannot send a PROXY header: probe with one
    s = server(workers=2, rate=20, extra_yaml=yaml)

    def pget(port, path, pre=None, **kw):
        c = Conn(port, path, ws=False, pre=pre if pre is not None else proxy_v2("127.0.0.1", local=True), **kw)
        return c.status, c, (c.body() if c.status else b"")
    s.http = lambda path, headers=None, timeout=5: pget(s.port, path)[0:1] + ({}, pget(s.port, path)[2])
    with s:
        a = Conn(s.port, "/", pre=proxy_v1("192.0.2.10"))
        assert a.status == 101, a.head
        GOLDEN.check_sequence("lite", [a.recv_message() for _ in range(3)])
        assert Conn(s.port, "/", pre=proxy_v1("192.0.2.10", 40001)).status == 429   # same client
        assert Conn(s.port, "/", pre=proxy_v2("192.0.2.10", 40002)).status == 429   # v2, same client
        b = Conn(s.port, "/", pre=proxy_v2("192.0.2.11"))
        assert b.status == 101, b.head
        c6 = Conn(s.port, "/", pre=proxy_v2("2001:db8::7", dst="2001:db8::1"))
        assert c6.status == 101, c6.head
        v1six = Conn(s.port, "/", pre=proxy_v1("2001:db8:0:1::8", dst="2001:db8::1"))   # another /64
        assert v1six.status == 101, v1six.head
        # TLVs after the addresses are skipped
        t = Conn(s.port, "/", pre=proxy_v2("192.0.2.12", tlv=b"\x04\x00\x03abc"))
        assert t.status == 101, t.head
        # not allowed by the list: the PROXY source is what counts
        assert Conn(s.port, "/", pre=proxy_v1("203.0.113.9")).status == 403
        # v2 LOCAL (a proxy's own health check): the peer (127.0.0.1) itself
        assert pget(s.port, "/metrics")[0] == 200
        assert pget(s.port, "/metrics", pre=proxy_v1("192.0.2.10"))[0] == 403
        # a header split over two segments
        sk = socket.create_connection(("127.0.0.1", s.port))
        h = proxy_v2("192.0.2.13")
        sk.sendall(h[:7])
        time.sleep(0.2)
        sk.sendall(h[7:20])
        time.sleep(0.2)
        split = Conn(s.port, "/", pre=h[20:], sock=sk)
        assert split.status == 101, split.head
        # required: a request without it, a bad header, and an untrusted peer are closed unanswered
        assert Conn(s.port, "/").status is None
        assert Conn(s.port, "/", pre=b"PROXY TCP4 192.0.2.1 nonsense\r\n").status is None
        assert Conn(s.port, "/", pre=proxy_v1("192.0.2.20"), src="127.0.0.2").status is None
        assert metric_pp(s) >= 3


def metric_pp(s):
    st, c, body = (lambda c: (c.status, c, c.body()))(
        Conn(s.port, "/metrics", ws=False, pre=proxy_v2("127.0.0.1", local=True)))
    m = re.search(rb"^certstream_edge_proxy_rejected_total (\d+)", body, re.M)
    return int(m.group(1))


def case_acl():
    """access.streams_allow and access.metrics_allow on several loopback
    source addresses; /health stays open."""
    yaml = "access:\n  streams_allow: \"127.0.0.2/32 127.0.1.0/24\"\n  metrics_allow: 127.0.0.3\n"
    with server(workers=2, rate=20, extra_yaml=yaml) as s:
        assert Conn(s.port, "/").status == 403
        assert get(s.port, "/sse")[0] == 403
        assert get(s.port, "/example.json")[0] == 403
        assert get(s.port, "/metrics")[0] == 403
        assert get(s.port, "/health")[0] == 200
        assert get(s.port, "/health/deep")[0] in (200, 503)
        ok = Conn(s.port, "/full-stream", src="127.0.0.2")
        assert ok.status == 101, ok.head
        GOLDEN.check_sequence("full", [ok.recv_message() for _ in range(3)])
        assert Conn(s.port, "/domains-only", src="127.0.1.77").status == 101
        assert get(s.port, "/metrics", src="127.0.0.2")[0] == 403
        st, _, body = get(s.port, "/metrics", src="127.0.0.3")
        assert st == 200 and b"certstream_edge_streams_forbidden_total 3" in body, body[-2000:]
        assert b"certstream_edge_metrics_forbidden_total 2" in body
        assert get(s.port, "/example.json", src="127.0.0.3")[0] == 403
        assert get(s.port, "/health", src="127.0.0.4")[0] == 200


def case_rate_limit():
    """rate_limit: a token bucket per address across workers; 429 with
    Retry-After; other addresses unaffected; /health not limited."""
    yaml = "rate_limit:\n  connections_per_minute: 6\n  burst: 3\n"
    with server(workers=2, rate=20, extra_yaml=yaml) as s:
        got = [get(s.port, "/example.json", src="127.0.0.2") for _ in range(3)]
        assert [g[0] for g in got] == [200, 200, 200]
        st, c, _ = get(s.port, "/example.json", src="127.0.0.2")
        assert st == 429, c.head
        ra = int(c.header("Retry-After"))
        # one token per 10 s: the wait is 10 s minus the time the three took
        # (exact values: test/shm/test_addrtable.c)
        assert 1 <= ra <= 10, ra
        assert Conn(s.port, "/", src="127.0.0.2").status == 429
        assert [get(s.port, "/health", src="127.0.0.2")[0] for _ in range(5)] == [200] * 5
        ws = [Conn(s.port, "/", src="127.0.0.5") for _ in range(4)]
        assert [w.status for w in ws] == [101, 101, 101, 429]
        assert get(s.port, "/example.json", src="127.0.0.6")[0] == 200
        st, _, body = get(s.port, "/metrics", src="127.0.0.7")
        assert st == 200 and b"certstream_edge_rate_limited_total 3" in body, body[-1500:]


# ------------------------------------------------------------------- TLS

class Certs:
    """A CA and server certificates made with openssl in a temporary dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cs-edge-tls-")
        self.ca_key = self.p("ca.key")
        self.ca = self.p("ca.pem")
        self.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=certstream test CA")
        self.serial = 1000

    def p(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True)
        assert r.returncode == 0, r.stderr.decode()

    def server_cert(self, name, cn="localhost"):
        """-> (chain file with leaf + CA, key file, serial)"""
        self.serial += 1
        key, csr, crt, chain = (self.p(name + x) for x in (".key", ".csr", ".crt", ".chain.pem"))
        ext = self.p(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        self.run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        self.run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
                 str(self.serial), "-out", crt, "-days", "2", "-extfile", ext)
        with open(chain, "w") as f:
            f.write(open(crt).read() + open(self.ca).read())
        return chain, key, self.serial

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_serial(port, ca):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with tls_ctx(ca).wrap_socket(raw, server_hostname="localhost") as t:
            der = t.getpeercert(binary_form=True)
            info = (t.version(), t.selected_alpn_protocol())
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, check=True)
    return int(r.stdout.decode().strip().split("=")[1], 16), info


def tls_server(certs, chain, key, **kw):
    yaml = kw.pop("extra_yaml", "") + "tls:\n  cert_file: %s\n  key_file: %s\n" % (chain, key)
    s = server(extra_yaml=yaml, **kw)
    ctx = tls_ctx(certs.ca)

    def https(path, headers=None, timeout=5):
        import urllib.request
        req = urllib.request.Request("https://localhost:%d%s" % (s.port, path), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
    s.http = https
    return s


# npm ws over wss:// (the CA comes from NODE_EXTRA_CA_CERTS); stops counting
# at N, so records that arrive while the close handshake runs do not matter
NODE_WSS = r"""
const WebSocket = require('ws');
const [url, count] = process.argv.slice(1);
const want = parseInt(count, 10);
let got = 0;
const ws = new WebSocket(url);
const timer = setTimeout(() => { console.error('timeout after ' + got); process.exit(2); }, 30000);
ws.on('message', (data, isBinary) => {
  if (isBinary || got >= want) return;
  const s = data.toString('utf8');
  if (s.startsWith('{"message_type":"heartbeat"')) return;
  process.stdout.write(s + '\n');
  if (++got === want) { clearTimeout(timer); ws.close(1000); }
});
ws.on('close', () => process.exit(got === want ? 0 : 4));
ws.on('error', (e) => { console.error(String(e)); process.exit(5); });
"""


def case_tls():
    """Official clients over wss:// and https:// with a CA file; TLS 1.2 and
    ALPN http/1.1; plain HTTP to the TLS port gets a clean error; the plain
    listener beside it."""
    certs = Certs()
    try:
        chain, key, serial = certs.server_cert("a")
        plain = free_port()
        s = tls_server(certs, chain, key, workers=2, rate=50)
        with open(s.config, "a") as f:       # the tls: section is last
            f.write("  plain_port: %d\n" % plain)
        with s:
            got, info = peer_serial(s.port, certs.ca)
            assert got == serial and info == ("TLSv1.2", "http/1.1"), (got, info)
            url = "wss://localhost:%d" % s.port
            import websocket
            ws = websocket.create_connection(url + "/", sslopt={"ca_certs": certs.ca}, timeout=20)
            msgs = []
            while len(msgs) < 10:
                m = ws.recv()
                m = m.encode() if isinstance(m, str) else m
                if not m.startswith(HEARTBEAT):
                    msgs.append(m)
            ws.close()
            GOLDEN.check_sequence("lite", msgs)

            import websockets

            async def run():
                out = []
                async with websockets.connect(url + "/full-stream", ssl=tls_ctx(certs.ca), max_size=None) as w:
                    while len(out) < 10:
                        m = await asyncio.wait_for(w.recv(), 20)
                        m = m.encode() if isinstance(m, str) else m
                        if not m.startswith(HEARTBEAT):
                            out.append(m)
                return out
            GOLDEN.check_sequence("full", asyncio.run(run()))

            env = dict(os.environ, NODE_PATH=os.path.join(ARGS.node_dir, "node_modules"),
                       NODE_EXTRA_CA_CERTS=certs.ca)
            p = subprocess.run(["node", "-e", NODE_WSS, url + "/domains-only", "10"], capture_output=True,
                               timeout=40, env=env)
            assert p.returncode == 0, p.stderr.decode()[-2000:]
            GOLDEN.check_sequence("domains", [l for l in p.stdout.split(b"\n") if l])

            p = subprocess.run(["curl", "-sN", "--max-time", "4", "--cacert", certs.ca,
                                "https://localhost:%d/sse?stream=lite" % s.port], capture_output=True)
            assert p.returncode == 28, (p.returncode, p.stderr)
            data = [l[6:] for l in p.stdout.split(b"\n") if l.startswith(b"data: ")]
            assert len(data) >= 5, p.stdout[:500]
            GOLDEN.check_sequence("lite", data)

            # plain HTTP to the TLS port
            st, c, body = get(s.port, "/health")
            assert st == 400 and body == b"This port speaks TLS: use https:// or wss://.\n", (st, body)
            # the plain listener beside it
            pc = Conn(plain, "/")
            assert pc.status == 101
            GOLDEN.check_sequence("lite", [pc.recv_message() for _ in range(3)])
            st, _, body = s.http("/metrics")
            hs = int(re.search(rb"^certstream_edge_tls_handshakes_total (\d+)", body, re.M).group(1))
            bad = int(re.search(rb"^certstream_edge_tls_handshake_failures_total (\d+)", body, re.M).group(1))
            assert hs >= 5 and bad >= 1, (hs, bad)
    finally:
        certs.cleanup()


def case_tls_rotate():
    """SIGHUP with clients connected: they keep streaming, new handshakes get
    the new certificate; a bad file on reload keeps the old one; a bad file
    at start is refused with a clear error."""
    certs = Certs()
    try:
        chain, key, serial1 = certs.server_cert("one")
        live_chain, live_key = certs.p("live.pem"), certs.p("live.key")
        shutil.copy(chain, live_chain)
        shutil.copy(key, live_key)
        s = tls_server(certs, live_chain, live_key, workers=2, rate=50)
        with s:
            import websocket
            clients = [websocket.create_connection("wss://localhost:%d/" % s.port,
                                                   sslopt={"ca_certs": certs.ca}, timeout=20) for _ in range(4)]
            for c in clients:
                c.recv()
            assert peer_serial(s.port, certs.ca)[0] == serial1
            chain2, key2, serial2 = certs.server_cert("two")
            shutil.copy(chain2, live_chain + ".tmp")
            shutil.copy(key2, live_key + ".tmp")
            os.rename(live_chain + ".tmp", live_chain)
            os.rename(live_key + ".tmp", live_key)
            s.proc.send_signal(signal.SIGHUP)
            # every worker: a few handshakes (SO_REUSEPORT spreads them)
            wait_for(lambda: all(peer_serial(s.port, certs.ca)[0] == serial2 for _ in range(8)),
                     what="the new certificate")
            for c in clients:
                msgs = []
                while len(msgs) < 5:
                    m = c.recv()
                    m = m.encode() if isinstance(m, str) else m
                    if not m.startswith(HEARTBEAT):
                        msgs.append(m)
                GOLDEN.check_sequence("lite", msgs)
            # a broken file: refused, the running certificate stays
            with open(live_chain, "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "configuration refused" in s.logtext(), what="the refusal in the log")
            assert "tls.cert_file" in s.logtext()
            assert all(peer_serial(s.port, certs.ca)[0] == serial2 for _ in range(6))
            for c in clients:
                c.recv()
                c.close()
        # at start: refused with the key and the file named
        bad = server(extra_yaml="tls:\n  cert_file: %s\n  key_file: %s\n" % (live_chain, live_key))
        try:
            bad.start()
            raise AssertionError("started with a bad certificate")
        except AssertionError as e:
            if "started with" in str(e):
                raise
            text = bad.logtext()
            assert "key 'tls.cert_file'" in text and live_chain in text, text
            assert bad.proc.returncode != 0
        finally:
            shutil.rmtree(bad.dir, ignore_errors=True)
        # a key that does not belong to the certificate
        other_chain, other_key, _ = certs.server_cert("three")
        bad = server(extra_yaml="tls:\n  cert_file: %s\n  key_file: %s\n" % (chain, other_key))
        try:
            bad.start()
            raise AssertionError("started with a mismatched key")
        except AssertionError as e:
            if "started with" in str(e):
                raise
            assert "key 'tls.key_file'" in bad.logtext() and "does not match" in bad.logtext(), bad.logtext()
        finally:
            shutil.rmtree(bad.dir, ignore_errors=True)
    finally:
        certs.cleanup()


def tls_conn(port, ca, path="/", pre=b"", rcvbuf=None):
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    if pre:
        raw.sendall(pre)
    t = tls_ctx(ca).wrap_socket(raw, server_hostname="localhost")
    return Conn(port, path, sock=t)


def case_tls_slow_and_proxy():
    """A TLS client that stops reading is dropped as too slow (counted) while
    a reading TLS client gets every message in order; and the PROXY header
    before the TLS handshake."""
    certs = Certs()
    try:
        chain, key, _ = certs.server_cert("s")
        # 200 entries/s: the reading client (Python, decrypting in the test
        # process) must keep up on a loaded machine; the stalled one still
        # falls buffer_size (1000) records behind within seconds
        with tls_server(certs, chain, key, workers=1, rate=200, ring_size=1 << 20) as s:
            stalled = tls_conn(s.port, certs.ca, "/full-stream", rcvbuf=4096)
            good = tls_conn(s.port, certs.ca, "/", rcvbuf=1 << 20)
            assert stalled.status == 101 and good.status == 101
            GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(600)])
            wait_for(lambda: metric(s, "certstream_slow_client_drops_total") >= 1, 60, "the slow TLS client dropped")
            assert metric(s, "certstream_slow_client_drops_total") == 1
            GOLDEN.check_sequence("lite", [good.recv_message() for _ in range(100)])
            stalled.close()
            good.close()
        yaml = "trusted_proxies: 127.0.0.1\nproxy_protocol: true\naccess:\n  streams_allow: 192.0.2.0/24\n"
        s = tls_server(certs, chain, key, workers=1, rate=50, extra_yaml=yaml)
        s.http = lambda path, headers=None, timeout=5: (
            tls_conn(s.port, certs.ca, path, pre=proxy_v2("127.0.0.1", local=True)).status, {}, b"")
        with s:
            ok = tls_conn(s.port, certs.ca, "/", pre=proxy_v2("192.0.2.5"))
            assert ok.status == 101, ok.head
            GOLDEN.check_sequence("lite", [ok.recv_message() for _ in range(3)])
            assert tls_conn(s.port, certs.ca, "/", pre=proxy_v1("203.0.113.1")).status == 403
    finally:
        certs.cleanup()


# --------------------------------------------------------------- HAProxy

def haproxy(cfg_text, tmp):
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg_text)
    chk = subprocess.run(["haproxy", "-c", "-f", path], capture_output=True)
    assert chk.returncode == 0, chk.stdout.decode() + chk.stderr.decode()
    return subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "haproxy.log"), "wb"))


HAPROXY_GLOBAL = """global
  maxconn 1000
defaults
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
"""


def case_haproxy():
    """HAProxy 2.6 in front: terminating TLS and adding X-Forwarded-For; and
    in TCP mode with send-proxy-v2. The client binds 127.0.0.9: only that
    address is allowed to stream, so a stream proves the real address."""
    certs = Certs()
    hp = None
    try:
        chain, key, _ = certs.server_cert("hp")
        pem = certs.p("hp.pem")
        with open(pem, "w") as f:
            f.write(open(chain).read() + open(key).read())
        front = free_port()
        yaml = ("trusted_proxies: 127.0.0.1\naccess:\n  streams_allow: 127.0.0.9\n"
                "connection_limit:\n  enabled: true\n  max_connections: 100\n  per_ip_limit: 2\n")
        with server(workers=2, rate=50, extra_yaml=yaml) as s:
            hp = haproxy(HAPROXY_GLOBAL + """frontend fe
  mode http
  bind 127.0.0.1:%d ssl crt %s alpn http/1.1
  option forwardfor
  default_backend be
backend be
  mode http
  server cs 127.0.0.1:%d
""" % (front, pem, s.port), certs.dir)
            wait_for(lambda: _port_open(front), what="haproxy")

            def wss(src):
                raw = socket.socket()
                raw.bind((src, 0))
                raw.settimeout(10)
                raw.connect(("127.0.0.1", front))
                t = tls_ctx(certs.ca).wrap_socket(raw, server_hostname="localhost")
                return Conn(front, "/", sock=t)
            a = [wss("127.0.0.9"), wss("127.0.0.9")]
            assert [c.status for c in a] == [101, 101], [c.head for c in a]
            GOLDEN.check_sequence("lite", [a[0].recv_message() for _ in range(5)])
            assert wss("127.0.0.9").status == 429          # per address, behind the proxy
            assert wss("127.0.0.8").status == 403          # not in the allow-list
            for c in a:
                c.close()
            hp.terminate()
            hp.wait(10)
            hp = None

        yaml = ("trusted_proxies: 127.0.0.1\nproxy_protocol: true\naccess:\n  streams_allow: 127.0.0.9\n")
        front = free_port()
        s = server(workers=2, rate=50, extra_yaml=yaml)
        s.http = lambda path, headers=None, timeout=5: (
            Conn(front, path, ws=False).status if _port_open(front) else 0, {}, b"")
        hp_cfg = HAPROXY_GLOBAL + """frontend fe
  mode tcp
  bind 127.0.0.1:%d
  default_backend be
backend be
  mode tcp
  server cs 127.0.0.1:%d send-proxy-v2 check check-send-proxy inter 500ms
""" % (front, s.port)
        hp = haproxy(hp_cfg, certs.dir)
        with s:
            ok = Conn(front, "/", src="127.0.0.9")
            assert ok.status == 101, ok.head
            GOLDEN.check_sequence("lite", [ok.recv_message() for _ in range(5)])
            assert Conn(front, "/", src="127.0.0.8").status == 403
            assert Conn(front, "/health", src="127.0.0.8", ws=False).status == 200
            # straight to the server, without the header: closed
            assert Conn(s.port, "/").status is None
    finally:
        if hp:
            hp.terminate()
            hp.wait(10)
        certs.cleanup()


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}



if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "node-dir"))

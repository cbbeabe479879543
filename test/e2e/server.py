"""Starts and stops a real certstream-server for end-to-end tests.

Everything runs on loopback, on a free port, with a temporary config file and
the replay source publishing the golden corpus from test/data. The
expected bytes come from the corpus's expected_* fields (with `seen`, the
wall-clock time of publication, masked on both sides)."""
import atexit
import json
import os
import re
import shutil
import signal
import sys
import socket
import subprocess
import tempfile
import time
import urllib.request

# Every Server and FakeLog not cleaned up by its test is stopped and its
# folder removed when the interpreter exits (also after a failed assertion or
# a SIGTERM from ctest's timeout, which test_e2e.py turns into SystemExit).
_LIVE = []


@atexit.register
def _cleanup_all():
    for obj in reversed(_LIVE):
        try:
            obj.cleanup()
        except Exception:  # keep cleaning the others
            pass


FAKELOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakelog", "fakelog.py")


def sanitized(binary):
    """True when binary was built with AddressSanitizer (everything is slower)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# Time bounds in the tests are multiplied by this: a loaded 2-core machine
# needs some slack, ASan/UBSan builds more. CERTSTREAM_TEST_TIME_SCALE
# overrides it.
TIME_SCALE = float(os.environ.get("CERTSTREAM_TEST_TIME_SCALE", "0") or 0)


def time_scale(binary=None):
    global TIME_SCALE
    if not TIME_SCALE:
        TIME_SCALE = 3.0 if binary and sanitized(binary) else 1.5
    return TIME_SCALE


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a true value (returned), for at most
    timeout seconds (times the time scale); AssertionError naming `what`
    otherwise."""
    deadline = time.time() + timeout * time_scale()
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout * time_scale(), what))
        time.sleep(interval)


def parse_metrics(body):
    """Prometheus text -> {"name{labels}": value}."""
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            out[key] = float(val)
    return out


def total(metrics, name, **labels):
    """Sum over parse_metrics() keys of family `name` carrying `labels`."""
    want = ['%s="%s"' % kv for kv in labels.items()]
    out = 0.0
    for key, v in metrics.items():
        fam, _, rest = key.partition("{")
        if fam == name and all(w in rest for w in want):
            out += v
    return out


class FakeLog:
    """test/fakelog/fakelog.py on a free loopback port, serving real fixtures.
    args: fakelog's command-line options (e.g. ["--golden", "a=URL"])."""

    def __init__(self, testdata, args):
        self.dir = tempfile.mkdtemp(prefix="cs-fakelog-")
        _LIVE.append(self)
        portfile = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([sys.executable, FAKELOG, "--testdata", testdata,
                                      "--port-file", portfile] + list(args),
                                     stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            self.port = int(wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(),
                                     15, "fakelog to start"))
        except BaseException:
            self.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def cleanup(self):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def control(self, what, **q):
        qs = "&".join("%s=%s" % kv for kv in q.items())
        with urllib.request.urlopen(self.url("/control/%s?%s" % (what, qs)), timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self.control("stats")


SEEN_RE = re.compile(rb'"seen":[0-9]+(\.[0-9]+)?')


def mask_seen(b):
    if isinstance(b, str):
        b = b.encode()
    return SEEN_RE.sub(b'"seen":0', b)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Golden:
    """The golden corpus: expected messages per format, in file order."""

    def __init__(self, testdata):
        self.path = os.path.join(testdata, "golden", "live_ct.json")
        with open(self.path, "rb") as f:
            self.records = json.load(f)
        self.expected = {
            "full": [mask_seen(r["expected_full"]) for r in self.records],
            "lite": [mask_seen(r["expected_lite"]) for r in self.records],
            "domains": [r["expected_domains_only"].encode() for r in self.records],
        }

    def check_sequence(self, fmt, messages):
        """messages (bytes, in arrival order) must be a contiguous run of the
        replayed corpus (which loops), each byte-identical to the expected
        message. Returns the index of the first one."""
        exp = self.expected[fmt]
        assert messages, "no messages received"
        got = [mask_seen(m) if fmt != "domains" else m for m in messages]
        starts = [i for i, e in enumerate(exp) if e == got[0]]
        assert starts, "first message matches no expected %s message:\n%r" % (fmt, got[0][:300])
        for start in starts:
            if all(exp[(start + k) % len(exp)] == g for k, g in enumerate(got)):
                return start
        # report the first mismatch against the first candidate start
        start = starts[0]
        for k, g in enumerate(got):
            e = exp[(start + k) % len(exp)]
            if e != g:
                raise AssertionError("message %d (corpus record %d) differs:\n got %r\nwant %r"
                                     % (k, (start + k) % len(exp), g[:400], e[:400]))
        raise AssertionError("unreachable")


class Server:
    def __init__(self, binary, testdata, workers=1, rate=50.0, loop=True, extra_yaml="",
                 replay=None, env=None, ring_size=None, ct_log=None, buffer_size=None,
                 absent_name_fields="omit"):
        """ct_log: extra keys of the ct_log block ({"poll_interval_ms": 100});
        buffer_size: the top-level buffer_size key; absent_name_fields: the
        message_format key (None: the server's default)."""
        time_scale(binary)
        self.binary = binary
        self.testdata = testdata
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cs-e2e-")
        _LIVE.append(self)
        self.config = os.path.join(self.dir, "config.yaml")
        lines = [
            "host: 127.0.0.1",
            "port: %d" % self.port,
            "workers: %d" % workers,
            "log_level: info",
            "ct_log:",
            "  state_file: %s" % os.path.join(self.dir, "state.json"),
        ]
        for k, v in (ct_log or {}).items():
            lines.append("  %s: %s" % (k, v))
        if buffer_size:
            lines.append("buffer_size: %d" % buffer_size)
        if ring_size:
            lines.append("ring_size: %d" % ring_size)
        # The golden corpus holds the Rust server's bytes (absent name keys
        # left out); None leaves the server's default (null).
        if absent_name_fields:
            lines += ["message_format:", "  absent_name_fields: %s" % absent_name_fields]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_yaml)
        self.replay = replay if replay else os.path.join(testdata, "golden", "live_ct.json")
        if replay is False:  # follow CT logs, as the default run does
            self.args = [binary, "--config", self.config]
        else:
            self.args = [binary, "--config", self.config, "--replay", self.replay, "--rate", str(rate)]
            if loop:
                self.args.append("--loop")
        self.env = dict(os.environ)
        self.env.pop("CERTSTREAM_CONFIG", None)
        if env:
            self.env.update(env)
        self.proc = None
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self._logtext = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        finally:
            if exc_type is not None:
                sys.stderr.write("---- server log (%s) ----\n%s\n" % (self.dir, self.logtext()))
            self.cleanup()

    def cleanup(self):
        """Stops the server if it still runs (SIGKILL to its process group),
        keeps the last lines of its log for logtext(), and removes the
        temporary folder. Safe to call more than once."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        if self._logtext is None and os.path.isdir(self.dir):
            self._logtext = self.logtext()
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=self.env,
                                     start_new_session=True)
        deadline = time.time() + 20 * time_scale()
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited early (%s):\n%s" % (self.proc.returncode, self.logtext()))
            try:
                if self.http("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not answer /health in %.0f s:\n%s" % (20 * time_scale(), self.logtext()))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("server did not stop within %d s after %s" % (timeout, sig))

    def logtext(self):
        if self._logtext is not None:
            return self._logtext
        self.log.flush()
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")[-6000:]

    def url(self, path, scheme="ws"):
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def http(self, path, headers=None, timeout=5):
        req = urllib.request.Request(self.url(path, "http"), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def metrics(self):
        """/metrics as {"name{labels}": value}."""
        st, _, body = self.http("/metrics")
        assert st == 200, "/metrics answered %d" % st
        return parse_metrics(body)

    def metric(self, key, default=None):
        return self.metrics().get(key, default)

    def metric_total(self, name, **labels):
        """Sum of the samples of family `name` whose labels include `labels`
        (e.g. every worker's certstream_slow_client_drops_total)."""
        return total(self.metrics(), name, **labels)

    def health_deep(self):
        return json.loads(self.http("/health/deep")[2])

    @property
    def state_file(self):
        return os.path.join(self.dir, "state.json")

    def role_pids(self, role):
        """{index: pid} of the supervisor's children of one role ("fanout",
        "ingest", "replay"), from its "started ROLE[i] pid=N" log lines (the
        latest start of each index)."""
        out = {}
        for m in re.finditer(r"started %s\[(\d+)\] pid=(\d+)" % re.escape(role), self.logtext_full()):
            out[int(m.group(1))] = int(m.group(2))
        return out

    def logtext_full(self):
        if self._logtext is not None:
            return self._logtext
        self.log.flush()
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def children(self):
        """pids of the supervisor's children (fanout workers and producers)."""
        path = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        with open(path) as f:
            return [int(p) for p in f.read().split()]

    def worker_pids(self):
        out = []
        for pid in self.children():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    pass
                out.append(pid)
            except OSError:
                pass
        return out

    def socket_owners(self):
        """{client port: server pid} for established connections to our port, from ss."""
        out = subprocess.run(["ss", "-Htnp", "state", "established", "( sport = :%d )" % self.port],
                             capture_output=True, text=True, check=True).stdout
        owners = {}
        for line in out.splitlines():
            m = re.search(r"127\.0\.0\.1:%d\s+\S+:(\d+).*pid=(\d+)" % self.port, line)
            if m:
                owners[int(m.group(1))] = int(m.group(2))
        return owners


def sse_connect(port, stream, last_event_id=None):
    """An SSE request on a raw socket; returns the socket after the response head."""
    sk = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = "GET /sse?stream=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % stream
    if last_event_id is not None:
        req += "Last-Event-ID: %d\r\n" % last_event_id
    sk.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sk.recv(65536)
        assert d, "closed before the response head"
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sk, body


def run_cases(g, *options):
    """The main() of an e2e test file; `g` is that file's globals().

    Parses `CASE --server BIN --testdata DIR` plus one `--NAME` per entry of
    `options` (a trailing "!" makes it required), sets the file's ARGS (and its
    GOLDEN when it has one), makes a ctest timeout's SIGTERM unwind the case
    (so servers stop and folders go), runs the case and prints the plain
    closing line. Returns the exit status."""
    import argparse
    import traceback
    cases = g.get("CASES") or {k[5:]: v for k, v in g.items() if k.startswith("case_")}
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(cases))
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    for o in options:
        ap.add_argument("--" + o.rstrip("!"), required=o.endswith("!"))
    args = ap.parse_args()
    g["ARGS"] = args
    if "GOLDEN" in g:
        g["GOLDEN"] = Golden(args.testdata)
    time_scale(args.server)

    def on_term(sig, frame):
        raise SystemExit("killed by signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)
    try:
        cases[args.case]()
    except Exception:
        traceback.print_exc()
        print("0 passed, 1 failed")
        return 1
    print("1 passed, 0 failed")
    return 0


# A stream message that is a heartbeat starts with these bytes.
HEARTBEAT = b'{"message_type":"heartbeat"'


def collect_websocket_client(url, n, timeout=20, **kw):
    """n stream messages (heartbeats skipped) through python3-websocket
    (websocket-client, what certstream-python uses)."""
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

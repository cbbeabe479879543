"""Starts and stops a real certstream-server for end-to-end tests.

Everything runs on loopback, on a free port, with a temporary config file and
the replay source publishing the golden corpus from test/data. The
expected bytes come from the corpus's expected_* fields (with `seen`, the
wall-clock time of publication, masked on both sides)."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

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
                 replay=None, env=None, ring_size=None, absent_name_fields="omit"):
        self.binary = binary
        self.testdata = testdata
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cs-e2e-")
        self.config = os.path.join(self.dir, "config.yaml")
        lines = [
            "host: 127.0.0.1",
            "port: %d" % self.port,
            "workers: %d" % workers,
            "log_level: info",
            "ct_log:",
            "  state_file: %s" % os.path.join(self.dir, "state.json"),
        ]
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

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=self.env,
                                     start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited early (%s):\n%s" % (self.proc.returncode, self.logtext()))
            try:
                if self.http("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not answer /health in 20 s:\n" + self.logtext())

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

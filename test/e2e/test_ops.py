#!/usr/bin/python3
"""Operations tests: the real certstream-server binary and real clients over
loopback. Reload, one instance per address, failing fast on start,
configuration files of any kind, watchdogs, descriptor limits, log formats.

usage: test_ops.py CASE --server BIN --testdata DIR
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import FakeLog, Golden, Server, free_port  # noqa: E402
from server import run_cases as server_run_cases  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
GOLDEN = None


def server(**kw):
    return Server(ARGS.server, ARGS.testdata, **kw)


def wait_for(cond, timeout, what, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def run_server(args, env=None, timeout=10, **kw):
    e = dict(os.environ)
    e.pop("CERTSTREAM_CONFIG", None)
    e.update(env or {})
    t0 = time.time()
    p = subprocess.run([ARGS.server] + args, capture_output=True, text=True, env=e, timeout=timeout, **kw)
    return p, time.time() - t0


def replay_args():
    return ["--replay", os.path.join(ARGS.testdata, "golden", "live_ct.json"), "--rate", "50", "--loop"]


def metric(s, name):
    st, _, body = s.http("/metrics")
    assert st == 200, st
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    return float(m.group(1)) if m else None


def fanout_pids(s):
    out = []
    for pid in s.children():
        try:
            with open("/proc/%d/cmdline" % pid, "rb"):
                pass
        except OSError:
            continue
        out.append(pid)
    return out


def roles(s, text=None):
    """{pid: role} of the supervisor's children, from their log lines."""
    got = {}
    for m in re.finditer(r"(?:^|[ >])(\w+)\[\d+\] pid=(\d+): ", text if text is not None else s.logtext(), re.M):
        got[int(m.group(2))] = m.group(1)
    live = set(s.children())
    return {p: r for p, r in got.items() if p in live}


def wait_children(s, role, n, timeout=15):
    def ok():
        r = roles(s)
        pids = [p for p, x in r.items() if x == role]
        return pids if len(pids) == n else None
    return wait_for(ok, timeout, "%d %s processes" % (n, role))


# ---------------------------------------------------------------- the cases

def case_second_instance():
    """A second server on the same host:port refuses to start (status 2, one
    clear line); the first one's clients keep receiving. A server on another
    port runs beside it."""
    with server(rate=50, workers=2) as a:
        c = WSRaw(a.port, "/")
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(3)])
        d = tempfile.mkdtemp(prefix="cs-ops-")
        try:
            cfg = os.path.join(d, "b.yaml")
            with open(cfg, "w") as f:
                f.write("host: 127.0.0.1\nport: %d\nct_log:\n  state_file: %s/s.json\n" % (a.port, d))
            p, took = run_server(["--config", cfg] + replay_args())
            assert p.returncode == 2, (p.returncode, p.stderr)
            assert "another certstream-server is already running on 127.0.0.1:%d" % a.port in p.stderr, p.stderr
            # 0.0.0.0 overlaps 127.0.0.1: the probe bind sees it
            p, _ = run_server(["--config", cfg, "--host", "0.0.0.0"] + replay_args())
            assert p.returncode == 2 and "address already in use" in p.stderr, (p.returncode, p.stderr)
            # the first server's client was not disturbed
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(10)])
            # another port: side by side
            other = Server(ARGS.server, ARGS.testdata, rate=50)
            with other:
                c2 = WSRaw(other.port, "/")
                GOLDEN.check_sequence("lite", [c2.recv_message() for _ in range(3)])
        finally:
            for fn in os.listdir(d):
                os.unlink(os.path.join(d, fn))
            os.rmdir(d)


def case_port_taken():
    """A port held by another program: exit status 2 within 2 s, one line.
    An address that does not resolve: the same, and --check-config says so."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(8)
    port = holder.getsockname()[1]
    try:
        p, took = run_server(["--config", "/dev/null", "--host", "127.0.0.1", "--port", str(port)] + replay_args())
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert took < 2.0, took
        assert "listen on 127.0.0.1:%d: address already in use" % port in p.stderr, p.stderr
        assert "started fanout" not in p.stderr, p.stderr
    finally:
        holder.close()
    p, took = run_server(["--config", "/dev/null"] + replay_args(),
                         env={"CERTSTREAM_HOST": "not a host", "CERTSTREAM_PORT": str(free_port())})
    assert p.returncode == 2 and 'listen address "not a host" does not resolve' in p.stderr, p.stderr
    assert took < 2.0 or "started fanout" not in p.stderr, took
    p, _ = run_server(["--check-config", "--config", "/dev/null"], env={"CERTSTREAM_HOST": "not a host"})
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "key 'host'" in p.stderr and "does not resolve" in p.stderr, p.stderr


def case_config_kinds():
    """--config /dev/null is an empty file (defaults); a pipe that ends is read;
    a FIFO is refused at once instead of blocking."""
    port = free_port()
    p, _ = run_server(["--check-config", "--config", "/dev/null"])
    assert p.returncode == 0 and "# configuration OK (/dev/null)" in p.stdout, (p.returncode, p.stderr)
    assert "\nport: 8080\n" in p.stdout, p.stdout
    # a pipe that ends: its content is the file
    r, w = os.pipe()
    os.write(w, b"port: 9123\nworkers: 3\n")
    os.close(w)
    p, _ = run_server(["--check-config", "--config", "/dev/fd/%d" % r], pass_fds=(r,))
    os.close(r)
    assert p.returncode == 0 and "\nport: 9123\n" in p.stdout and "\nworkers: 3\n" in p.stdout, (p.stdout, p.stderr)
    # a pipe whose writer never finishes: refused after at most 1 s
    r, w = os.pipe()
    p, took = run_server(["--check-config", "--config", "/dev/fd/%d" % r], pass_fds=(r,))
    os.close(r)
    os.close(w)
    assert p.returncode == 2 and "did not end within 1000 ms" in p.stderr, (p.returncode, p.stderr)
    assert took < 5, took
    # a FIFO: refused at once
    d = tempfile.mkdtemp(prefix="cs-ops-")
    fifo = os.path.join(d, "config.yaml")
    os.mkfifo(fifo)
    try:
        p, took = run_server(["--check-config", "--config", fifo])
        assert p.returncode == 2 and "is a FIFO; refused" in p.stderr, (p.returncode, p.stderr)
        assert took < 2, took
    finally:
        os.unlink(fifo)
        os.rmdir(d)
    # and a server runs on /dev/null plus the environment
    proc = subprocess.Popen([ARGS.server, "--config", "/dev/null"] + replay_args(),
                            env=dict(os.environ, CERTSTREAM_HOST="127.0.0.1", CERTSTREAM_PORT=str(port),
                                     CERTSTREAM_WORKERS="1",
                                     # the golden corpus holds the omit form
                                     CERTSTREAM_MESSAGE_FORMAT_ABSENT_NAME_FIELDS="omit"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        c = wait_for(lambda: _try_ws(port), 20, "the server on --config /dev/null")
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(3)])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        proc.stderr.close()


def _try_ws(port):
    try:
        c = WSRaw(port, "/")
        return c if c.status == 101 else None
    except OSError:
        return None


def case_watchdog_worker():
    """A stopped fanout worker (SIGSTOP) is killed and replaced within
    watchdog_secs + 1 s; afterwards every new connection is served."""
    wd = 4
    with server(rate=50, workers=3, extra_yaml="watchdog_secs: %d\n" % wd) as s:
        pids = wait_children(s, "fanout", 3)
        victim = pids[1]
        os.kill(victim, signal.SIGSTOP)
        t0 = time.time()
        # after 2 s without a beat /health/deep calls it unhealthy (before the kill at 4 s);
        # the stopped worker's own listener does not answer, so ask until another does
        time.sleep(2.2)

        def deep():
            try:
                st, _, body = s.http("/health/deep", timeout=0.3)
                return json.loads(body)
            except OSError:
                return None
        h = wait_for(deep, wd - 2.5, "/health/deep from a running worker")
        row = [p for p in h["processes"] if p["pid"] == victim]
        assert row and row[0]["healthy"] is False and row[0]["heartbeat_age_ms"] >= 2000, h["processes"]
        assert h["status"] == "degraded", h["status"]
        assert all(p["healthy"] for p in h["processes"] if p["pid"] != victim), h["processes"]
        try:
            wait_for(lambda: victim not in s.children(), wd + 5, "the stopped worker to be killed")
        except AssertionError:
            print(s.logtext())
            raise
        new = wait_children(s, "fanout", 3, timeout=wd + 5)
        took = time.time() - t0
        assert victim not in new
        assert took <= wd + 1.0, "replaced after %.2f s (watchdog_secs %d)" % (took, wd)
        log = s.logtext()
        assert re.search(r"fanout\[\d\] pid=%d missed its heartbeat for \d+ ms \(watchdog_secs: %d\)" % (victim, wd), log), log
        assert 'certstream_watchdog_kills_total{role="fanout"} 1' in s.http("/metrics")[2].decode()
        # every new connection is served (none lands on a stopped listener)
        for _ in range(30):
            c = WSRaw(s.port, "/", timeout=3)
            assert c.status == 101
            GOLDEN.check_sequence("lite", [c.recv_message()])
            c.close()
        print("worker replaced %.2f s after SIGSTOP (watchdog_secs %d)" % (took, wd))


def case_stuck_producer():
    """A producer stopped between ring claim and commit is killed after
    ring_claim_timeout_ms and its claim padded: delivery resumes within the
    timeout plus a restart, not when the ring laps."""
    claim_ms = 1000
    with server(rate=50, workers=1, extra_yaml="ring_claim_timeout_ms: %d\n" % claim_ms,
                env={"CERTSTREAM_TEST_STOP_IN_CLAIM": "60"}) as s:
        c = WSRaw(s.port, "/", timeout=15)
        last = time.time()
        gap = 0.0
        got = 0
        while got < 100:
            c.recv_message()
            now = time.time()
            gap = max(gap, now - last)
            last = now
            got += 1
        log = s.logtext()
        assert "stopping inside ring claim 60" in log, log
        assert re.search(r"replay\[0\] pid=\d+ held ring claim \d+ uncommitted for \d+ ms "
                         r"\(ring_claim_timeout_ms: 1000\)", log), log
        assert "died mid-record; padded" in log, log
        # 1 s of claim timeout, at most one 100 ms supervisor tick, the 100 ms restart backoff
        assert gap < claim_ms / 1000 + 1.5, "longest gap %.2f s" % gap
        print("longest delivery gap with a stuck producer: %.2f s (ring_claim_timeout_ms %d)" % (gap, claim_ms))


def case_stuck_ingest_two_logs():
    """Two logs in two ingest processes; the first stops itself inside its
    first ring claim. The other log's entries, published behind that claim,
    reach clients about ring_claim_timeout_ms later (not when the ring laps);
    the stuck process is killed, its claim padded, and its replacement
    continues the stuck log from its position. The entry that was inside the
    stuck claim is delivered by the replacement although its certificate is
    already in the shared dedup table (the position store keeps the pending
    entry's leaf tag, docs/ingest.md): every entry of both logs arrives once,
    in order, and nothing is counted as a duplicate."""
    golden = {}
    for r in GOLDEN.records:
        golden.setdefault(r["log_url"], []).append(int(r["cert_index"]))
    argon, nimbus = sorted(golden[ARGON_URL]), sorted(golden[NIMBUS_URL])
    fl = FakeLog(ARGS.testdata, ["--golden", "a=" + ARGON_URL, "--golden", "b=" + NIMBUS_URL,
                                 "--size", "a=0", "--size", "b=0"])
    ua, ub = fl.url("/a/"), fl.url("/b/")
    s = server(replay=False, workers=1, env={"CERTSTREAM_CT_LOGS_URL": fl.url("/loglist.json"),
                                             "CERTSTREAM_TEST_STOP_IN_CLAIM": "1@0"},
               ct_log={"poll_interval_ms": 100, "retry_initial_delay_ms": 50, "retry_max_delay_ms": 400,
                       "operator_rate_limit_ms": 0, "batch_size": 8},
               extra_yaml="ring_claim_timeout_ms: 1000\n")
    try:
        s.start()
        # both ingest processes have the logs' first tree heads (a growth before that
        # would be their starting point, not new entries)
        wait_for(lambda: {l["url"]: l["next_index"] for l in json.loads(s.http("/health/deep")[2])["logs"]}
                 == {ua: argon[0], ub: nimbus[0]}, 20, "both logs followed from their first index")
        c = WSRaw(s.port, "/", timeout=15)
        fl.control("size", log="a", size=argon[2] - argon[0] + 1)  # 3 entries of a: the 1st one sticks
        wait_for(lambda: "stopping inside ring claim 1" in s.logtext(), 10, "the stuck producer")
        t0 = time.time()
        fl.control("size", log="b", size=nimbus[4] - nimbus[0] + 1)  # 5 entries of b, behind the claim
        got, first_b = {ua: [], ub: []}, None
        while len(got[ua]) < 3 or len(got[ub]) < 5:
            m = json.loads(c.recv_message())["data"]
            got[m["source"]["url"]].append(m["cert_index"])
            if m["source"]["url"] == ub and first_b is None:
                first_b = time.time() - t0
        assert got == {ua: argon[0:3], ub: nimbus[:5]}, got
        assert re.search(r"^certstream_duplicates_filtered(_total)? 0$", s.http("/metrics")[2].decode(), re.M), \
            "the stuck entry must not be counted as a duplicate"
        log = s.logtext()
        assert re.search(r"ingest\[0\] pid=\d+ held ring claim \d+ uncommitted for \d+ ms", log), log
        assert first_b < 2.0, "the other log waited %.2f s behind the stuck claim" % first_b
        print("other log delayed by a stuck producer: first entry after %.2f s (ring_claim_timeout_ms 1000)"
              % first_b)
    except BaseException:
        print(s.logtext())
        print(s.http("/metrics")[2].decode()[-3000:])
        print(s.http("/health/deep")[2].decode())
        raise
    finally:
        s.stop()
        fl.stop()


@contextlib.contextmanager
def _kill_after_commit_server(hook):
    """A fake log serving the golden Argon entries (empty at first) and a
    server following it with CERTSTREAM_TEST_KILL_AFTER_COMMIT set to `hook`,
    started and following the log from its first index; yields (the golden
    indexes, the fake log, the server); the server's log is printed on
    failure, both are stopped at the end."""
    golden = sorted(int(r["cert_index"]) for r in GOLDEN.records if r["log_url"] == ARGON_URL)
    fl = FakeLog(ARGS.testdata, ["--golden", "a=" + ARGON_URL, "--size", "a=0"])
    s = server(replay=False, workers=1, env={"CERTSTREAM_CT_LOGS_URL": fl.url("/loglist.json"),
                                             "CERTSTREAM_TEST_KILL_AFTER_COMMIT": hook},
               ct_log={"poll_interval_ms": 100, "retry_initial_delay_ms": 50, "retry_max_delay_ms": 400,
                       "operator_rate_limit_ms": 0, "batch_size": 8})
    try:
        s.start()
        wait_for(lambda: {l["url"]: l["next_index"] for l in s.health_deep()["logs"]} == {fl.url("/a/"): golden[0]},
                 20, "the log followed from its first index")
        yield golden, fl, s
    except BaseException:
        print(s.logtext())
        raise
    finally:
        s.stop()
        fl.stop()


def _read_indexes(c, got, n):
    """Reads messages from WebSocket client c until got holds n cert_index values."""
    while len(got) < n:
        got.append(json.loads(c.recv_message())["data"]["cert_index"])
    return got


def case_killed_after_commit():
    """An ingest process killed right after an entry's ring commit and before
    that entry's position is stored (test hook CERTSTREAM_TEST_KILL_AFTER_COMMIT):
    its replacement resumes at that entry, finds it already in the ring as
    its slot's last record, and does not send it again. A client gets every
    entry exactly once, in order, the fixture's indexes."""
    with _kill_after_commit_server("2") as (golden, fl, s):
        c = WSRaw(s.port, "/", timeout=15)
        fl.control("size", log="a", size=golden[3] - golden[0] + 1)   # 4 entries: the 2nd kills its producer
        got = _read_indexes(c, [], 4)
        # the 3rd and 4th came from the replacement
        assert "killed after ring commit 2" in s.logtext(), s.logtext()
        fl.control("size", log="a", size=golden[5] - golden[0] + 1)   # 2 more
        _read_indexes(c, got, 6)
        assert got == golden[:6], got
        assert re.search(r"entry %d reached the ring before the previous process stopped; not sent again"
                         % golden[1], s.logtext()), s.logtext()
        c.close()


def case_server_killed_after_commit():
    """The whole server killed at once right after an entry's ring commit and
    before that entry's position is stored (CERTSTREAM_TEST_KILL_AFTER_COMMIT
    "2:server": the producer kills its process group). The restarted server's
    ring is new, so it resumes at that entry and sends it (the old copy went
    with the old ring and its clients): a client of the new server gets that
    entry and every later one exactly once, in order, the fixture's indexes;
    nothing before it is sent again."""
    with _kill_after_commit_server("2:server") as (golden, fl, s):
        fl.control("size", log="a", size=golden[3] - golden[0] + 1)   # the 2nd entry kills the server
        wait_for(lambda: s.proc.poll() is not None, 20, "the test hook to kill the whole server")
        assert "killed after ring commit 2 with the whole server" in s.logtext(), s.logtext()
        # The new server must not find the hook again; its first get-entries
        # answer is held 2 s so that a client is connected before it.
        del s.env["CERTSTREAM_TEST_KILL_AFTER_COMMIT"]
        fl.control("fault", log="a", kind="slow", endpoint="entries", count=1, arg=2)
        s.start()
        c = WSRaw(s.port, "/", timeout=15)
        got = _read_indexes(c, [], 3)
        fl.control("size", log="a", size=golden[5] - golden[0] + 1)   # 2 more
        _read_indexes(c, got, 5)
        assert got == golden[1:6], (got, golden[:6])
        assert re.search(r"resuming at index %d\b" % golden[1], s.logtext()), s.logtext()
        assert re.search(r"entry %d was being published when the previous process stopped and is not in "
                         r"this ring; sent" % golden[1], s.logtext()), s.logtext()
        c.close()


def case_fd_limit():
    """A soft RLIMIT_NOFILE below the hard limit is raised and logged; workers
    log their limit and warn when it is below max_connections + 64."""
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 1000))
    s = server(rate=50, workers=1)
    s.proc = subprocess.Popen(s.args, stdout=s.log, stderr=s.log, env=s.env, start_new_session=True,
                              preexec_fn=lower)
    try:
        wait_for(lambda: s.proc.poll() is None and _health(s), 20, "the server")
        log = s.logtext()
        assert "file descriptors: soft limit raised from 100 to 1000 (the hard limit)" in log, log
        assert re.search(r"fanout\[0\] pid=\d+: file descriptors: this worker may hold 1000, less than "
                         r"connection_limit.max_connections \(10000\) \+ 64", log), log
        w = wait_children(s, "fanout", 1)[0]
        with open("/proc/%d/limits" % w) as f:
            line = [ln for ln in f if ln.startswith("Max open files")][0]
        assert line.split()[3:5] == ["1000", "1000"], line
    finally:
        s.stop()


def _health(s):
    try:
        return s.http("/health")[0] == 200
    except OSError:
        return False


def case_log_formats():
    """log_format: json writes one JSON object per line; under the journal
    (JOURNAL_STREAM names stderr) lines carry <N> priorities and no time;
    log_file is reopened on SIGUSR1."""
    with server(rate=50, extra_yaml="log_format: json\n") as s:
        lines = [ln for ln in s.logtext().splitlines() if ln.strip()]
        assert lines, "no log lines"
        for ln in lines:
            o = json.loads(ln)
            assert set(o) >= {"time", "level", "role", "pid", "msg"}, o
        assert any(json.loads(ln)["role"] == "fanout" and json.loads(ln).get("index") == 0 for ln in lines)
    s = server(rate=50)
    st = os.fstat(s.log.fileno())
    s.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    with s:
        wait_for(lambda: "ready:" in s.logtext(), 10, "ready")
        lines = [ln for ln in s.logtext().splitlines() if ln.strip()]
        for ln in lines:
            assert re.match(r"<[3467]>\w+(\[\d+\])? pid=\d+: ", ln), ln
        assert any(ln.startswith("<6>supervisor pid=") for ln in lines)
    d = tempfile.mkdtemp(prefix="cs-ops-")
    path = os.path.join(d, "certstream.log")
    try:
        with server(rate=50, workers=1, extra_yaml="log_file: %s\n" % path) as s:
            wait_for(lambda: "ready:" in open(path).read(), 10, "ready in log_file")
            os.rename(path, path + ".1")
            s.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: os.path.exists(path) and "SIGUSR1: reopened log_file" in open(path).read(),
                     10, "the reopened log file")
            # a child writes there too: replace a worker
            w = [p for p, r in roles(s, open(path + ".1").read()).items() if r == "fanout"][0]
            os.kill(w, signal.SIGKILL)
            wait_for(lambda: re.search(r"fanout\[0\] pid=\d+: listening", open(path).read()), 10,
                     "the new worker's line in the new file")
            assert "SIGUSR1" not in open(path + ".1").read()
            # a reload moves the log to another file, as JSON, in every process
            other = os.path.join(d, "other.log")
            with open(s.config) as f:
                text = f.read()
            with open(s.config, "w") as f:
                f.write(text.replace("log_file: %s\n" % path, "log_file: %s\nlog_format: json\n" % other))
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: os.path.exists(other) and "SIGHUP: logging to %s as json" % other in open(other).read(),
                     10, "the supervisor's line in the new file")
            w = [p for p, r in roles(s, open(path).read()).items() if r == "fanout"][0]
            os.kill(w, signal.SIGKILL)

            def worker_json():
                for ln in open(other).read().splitlines():
                    o = json.loads(ln)
                    if o.get("role") == "fanout" and o["msg"].startswith("listening on"):
                        return o
            wait_for(worker_json, 10, "the new worker's JSON line in the new file")
    finally:
        for fn in os.listdir(d):
            os.unlink(os.path.join(d, fn))
        os.rmdir(d)


# ------------------------------------------------------------ reload under load

ARGON_URL = "https://ct.googleapis.com/logs/us1/argon2026h2/"
NIMBUS_URL = "https://ct.cloudflare.com/logs/nimbus2026/"


class Clients:
    """Many streaming clients (raw WebSocket and SSE over plain sockets) read
    by one selector thread; each keeps the (log url, cert_index) of every
    certificate message it got, in order, and whether it was closed."""

    def __init__(self):
        import selectors
        import threading
        self.sel = selectors.DefaultSelector()
        self.clients = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, port, proto, token):
        import base64
        sk = socket.create_connection(("127.0.0.1", port), timeout=10)
        if proto == "ws":
            key = base64.b64encode(os.urandom(16)).decode()
            req = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (key, token))
        else:
            req = ("GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % token)
        sk.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = sk.recv(4096)
            if not d:
                raise ConnectionError("closed during the request: %r" % buf)
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ")[1])
        if status not in (101, 200):
            sk.close()
            return status
        sk.setblocking(False)
        c = {"sock": sk, "proto": proto, "buf": rest, "got": [], "closed": None}
        with self.lock:
            self.clients.append(c)
            self.sel.register(sk, 1, c)
        return status

    def _run(self):
        while not self.stop:
            with self.lock:
                ready = self.sel.select(timeout=0.05) if self.clients else []
            if not ready:
                time.sleep(0.02)
            for key, _ in ready:
                c = key.data
                try:
                    d = c["sock"].recv(262144)
                except BlockingIOError:
                    continue
                except OSError as e:
                    d, c["closed"] = b"", repr(e)
                if not d:
                    c["closed"] = c["closed"] or "EOF"
                    with self.lock:
                        self.sel.unregister(c["sock"])
                    continue
                c["buf"] += d
                (self._ws if c["proto"] == "ws" else self._sse)(c)

    def _msg(self, c, payload):
        if not payload.startswith(b'{"message_type":"certificate_update"'):
            return
        m = json.loads(payload)["data"]
        c["got"].append((m["source"]["url"], m["cert_index"]))

    def _ws(self, c):
        import struct
        b = c["buf"]
        while len(b) >= 2:
            op, ln = b[0] & 0x0F, b[1] & 0x7F
            off = 2
            if ln == 126:
                if len(b) < 4:
                    break
                ln, off = struct.unpack("!H", b[2:4])[0], 4
            elif ln == 127:
                if len(b) < 10:
                    break
                ln, off = struct.unpack("!Q", b[2:10])[0], 10
            if len(b) < off + ln:
                break
            payload, b = b[off:off + ln], b[off + ln:]
            if op == 1:
                self._msg(c, payload)
            elif op == 9:  # Ping: Pong with the same payload, masked
                mask = os.urandom(4)
                try:
                    c["sock"].sendall(bytes([0x8A, 0x80 | len(payload)]) + mask +
                                      bytes(x ^ mask[i % 4] for i, x in enumerate(payload)))
                except OSError as e:  # the server closed it; _run records that
                    c["closed"] = c["closed"] or repr(e)
            elif op == 8:
                c["closed"] = "close frame %r" % payload[:2]
        c["buf"] = b

    def _sse(self, c):
        b = c["buf"]
        while b"\n\n" in b:
            ev, b = b.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    self._msg(c, line[6:])
        c["buf"] = b

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.clients:
            c["sock"].close()


def ops_config(s, port, workers, tokens, per_ip, extra="", level="info"):
    with open(s.config, "w") as f:
        f.write("host: 127.0.0.1\nport: %d\nworkers: %d\nlog_level: %s\n"
                "ct_log:\n  state_file: %s\n  poll_interval_ms: 100\n  retry_initial_delay_ms: 50\n"
                "  retry_max_delay_ms: 400\n  operator_rate_limit_ms: 0\n  batch_size: 8\n"
                "auth:\n  enabled: true\n  tokens: [%s]\n"
                "connection_limit:\n  enabled: true\n  max_connections: 5000\n  per_ip_limit: %d\n"
                "hot_reload:\n  enabled: false\n%s"
                % (port, workers, level, os.path.join(s.dir, "state.json"), ", ".join(tokens), per_ip, extra))


def reload(s, what, n_ok):
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric_ok(s) >= n_ok, 20, "reload %d (%s) to be applied" % (n_ok, what))


def metric_ok(s):
    try:
        st, _, body = s.http("/metrics", headers={"Authorization": "Bearer " + s.token})
    except OSError:
        return 0
    m = re.search(r'^certstream_config_reloads_total\{result="ok"\} (\d+)$', body.decode(), re.M)
    return int(m.group(1)) if m else 0


def processes(s):
    st, _, body = s.http("/health/deep", headers={"Authorization": "Bearer " + s.token})
    return json.loads(body)["processes"]


def running_fanout(s):
    return sorted(p["pid"] for p in processes(s) if p["role"] == "fanout" and p["state"] == "running")


def case_reload_under_load():
    """Hundreds of WebSocket and SSE clients across 2 workers; reloads change the
    tokens, a limit, the log level, add a custom log, change workers 2 -> 3 -> 1
    and the port. No client is dropped, every client gets every certificate of
    every log exactly once and in order; new connections see the new settings."""
    n_clients = int(os.environ.get("OPS_CLIENTS", "500"))
    golden = {}
    for r in GOLDEN.records:
        golden.setdefault(r["log_url"], []).append(int(r["cert_index"]))
    argon, nimbus = sorted(golden[ARGON_URL]), sorted(golden[NIMBUS_URL])
    fa = FakeLog(ARGS.testdata, ["--golden", "a=" + ARGON_URL, "--size", "a=0"])
    fc = FakeLog(ARGS.testdata, ["--golden", "c=" + NIMBUS_URL, "--size", "c=0"])
    ua, uc = fa.url("/a/"), fc.url("/c/")
    s = server(replay=False, workers=2, env={"CERTSTREAM_CT_LOGS_URL": fa.url("/loglist.json")})
    s.token = "old-token"
    ops_config(s, s.port, 2, ["old-token"], 2000)
    clients = Clients()
    try:
        s.start()
        wait_for(lambda: any(l["url"] == ua and l["next_index"] == argon[0] for l in json.loads(
            s.http("/health/deep", headers={"Authorization": "Bearer old-token"})[2])["logs"]), 20,
            "log a followed from its first index")
        assert len(running_fanout(s)) == 2
        t0 = time.time()
        for i in range(n_clients):
            assert clients.add(s.port, "ws" if i % 2 == 0 else "sse", "old-token") in (101, 200)
        owners = set(s.socket_owners().values())
        assert len(owners) == 2, "clients are on %d workers, want 2" % len(owners)
        print("%d clients connected in %.1f s" % (n_clients, time.time() - t0))

        published = {ua: [], uc: []}

        def grow(fl, name, url, idx, upto):
            fl.control("size", log=name, size=idx[upto - 1] - idx[0] + 1)
            published[url] = idx[:upto]

        def all_caught_up(what):
            want = {u: v for u, v in published.items()}

            def ok():
                for c in clients.clients:
                    assert c["closed"] is None, "a client was closed (%s) %s" % (c["closed"], what)
                    per = {ua: [], uc: []}
                    for u, i in c["got"]:
                        per[u].append(i)
                    if per != want:
                        return False
                return True
            try:
                wait_for(ok, 30, "every client to get every certificate %s" % what, step=0.2)
            except AssertionError:
                c = clients.clients[0]
                print("first client got %r, want %r" % (c["got"], want))
                raise

        grow(fa, "a", ua, argon, 3)
        all_caught_up("before any reload")

        # 1: tokens, a limit, the log level -> in place, in the same workers
        workers_before = running_fanout(s)
        ops_config(s, s.port, 2, ["new-token"], 1500, level="warn")
        s.token = "new-token"  # /metrics needs it once the workers have reloaded
        reload(s, "tokens", 1)
        assert running_fanout(s) == workers_before, (running_fanout(s), workers_before)
        c = WSRaw(s.port, "/", headers={"Authorization": "Bearer new-token"})
        assert c.status == 101, c.status
        c.close()
        c = WSRaw(s.port, "/", headers={"Authorization": "Bearer old-token"})
        assert c.status == 401, c.status
        c.close()
        grow(fa, "a", ua, argon, 6)
        all_caught_up("after the token reload")

        # 2: a custom log: only its ingest process starts; log a's keeps running
        ingest_before = [p["pid"] for p in processes(s) if p["role"] == "ingest"]
        assert len(ingest_before) == 1, processes(s)
        ops_config(s, s.port, 2, ["new-token"], 1500,
                   "custom_logs:\n  - name: C\n    url: %s\n" % uc, level="warn")
        reload(s, "custom log", 2)
        wait_for(lambda: any(l["url"] == uc and l["next_index"] == nimbus[0] for l in json.loads(
            s.http("/health/deep", headers={"Authorization": "Bearer new-token"})[2])["logs"]), 20,
            "log c followed from its first index")
        ingest_after = wait_for(lambda: (lambda x: x if len(x) == 2 else None)(
            [p["pid"] for p in processes(s) if p["role"] == "ingest"]), 10, "2 ingest processes")
        assert ingest_before[0] in ingest_after, (ingest_before, ingest_after)
        grow(fa, "a", ua, argon, 9)
        grow(fc, "c", uc, nimbus, 5)
        all_caught_up("after adding a custom log")

        # 3: workers 2 -> 3 -> 1
        extra = "custom_logs:\n  - name: C\n    url: %s\n" % uc
        grow(fa, "a", ua, argon, 10)
        all_caught_up("before the dedup change")
        wait_for(lambda: len([p for p in processes(s) if p["role"] == "fanout"]) <= 4, 20,
                 "replaced workers without clients to exit")
        # with a new dedup table: every ingest process restarts from its position
        ingest_before = sorted(p["pid"] for p in processes(s) if p["role"] == "ingest")
        ops_config(s, s.port, 3, ["new-token"], 1500, extra + "dedup:\n  ttl_secs: 600\n", level="warn")
        reload(s, "workers 3", 3)
        wait_for(lambda: (lambda x: len(x) == 2 and not set(x) & set(ingest_before))(
            [p["pid"] for p in processes(s) if p["role"] == "ingest"]), 10, "2 new ingest processes")
        wait_for(lambda: len(running_fanout(s)) == 3, 20, "3 running workers")
        wait_for(lambda: len([p for p in processes(s) if p["role"] == "fanout"]) <= 5, 20,
                 "replaced workers without clients to exit")
        extra += "dedup:\n  ttl_secs: 600\n"
        ops_config(s, s.port, 1, ["new-token"], 1500, extra, level="warn")
        reload(s, "workers 1", 4)
        wait_for(lambda: len(running_fanout(s)) == 1, 20, "1 running worker")
        grow(fa, "a", ua, argon, 11)
        grow(fc, "c", uc, nimbus, 10)
        all_caught_up("after workers 2 -> 3 -> 1")

        # 4: a new port: new connections there, none on the old one
        old_port, new_port = s.port, free_port()
        ops_config(s, new_port, 1, ["new-token"], 1500, extra, level="warn")
        s.proc.send_signal(signal.SIGHUP)
        s.port = new_port
        wait_for(lambda: metric_ok(s) >= 5, 20, "the port reload")
        c = WSRaw(new_port, "/", headers={"Authorization": "Bearer new-token"})
        assert c.status == 101
        c.close()
        def refused():
            try:
                socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_for(refused, 5, "the old port to refuse connections")
        grow(fa, "a", ua, argon, len(argon))
        grow(fc, "c", uc, nimbus, len(nimbus))
        all_caught_up("after the port change")
        # process counts: 1 running worker; draining, only the first two (they hold the
        # clients); the replaced generations without clients have exited
        wait_for(lambda: len([p for p in processes(s) if p["role"] == "fanout"]) == 3, 10,
                 "replaced workers without clients to exit")
        fan = [p for p in processes(s) if p["role"] == "fanout"]
        assert len([p for p in fan if p["state"] == "running"]) == 1, fan
        assert sorted(p["pid"] for p in fan if p["state"] == "draining") == sorted(owners), fan
        assert len([p for p in processes(s) if p["role"] == "ingest"]) == 2, processes(s)
        log = s.logtext()
        # the first reload's lines (later ones are info lines under log_level: warn)
        for key, how in (("auth.tokens", "in place by every fanout worker"),
                         ("connection_limit.per_ip_limit", "in place by every fanout worker"),
                         ("log_level", "in place")):
            assert "SIGHUP: %s changed: applied %s" % (key, how) in log, (key, log)
        assert "SIGHUP: custom_logs changed" not in log, "an info line logged under log_level: warn"
        assert metric_ok(s) == 5
        print("reload under load: %d clients, 5 reloads, %d s" % (n_clients, time.time() - t0))
    except BaseException:
        print(s.logtext())
        raise
    finally:
        clients.close()
        s.stop(timeout=30)
        fa.stop()
        fc.stop()


def case_bad_reload():
    """A bad file on reload (syntax error, unknown key, FIFO, a 5 MB file)
    changes nothing and is logged with file:line:key; the reload counters say so."""
    with server(rate=50, workers=1, extra_yaml="auth:\n  enabled: true\n  tokens: [t1]\n") as s:
        good = open(s.config).read()
        hdr = {"Authorization": "Bearer t1"}

        def errors():
            body = s.http("/metrics", headers=hdr)[2].decode()
            return int(re.search(r'^certstream_config_reloads_total\{result="error"\} (\d+)$', body, re.M).group(1))

        def attempt(n, write, expect):
            write()
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: errors() == n, 10, "reload error %d" % n)
            assert re.search(expect, s.logtext()), (expect, s.logtext())
            os.replace(s.config + ".good", s.config) if os.path.exists(s.config + ".good") else None

        def put(text):
            def w():
                with open(s.config, "w") as f:
                    f.write(text)
            return w
        pids = sorted(s.children())
        attempt(1, put(good + "port: [\n"), r"SIGHUP: configuration refused, nothing changed: .*config\.yaml:\d+")
        attempt(2, put(good + "workerz: 3\n"), r"config\.yaml:\d+: .*'workerz'")
        attempt(3, put(good + "workers: lots\n"), r"config\.yaml:\d+: key 'workers'")

        def fifo():
            os.unlink(s.config)
            os.mkfifo(s.config)
        attempt(4, fifo, r"config\.yaml: is a FIFO; refused")
        os.unlink(s.config)

        def big():
            with open(s.config, "w") as f:
                f.write(good + "#" * (5 << 20) + "\n")
        attempt(5, big, r"config\.yaml: file is \d+ bytes, more than the 1048576-byte limit")
        # a port held by another program: refused, the workers keep serving
        with open(s.config, "w") as f:
            f.write(good)
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(4)
        try:
            attempt(6, put(good.replace("port: %d" % s.port, "port: %d" % holder.getsockname()[1])),
                    r"SIGHUP: configuration refused, nothing changed: listen on 127\.0\.0\.1:%d: "
                    r"address already in use" % holder.getsockname()[1])
        finally:
            holder.close()
        # nothing changed: same processes, the old token still works, a new one does not
        assert sorted(s.children()) == pids
        assert s.http("/latest.json", headers=hdr)[0] == 200
        assert s.http("/latest.json")[0] == 401
        with open(s.config, "w") as f:
            f.write(good)
        body = s.http("/health/deep", headers=hdr)[2]
        r = json.loads(body)["config_reloads"]
        assert r["error"] == 6 and r["ok"] == 0, r


def case_reload_ring_size():
    """ring_size changed by a reload: new workers on a new ring; the old
    workers close their clients with 1001 (their ring gets nothing new), the
    clients reconnect and receive the stream again from the new ring; an SSE
    id of the old ring is never taken for a record of the new one."""
    mib = 1 << 20
    with server(rate=50, workers=2, ring_size=mib) as s:
        old = [WSRaw(s.port, "/", timeout=10) for _ in range(6)]
        for c in old:
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(2)])
        h = json.loads(s.http("/health/deep")[2])
        assert h["ring"]["size"] == mib, h["ring"]
        old_tail = h["ring"]["tail"]
        with open(s.config) as f:
            text = f.read()
        assert "ring_size: %d\n" % mib in text
        with open(s.config, "w") as f:
            f.write(text.replace("ring_size: %d\n" % mib, "ring_size: %d\n" % (2 * mib)))
        s.proc.send_signal(signal.SIGHUP)
        for c in old:
            assert c.expect_close(15) == 1001, c.close_reason
        wait_for(lambda: metric(s, 'certstream_config_reloads_total{result="ok"}') == 1, 10, "the reload")
        h = json.loads(s.http("/health/deep")[2])
        assert h["ring"]["size"] == 2 * mib, h["ring"]
        assert h["ring"]["tail"] > old_tail, (h["ring"], old_tail)
        c = WSRaw(s.port, "/", timeout=10)
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(5)])
        # an SSE id from the old ring: the new ring's positions start after the old tail
        sk = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sk.sendall(("GET /sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %d\r\n\r\n" % (old_tail - 64)).encode())
        buf = b""
        while buf.count(b"\n\nid: ") < 2 and b"id: " not in buf.split(b"\r\n\r\n", 1)[-1]:
            d = sk.recv(65536)
            assert d, buf
            buf += d
        ids = [int(x) for x in re.findall(rb"^id: (\d+)$", buf, re.M)]
        sk.close()
        assert ids and min(ids) >= old_tail, (ids, old_tail)
        log = s.logtext()
        assert "SIGHUP: ring_size changed: applied by replacing the fanout workers" in log, log
        assert "the new ring (2097152 bytes) is in use" in log, log


def case_hot_reload_watch_path():
    """hot_reload.watch_path names the file a reload reads; an editor that
    writes a new file and renames it over the old one is seen (inotify on the
    directory), and the new settings apply."""
    with server(rate=50, workers=1) as s:
        other = os.path.join(s.dir, "live.yaml")
        base = open(s.config).read()
        watch = "hot_reload:\n  enabled: true\n  watch_path: %s\n" % other
        with open(other, "w") as f:
            f.write(base + watch)
        with open(s.config, "w") as f:
            f.write(base + watch)
        s.proc.send_signal(signal.SIGHUP)  # turns the watch on (hot_reload.* applies in place)
        wait_for(lambda: "hot_reload: watching %s" % other in s.logtext(), 10, "the watch")
        assert metric(s, 'certstream_config_reloads_total{result="ok"}') == 1
        tmp = other + ".tmp"
        with open(tmp, "w") as f:
            f.write(base + watch + "auth:\n  enabled: true\n  tokens: [edited]\n")
        os.rename(tmp, other)
        wait_for(lambda: "hot_reload: auth.tokens changed" in s.logtext(), 10, "the reload of the renamed file")
        wait_for(lambda: s.http("/latest.json")[0] == 401, 10, "new workers with auth")
        assert s.http("/latest.json", headers={"Authorization": "Bearer edited"})[0] == 200
        # the file the server started from was not read by the reload
        assert "tokens" not in open(s.config).read()


def case_reload_limit_below_live():
    """connection_limit.max_connections lowered below the live count by a
    reload: no connected client is kicked, new ones get 429 until enough
    have left."""
    lim = "connection_limit:\n  enabled: true\n  max_connections: %d\n  per_ip_limit: %d\n"
    with server(rate=50, workers=2, extra_yaml=lim % (100, 100)) as s:
        base = open(s.config).read()
        live = [WSRaw(s.port, "/", timeout=10) for _ in range(10)]
        assert all(c.status == 101 for c in live)
        with open(s.config, "w") as f:
            f.write(base.replace(lim % (100, 100), lim % (5, 5)))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(s, 'certstream_config_reloads_total{result="ok"}') == 1, 15, "the reload")
        c = WSRaw(s.port, "/")
        assert c.status == 429, c.status
        c.close()
        for c in live:  # every connected client still streams
            GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(2)])
        for c in live[:6]:
            c.close()
        wait_for(lambda: metric(s, "certstream_active_connections") == 4, 10, "4 clients left")
        c = WSRaw(s.port, "/")
        assert c.status == 101, c.status
        GOLDEN.check_sequence("lite", [c.recv_message() for _ in range(2)])


def case_reload_repeated():
    """Seven reloads in a row, alternating a change applied in place by the
    workers (a token) and one that replaces them (the token and the worker
    count): each applies (old token refused, new one accepted), replaced
    workers without clients exit, so worker slots never run out. Prints the
    time from SIGHUP until a new token is accepted (docs/benchmarks.md)."""
    import statistics
    with server(rate=50, workers=2, extra_yaml="auth:\n  enabled: true\n  tokens: [t0]\n") as s:
        base = open(s.config).read()
        times = {"in place": [], "replacement": []}
        for i in range(1, 9):
            tok = "t%d" % i
            text = base.replace("tokens: [t0]", "tokens: [%s]" % tok)
            if i % 2 == 0:
                text = text.replace("workers: 2\n", "workers: %d\n" % (1 + i % 4 // 2 * 2))
            with open(s.config, "w") as f:
                f.write(text)
            t0 = time.time()
            s.proc.send_signal(signal.SIGHUP)
            hdr = {"Authorization": "Bearer " + tok}
            wait_for(lambda: re.search(r'^certstream_config_reloads_total\{result="ok"\} %d$' % i,
                                       s.http("/metrics", headers=hdr)[2].decode(), re.M), 10,
                     "reload %d" % i, step=0.005)
            wait_for(lambda: s.http("/latest.json", headers=hdr)[0] == 200, 10, "the new token", step=0.005)
            times["replacement" if i % 2 == 0 else "in place"].append(time.time() - t0)
            # each worker applies a reload in place at its next heartbeat:
            # the old token is refused by all of them (8 new connections in
            # a row, spread over the workers by the kernel) within the bound
            old = {"Authorization": "Bearer t%d" % (i - 1)}
            wait_for(lambda: all(s.http("/latest.json", headers=old)[0] == 401 for _ in range(8)), 10,
                     "the old token refused by every worker", step=0.005)
            want = 2 if i % 2 else 1 + i % 4 // 2 * 2
            wait_for(lambda: len([p for p in processes_tok(s, tok) if p["role"] == "fanout"]) == want, 10,
                     "%d workers, the replaced ones gone" % want)
        for k, v in times.items():
            print("reload %s, SIGHUP -> the new token is accepted: median %.0f ms (%s)" % (
                k, statistics.median(v) * 1000, ", ".join("%.0f" % (t * 1000) for t in v)))


def processes_tok(s, tok):
    st, _, body = s.http("/health/deep", headers={"Authorization": "Bearer " + tok})
    return json.loads(body)["processes"]


def case_emfile():
    """Out of descriptors, accept fails with EMFILE again and again: one log
    line per 10 s, the next one with the count of the lines left out."""
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
    s = server(rate=50, workers=1)
    s.proc = subprocess.Popen(s.args, stdout=s.log, stderr=s.log, env=s.env, start_new_session=True,
                              preexec_fn=lower)
    held = []
    try:
        wait_for(lambda: _health(s), 20, "the server")
        t0 = time.time()
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        pat = r"fanout\[0\] pid=\d+: accept: Too many open files; pausing for 100 ms"
        wait_for(lambda: re.search(pat, s.logtext()), 10, "the EMFILE line")
        time.sleep(2)
        assert len(re.findall(pat, s.logtext())) == 1, s.logtext()
        wait_for(lambda: len(re.findall(pat, s.logtext())) == 2, 15, "the next EMFILE line")
        took = time.time() - t0
        assert re.search(pat + r" \(and \d+ more like it in the last 10 s\)", s.logtext()), s.logtext()
        assert took >= 9, took
    finally:
        for k in held:
            k.close()
        s.stop()


def case_loglist_signal():
    """The log list download killed by a signal is logged as that, not as a
    list without logs."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(4)  # accepts (in the kernel) and never answers
    try:
        with server(replay=False, env={"CERTSTREAM_CT_LOGS_URL": "http://127.0.0.1:%d/list.json"
                                       % hang.getsockname()[1]}) as s:
            m = wait_for(lambda: re.search(r"started loglist\[0\] pid=(\d+)", s.logtext()), 10, "the fetcher")
            pid = int(m.group(1))
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: "log list download (loglist pid=%d) killed by signal 9 (Killed)" % pid in s.logtext(),
                     10, "the fetcher's death in the log")
            wait_for(lambda: "log list unavailable; next attempt in 10 s" in s.logtext(), 10, "the retry")
            assert "no usable log" not in s.logtext(), s.logtext()
    finally:
        hang.close()


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}



if __name__ == "__main__":
    sys.exit(server_run_cases(globals()))

#!/usr/bin/python3
"""Operations tests: the real certstream-server binary and real clients over
loopback. Reload, one instance per address, failing fast on start,
configuration files of any kind, watchdogs, descriptor limits, log formats.

usage: test_ops.py CASE --server BIN --testdata DIR
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import argparse
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
from server import Golden, Server, free_port  # noqa: E402
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
                                     CERTSTREAM_WORKERS="1"),
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
    wd = 2
    with server(rate=50, workers=3, extra_yaml="watchdog_secs: %d\n" % wd) as s:
        pids = wait_children(s, "fanout", 3)
        victim = pids[1]
        os.kill(victim, signal.SIGSTOP)
        t0 = time.time()
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
        assert re.search(r"fanout\[\d\] pid=%d missed its heartbeat for \d+ ms \(watchdog_secs: 2\)" % victim, log), log
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
    finally:
        for fn in os.listdir(d):
            os.unlink(os.path.join(d, fn))
        os.rmdir(d)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


def main():
    global ARGS, GOLDEN
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
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

"""benchlib.py - what the benchmark scripts under test/bench share.

  - starting the real server (Server) and the growing fake log
    (start_fakelog, growing_logs_yaml), waiting for a port, stopping what
    was started (stop, stop_all);
  - the server's processes (descendants, Server.roles / fanout) and their
    CPU ticks (cpu_ticks, cpu_snapshot, cpu_delta) and memory
    (smaps: Rss, Pss, private from /proc/PID/smaps_rollup), /metrics;
  - certstream-loadgen: its --mark window (wait_mark) and its final JSON
    line (loadgen_result);
  - a throwaway self-signed certificate for the TLS benchmarks (make_cert);
  - log lines on stderr, medians that skip failed runs, n/a formatting.

Free ports and polling come from test/pyutil.py (shared with the tests) and
are re-exported here. Only the Python standard library (Debian's python3).
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test"))
from pyutil import free_port, wait_for  # noqa: E402,F401  (re-exported)

HZ = os.sysconf("SC_CLK_TCK")
CORPUS = os.path.join(ROOT, "test", "data", "golden", "live_ct.json")


def log(*a):
    """A progress line on stderr (stdout is the result)."""
    print(*a, file=sys.stderr, flush=True)


def log_stamped(*a):
    """log() with the time of day first (for long runs)."""
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def wait_port(port, timeout=15.0):
    """True once something accepts on 127.0.0.1:port, False after timeout s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


# --- processes, CPU, memory -------------------------------------------------

def descendants(pid):
    """pid and every process below it (from /proc/*/stat ppid)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks (HZ a second), None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_snapshot(pids):
    """{pid: cpu_ticks(pid)}."""
    return {p: cpu_ticks(p) for p in pids}


def cpu_delta(a, b):
    """{pid: CPU seconds from snapshot a to snapshot b} for the pids alive at both."""
    return {p: (b[p] - a[p]) / HZ for p in a if a.get(p) is not None and b.get(p) is not None}


def smaps(pid):
    """{"rss", "pss", "priv", "anon"} in kB from /proc/PID/smaps_rollup (priv =
    Private_Clean + Private_Dirty; anon = Anonymous: heap, stacks and other
    anonymous pages, what a leak grows; unlike priv it does not move when
    another process on the machine maps or unmaps the same library pages),
    or None once the process is gone."""
    out = {"rss": 0, "pss": 0, "priv": 0, "anon": 0}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k == "Rss":
                    out["rss"] = int(line.split()[1])
                elif k == "Pss":
                    out["pss"] = int(line.split()[1])
                elif k in ("Private_Clean", "Private_Dirty"):
                    out["priv"] += int(line.split()[1])
                elif k == "Anonymous":
                    out["anon"] = int(line.split()[1])
    except OSError:
        return None
    return out


def metrics(port, timeout=20, strict=False):
    """The server's /metrics, labelled series summed per name. An error
    gives what was read so far ({}), or is raised with strict."""
    out = {}
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    k, v = line.rsplit(" ", 1)
                    k = k.split("{", 1)[0]
                    out[k] = out.get(k, 0.0) + float(v)
    except (OSError, ValueError):
        if strict:
            raise
    return out


# --- starting and stopping --------------------------------------------------

def stop(proc, timeout=15):
    """SIGTERM to proc's process group (it was started with
    start_new_session), SIGKILL after timeout s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_all(procs, timeout=30):
    """stop() for every process, the last started first; SIGTERM to all of
    them before waiting for any."""
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
    for p in reversed(procs):
        stop(p, timeout)


class Server:
    """The real server binary on 127.0.0.1:port in its own session, with a
    config of `host`, `port` and then `yaml` (workdir/config<tag>.yaml),
    its output in workdir/server<tag>.log, workdir its working directory
    (relative paths of binary and replay are made absolute); tag defaults
    to -PORT. replay: --replay FILE --rate RATE (--loop unless loop=False;
    --bench-stamp with stamp). prefix: words before the binary (taskset).
    start() waits for the port (at most listen_timeout s), then `settle` s
    so every child has started; stop() ends the process group. A context
    manager too."""

    def __init__(self, binary, workdir, port, yaml="", replay=None, rate=None, loop=True, stamp=False,
                 settle=1.0, tag=None, prefix=(), listen_timeout=15.0, stop_timeout=15):
        self.binary, self.workdir, self.port, self.yaml = binary, workdir, port, yaml
        self.replay, self.rate, self.loop, self.stamp = replay, rate, loop, stamp
        self.settle, self.prefix = settle, list(prefix)
        self.listen_timeout, self.stop_timeout = listen_timeout, stop_timeout
        tag = "-%d" % port if tag is None else tag
        self.config = os.path.join(workdir, "config%s.yaml" % tag)
        self.logpath = os.path.join(workdir, "server%s.log" % tag)
        self.proc = self.logf = None

    def start(self):
        with open(self.config, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\n" % self.port + self.yaml)
        cmd = self.prefix + [os.path.abspath(self.binary), "--config", self.config]
        if self.replay:
            cmd += ["--replay", os.path.abspath(self.replay), "--rate", str(self.rate)]
            if self.loop:
                cmd.append("--loop")
        if self.stamp:
            cmd.append("--bench-stamp")
        env = dict(os.environ)
        env.pop("CERTSTREAM_CONFIG", None)
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf, cwd=self.workdir, env=env,
                                     start_new_session=True)
        if not wait_port(self.port, self.listen_timeout):
            self.stop()
            raise RuntimeError("server did not listen; log: " + self.log_text()[-2000:])
        time.sleep(self.settle)
        return self

    def stop(self):
        if self.proc is not None:
            stop(self.proc, self.stop_timeout)
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        with open(self.logpath) as f:
            return f.read()

    def pids(self):
        """The supervisor and every process below it."""
        return descendants(self.proc.pid)

    def roles(self):
        """{pid: role} from the supervisor's "started ROLE[i] pid=N" lines
        (e.g. fanout[0], ingest[1]) and the supervisor itself."""
        roles = {self.proc.pid: "supervisor"}
        for m in re.finditer(r"started (\S+) pid=(\d+)", self.log_text()):
            roles[int(m.group(2))] = m.group(1)
        return roles

    def fanout(self):
        """The fanout workers' pids."""
        return [p for p, r in self.roles().items() if r.startswith("fanout")]


def start_fakelog(workdir, testdata, spec, extra=(), prefix=(), out=subprocess.DEVNULL, exc=RuntimeError):
    """The growing fake log (test/fakelog/fakelog.py --synthetic-many SPEC
    plus `extra`), in its own session; returns (process, base URL) once it
    listens (raises exc after 60 s)."""
    pf = os.path.join(workdir, "fakelog.port")
    if os.path.exists(pf):
        os.unlink(pf)
    proc = subprocess.Popen(list(prefix) + [sys.executable, os.path.join(ROOT, "test", "fakelog", "fakelog.py"),
                                            "--testdata", testdata, "--port-file", pf, "--synthetic-many", spec]
                            + list(extra), stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 60, "the fake log", exc=exc)
    except BaseException:
        stop(proc)
        raise
    with open(pf) as f:
        return proc, "http://127.0.0.1:%d/" % int(f.read())


def growing_logs_yaml(workdir, base, names, ct_log=""):
    """Config lines that follow the fake log's `names` at `base` (and no
    log list: an empty one), starting at index 1000 (a state file written
    here); `ct_log` adds lines to the ct_log block. One ingest process per
    log, at most 6."""
    state, empty = os.path.join(workdir, "state.json"), os.path.join(workdir, "empty-list.json")
    with open(state, "w") as f:
        json.dump({"logs": {base + n + "/": {"next_index": 1000, "tree_size": 1000} for n in names}}, f)
    with open(empty, "w") as f:
        json.dump({"version": "1", "operators": []}, f)
    return ("ct_logs_url: file://%s\nct_log:\n  state_file: %s\n%s" % (empty, state, ct_log)
            + "ingest:\n  group_by: log\n  max_processes: 6\ncustom_logs:\n"
            + "".join("  - {name: %s, url: \"%s%s/\"}\n" % (n, base, n) for n in names))


def make_cert(d):
    """A throwaway ECDSA P-256 certificate for CN=localhost in d: (cert, key) paths."""
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return crt, key


# --- certstream-loadgen -----------------------------------------------------

def start_loadgen(cmd, session=False):
    """certstream-loadgen (cmd: its full command line), stdout and stderr
    piped; in a session of its own with session (then stop() ends it)."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=session)


def wait_mark(path, word, proc, timeout):
    """Waits until the loadgen's --mark file holds `word` ("start" or
    "end"); False when proc ended first or after timeout s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                if word in f.read().split():
                    return True
        except OSError:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def loadgen_result(proc, bound):
    """The loadgen's final JSON line (it must end within bound s)."""
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("loadgen overran its bound")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("loadgen printed nothing: " + err[-1000:])
    return json.loads(lines[-1])


# --- results ----------------------------------------------------------------

def median(vals):
    """Median of the values that are not None; None when there are none."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def median_of(runs, key):
    """Median of runs[i][key] over the runs without an "error"."""
    return median(r.get(key) for r in runs if "error" not in r)


def fmt(v, spec=".0f", none="n/a"):
    """format(v, spec), or `none` for None."""
    return none if v is None else format(v, spec)

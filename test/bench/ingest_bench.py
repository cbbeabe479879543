#!/usr/bin/env python3
"""ingest_bench.py - ingest benchmarks against the growing fake log
(test/fakelog/fakelog.py --synthetic*), with the real server binary.

  catchup   one RFC 6962 log of --entries entries (default 1,000,000) from
            index 0 into the ring: entries/s end to end (wall clock, first
            to last entry) and ingest CPU (utime+stime of the ingest
            process) per 1,000 entries. --repeats runs, medians printed.
  steady    --logs logs (default 50) growing at --rate entries/s in total
            (default 500) for --secs seconds (default 60) after a
            --warmup (default 10 s): CPU of all ingest processes as % of one core, their
            private memory (Private_Clean + Private_Dirty) and RSS, and
            the requests the fake log answered per second. With
            --against OLD (another server binary) and --repeats N, OLD and
            --server run alternately N times each in the same session
            (the machine's load changes by the minute) and the medians of
            both are printed with their ratio.

No client is connected (the fanout side is measured by test/bench/run.sh).
The fake log runs on the same machine and costs CPU of its own; only the
server's ingest processes are measured.

  python3 test/bench/ingest_bench.py catchup --server build-rel/certstream-server
  python3 test/bench/ingest_bench.py steady --server build-rel/certstream-server
  python3 test/bench/ingest_bench.py steady --server NEW --against OLD --repeats 3 --compression off
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import free_port, cpu_secs, mem_kb  # noqa: E402


def sched_secs(pid):
    """CPU seconds of one process from /proc/<pid>/schedstat (time on the
    CPU in ns, all threads' sum for a single-threaded process): finer than
    utime + stime, which count 10 ms ticks."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e9

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


class Setup:
    def __init__(self, a, fake_args, state, extra_yaml, custom, static=False, server=None):
        self.d = tempfile.mkdtemp(prefix="cs-ibench-")
        pf = os.path.join(self.d, "port")
        self.fake = subprocess.Popen([sys.executable, a.fakelog,
                                      "--testdata", a.testdata, "--port-file", pf] + fake_args,
                                     stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(pf), 30, "fake log")
        self.base = "http://127.0.0.1:%d/" % int(open(pf).read())
        with open(os.path.join(self.d, "state.json"), "w") as f:
            json.dump({"logs": {self.base + n + "/": {"next_index": v, "tree_size": max(v, 1)}
                                for n, v in state.items()}}, f)
        with open(os.path.join(self.d, "empty.json"), "w") as f:
            json.dump({"version": "1", "operators": []}, f)
        self.port = free_port()
        cfg = os.path.join(self.d, "config.yaml")
        with open(cfg, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\nworkers: 1\nlog_level: warn\n" % self.port)
            f.write("ct_logs_url: file://%s\n" % os.path.join(self.d, "empty.json"))
            f.write("ct_log:\n  state_file: %s\n" % os.path.join(self.d, "state.json"))
            f.write(extra_yaml)
            f.write("static_logs:\n" if static else "custom_logs:\n")
            for n in custom:
                f.write("  - {name: %s, url: \"%s%s/\"}\n" % (n, self.base, n))
        env = dict(os.environ)
        env.pop("CERTSTREAM_CONFIG", None)
        self.log = open(os.path.join(self.d, "server.log"), "wb")
        self.server = subprocess.Popen([server or a.server, "--config", cfg], stdout=self.log, stderr=self.log, env=env,
                                       start_new_session=True)

    def published(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as r:
                t = r.read().decode()
        except OSError:
            return 0
        m = re.search(r"^certstream_entries_published_total (\d+)$", t, re.M)
        return int(m.group(1)) if m else 0

    def ingest_pids(self):
        """Children that are not the fanout worker: the ingest processes."""
        kids = [int(x) for x in open("/proc/%d/task/%d/children" % (self.server.pid, self.server.pid)).read().split()]
        out = []
        for k in kids:
            try:
                with open("/proc/%d/environ" % k, "rb"):
                    pass
                # fanout holds the listening socket; ingest processes do not
                socks = [os.readlink("/proc/%d/fd/%s" % (k, fd)) for fd in os.listdir("/proc/%d/fd" % k)]
            except OSError:
                continue
            listening = self.listening_inodes()
            if not any(s.startswith("socket:[") and s[8:-1] in listening for s in socks):
                out.append(k)
        return out

    def listening_inodes(self):
        inodes = set()
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if p[3] == "0A" and int(p[1].split(":")[1], 16) == self.port:
                    inodes.add(p[9])
        return inodes

    def close(self):
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        self.fake.kill()
        self.fake.wait()
        shutil.rmtree(self.d, ignore_errors=True)


def compression_yaml(a):
    """--compression off: no permessage-deflate at publish time (the three
    messages of every entry are otherwise compressed once each, zlib)."""
    return "compression:\n  enabled: false\n" if a.compression == "off" else ""


def catchup(a):
    rates, cpus = [], []
    for rep in range(a.repeats):
        if a.tiled:
            s = Setup(a, ["--synthetic-tiled", "c=%d" % a.entries] + (["--hash-tiles"] if a.verify else []),
                      {"c": 0}, "  operator_rate_limit_ms: 0\n  verify_tiles: %s\n" % ("true" if a.verify else "false"),
                      ["c"], static=True)
        else:
            s = Setup(a, ["--synthetic", "c=%d" % a.entries], {"c": 0},
                      "  batch_size: 256\n  fetch_concurrency: %d\n  operator_rate_limit_ms: 0\n"
                      "  poll_interval_ms: 1000\n" % a.concurrency + compression_yaml(a), ["c"])
        try:
            wait_for(lambda: s.published() > 0, 60, "the first entry")
            t0 = time.time()
            pid = s.ingest_pids()[0]
            c0 = cpu_secs(pid)
            n0 = s.published()
            wait_for(lambda: s.published() >= a.entries, 3600, "all entries")
            t1 = time.time()
            c1 = cpu_secs(pid)
            n = a.entries - n0
            rates.append(n / (t1 - t0))
            cpus.append((c1 - c0) / n * 1000 * 1000)   # ms per 1,000 entries
            st = json.loads(urllib.request.urlopen(s.base + "control/stats").read())
            print("run %d: %d entries in %.1f s = %.0f entries/s; ingest CPU %.1f s = %.2f ms per 1,000 entries; "
                  "requests per 1,000 entries: %s"
                  % (rep + 1, n, t1 - t0, rates[-1], c1 - c0, cpus[-1],
                     ", ".join("%s %.2f" % (k.split()[1], v * 1000.0 / a.entries) for k, v in sorted(st.items()) if "_max_" not in k)),
                  flush=True)
        finally:
            s.close()
    print("catch-up median: %.0f entries/s, %.2f ms ingest CPU per 1,000 entries (%d runs)"
          % (statistics.median(rates), statistics.median(cpus), len(rates)))


def fake_requests(s):
    """Requests the fake log answered so far (all logs and endpoints)."""
    st = json.loads(urllib.request.urlopen(s.base + "control/stats").read())
    return sum(v for k, v in st.items() if "_max_" not in k)


def steady_once(a, server):
    per = a.rate / a.logs
    names = ["r%d" % i for i in range(a.logs)]
    s = Setup(a, ["--synthetic-many", "r=%d:1000@%g" % (a.logs, per)], {n: 1000 for n in names},
              "  operator_rate_limit_ms: %d\n" % a.pace + "ingest:\n  group_by: log\n  max_processes: %d\n" % a.procs
              + compression_yaml(a),
              names, server=server)
    try:
        wait_for(lambda: s.published() > 0, 60, "the first entry")
        time.sleep(a.warmup)
        pids = s.ingest_pids()
        c0 = sum(cpu_secs(p) for p in pids)
        k0 = sum(sched_secs(p) for p in pids)
        r0 = fake_requests(s)
        n0, t0 = s.published(), time.time()
        time.sleep(a.secs)
        c1 = sum(cpu_secs(p) for p in pids)
        k1 = sum(sched_secs(p) for p in pids)
        r1 = fake_requests(s)
        n1, t1 = s.published(), time.time()
        mem = [mem_kb(p) for p in pids]
        dt = t1 - t0
        print("steady (%s): %d logs in %d ingest processes, %.0f entries/s published (offered %g), ingest CPU %.2f %% "
              "of one core (%.3f s in %.0f s; schedstat %.2f %%), %.1f requests/s, private memory %d kB in total (%s), "
              "RSS %d kB in total"
              % (os.path.basename(server), a.logs, len(pids), (n1 - n0) / dt, a.rate, 100 * (c1 - c0) / dt, c1 - c0, dt,
                 100 * (k1 - k0) / dt, (r1 - r0) / dt, sum(m["priv"] for m in mem),
                 "/".join(str(m["priv"]) for m in mem), sum(m["rss"] for m in mem)), flush=True)
        return {"cpu": 100 * (c1 - c0) / dt, "sched": 100 * (k1 - k0) / dt, "req": (r1 - r0) / dt}
    finally:
        s.close()


def steady(a):
    if not a.against:
        for _ in range(a.repeats if a.repeats_given else 1):
            steady_once(a, a.server)
        return
    runs = {a.against: [], a.server: []}
    for _ in range(a.repeats):
        for b in (a.against, a.server):
            runs[b].append(steady_once(a, b))
    med = {b: {k: statistics.median(r[k] for r in v) for k in ("cpu", "sched", "req")} for b, v in runs.items()}
    for b in (a.against, a.server):
        print("median %s (%d runs): ingest CPU %.2f %% of one core (schedstat %.2f %%), %.1f requests/s"
              % (b, a.repeats, med[b]["cpu"], med[b]["sched"], med[b]["req"]))
    print("new/old: CPU %.2fx, schedstat %.2fx" % (med[a.server]["cpu"] / med[a.against]["cpu"],
                                                    med[a.server]["sched"] / med[a.against]["sched"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["catchup", "steady"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", default=os.path.join(ROOT, "test", "data"))
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--repeats", type=int, default=None, help="runs (catchup: 3; steady: 1, or 3 with --against)")
    ap.add_argument("--against", help="steady: an older server binary, run alternately with --server")
    ap.add_argument("--fakelog", default=os.path.join(ROOT, "test", "fakelog", "fakelog.py"),
                    help="the fake log to serve the logs (another version of it, for comparisons)")
    ap.add_argument("--logs", type=int, default=50)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--secs", type=float, default=60)
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--tiled", action="store_true", help="catchup: a static-ct-api log")
    ap.add_argument("--compression", choices=["on", "off"], default="on",
                    help="permessage-deflate at publish time (compression.enabled)")
    ap.add_argument("--verify", action="store_true", help="catchup --tiled: ct_log.verify_tiles with hash tiles")
    ap.add_argument("--pace", type=int, default=20)
    ap.add_argument("--warmup", type=float, default=10,
                    help="steady: seconds after the first entry before measuring. Each ingest process maps "
                         "the shared ring and takes a page fault on every ring page the first time it writes "
                         "there; with 6 processes writing in turn that goes on for minutes (~300 faults/s "
                         "after 45 s, a few dozen after 5 min), so a long warm-up measures a server that has "
                         "run for a while")
    a = ap.parse_args()
    a.repeats_given = a.repeats is not None
    if a.repeats is None:
        a.repeats = 3
    catchup(a) if a.mode == "catchup" else steady(a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_steady.py - the real server following slowly growing fake logs, as
in the steady state of a production server: what it asks the logs and that
its ingest process stays alive while it has little to do.

  requests  3 RFC 6962 logs growing at 10 entries/s each, one ingest
            process, poll_interval_ms 500, no pacing. Over 4 s: at most one
            get-sth per log per poll interval (+1 for the edges of the
            window), at most one get-entries per get-sth that moved the head
            (+1), at least a few of each (the logs are followed), and every
            entry from the saved position to the last one published exactly
            once, in order, with no gap.
  idle      one log that does not grow, poll_interval_ms 86400000, so the
            ingest process has nothing to do; watchdog_secs 2:
            its heartbeat must still be beaten by its own timer (it is
            otherwise beaten at the end of each event callback), so over 6 s
            it is not killed by the watchdog (certstream_watchdog_kills_total
            for ingest stays 0, the same process runs) and it polled exactly
            once.

Usage: test_steady.py CASE --server BIN --testdata DIR --fakelog PY
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import free_port, read_journal, stop_server_run, wait_for  # noqa: E402


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class Run:
    def __init__(self, a, fake_args, names, start, yaml):
        self.d = tempfile.mkdtemp(prefix="cs-steady-")
        self.fake = self.server = None
        pf = os.path.join(self.d, "fakeport")
        self.fake = subprocess.Popen([sys.executable, a.fakelog, "--testdata", a.testdata, "--port-file", pf]
                                     + fake_args, stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(pf) and os.path.getsize(pf) > 0, 20, "the fake log")
        self.base = "http://127.0.0.1:%d/" % int(open(pf).read())
        self.urls = {n: self.base + n + "/" for n in names}
        with open(os.path.join(self.d, "state.json"), "w") as f:
            json.dump({"logs": {u: {"next_index": start, "tree_size": start} for u in self.urls.values()}}, f)
        with open(os.path.join(self.d, "empty.json"), "w") as f:
            json.dump({"version": "1", "operators": []}, f)
        self.port = free_port()
        cfg = os.path.join(self.d, "config.yaml")
        with open(cfg, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\nworkers: 1\nlog_level: info\n" % self.port)
            f.write("ct_logs_url: file://%s\n" % os.path.join(self.d, "empty.json"))
            f.write("ct_log:\n  state_file: %s\n  start_overlap: 0\n" % os.path.join(self.d, "state.json"))
            f.write(yaml)
            f.write("custom_logs:\n")
            for n, u in self.urls.items():
                f.write("  - {name: %s, url: \"%s\"}\n" % (n, u))
        self.journal = os.path.join(self.d, "journal")
        env = dict(os.environ, CERTSTREAM_TEST_PUBLISH_JOURNAL=self.journal)
        env.pop("CERTSTREAM_CONFIG", None)
        self.log = open(os.path.join(self.d, "server.log"), "wb")
        self.server = subprocess.Popen([a.server, "--config", cfg], stdout=self.log, stderr=self.log, env=env,
                                       start_new_session=True)

    def stats(self):
        return json.loads(get(self.base + "control/stats"))

    def requests(self, name, endpoint):
        return self.stats().get(name + " " + endpoint, 0)

    def published(self):
        """{url: [index, ...] in publish order} from the journal's A lines."""
        out = collections.defaultdict(list)
        for j in read_journal(self.journal):
            if j.kind == "A":
                out[j.url].append(j.index)
        return out

    def metric(self, text, name):
        m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
        return int(m.group(1)) if m else None

    def metrics(self):
        try:
            return get("http://127.0.0.1:%d/metrics" % self.port).decode()
        except OSError:
            return ""

    def logtext(self):
        self.log.flush()
        with open(os.path.join(self.d, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def children(self):
        return sorted(open("/proc/%d/task/%d/children" % (self.server.pid, self.server.pid)).read().split())

    def close(self):
        stop_server_run(self.server, self.fake, self.d)


def case_requests(a):
    names = ["r0", "r1", "r2"]
    poll_s, window = 0.5, 4.0
    r = Run(a, ["--synthetic-many", "r=3:1000@10"], names, 1000,
            "  poll_interval_ms: %d\n  operator_rate_limit_ms: 0\ningest:\n  group_by: single\n" % (poll_s * 1000))
    try:
        wait_for(lambda: all(r.published().get(u) for u in r.urls.values()), 60, "entries of every log")
        s0, t0 = r.stats(), time.time()
        time.sleep(window)
        s1, t1 = r.stats(), time.time()
        dt = t1 - t0
        polls_max = int(dt / poll_s) + 1
        for n in names:
            sth = s1.get(n + " sth", 0) - s0.get(n + " sth", 0)
            ent = s1.get(n + " entries", 0) - s0.get(n + " entries", 0)
            print("%s: %d get-sth, %d get-entries in %.2f s (poll every %.1f s: at most %d each)"
                  % (n, sth, ent, dt, poll_s, polls_max))
            assert sth <= polls_max, "%s: %d get-sth in %.2f s, more than one per poll interval" % (n, sth, dt)
            assert ent <= sth + 1, "%s: %d get-entries for %d get-sth" % (n, ent, sth)
            assert sth >= 2 and ent >= 2, "%s: not followed (%d get-sth, %d get-entries)" % (n, sth, ent)
        time.sleep(0.5)
        pub = r.published()
        for n, u in r.urls.items():
            got = pub[u]
            assert got == list(range(1000, 1000 + len(got))), \
                "%s: published %d entries, not exactly 1000..%d in order: %s" % (n, len(got), 999 + len(got), got[:20])
            print("%s: entries 1000..%d published exactly once, in order" % (n, 999 + len(got)))
    finally:
        r.close()


def case_idle(a):
    r = Run(a, ["--synthetic", "s=10"], ["s"], 10,
            "  poll_interval_ms: 86400000\nwatchdog_secs: 2\n")
    try:
        wait_for(lambda: r.requests("s", "sth") >= 1, 30, "the first get-sth")
        wait_for(lambda: r.metric(r.metrics(), "certstream_entries_published_total") is not None, 30, "/metrics")
        kids = r.children()
        time.sleep(6)
        m = r.metrics()
        kills = r.metric(m, 'certstream_watchdog_kills_total{role="ingest"}')
        assert kills == 0, "ingest killed by the watchdog %s times while idle\n%s" % (kills, r.logtext()[-2000:])
        assert r.children() == kids, "child processes changed: %s -> %s" % (kids, r.children())
        sth = r.requests("s", "sth")
        assert sth == 1, "%d get-sth in 6 s with poll_interval_ms 86400000" % sth
        assert r.requests("s", "entries") == 0, "get-entries for a log that did not grow"
        print("idle 6 s: ingest not killed (watchdog_secs 2), 1 get-sth, 0 get-entries")
    finally:
        r.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["requests", "idle"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--fakelog", required=True)
    a = ap.parse_args()
    {"requests": case_requests, "idle": case_idle}[a.case](a)
    print("ok")


if __name__ == "__main__":
    main()

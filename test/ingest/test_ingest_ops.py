#!/usr/bin/env python3
"""test_ingest_ops.py - the real server against the growing fake log, as an
operator sees it: position sanity, no silent loss, bounded answers.

Each case starts test/fakelog/fakelog.py with one synthetic RFC 6962 log
(distinct certificates, real chains), writes a state file, runs the real
binary with a publish journal (CERTSTREAM_TEST_PUBLISH_JOURNAL) and checks
exact indexes published, /metrics values and /health/deep.

  ahead_wait      saved position 5000, tree size 100: nothing published, the
                  log degraded with the reason in /health/deep, counted once;
                  the log grows to 5010: exactly 5000..5009, healthy again.
  ahead_restart   the same with position_ahead: restart_at_head: 100..109.
  corrupt         one entry of an answer with bad base64 (once): the answer
                  is fetched again, nothing skipped, 0..63 exactly once; then
                  an entry bad in every fetch (retry_max_attempts 3): that
                  one entry is skipped, counted and logged with its index;
                  64..127 minus it published.
  oversize        answers of 40 MiB streamed without Content-Length and
                  max_response_bytes 4 MiB: refused while receiving, counted,
                  the log goes on: 0..63 exactly once. --memory also checks
                  the ingest process's private memory before/after a burst
                  (meaningful only in a build without sanitizers).
  catchup_mem     a backlog of 4096 entries fetched in 4 windows of 256
                  (answers of ~1.3 MB), then the log at its head growing by
                  a few entries at a time: exactly 0..4119 published. With
                  --memory, the ingest process's anonymous memory goes back
                  to within 2 MiB of what it was before the catch-up (the
                  catch-up-sized buffers are freed once the log is at its
                  head, and the heap trimmed).

Usage: test_ingest_ops.py CASE --server BIN --testdata DIR --fakelog PY [--memory]
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
from pyutil import free_port, journal_published, stop_server_run, wait_for  # noqa: E402


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()


def proc_kb(pid, fields, name="smaps_rollup"):
    """The sum of the kB fields `fields` (e.g. ("Anonymous",)) of
    /proc/PID/<name> (smaps_rollup or status)."""
    total = 0
    with open("/proc/%d/%s" % (pid, name)) as f:
        for line in f:
            k = line.split(":", 1)[0]
            if k in fields:
                total += int(line.split()[1])
    return total


def private_kb(pid):
    """Private_Clean + Private_Dirty of a process, kB."""
    return proc_kb(pid, ("Private_Clean", "Private_Dirty"))


def hwm_kb(pid):
    """Peak resident memory of a process, kB."""
    return proc_kb(pid, ("VmHWM",), "status")


def anon_kb(pid):
    """Anonymous memory of a process (heap, stacks; not the shared ring), kB."""
    return proc_kb(pid, ("Anonymous",))


class Run:
    def __init__(self, a, size, state_next, extra_yaml="", fake_args=None, statics=None):
        self.a = a
        self.d = tempfile.mkdtemp(prefix="cs-ops-")
        self.fake = self.server = None
        pf = os.path.join(self.d, "fakeport")
        self.fake = subprocess.Popen([sys.executable, a.fakelog, "--testdata", a.testdata, "--port-file", pf] +
                                     (fake_args or ["--synthetic", "s=%d" % size]), stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(pf), 20, "the fake log")
        self.base = "http://127.0.0.1:%d/" % int(open(pf).read())
        self.url = self.base + "s/"
        logs = {self.url: state_next} if not fake_args else {}
        for name, nxt in (statics or {}).items():
            logs[self.base + name + "/"] = nxt
        with open(os.path.join(self.d, "state.json"), "w") as f:
            json.dump({"logs": {u: {"next_index": n, "tree_size": max(n, 1)} for u, n in logs.items()}}, f)
        with open(os.path.join(self.d, "empty.json"), "w") as f:
            json.dump({"version": "1", "operators": []}, f)
        self.port = free_port()
        cfg = os.path.join(self.d, "config.yaml")
        with open(cfg, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\nworkers: 1\nlog_level: info\n" % self.port)
            f.write("ct_logs_url: file://%s\n" % os.path.join(self.d, "empty.json"))
            f.write("ct_log:\n  state_file: %s\n  poll_interval_ms: 200\n  operator_rate_limit_ms: 1\n"
                    "  retry_initial_delay_ms: 100\n  retry_max_delay_ms: 400\n  retry_max_attempts: 3\n"
                    % os.path.join(self.d, "state.json"))
            f.write(extra_yaml)
            if not fake_args:
                f.write("custom_logs:\n  - {name: s, url: \"%s\"}\n" % self.url)
            else:
                f.write("static_logs:\n")
                for name in statics:
                    f.write("  - {name: %s, url: \"%s%s/\"}\n" % (name, self.base, name))
        self.journal = os.path.join(self.d, "journal")
        env = dict(os.environ, CERTSTREAM_TEST_PUBLISH_JOURNAL=self.journal)
        env.pop("CERTSTREAM_CONFIG", None)
        self.log = open(os.path.join(self.d, "server.log"), "wb")
        self.server = subprocess.Popen([a.server, "--config", cfg], stdout=self.log, stderr=self.log, env=env,
                                       start_new_session=True)

    def ctl(self, what):
        return json.loads(get(self.base + "control/" + what))

    def published(self, url=None):
        return journal_published(self.journal, url or self.url)

    def health(self):
        try:
            h = json.loads(get("http://127.0.0.1:%d/health/deep" % self.port))
        except (OSError, ValueError):
            return None
        return h["logs"][0] if h.get("logs") else None

    def metric(self, name):
        try:
            t = get("http://127.0.0.1:%d/metrics" % self.port).decode()
        except OSError:
            return None
        m = re.search(r"^%s(?:\{[^}]*\})? (\d+)$" % re.escape(name), t, re.M)
        return int(m.group(1)) if m else None

    def logtext(self):
        self.log.flush()
        with open(os.path.join(self.d, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def expect_exactly(self, indexes, timeout=60, url=None):
        want = collections.Counter(indexes)
        try:
            def all_in():
                got = self.published(url)   # once per poll: the journal holds thousands of lines
                return all(got.get(i, 0) >= 1 for i in want)
            wait_for(all_in, timeout, "the entries")
            time.sleep(0.5)  # anything extra would show now
        except AssertionError:
            pass
        got = self.published(url)
        if got != want:
            missing = sorted(set(want) - set(got))[:10]
            extra = sorted(i for i in got if got[i] != want.get(i, 0))[:10]
            raise AssertionError("published %d, expected %d; missing %s; wrong count %s\n%s" %
                                 (sum(got.values()), len(want), missing, extra, self.logtext()[-3000:]))

    def ingest_pid(self):
        kids = open("/proc/%d/task/%d/children" % (self.server.pid, self.server.pid)).read().split()
        # the ingest process is the one that opened the journal
        for k in kids:
            try:
                for fd in os.listdir("/proc/%s/fd" % k):
                    if os.readlink("/proc/%s/fd/%s" % (k, fd)) == self.journal:
                        return int(k)
            except OSError:
                continue
        return None

    def close(self):
        stop_server_run(self.server, self.fake, self.d)


def case_ahead(a, mode):
    r = Run(a, 100, 5000, "  position_ahead: %s\n" % mode)
    try:
        if mode == "wait":
            h = wait_for(lambda: (lambda x: x if x and x.get("reason") else None)(r.health()), 30, "a reason")
            assert h["health"] == "degraded", h
            assert h["reason"] == "saved position 5000 beyond tree size 100", h
            assert h["next_index"] == 5000 and h["tree_size"] == 100, h
            time.sleep(1.0)  # several polls: still waiting, counted once, nothing sent
            assert r.metric("certstream_ct_position_ahead_total") == 1, r.metric("certstream_ct_position_ahead_total")
            assert not r.published(), r.published()
            r.ctl("size?log=s&size=5010")
            r.expect_exactly(range(5000, 5010))
            h = wait_for(lambda: (lambda x: x if x and x["health"] == "healthy" else None)(r.health()), 30,
                         "healthy again")
            assert "reason" not in h, h
        else:
            wait_for(lambda: r.metric("certstream_ct_position_ahead_total") == 1, 30, "the count")
            r.ctl("size?log=s&size=110")
            r.expect_exactly(range(100, 110))
            assert r.health()["health"] == "healthy", r.health()
    finally:
        r.close()


def case_corrupt(a):
    r = Run(a, 0, 0)
    try:
        r.ctl("fault?log=s&kind=corrupt&endpoint=entries&count=1&arg=5")
        r.ctl("size?log=s&size=64")
        r.expect_exactly(range(0, 64))
        assert r.metric("certstream_ct_answers_refetched_total") == 1, r.metric("certstream_ct_answers_refetched_total")
        assert r.metric("certstream_entries_skipped_undecodable_total") == 0
        assert r.metric("certstream_parse_failures") == 0
        r.ctl("fault?log=s&kind=corrupt&endpoint=entries&count=3&arg=0")
        r.ctl("size?log=s&size=128")
        r.expect_exactly([i for i in range(0, 128) if i != 64])
        assert r.metric("certstream_ct_answers_refetched_total") == 3, r.metric("certstream_ct_answers_refetched_total")
        assert r.metric("certstream_entries_skipped_undecodable_total") == 1
        assert r.metric("certstream_parse_failures") == 1
        assert re.search(r"s: entry 64 skipped \(undecodable\)", r.logtext()), r.logtext()[-2000:]
    finally:
        r.close()


def case_oversize(a):
    r = Run(a, 0, 0, "  max_response_bytes: 4194304\n  fetch_concurrency: 4\n  batch_size: 16\n")
    try:
        r.ctl("size?log=s&size=16")
        r.expect_exactly(range(0, 16))
        pid = r.ingest_pid()
        before = private_kb(pid) if pid else None
        r.ctl("fault?log=s&kind=huge&endpoint=entries&count=4&arg=40")
        r.ctl("size?log=s&size=64")
        r.expect_exactly(range(0, 64))
        assert r.metric("certstream_ct_answers_too_large_total") == 4, r.metric("certstream_ct_answers_too_large_total")
        assert r.metric("certstream_ct_inflight_budget_hits_total") == 0
        after = private_kb(pid) if pid else None
        print("ingest private memory: %s kB before, %s kB after 4 refused 40 MiB answers" % (before, after))
        if a.memory:
            assert after - before < 2048, (before, after)
    finally:
        r.close()


def case_spike(a):
    """The issue's case: answers under the cap but huge (4 x 40 MiB in
    flight with fetch_concurrency 4), then normal traffic: memory comes back."""
    r = Run(a, 0, 0, "  max_response_bytes: 67108864\n  max_inflight_bytes: 268435456\n"
                     "  fetch_concurrency: 4\n  batch_size: 16\n")
    try:
        r.ctl("size?log=s&size=16")
        r.expect_exactly(range(0, 16))
        pid = r.ingest_pid()
        before = private_kb(pid)
        r.ctl("fault?log=s&kind=huge&endpoint=entries&count=4&arg=40")
        r.ctl("size?log=s&size=128")
        r.expect_exactly(range(0, 128))
        after = private_kb(pid)
        print("ingest private memory: %d kB before, peak RSS %d kB, %d kB after 4 answers of 40 MiB"
              % (before, hwm_kb(pid), after))
        if a.memory:
            assert after - before < 2048, (before, after)
    finally:
        r.close()


def case_catchup_mem(a):
    r = Run(a, 0, 0, "  fetch_concurrency: 4\n  batch_size: 256\n")
    try:
        r.ctl("size?log=s&size=16")
        r.expect_exactly(range(0, 16))
        pid = r.ingest_pid()
        before = anon_kb(pid)
        r.ctl("size?log=s&size=4096")
        r.expect_exactly(range(0, 4096), timeout=120)
        peak = anon_kb(pid)
        # at the head: small answers, one per poll, in each window slot in turn
        size = 4096
        for _ in range(4):
            size += 6
            r.ctl("size?log=s&size=%d" % size)
            r.expect_exactly(range(0, size))
        after = anon_kb(pid)
        if a.memory:
            try:
                wait_for(lambda: anon_kb(pid) - before < 2048, 10, "the heap to shrink")
            except AssertionError:
                pass
            after = anon_kb(pid)
        print("ingest anonymous memory: %d kB before, %d kB after catching up 4080 entries, %d kB at the head"
              % (before, peak, after))
        if a.memory:
            assert after - before < 2048, (before, peak, after)
    finally:
        r.close()


def case_verify_tiles(a):
    """ct_log.verify_tiles: the real Navigli tiles (778 entries, then 1024)
    and a synthetic tiled log past 65,536 entries (chains through a full
    level-1 tile to the level-2 right edge), each entry proven against the
    checkpoint's root before it is streamed; one corrupted hash tile is an
    alarm (logged, counted, held back), then everything goes out once."""
    r = Run(a, 0, 0, "  verify_tiles: true\n",
            fake_args=["--tiled", "nav=static-ct/navigli2025h2", "--size", "nav=778", "--hash-tiles",
                       "--synthetic-tiled", "big=66000", "--fault", "nav:badhash:hashtile:1"],
            statics={"nav": 0, "big": 65280})
    try:
        nav, big = r.base + "nav/", r.base + "big/"
        r.expect_exactly(range(0, 778), url=nav, timeout=90)
        r.ctl("size?log=nav&size=1024")
        r.expect_exactly(range(0, 1024), url=nav, timeout=90)
        r.expect_exactly(range(65280, 66000), url=big, timeout=120)
        assert r.metric("certstream_ct_tile_verify_failures_total") == 1, r.metric("certstream_ct_tile_verify_failures_total")
        assert "ALARM" in r.logtext(), r.logtext()[-2000:]
        verified = r.metric("certstream_ct_tiles_verified_total")
        stats = r.ctl("stats")
        # nav: tiles 0, 1, 2, 3.p/10 then 3 (the rest of it); big: 255, 256, 257.p/208
        assert verified >= 4 + 3, verified
        print("tiles verified %d; hash tile requests: nav %d, big %d; data tile requests: nav %d, big %d"
              % (verified, stats.get("nav hashtile", 0), stats.get("big hashtile", 0), stats.get("nav tile", 0),
                 stats.get("big tile", 0)))
    finally:
        r.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--fakelog", required=True)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args()
    if a.case == "ahead_wait":
        case_ahead(a, "wait")
    elif a.case == "ahead_restart":
        case_ahead(a, "restart_at_head")
    elif a.case == "corrupt":
        case_corrupt(a)
    elif a.case == "oversize":
        case_oversize(a)
    elif a.case == "spike":
        case_spike(a)
    elif a.case == "catchup_mem":
        case_catchup_mem(a)
    elif a.case == "verify_tiles":
        case_verify_tiles(a)
    else:
        sys.exit("unknown case " + a.case)
    print("ok")


if __name__ == "__main__":
    main()

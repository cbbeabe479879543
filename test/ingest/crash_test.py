#!/usr/bin/env python3
"""crash_test.py - kill -9 the real server again and again while it follows
growing fake logs; every entry of every log must be published exactly once.

The server (real binary) follows N synthetic RFC 6962 logs and one synthetic
tiled log of test/fakelog/fakelog.py, growing at --rate entries/s each,
with positions seeded at index 0 through the JSON state file (so the import
is exercised and every entry from 0 on must go out). Each ingest process
appends "B <log url> <index>" to a publish journal just before it puts an
entry into the ring and "A <log url> <index>" just after, before the entry's
position is stored (CERTSTREAM_TEST_PUBLISH_JOURNAL, one O_APPEND write
each), which no kill can lose: a line is in the kernel's page cache once
write() returns. Two A lines are a duplicate, no A line a gap; a B line
without its A marks a kill inside that entry's publish, the one place where
the ring could hold an entry twice unseen: those are counted and printed.

Then --kills times, after a random 0.2..1.2 s: SIGKILL to a random choice of
  - the supervisor (its children get SIGTERM from the kernel and stop; the
    server is started again at once and waits for them on the position
    store's lock),
  - the whole process group (everything dies at once; started again),
  - one child (an ingest process or a fanout worker; the supervisor
    restarts it).
At the end growth stops, the server catches up, stops with SIGTERM, and the
journal must hold each index 0..size-1 of each log exactly once: no gap, no
duplicate. One exception, the documented one (docs/ingest.md): the whole
server killed after an entry went into its ring and before the entry's
position was stored. The new server's ring is new (the old copy went with the
old server's clients), so it resumes at that entry and sends it again. Each
journal line carries the writer's pid and its supervisor's, and a process
that resumes a log writes "S <log url> <index>", so the test tells that case
apart exactly (resent_after_restart) and bounds it by the number of
whole-server kills; a second A line under the same supervisor (one ring)
always fails. The JSON state file must then hold size for every log (export
at exit).

Usage: crash_test.py --server BIN --testdata DIR --fakelog PY [--kills N]
       [--logs N] [--rate R] [--seed S]
"""
import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import free_port, read_journal, wait_for  # noqa: E402


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def resent_after_restart(lines):
    """{(url, index)} of the entries a new server legitimately published a
    second time (docs/ingest.md, the position store): the whole server was
    killed after the entry went into its ring and before its position was
    stored, so the new server, whose ring is new, resumed at that entry and
    sent it again. Each such entry has exactly two A lines and
      - the first is the last A line of its log written under the old
        supervisor (the entry was that server's last of the log),
      - the second comes from a process of another supervisor that resumed
        the log at that very index (its S line, before the second A).
    A second A line under the same supervisor (one ring) is never one of
    these: the ring would hold the entry twice."""
    last_a = {}              # (url, server) -> index of the last A line
    a_lines = collections.defaultdict(list)
    for j in lines:
        if j.kind == "A":
            last_a[(j.url, j.ppid)] = j.index
            a_lines[(j.url, j.index)].append(j)
    resumed = set((j.url, j.index, j.pid) for j in lines if j.kind == "S")
    out = set()
    for key, al in a_lines.items():
        if len(al) != 2:
            continue
        first, second = al
        if (first.ppid != second.ppid and last_a.get((first.url, first.ppid)) == first.index
                and (second.url, second.index, second.pid) in resumed):
            out.add(key)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--fakelog", required=True)
    ap.add_argument("--kills", type=int, default=15)
    ap.add_argument("--logs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    d = tempfile.mkdtemp(prefix="cs-crash-")
    fake = None
    server = None
    servers = []
    try:
        portfile = os.path.join(d, "fakeport")
        fake = subprocess.Popen([sys.executable, a.fakelog, "--testdata", a.testdata, "--port-file", portfile,
                                 "--synthetic-many", "r=%d:0@%g" % (a.logs, a.rate),
                                 "--synthetic-tiled", "t=0@%g" % a.rate],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "fakelog.log"), "wb"))
        wait_for(lambda: os.path.exists(portfile), 20, "the fake log")
        fport = int(open(portfile).read())
        base = "http://127.0.0.1:%d/" % fport
        names = ["r%d" % i for i in range(a.logs)]
        urls = {n: base + n + "/" for n in names}
        urls["t"] = base + "t/"
        # Positions at 0 (tree_size 1 marks "a position is known").
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"logs": {u: {"next_index": 0, "tree_size": 1} for u in urls.values()}}, f)
        with open(os.path.join(d, "empty.json"), "w") as f:
            json.dump({"version": "1", "operators": []}, f)
        port = free_port()
        cfg = os.path.join(d, "config.yaml")
        with open(cfg, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\nworkers: 1\nlog_level: info\n" % port)
            f.write("ct_logs_url: file://%s\n" % os.path.join(d, "empty.json"))
            f.write("ingest:\n  group_by: log\n")
            f.write("ct_log:\n  state_file: %s\n  poll_interval_ms: 200\n  operator_rate_limit_ms: 1\n"
                    "  retry_initial_delay_ms: 100\n  retry_max_delay_ms: 1000\n" % os.path.join(d, "state.json"))
            f.write("custom_logs:\n")
            for n in names:
                f.write("  - {name: %s, url: \"%s\"}\n" % (n, urls[n]))
            f.write("static_logs:\n  - {name: t, url: \"%s\"}\n" % urls["t"])
        journal = os.path.join(d, "journal")
        env = dict(os.environ, CERTSTREAM_TEST_PUBLISH_JOURNAL=journal)
        env.pop("CERTSTREAM_CONFIG", None)
        log = open(os.path.join(d, "server.log"), "ab")

        def start():
            p = subprocess.Popen([a.server, "--config", cfg], stdout=log, stderr=log, env=env,
                                 start_new_session=True)
            servers.append(p)
            return p

        def journal_counts(kind="A", lines=None):
            return collections.Counter((j.url, j.index) for j in (lines if lines is not None else read_journal(journal))
                                       if j.kind == kind)

        server = start()
        kinds = collections.Counter()
        for k in range(a.kills):
            time.sleep(rnd.uniform(0.2, 1.2))
            if server.poll() is not None:
                raise AssertionError("server exited on its own (%s)" % server.returncode)
            what = rnd.choice(["supervisor", "group", "child", "child"])
            kids = children(server.pid)
            if what == "child" and kids:
                os.kill(rnd.choice(kids), signal.SIGKILL)
            elif what == "group":
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
                server = start()
            else:
                what = "supervisor"
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
                server = start()
            kinds[what] += 1
        # Stop growth, let it catch up, stop cleanly.
        sizes = {}
        for n in list(names) + ["t"]:
            sizes[n] = json.loads(get(base + "control/rate?log=%s&rate=0" % n))["size"]

        def caught_up():
            c = journal_counts()
            return all((urls[n], sizes[n] - 1) in c for n in sizes) and c
        try:
            wait_for(caught_up, 120, "the server to publish every entry")
        except AssertionError:
            c = journal_counts()
            for n in sizes:
                have = sorted(i for (u, i) in c if u == urls[n])
                print(n, sizes[n], len(have), have[-3:] if have else None)
            with open(os.path.join(d, "server.log"), "rb") as f:
                sys.stdout.write(f.read().decode(errors="replace")[-6000:])
            raise
        server.send_signal(signal.SIGTERM)
        if server.wait(30) != 0:
            raise AssertionError("server exit status %s" % server.returncode)
        # Any process of any run still alive would hold the position store's lock.
        lines = read_journal(journal)
        c = journal_counts("A", lines)
        before = journal_counts("B", lines)
        resent = resent_after_restart(lines)
        # A "B" line without its "A": a kill landed inside the publish of that
        # entry (between the two writes). If it landed after the ring store,
        # the ring got the entry twice without a second A line: the only
        # place a duplicate could hide, so these are counted and shown.
        inside = sorted(k for k in before if before[k] > c.get(k, 0))
        problems = []
        if len(inside) > a.kills:
            problems.append("%d entries with a B line and no A line, more than the %d kills" % (len(inside), a.kills))
        total = 0
        for n, size in sizes.items():
            for i in range(size):
                got = c.get((urls[n], i), 0)
                if got == 2 and (urls[n], i) in resent:
                    continue
                if got != 1:
                    problems.append("%s index %d published %d times" % (n, i, got))
            extra = [i for (u, i) in c if u == urls[n] and i >= size]
            if extra:
                problems.append("%s: indexes beyond the size %d: %s" % (n, size, extra[:5]))
            total += size
        if len(resent) > kinds["supervisor"] + kinds["group"]:
            problems.append("%d entries sent again after a restart of the whole server, more than the %d such "
                            "kills" % (len(resent), kinds["supervisor"] + kinds["group"]))
        with open(os.path.join(d, "state.json")) as f:
            st = json.load(f)["logs"]
        for n, size in sizes.items():
            if st.get(urls[n], {}).get("next_index") != size:
                problems.append("state file: %s next_index %s, expected %d" % (n, st.get(urls[n]), size))
        print("seed %d: %d kills (%s), %d logs, %d entries, %d published (A lines); %d kills landed inside "
              "a publish (B line without A: %s); %d entries sent again by a new server (its ring new: %s)"
              % (a.seed, a.kills, dict(kinds), len(sizes), total, sum(c.values()), len(inside),
                 ", ".join("%s %d" % k for k in inside[:5]), len(resent),
                 ", ".join("%s %d" % k for k in sorted(resent)[:5])))
        if problems:
            print("\n".join(problems[:40]))
            with open(os.path.join(d, "server.log"), "rb") as f:
                sys.stdout.write(f.read().decode(errors="replace")[-4000:])
            return 1
        print("ok: every entry exactly once")
        return 0
    finally:
        for p in servers:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        if fake:
            fake.kill()
            fake.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

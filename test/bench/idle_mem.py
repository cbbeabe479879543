#!/usr/bin/env python3
"""idle_mem.py - idle memory of the whole server while it follows growing
logs (test/fakelog/fakelog.py --synthetic-many), no client connected.

Every --every seconds, for --secs seconds, it prints the PSS of every server
process (supervisor, fanout workers, ingest processes) and the PSS of each
shared region summed over all processes (a shared page counts once in the
sum, split between the processes that map it):

  ring      the broadcast ring (memfd "certstream-ring")
  chaintab  the chain table (memfd "certstream-chaintab"), when there is one
  dedup     the dedup table (the shared anonymous mapping of its size)
  shm-other the other shared anonymous regions (stats, positions, tables)
  heap      private anonymous memory (heap, stacks)
  files     file-backed mappings (the binary, shared libraries)

The default configuration is used, except for what the test needs (the logs
to follow, --ring-size / --dedup-capacity when given). The fake log and this
script run on the same machine; only the server's processes are measured.

  python3 test/bench/idle_mem.py --server build-rel/certstream-server --logs 35 --rate 400 --secs 600
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest_bench import Setup, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def children(pid):
    try:
        return [int(x) for x in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        return []


def smaps_regions(pid, dedup_bytes):
    """{region: PSS kB} of one process."""
    out = {}
    name, size, shared = None, 0, False
    try:
        lines = open("/proc/%d/smaps" % pid).read().splitlines()
    except OSError:
        return out
    for line in lines:
        p = line.split()
        if len(p) >= 5 and "-" in p[0] and len(p[1]) == 4:
            lo, hi = (int(x, 16) for x in p[0].split("-"))
            size = hi - lo
            shared = p[1][3] == "s"
            path = " ".join(p[5:]) if len(p) > 5 else ""
            if "certstream-ring" in path:
                name = "ring"
            elif "certstream-chaintab" in path:
                name = "chaintab"
            elif shared and (path.startswith("/dev/zero") or path.startswith("/memfd:") or path == ""):
                name = "dedup" if size == dedup_bytes else "shm-other"
            elif path == "" or path.startswith("["):
                name = "heap"
            else:
                name = "files"
        elif line.startswith("Pss:"):
            out[name] = out.get(name, 0) + int(p[1])
    return out


def pss(pid):
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def role(pid):
    try:
        return open("/proc/%d/comm" % pid).read().strip()
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", default=os.path.join(ROOT, "test", "data"))
    ap.add_argument("--logs", type=int, default=35)
    ap.add_argument("--rate", type=float, default=400, help="entries/s in total")
    ap.add_argument("--secs", type=float, default=600)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--dedup-capacity", type=int, default=0, help="dedup.capacity the server uses (0: default)")
    ap.add_argument("--yaml", default="", help="extra YAML lines for the server's config")
    a = ap.parse_args()
    names = ["r%d" % i for i in range(a.logs)]
    per = a.rate / a.logs
    extra = a.yaml.replace("\\n", "\n")
    if extra and not extra.endswith("\n"):
        extra += "\n"
    s = Setup(a, ["--synthetic-many", "r=%d:1000@%g" % (a.logs, per)], {n: 1000 for n in names}, extra, names)
    dedup_bytes = (a.dedup_capacity or 0) * 8
    try:
        wait_for(lambda: s.published() > 0, 60, "the first entry")
        t0 = time.time()
        n0 = s.published()
        totals = []
        while True:
            time.sleep(a.every)
            el = time.time() - t0
            pids = [s.server.pid] + children(s.server.pid)
            if not dedup_bytes:
                # the dedup table is the largest shared anonymous mapping
                best = 0
                for line in open("/proc/%d/maps" % s.server.pid):
                    p = line.split()
                    lo, hi = (int(x, 16) for x in p[0].split("-"))
                    if p[1][3] == "s" and (len(p) < 6 or p[5].startswith("/dev/zero")):
                        best = max(best, hi - lo)
                dedup_bytes = best
            per_proc = {}
            regions = {}
            for p in pids:
                per_proc.setdefault(role(p), []).append(pss(p))
                for k, v in smaps_regions(p, dedup_bytes).items():
                    regions[k] = regions.get(k, 0) + v
            total = sum(sum(v) for v in per_proc.values())
            totals.append(total)
            rate = (s.published() - n0) / el
            print("t=%4.0fs published %.0f/s total PSS %.1f MB | %s | %s" % (
                el, rate, total / 1024.0,
                ", ".join("%s %s" % (k, "+".join("%.1f" % (x / 1024.0) for x in v)) for k, v in sorted(per_proc.items())),
                ", ".join("%s %.1f" % (k, v / 1024.0) for k, v in sorted(regions.items()))), flush=True)
            if el >= a.secs:
                break
        print("final total PSS %.1f MB after %.0f s; median of the last 3 samples %.1f MB"
              % (totals[-1] / 1024.0, time.time() - t0, statistics.median(totals[-3:]) / 1024.0))
    finally:
        s.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""idle_mem.py - idle memory of the whole server while it follows growing
logs (test/fakelog/fakelog.py --synthetic-many), no client connected.

Every --every seconds, for --secs seconds, it prints the PSS of every server
process (supervisor, fanout workers, ingest processes) and the PSS of each
shared region summed over all processes (a shared page counts once in the
sum, split between the processes that map it):

  ring      the broadcast ring (memfd "certstream-ring")
  chaintab  the chain table (memfd "certstream-chaintab"), when there is one
  dedup     the dedup table (memfd "certstream-dedup")
  shm-other the other shared anonymous regions (stats, positions, tables)
  heap      private anonymous memory (heap, stacks)
  files     file-backed mappings (the binary, shared libraries)

The default configuration is used, except for what the test needs (the logs
to follow, and what --yaml adds). Run as root, it also prints the server's
distinct pages: every physical page mapped by any of its processes counted
once, per region, which unlike PSS does not move with what else the machine
runs (a library's pages are split with every process of the machine that
maps them). Each sample also gives the CPU of all the server's processes
since the previous one (% of one core). --detail prints, at the end, the PSS and RSS of every mapping
(each library, the heap, each shared region) of every process. The fake log and this
script run on the same machine; only the server's processes are measured.

  python3 test/bench/idle_mem.py --server build-gcc/certstream-server --logs 35 --rate 400 --secs 300 --every 60 --detail
"""
import argparse
import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_delta, cpu_snapshot  # noqa: E402
from ingest_bench import Setup, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def children(pid):
    try:
        return [int(x) for x in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        return []


def region_of(path, shared, size, dedup_bytes):
    if "certstream-ring" in path:
        return "ring"
    if "certstream-chaintab" in path:
        return "chaintab"
    if "certstream-dedup" in path:
        return "dedup"
    if shared and (path.startswith("/dev/zero") or path.startswith("/memfd:") or path == ""):
        # builds before the dedup memfd was named: --dedup-capacity tells its size
        return "dedup" if dedup_bytes and size == dedup_bytes else "shm-other"
    if path == "" or path.startswith("["):
        return "heap"
    return "files"


def mapping_name(path):
    """A short name for a mapping: a file's base name, [heap], [anon], ..."""
    if not path:
        return "[anon]"
    if path.startswith("/memfd:"):
        return path[len("/memfd:"):].replace(" (deleted)", "")
    if path.startswith("/"):
        return os.path.basename(path).replace(" (deleted)", "")
    return path


def smaps_regions(pid, dedup_bytes, per_map=None):
    """{region: PSS kB} of one process; per_map (when given) collects
    {mapping name: [PSS kB, RSS kB]} of this process."""
    out = {}
    name, size, shared, mname = None, 0, False, None
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
            name = region_of(path, shared, size, dedup_bytes)
            mname = mapping_name(path)
        elif line.startswith("Pss:"):
            out[name] = out.get(name, 0) + int(p[1])
            if per_map is not None:
                per_map.setdefault(mname, [0, 0])[0] += int(p[1])
        elif line.startswith("Rss:") and per_map is not None:
            per_map.setdefault(mname, [0, 0])[1] += int(p[1])
    return out


def distinct_pages(pids, dedup_bytes, by_name=None):
    """{region: kB} of the physical pages mapped by any of pids, each page
    counted once: what the server costs on a machine of its own (PSS also
    splits library pages with every other process that maps them, so it
    moves with whatever else runs). Reads /proc/PID/pagemap, whose page frame
    numbers only root sees; None otherwise. by_name (when given) collects
    {mapping name: kB} the same way (a page counts for the first mapping
    found holding it)."""
    seen = {}
    for pid in pids:
        try:
            pm = open("/proc/%d/pagemap" % pid, "rb")
            maps = open("/proc/%d/maps" % pid).read().splitlines()
        except OSError:
            continue
        with pm:
            for line in maps:
                p = line.split()
                lo, hi = (int(x, 16) for x in p[0].split("-"))
                path = " ".join(p[5:]) if len(p) > 5 else ""
                if path == "[vsyscall]":
                    continue
                region = region_of(path, p[1][3] == "s", hi - lo, dedup_bytes)
                mname = mapping_name(path)
                pm.seek(lo // 4096 * 8)
                try:
                    data = pm.read((hi - lo) // 4096 * 8)
                except OSError:
                    continue
                for (v,) in struct.iter_unpack("<Q", data):
                    if v >> 63:
                        pfn = v & ((1 << 55) - 1)
                        if pfn == 0:
                            return None   # not root: no page frame numbers
                        seen.setdefault(pfn, (region, mname))
    out = {}
    for region, mname in seen.values():
        out[region] = out.get(region, 0) + 4
        if by_name is not None:
            by_name[mname] = by_name.get(mname, 0) + 4
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
    ap.add_argument("--fakelog", default=os.path.join(ROOT, "test", "fakelog", "fakelog.py"),
                    help="the fake log server to run (ingest_bench.Setup)")
    ap.add_argument("--logs", type=int, default=35)
    ap.add_argument("--rate", type=float, default=400, help="entries/s in total")
    ap.add_argument("--secs", type=float, default=600)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--dedup-capacity", type=int, default=0,
                    help="dedup.capacity, only to name the dedup table of builds before it was a named memfd")
    ap.add_argument("--detail", action="store_true",
                    help="at the end, the PSS and RSS of every mapping (library, heap, region) of every process")
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
        distincts = []
        cpus = []
        snap, snap_t = cpu_snapshot([s.server.pid] + children(s.server.pid)), time.time()
        while True:
            time.sleep(a.every)
            el = time.time() - t0
            pids = [s.server.pid] + children(s.server.pid)
            # CPU of the server's processes over the interval (all of them,
            # % of one core)
            now_snap, now_t = cpu_snapshot(pids), time.time()
            cpu = 100.0 * sum(cpu_delta(snap, now_snap).values()) / (now_t - snap_t)
            snap, snap_t = now_snap, now_t
            cpus.append(cpu)
            per_proc = {}
            regions = {}
            maps = {}
            for p in pids:
                per_proc.setdefault(role(p), []).append(pss(p))
                maps[p] = {}
                for k, v in smaps_regions(p, dedup_bytes, maps[p]).items():
                    regions[k] = regions.get(k, 0) + v
            dist_names = {}
            dist = distinct_pages(pids, dedup_bytes, dist_names)
            total = sum(sum(v) for v in per_proc.values())
            totals.append(total)
            rate = (s.published() - n0) / el
            print("t=%4.0fs published %.0f/s CPU %.1f %% total PSS %.1f MB | %s | %s" % (
                el, rate, cpu, total / 1024.0,
                ", ".join("%s %s" % (k, "+".join("%.1f" % (x / 1024.0) for x in v)) for k, v in sorted(per_proc.items())),
                ", ".join("%s %.1f" % (k, v / 1024.0) for k, v in sorted(regions.items()))), flush=True)
            if dist is not None:
                print("        distinct pages %.1f MB | %s" % (
                    sum(dist.values()) / 1024.0,
                    ", ".join("%s %.1f" % (k, v / 1024.0) for k, v in sorted(dist.items()))), flush=True)
                distincts.append(sum(dist.values()))
            if el >= a.secs:
                break
        print("final total PSS %.1f MB after %.0f s; median of the last 3 samples %.1f MB"
              % (totals[-1] / 1024.0, time.time() - t0, statistics.median(totals[-3:]) / 1024.0))
        print("server CPU (all processes, %% of one core): median of the samples after the first %.2f %%"
              % statistics.median(cpus[1:] or cpus))
        if distincts:
            print("distinct pages (each page once, as on a machine of its own): median of the last 3 samples %.1f MB"
                  % (statistics.median(distincts[-3:]) / 1024.0))
        if a.detail:
            print("mapping: distinct kB of the server | PSS (RSS) kB in each process (%s):"
                  % ", ".join("%d %s" % (p, role(p)) for p in pids))
            names = set()
            for m in maps.values():
                names.update(m)
            rows = sorted(names, key=lambda n: -sum(m.get(n, [0, 0])[0] for m in maps.values()))
            for n in rows:
                cells = [maps[p].get(n, [0, 0]) for p in pids]
                if sum(c[1] for c in cells) < 16:
                    continue
                print("  %-34s %6d | %s" % (n, dist_names.get(n, 0),
                                             "  ".join("%6d (%6d)" % (c[0], c[1]) for c in cells)))
    finally:
        s.close()


if __name__ == "__main__":
    main()

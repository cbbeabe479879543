#!/usr/bin/env python3
"""soak.py - the soak run behind test/bench/soak.sh: hours of the real rate
with thousands of clients, watching memory for growth and clients for loss.

  - the growing fake log (test/fakelog/fakelog.py --synthetic-many): --logs
    RFC 6962 logs growing at --rate entries/s in total, every entry a
    distinct real certificate with its real chain;
  - the server binary given (a Release build: --server), following them with
    its default configuration except the address, the log list, the state
    file and the ingest layout of test/bench/ingest_bench.py steady (one
    ingest process per log, at most 6, 20 ms operator pacing);
  - certstream-loadgen --dense with --steady lite WebSocket clients that stay
    connected for the whole run (every gap counted exactly, per log);
  - certstream-loadgen --dense --reconnect with --reconnecting clients that
    reconnect every few seconds (--reconnect-every) to a stream picked at
    random (lite, full, domains over WebSocket; lite, full over SSE);
  - every --sample seconds: Rss, Pss, private memory (Private_Clean +
    Private_Dirty) and anonymous memory (Anonymous: heap and stacks, the
    figure a leak grows; private also counts library pages, which become
    shared whenever another process on the machine maps them) of every
    server process from /proc/PID/smaps_rollup, and
    the server's /metrics counters (slow-client drops, connections,
    published entries), appended to OUT/samples.jsonl;
  - at the end (or with --report OUT on a run still going or cut short):
    the drift of each figure in MB per hour, the least-squares slope of its
    samples after --warmup seconds, per process and summed; gaps, reorders,
    drops and disconnects of the clients.

Everything it writes goes to --out (default: a new folder under the current
directory); loopback only. The fake log and the load generator run on the
same machine and cost CPU of their own.

  test/bench/soak.sh --server build-gcc/certstream-server --hours 1
  test/bench/soak.sh --report soak-out/        # the figures so far
"""
import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from benchlib import Server, descendants, growing_logs_yaml, log_stamped as log, metrics, smaps  # noqa: E402
from benchlib import free_port, start_fakelog, stop_all, wait_for  # noqa: E402


def role(pid, fanout_pids, top):
    """A stable name for a server process across samples."""
    if pid == top:
        return "supervisor"
    if pid in fanout_pids:
        return "fanout"
    return "ingest"


def listening_pids(pids, port):
    """Server processes holding the listening socket (the fanout workers)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[3] == "0A" and int(p[1].split(":")[1], 16) == port:
                inodes.add(p[9])
    out = set()
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                ln = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if ln.startswith("socket:[") and ln[8:-1] in inodes:
                    out.add(pid)
                    break
        except OSError:
            continue
    return out


def slope_per_hour(points):
    """Least-squares slope of (seconds, kB) points, in MB per hour."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / sxx * 3600 / 1024


def last_progress(path):
    """Latest progress line per worker of a loadgen stderr file, summed."""
    per = {}
    try:
        with open(path) as f:
            for line in f:
                if line.startswith('{"progress_s"'):
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    per[j["worker"]] = j
    except OSError:
        return None
    if not per:
        return None
    tot = {}
    for j in per.values():
        for k, v in j.items():
            if k != "worker":
                tot[k] = max(tot.get(k, 0), v) if k == "progress_s" else tot.get(k, 0) + v
    return tot


def final_json(path):
    try:
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def report(out, warmup):
    samples = []
    with open(os.path.join(out, "samples.jsonl")) as f:
        for line in f:
            try:
                samples.append(json.loads(line))
            except ValueError:
                pass   # a line being written when the run was cut
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    if not samples:
        print("no samples yet")
        return 1
    t_end = samples[-1]["t"]
    print("soak: %s; %d samples over %.2f h (every %g s), drift fitted after %g s of warm-up"
          % (run["desc"], len(samples), t_end / 3600, run["sample"], warmup))
    series = {}
    for s in samples:
        tot = {"rss": 0, "pss": 0, "priv": 0, "anon": 0}
        for name, m in s["procs"].items():
            for k in tot:
                if k not in m:
                    continue   # a run sampled before "anon" was read
                tot[k] += m[k]
                series.setdefault((name, k), []).append((s["t"], m[k]))
        for k in tot:
            series.setdefault(("all server processes", k), []).append((s["t"], tot[k]))
    names = sorted({n for n, _ in series}, key=lambda n: (n == "all server processes", n))
    print("\n| process | figure | first after warm-up (MB) | last (MB) | min / max (MB) | drift (MB/h) |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for n in names:
        for k, label in (("rss", "RSS"), ("pss", "PSS"), ("priv", "private"), ("anon", "anonymous")):
            pts = [p for p in series.get((n, k), []) if p[0] >= warmup]
            if not pts:
                continue
            d = slope_per_hour(pts)
            if d is not None and n == "all server processes" and k in ("pss", "priv"):
                worst = max(worst, abs(d))   # summed RSS counts shared pages once per process
            ys = [p[1] for p in pts]
            print("| %s | %s | %.2f | %.2f | %.2f / %.2f | %s |" % (
                n, label, pts[0][1] / 1024, pts[-1][1] / 1024, min(ys) / 1024, max(ys) / 1024,
                "n/a (too few samples)" if d is None else "%+.3f" % d))
    # A leak keeps its slope; memory still settling shows a falling one.
    half = [p for p in series.get(("all server processes", "priv"), []) if p[0] >= warmup]
    if len(half) >= 8:
        t_mid = half[len(half) // 2][0]
        parts = []
        for k, label in (("pss", "PSS"), ("priv", "private"), ("anon", "anonymous")):
            pts = [p for p in series[("all server processes", k)] if p[0] >= warmup]
            if len(pts) < 8:
                continue
            d1 = slope_per_hour([p for p in pts if p[0] < t_mid])
            d2 = slope_per_hour([p for p in pts if p[0] >= t_mid])
            parts.append("%s %+.3f then %+.3f MB/h" % (label, d1, d2))
        print("\nall server processes, first and second half after warm-up (split at %.0f s): %s"
              % (t_mid, "; ".join(parts)))
    # A leak raises the floor; a heap that breathes (buffers freed and
    # trimmed) moves between the same floor and ceiling: anonymous memory,
    # lowest / highest, per quarter of the run after warm-up.
    after = [s for s in samples if s["t"] >= warmup]
    if len(after) >= 8:
        print("\nanonymous memory (MB), lowest / highest per quarter after warm-up:")
        quarters = [after[k * len(after) // 4:(k + 1) * len(after) // 4] for k in range(4)]
        for n in [x for x in names if x != "all server processes"] + ["all server processes"]:
            cells = []
            for part in quarters:
                if n == "all server processes":
                    vals = [sum(m.get("anon", 0) for m in s["procs"].values()) for s in part]
                else:
                    vals = [s["procs"][n]["anon"] for s in part if "anon" in s["procs"].get(n, {})]
                cells.append("%.2f / %.2f" % (min(vals) / 1024, max(vals) / 1024) if vals else "-")
            print("  %-22s %s" % (n, " | ".join(cells)))
    m0 = next((s["metrics"] for s in samples if s["t"] >= warmup and s["metrics"]), samples[0]["metrics"])
    m1 = samples[-1]["metrics"]
    span = max(1e-9, samples[-1]["t"] - next((s["t"] for s in samples if s["t"] >= warmup), 0))

    def d(k):
        return m1.get(k, 0) - m0.get(k, 0)
    print("\nserver: %.0f entries/s published after warm-up (%d in all); slow-client drops %d in all "
          "(%d after warm-up); clients now %d"
          % (d("certstream_entries_published_total") / span, m1.get("certstream_entries_published_total", 0),
             m1.get("certstream_slow_client_drops_total", 0), d("certstream_slow_client_drops_total"),
             m1.get("certstream_active_connections", 0)))
    ok = worst < run.get("target_mb_h", 0.1)
    for what in ("steady", "reconnecting"):
        fin = final_json(os.path.join(out, "loadgen-%s.out" % what))
        if fin:
            print("%s clients (final): established %d, failed %d, disconnected %d, reconnects %d, msgs %d, "
                  "gaps %d, out of order %d, reasons %s"
                  % (what, fin["established"], fin["failed"], fin["disconnected"], fin.get("reconnects", 0),
                     fin["classes"]["normal"]["msgs_total"], fin["gaps"], fin["out_of_order"],
                     json.dumps(fin["classes"]["normal"]["reasons"])))
            bad = fin["gaps"] or fin["out_of_order"] or (what == "steady" and (fin["disconnected"] or fin["failed"]))
        else:
            p = last_progress(os.path.join(out, "loadgen-%s.err" % what))
            if not p:
                print("%s clients: no report yet" % what)
                continue
            print("%s clients (running, at %.0f s): open %d, established %d, failed %d, disconnected %d, "
                  "reconnects %d, msgs %d, gaps %d, out of order %d"
                  % (what, p["progress_s"], p["open"], p["established"], p["failed"], p["disconnected"],
                     p["reconnects"], p["msgs"], p["gaps"], p["out_of_order"]))
            bad = p["gaps"] or p["out_of_order"] or (what == "steady" and (p["disconnected"] or p["failed"]))
        ok = ok and not bad
    print("\nverdict: %s (target: |drift| of the summed PSS and private memory < %g MB/h, no gap, no reorder, "
          "no steady client lost)" % ("PASS" if ok else "FAIL", run.get("target_mb_h", 0.1)))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=os.path.join(ROOT, "build-gcc", "certstream-server"))
    ap.add_argument("--loadgen", default=None, help="default: test/loadgen/certstream-loadgen next to --server")
    ap.add_argument("--testdata", default=os.path.join(ROOT, "test", "data"))
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--logs", type=int, default=35)
    ap.add_argument("--rate", type=float, default=350, help="entries/s over all logs")
    ap.add_argument("--steady", type=int, default=2000)
    ap.add_argument("--reconnecting", type=int, default=50)
    ap.add_argument("--reconnect-every", type=float, default=4.0)
    ap.add_argument("--steady-procs", type=int, default=2, help="loadgen processes for the steady clients")
    ap.add_argument("--buffer-seconds", type=float, default=10.0,
                    help="buffer_size = this x --rate: how far behind a client may fall before it is dropped "
                         "(0: the server's default)")
    ap.add_argument("--sample", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=600.0, help="seconds left out of the drift fit")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", metavar="OUT", help="print the figures of a run (running or done) and exit")
    a = ap.parse_args()
    if a.report:
        sys.exit(report(a.report, a.warmup))
    loadgen = a.loadgen or os.path.join(os.path.dirname(a.server), "test", "loadgen", "certstream-loadgen")
    for p in (a.server, loadgen):
        if not os.access(p, os.X_OK):
            sys.exit("missing " + p)
    out = os.path.abspath(a.out or time.strftime("soak-%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    secs = a.hours * 3600
    desc = ("%d logs at %g entries/s in total, %d steady lite clients + %d reconnecting every ~%g s, %g h, %s"
            % (a.logs, a.rate, a.steady, a.reconnecting, a.reconnect_every, a.hours,
               "buffer_size %d (%g s)" % (int(a.rate * a.buffer_seconds), a.buffer_seconds) if a.buffer_seconds
               else "default buffer_size"))
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"desc": desc, "sample": a.sample, "server": os.path.abspath(a.server),
                   "target_mb_h": 0.1, "args": vars(a), "started": time.time()}, f)
    procs = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        fl = open(os.path.join(out, "fakelog.log"), "w")
        names = ["s%d" % i for i in range(a.logs)]
        fake, base = start_fakelog(out, a.testdata, "s=%d:1000@%g" % (a.logs, a.rate / a.logs), out=fl,
                                   exc=SystemExit)
        procs.append(fake)
        port = free_port()
        yaml = "log_level: warn\n"
        if a.buffer_seconds:
            yaml += "buffer_size: %d\n" % int(a.rate * a.buffer_seconds)
        yaml += growing_logs_yaml(out, base, names, "  operator_rate_limit_ms: 20\n")
        server = Server(a.server, out, port, yaml, settle=0, tag="", listen_timeout=120).start().proc
        procs.append(server)
        wait_for(lambda: metrics(port).get("certstream_entries_published_total", 0) > 0, 120,
                 "the first published entry", interval=0.5, exc=SystemExit)
        log("server %d on port %d follows %d logs at %g entries/s; output in %s" % (server.pid, port, a.logs,
                                                                                    a.rate, out))
        lg_secs = secs + 600   # ended by SIGTERM at the end of the run; this only bounds it
        common = ["--dense", "--progress", str(a.sample), "--duration", str(lg_secs), "--warmup", "0",
                  "--handshake-timeout", "30", "-q"]
        if a.steady:
            o, e = open(os.path.join(out, "loadgen-steady.out"), "w"), open(os.path.join(out, "loadgen-steady.err"), "w")
            procs.append(subprocess.Popen([loadgen, "-n", str(a.steady), "--url", "ws://127.0.0.1:%d/" % port,
                                           "--ramp", "500", "--procs", str(a.steady_procs)] + common, stdout=o, stderr=e, start_new_session=True))
        if a.reconnecting:
            urls = ["ws://127.0.0.1:%d/" % port, "ws://127.0.0.1:%d/full-stream" % port,
                    "ws://127.0.0.1:%d/domains-only" % port, "http://127.0.0.1:%d/sse?stream=lite" % port,
                    "http://127.0.0.1:%d/sse?stream=full" % port]
            o, e = open(os.path.join(out, "loadgen-reconnecting.out"), "w"), \
                open(os.path.join(out, "loadgen-reconnecting.err"), "w")
            cmd = [loadgen, "-n", str(a.reconnecting), "--reconnect", str(a.reconnect_every), "--ramp", "50"]
            for u in urls:
                cmd += ["--url", u]
            procs.append(subprocess.Popen(cmd + common, stdout=o, stderr=e, start_new_session=True))
        t0 = time.monotonic()
        top = server.pid
        with open(os.path.join(out, "samples.jsonl"), "a") as sf:
            n = 0
            while True:
                t = time.monotonic() - t0
                pids = [p for p in descendants(top)]
                fan = listening_pids(pids, port)
                per = {}
                counts = {}
                for p in sorted(pids):
                    m = smaps(p)
                    if m is None:
                        continue
                    r = role(p, fan, top)
                    counts[r] = counts.get(r, 0) + 1
                    per["%s-%d" % (r, counts[r])] = m
                met = metrics(port)
                keep = {k: v for k, v in met.items() if k in (
                    "certstream_slow_client_drops_total", "certstream_active_connections",
                    "certstream_connections_accepted_total", "certstream_entries_published_total",
                    "certstream_idle_client_disconnects_total", "certstream_dedup_cache_size")}
                sf.write(json.dumps({"t": round(t, 1), "wall": time.time(), "procs": per,
                                     "pids": sorted(pids), "metrics": keep}) + "\n")
                sf.flush()
                n += 1
                if n % 10 == 1:
                    log("t=%.0f s: PSS %.1f MB in %d processes, drops %d, clients %d"
                        % (t, sum(m["pss"] for m in per.values()) / 1024, len(per),
                           keep.get("certstream_slow_client_drops_total", 0),
                           keep.get("certstream_active_connections", 0)))
                if server.poll() is not None:
                    log("the server exited (%s)" % server.returncode)
                    break
                if t >= secs:
                    break
                time.sleep(max(0.0, t0 + n * a.sample - time.monotonic()))
        # end the clients first (their final JSON line), then the rest
        for p in procs[2:]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs[2:]:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                pass
    finally:
        stop_all(procs, 60)
    sys.exit(report(out, a.warmup))


if __name__ == "__main__":
    main()

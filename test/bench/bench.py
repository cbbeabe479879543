#!/usr/bin/env python3
"""bench.py - the load-test driver behind test/bench/run.sh.

For every point of a matrix (clients x stream x workers, plus idle) it starts
the server replaying the golden corpus at --rate entries/s with benchmark
stamps, runs certstream-loadgen against it, and records:
  - server CPU time per process and summed (utime+stime deltas from
    /proc/<pid>/stat over the loadgen's measured window),
  - RSS and PSS per process (/proc/<pid>/smaps_rollup) with the clients
    connected, and PSS per connection ((PSS loaded - PSS idle) / clients),
  - delivered messages/s and MB/s, latency percentiles, failures and
    disconnects, loadgen CPU.
Each point runs --repeats times; the table shows medians. The writev
ceiling (writev-ceiling + the same loadgen) is measured in the same run for
every (clients, stream) point, and the server's delivered rate is shown as a
fraction of it. Loopback only; every step has a time bound.

Only the Python standard library (Debian's python3) is used.
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, cpu_delta, cpu_snapshot, fmt, free_port, log, loadgen_result,  # noqa: E402
                      median as med, smaps, start_loadgen, wait_mark, wait_port)

STREAM_PATH = {"lite": "lite", "full": "full", "domains": "domains"}


def start_server(args, workers, port, workdir, rate):
    """The real server, replaying the corpus with bench stamps."""
    return Server(args.server, workdir, port, yaml=f"workers: {workers}\nbuffer_size: {args.buffer_size}\n",
                  replay=args.corpus, rate=rate, stamp=True, stop_timeout=10)


def run_loadgen(args, port, clients, stream, sse, duration, mark, extra=()):
    cmd = [args.loadgen, "--port", str(port), "-n", str(clients), "--stream", stream,
           "--duration", str(duration), "--warmup", str(args.warmup), "--ramp", str(args.ramp),
           "--corpus", args.corpus, "--handshake-timeout", str(args.handshake_timeout), "-q"]
    if args.procs:
        cmd += ["--procs", str(args.procs)]
    if sse:
        cmd.append("--sse")
    if mark:
        cmd += ["--mark", mark]
    cmd += list(extra)
    bound = clients / args.ramp + args.warmup + duration + 60
    return start_loadgen(cmd), bound


def measure_point(args, workers, clients, stream, sse, workdir, rate=None):
    """One run against the server. clients == 0: idle."""
    port = free_port()
    rate = rate or args.rate
    with start_server(args, workers, port, workdir, rate) as srv:
        roles = srv.roles()

        def role(pid):
            return roles.get(pid, f"pid{pid}")
        time.sleep(args.settle)
        pids = srv.pids()
        idle_mem = {p: smaps(p) for p in pids}
        idle_pss = sum(m["pss"] for m in idle_mem.values() if m)
        if clients == 0:
            a = cpu_snapshot(pids)
            t0 = time.monotonic()
            time.sleep(args.duration)
            cpu = cpu_delta(a, cpu_snapshot(pids))
            secs = time.monotonic() - t0
            return {"kind": "idle", "workers": workers, "window_s": secs,
                    "cpu": {role(p): c / secs for p, c in cpu.items()},
                    "cpu_total": sum(cpu.values()) / secs,
                    "rss_kb": {role(p): m["rss"] for p, m in idle_mem.items() if m},
                    "pss_kb": {role(p): m["pss"] for p, m in idle_mem.items() if m},
                    "pss_total_kb": idle_pss}
        mark = os.path.join(workdir, f"mark-{port}")
        lg, bound = run_loadgen(args, port, clients, stream, sse, args.duration, mark)
        if not wait_mark(mark, "start", lg, bound):
            res = loadgen_result(lg, bound)
            return {"kind": "load", "error": "window never opened", "loadgen": res}
        pids = srv.pids()
        a = cpu_snapshot(pids)
        t0 = time.monotonic()
        time.sleep(min(1.0, args.duration / 2))
        mem = {p: smaps(p) for p in pids}
        wait_mark(mark, "end", lg, bound)
        b = cpu_snapshot(pids)
        secs = time.monotonic() - t0
        res = loadgen_result(lg, bound)
        cpu = cpu_delta(a, b)
        pss = sum(m["pss"] for m in mem.values() if m)
        established = res["established"]
        return {"kind": "load", "workers": workers, "clients": clients, "stream": stream, "sse": sse,
                "window_s": secs,
                "cpu": {role(p): c / secs for p, c in cpu.items()},
                "cpu_total": sum(cpu.values()) / secs,
                "rss_kb": {role(p): m["rss"] for p, m in mem.items() if m},
                "pss_kb": {role(p): m["pss"] for p, m in mem.items() if m},
                "pss_total_kb": pss, "idle_pss_total_kb": idle_pss,
                "pss_per_conn_kb": (pss - idle_pss) / established if established else None,
                "rate": rate, "expected_msgs_per_s": rate * clients,
                "loadgen": res}


def measure_ceiling(args, clients, stream, workdir):
    port = free_port()
    logf = open(os.path.join(workdir, f"ceiling-{port}.log"), "w")
    cdur = clients / args.ramp + args.warmup + args.duration + 5
    cp = subprocess.Popen([args.ceiling, "--corpus", args.corpus, "--port", str(port), "--clients",
                           str(clients), "--wait", str(clients / args.ramp + 15), "--duration", str(cdur)],
                          stdout=subprocess.PIPE, stderr=logf, text=True, start_new_session=True)
    try:
        if not wait_port(port):
            raise RuntimeError("writev-ceiling did not listen")
        lg, bound = run_loadgen(args, port, clients, stream, False, args.duration, None)
        res = loadgen_result(lg, bound)
        cp.send_signal(signal.SIGTERM)
        out, _ = cp.communicate(timeout=30)
        cres = json.loads(out.strip().splitlines()[-1])
    finally:
        if cp.poll() is None:
            os.killpg(cp.pid, signal.SIGKILL)
            cp.wait()
        logf.close()
    return {"kind": "ceiling", "clients": clients, "stream": stream, "loadgen": res, "ceiling": cres}


def lat(lg, key):
    """Median of a latency percentile; n/a when no message carried a stamp
    (domains-only messages have no `seen`)."""
    vals = [x["latency"][key] for x in lg if x["latency"]["n"] > 0]
    return med(vals) if vals else None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description="certstream load-test matrix (loopback only)")
    ap.add_argument("--build", default=None, help="build directory (default: newest build*/ with the server)")
    ap.add_argument("--clients", default="1000,10000,50000")
    ap.add_argument("--streams", default="lite,full,domains")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--sse", action="store_true", help="SSE instead of WebSocket")
    ap.add_argument("--rate", type=float, default=100, help="replay entries/s (default 100)")
    ap.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--ramp", type=float, default=2000, help="connections/s")
    ap.add_argument("--handshake-timeout", type=float, default=10,
                    help="loadgen's handshake timeout, s (raise it for 50k clients)")
    ap.add_argument("--procs", type=int, default=0,
                    help="loadgen processes (0: as many as RLIMIT_NOFILE needs)")
    ap.add_argument("--settle", type=float, default=1, help="seconds after start before idle memory")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--buffer-size", type=int, default=1000, help="server buffer_size (messages)")
    ap.add_argument("--saturate", type=float, default=0, metavar="RATE",
                    help="also one run per point replaying at RATE entries/s (far above what the "
                         "clients can take) to compare the server's maximum with the ceiling")
    ap.add_argument("--no-idle", action="store_true")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="clients 1000,10000; lite; workers 1,2; 1 repeat; 5 s windows")
    ap.add_argument("--json", default=None, help="also write every raw result here")
    ap.add_argument("--corpus", default=os.path.join(root, "test", "data", "golden", "live_ct.json"))
    args = ap.parse_args()
    if args.quick:
        args.clients, args.streams, args.repeats, args.duration = "1000,10000", "lite", 1, 5
    if args.build is None:
        cands = [os.path.join(root, d) for d in os.listdir(root) if d.startswith("build")]
        cands = [d for d in cands if os.path.exists(os.path.join(d, "certstream-server"))]
        if not cands:
            sys.exit("no build*/certstream-server; pass --build")
        args.build = max(cands, key=lambda d: os.path.getmtime(os.path.join(d, "certstream-server")))
    args.build = os.path.abspath(args.build)
    args.corpus = os.path.abspath(args.corpus)
    args.server = os.path.join(args.build, "certstream-server")
    args.loadgen = os.path.join(args.build, "test", "loadgen", "certstream-loadgen")
    args.ceiling = os.path.join(args.build, "test", "loadgen", "writev-ceiling")
    for p in (args.server, args.loadgen, args.ceiling, args.corpus):
        if not os.path.exists(p):
            sys.exit(f"missing {p}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by server and loadgen
    clients = [int(x) for x in args.clients.split(",") if x]
    streams = [s for s in args.streams.split(",") if s]
    workers = [int(x) for x in args.workers.split(",") if x]
    raw = []
    workdir = tempfile.mkdtemp(prefix="cs-bench-")
    log(f"bench: server {args.server}, rate {args.rate}/s, {args.repeats} repeat(s), "
        f"RLIMIT_NOFILE {hard}, work dir {workdir}")

    rows, idle_rows, ceil, sat = [], [], {}, []
    if not args.no_idle:
        for w in workers:
            runs = []
            for r in range(args.repeats):
                log(f"bench: idle workers={w} run {r + 1}")
                runs.append(measure_point(args, w, 0, None, False, workdir))
            raw += runs
            idle_rows.append((w, runs))
    for n in clients:
        for s in streams:
            if not args.no_ceiling:
                log(f"bench: ceiling clients={n} stream={s}")
                try:
                    c = measure_ceiling(args, n, s, workdir)
                    raw.append(c)
                    ceil[(n, s)] = c
                except Exception as e:  # noqa: BLE001 - report and go on
                    log(f"bench: ceiling failed: {e}")
            for w in workers:
                runs = []
                for r in range(args.repeats):
                    log(f"bench: clients={n} stream={s} workers={w} run {r + 1}")
                    try:
                        runs.append(measure_point(args, w, n, s, args.sse, workdir))
                    except Exception as e:  # noqa: BLE001
                        log(f"bench: run failed: {e}")
                        runs.append({"kind": "load", "error": str(e)})
                raw += runs
                rows.append((n, s, w, runs))
                if args.saturate:
                    log(f"bench: saturation clients={n} stream={s} workers={w} rate={args.saturate:g}")
                    try:
                        sat.append((n, s, w, measure_point(args, w, n, s, args.sse, workdir, args.saturate)))
                        raw.append(sat[-1][3])
                    except Exception as e:  # noqa: BLE001
                        log(f"bench: saturation run failed: {e}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)

    proto = "SSE" if args.sse else "WebSocket"
    print(f"\n### Load test ({proto}, replay {args.rate:g} entries/s, {args.duration:g} s windows, "
          f"medians of {args.repeats})\n")
    if idle_rows:
        print("| idle | server CPU % (sum) | per process CPU % | PSS total MB | PSS per process MB |")
        print("|---|---|---|---|---|")
        for w, runs in idle_rows:
            cpu = med([r["cpu_total"] * 100 for r in runs])
            pss = med([r["pss_total_kb"] / 1024 for r in runs])
            roles = sorted(runs[0]["cpu"])
            per = ", ".join(f"{k} {fmt(med([r['cpu'].get(k, 0) * 100 for r in runs]), '.1f')}" for k in roles)
            perm = ", ".join(f"{k} {fmt(med([r['pss_kb'].get(k, 0) / 1024 for r in runs]), '.1f')}"
                             for k in sorted(runs[0]["pss_kb"]))
            print(f"| workers {w} | {fmt(cpu, '.1f')} | {per} | {fmt(pss, '.1f')} | {perm} |")
        print()
    print("| clients | stream | workers | established | delivered msg/s | of offered | MB/s | "
          "p50 ms | p99 ms | p99.9 ms | max ms | disconnects | server CPU % (sum) | per process CPU % | "
          "PSS MB | PSS/conn KB | loadgen CPU % | ceiling msg/s | of ceiling |")
    print("|" + "---|" * 19)
    for n, s, w, runs in rows:
        ok = [r for r in runs if "error" not in r]
        if not ok:
            err = runs[0].get("error", "?") if runs else "?"
            print(f"| {n} | {s} | {w} | failed: {err[:80]} |" + " |" * 15)
            continue
        lg = [r["loadgen"] for r in ok]
        rate = med([x["msgs_per_s"] for x in lg])
        c = ceil.get((n, s))
        crate = c["loadgen"]["msgs_per_s"] if c else None
        roles = sorted(ok[0]["cpu"])
        per = ", ".join(f"{k} {fmt(med([r['cpu'].get(k, 0) * 100 for r in ok]), '.0f')}" for k in roles)
        print("| " + " | ".join([
            str(n), s, str(w),
            fmt(med([x["established"] for x in lg])),
            fmt(rate),
            fmt(rate / (args.rate * n) * 100 if rate is not None else None, ".1f", ) + " %",
            fmt(med([x["bytes_per_s"] / 1e6 for x in lg]), ".1f"),
            fmt(lat(lg, "p50_ms"), ".3f"),
            fmt(lat(lg, "p99_ms"), ".3f"),
            fmt(lat(lg, "p999_ms"), ".3f"),
            fmt(lat(lg, "max_ms"), ".1f"),
            fmt(med([x["disconnected"] + x["failed"] for x in lg])),
            fmt(med([r["cpu_total"] * 100 for r in ok]), ".0f"),
            per,
            fmt(med([r["pss_total_kb"] / 1024 for r in ok]), ".1f"),
            fmt(med([r["pss_per_conn_kb"] for r in ok]), ".2f"),
            fmt(med([x["cpu_pct"] for x in lg]), ".0f"),
            fmt(crate),
            (fmt(rate / crate * 100, ".1f") + " %") if crate and rate is not None else "n/a",
        ]) + " |")
    if sat:
        print(f"\nSaturation (replay {args.saturate:g} entries/s; single runs):\n")
        print("| clients | stream | workers | delivered msg/s | MB/s | p99 ms | disconnects | server CPU % | "
              "ceiling msg/s | of ceiling |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n, s, w, r in sat:
            if "error" in r:
                print(f"| {n} | {s} | {w} | failed: {r['error'][:80]} | | | | | | |")
                continue
            x = r["loadgen"]
            c = ceil.get((n, s))
            crate = c["loadgen"]["msgs_per_s"] if c else None
            print(f"| {n} | {s} | {w} | {fmt(x['msgs_per_s'])} | {fmt(x['bytes_per_s'] / 1e6, '.1f')} | "
                  f"{fmt(lat([x], 'p99_ms'), '.3f')} | {x['disconnected'] + x['failed']} | "
                  f"{fmt(r['cpu_total'] * 100, '.0f')} | {fmt(crate)} | "
                  f"{(fmt(x['msgs_per_s'] / crate * 100, '.1f') + ' %') if crate else 'n/a'} |")
    if ceil:
        print("\nCeiling runs (writev-ceiling at full speed, same loadgen reading):\n")
        print("| clients | stream | received msg/s | written msg/s | ceiling CPU % | loadgen CPU % |")
        print("|---|---|---|---|---|---|")
        for (n, s), c in sorted(ceil.items()):
            print(f"| {n} | {s} | {fmt(c['loadgen']['msgs_per_s'])} | {fmt(c['ceiling']['msgs_per_s'])} | "
                  f"{fmt(c['ceiling']['cpu_pct'], '.0f')} | {fmt(c['loadgen']['cpu_pct'], '.0f')} |")
    print(f"\n(raw results: {args.json or 'pass --json FILE'}; logs in {workdir})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""stream_bench.py - cost of the stream features, measured with the bundled
load generator against the real server replaying the golden corpus:

  filters      1k and 10k lite WebSocket clients, unfiltered and spread over
               1, 50 and 1,000 distinct server-side filters (each filter
               distinct, all matching the same ~11 % of the corpus:
               domain=*.x<i>.example.com,*workday*)
  compression  1k and 10k lite clients, and --full-clients full ones:
               compression off; on with clients that do not offer
               permessage-deflate; on with clients that do, each message
               compressed alone (server_no_context_takeover); on with the
               stream's shared context (compression.shared_context,
               chained frames). The modes alternate within each repeat, so
               the ratios compare runs made minutes apart at most

For every point: server CPU (utime+stime of every server process over the
loadgen's measured window, from /proc), delivered messages/s, bytes on the
wire per delivered message (what the clients read from their sockets), and
the server's own filter counters. Each point runs --repeats times and the
table shows medians; ratios are against the unfiltered / uncompressed point
of the same run. Loopback only, bounded in time.

usage: test/bench/stream_bench.py [--build DIR] [--clients 1000,10000] [--repeats 3]
                                  [--only filters|compression]
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, cpu_delta, cpu_snapshot, fmt, free_port, log, loadgen_result,  # noqa: E402
                      median_of as med, metrics, start_loadgen, wait_mark)


def point(args, workdir, clients, extra_yaml, lg_extra, stream="lite"):
    port = free_port()
    rate = args.offered / clients   # the same offered msg/s at every client count
    yaml = ("workers: %d\nbuffer_size: 1000\nct_log:\n  state_file: %s\n"
            % (args.workers, os.path.join(workdir, "state-%d.json" % port)) + extra_yaml)
    with Server(args.server, workdir, port, yaml, replay=args.corpus, rate=rate, stamp=True) as srv:
        mark = os.path.join(workdir, "mark-%d" % port)
        cmd = [args.loadgen, "--port", str(port), "-n", str(clients), "--stream", stream,
               "--duration", str(args.duration), "--warmup", str(args.warmup), "--ramp", str(args.ramp),
               "--handshake-timeout", "30", "--mark", mark, "-q"] + lg_extra
        bound = clients / args.ramp + args.warmup + args.duration + 90
        lg = start_loadgen(cmd)
        if not wait_mark(mark, "start", lg, bound):
            return {"error": "window never opened: " + json.dumps(loadgen_result(lg, bound))[:300]}
        # CPU first: /metrics may be slow to answer a saturated worker
        pids = srv.pids()
        a = cpu_snapshot(pids)
        t0 = time.monotonic()
        m0, tm0 = metrics(port, 60, strict=True), time.monotonic()
        wait_mark(mark, "end", lg, bound)
        b = cpu_snapshot(pids)
        secs = time.monotonic() - t0
        m1, tm1 = metrics(port, 60, strict=True), time.monotonic()
        res = loadgen_result(lg, bound)
    cpu = sum(cpu_delta(a, b).values())
    msgs = res["msgs"]
    return {"clients": clients, "established": res["established"], "msgs": msgs,
            "msgs_per_s": res["msgs_per_s"], "cpu_pct": 100 * cpu / secs,
            "cpu_us_per_msg": 1e6 * cpu / msgs if msgs else None,
            "wire_per_msg": res["wire_bytes"] / msgs if msgs else None,
            "compressed": res["compressed"], "disconnected": res["disconnected"],
            "evals_per_s": (m1.get("certstream_filter_evaluations_total", 0) - m0.get("certstream_filter_evaluations_total", 0)) / (tm1 - tm0),
            "published_per_s": (m1.get("certstream_entries_published_total", 0) - m0.get("certstream_entries_published_total", 0)) / (tm1 - tm0),
            "distinct": m1.get("certstream_filters_distinct"), "deflate_clients": m1.get("certstream_clients_deflate")}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(root, "build-release"))
    ap.add_argument("--clients", default="1000,10000")
    ap.add_argument("--filters", default="0,1,50,1000", help="distinct filters (0: unfiltered)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--offered", type=float, default=100000,
                    help="offered msg/s over all clients: the replay rate is this / clients "
                         "(100/s for 1k clients, 10/s for 10k)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--ramp", type=float, default=2000)
    ap.add_argument("--only", choices=("filters", "compression"))
    ap.add_argument("--full-clients", default="1000", help="full-stream client counts for compression ('' = none)")
    ap.add_argument("--corpus", default=os.path.join(root, "test", "data", "golden", "live_ct.json"))
    args = ap.parse_args()
    args.server = os.path.join(args.build, "certstream-server")
    args.loadgen = os.path.join(args.build, "test", "loadgen", "certstream-loadgen")
    for p in (args.server, args.loadgen, args.corpus):
        if not os.path.exists(p):
            sys.exit("missing " + p)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = tempfile.mkdtemp(prefix="cs-stream-bench-")
    clients = [int(x) for x in args.clients.split(",")]
    print("stream_bench: offered %g msg/s (replay rate = that / clients), %d worker(s), %g s windows, "
          "medians of %d; loadgen %s" % (args.offered, args.workers, args.duration, args.repeats, args.loadgen))
    if args.only in (None, "filters"):
        print("\n### Filter cost (lite, WebSocket)\n")
        print("| clients | distinct filters | delivered msg/s | filter evaluations/s | server CPU % | "
              "CPU vs unfiltered | CPU us per delivered msg |")
        print("|---|---|---|---|---|---|---|")
        for n in clients:
            base = None
            for k in [int(x) for x in args.filters.split(",")]:
                runs = []
                for r in range(args.repeats):
                    log("filters: clients=%d distinct=%d run %d" % (n, k, r + 1))
                    extra = ["--query", "domain=*.x%u.example.com,*workday*", "--query-count", str(k)] if k else []
                    try:
                        runs.append(point(args, workdir, n, "filters:\n  max_per_worker: 100000\n", extra))
                    except Exception as e:  # noqa: BLE001
                        runs.append({"error": str(e)})
                    log("  ", json.dumps(runs[-1]))
                cpu = med(runs, "cpu_pct")
                if k == 0:
                    base = cpu
                print("| %d | %s | %s | %s | %s | %s | %s |" % (
                    n, k or "unfiltered", fmt(med(runs, "msgs_per_s"), ".0f"), fmt(med(runs, "evals_per_s"), ".0f"),
                    fmt(cpu, ".1f"), ("%.2fx" % (cpu / base)) if base and cpu else "1.00x" if k == 0 else "n/a",
                    fmt(med(runs, "cpu_us_per_msg"), ".2f")), flush=True)
    if args.only in (None, "compression"):
        print("\n### permessage-deflate (WebSocket)\n")
        print("| stream | clients | compression | delivered msg/s | wire bytes per msg | bytes vs off | server CPU % | "
              "CPU us per delivered msg | CPU/msg vs off |")
        print("|---|---|---|---|---|---|---|---|---|")
        modes = [("off", "compression:\n  enabled: false\n", []),
                 ("on, clients without deflate", "", []),
                 ("on, deflate, each message alone", "compression:\n  shared_context: false\n", ["--deflate"]),
                 ("on, deflate, shared context (chained)", "compression:\n  shared_context: true\n", ["--deflate"])]
        points = [("lite", n) for n in clients]
        points += [("full", int(x)) for x in args.full_clients.split(",") if x]
        for stream, n in points:
            runs = {name: [] for name, _, _ in modes}
            for r in range(args.repeats):
                for name, yaml, extra in modes:
                    log("compression: %s clients=%d %s run %d" % (stream, n, name, r + 1))
                    try:
                        runs[name].append(point(args, workdir, n, yaml, extra, stream))
                    except Exception as e:  # noqa: BLE001
                        runs[name].append({"error": str(e)})
                    log("  ", json.dumps(runs[name][-1]))
            base = None
            for name, _, _ in modes:
                w, c = med(runs[name], "wire_per_msg"), med(runs[name], "cpu_us_per_msg")
                if base is None:
                    base = (w, c)
                print("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                    stream, n, name, fmt(med(runs[name], "msgs_per_s"), ".0f"), fmt(w, ".0f"),
                    ("%.2fx" % (w / base[0])) if w and base[0] else "n/a", fmt(med(runs[name], "cpu_pct"), ".1f"), fmt(c, ".2f"),
                    ("%.2fx" % (c / base[1])) if c and base[1] else "n/a"), flush=True)
    print("\n(logs in %s)" % workdir)


if __name__ == "__main__":
    main()

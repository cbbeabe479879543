#!/usr/bin/env python3
"""tls_bench.py - TLS against plain at N lite WebSocket clients.

For each repeat, and for each mode (plain ws://, TLS wss://) in the same
run, starts the server replaying the golden corpus at --rate entries/s
(bench stamps), connects N clients with certstream-loadgen, and records over
the loadgen's measured window:
  - the fanout workers' CPU time (utime+stime from /proc) per delivered
    message, and the whole server's;
  - PSS of the fanout workers with the clients connected minus idle, per
    client (/proc/<pid>/smaps_rollup);
  - delivered messages/s, latency p50/p99, failures.
Prints medians and the TLS/plain ratios as a Markdown table. A throwaway
certificate is made with openssl in a temporary directory (removed).

Usage: tls_bench.py --server BIN --loadgen BIN --corpus FILE
                    [--clients 1000] [--rate 100] [--duration 10] [--repeats 3] [--workers 1]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, cpu_delta, cpu_snapshot, free_port, log, loadgen_result, make_cert,  # noqa: E402
                      smaps, start_loadgen, wait_mark)


def run_once(args, d, tls, cert):
    port = free_port()
    yaml = "workers: %d\nbuffer_size: 100000\nct_log:\n  state_file: %s\n" % (args.workers,
                                                                               os.path.join(d, "state.json"))
    if tls:
        yaml += "tls:\n  cert_file: %s\n  key_file: %s\n" % cert
    with Server(args.server, d, port, yaml, replay=args.corpus, rate=args.rate, stamp=True, settle=1.5) as srv:
        fan = srv.fanout()
        idle = sum(smaps(p)["pss"] for p in fan)
        mark = os.path.join(d, "mark")
        if os.path.exists(mark):
            os.unlink(mark)
        url = "%s://127.0.0.1:%d/" % ("wss" if tls else "ws", port)
        lg = start_loadgen([args.loadgen, "--url", url, "-n", str(args.clients), "--duration",
                            str(args.duration), "--warmup", str(args.warmup), "--ramp", str(args.ramp), "--mark", mark,
                            "-q", "--corpus", args.corpus, "--handshake-timeout", "60"])
        bound = args.clients / args.ramp + args.warmup + args.duration + 120
        if not wait_mark(mark, "start", lg, bound):
            raise RuntimeError("window never opened: %r" % (lg.communicate()[1][-500:],))
        a = cpu_snapshot(srv.pids())
        t0 = time.monotonic()
        time.sleep(1.0)
        loaded = sum(smaps(p)["pss"] for p in fan)
        wait_mark(mark, "end", lg, bound)
        b = cpu_snapshot(a)
        secs = time.monotonic() - t0
        res = loadgen_result(lg, bound)
        cpu = cpu_delta(a, b)
        fan_cpu = sum(cpu[p] for p in fan)
        all_cpu = sum(cpu.values())
        msgs = res["msgs_per_s"] * secs
        return {"loadgen_cpu_pct": res["cpu_pct"], "established": res["established"], "failed": res["failed"], "msgs_per_s": res["msgs_per_s"],
                "fan_cpu_pct": 100 * fan_cpu / secs, "all_cpu_pct": 100 * all_cpu / secs,
                "us_per_msg": 1e6 * fan_cpu / msgs if msgs else None,
                "kb_per_client": (loaded - idle) / res["established"] if res["established"] else None,
                "p50_ms": res["latency"].get("p50_ms"), "p99_ms": res["latency"].get("p99_ms"),
                "disconnected": res["disconnected"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=2, help="seconds between the ramp and the window")
    ap.add_argument("--ramp", type=float, default=200, help="new connections/s (TLS handshakes cost CPU on both sides)")
    args = ap.parse_args()
    args.corpus, args.server, args.loadgen = (os.path.abspath(x) for x in (args.corpus, args.server, args.loadgen))
    d = tempfile.mkdtemp(prefix="cs-tlsbench-")
    try:
        cert = make_cert(d)
        runs = {False: [], True: []}
        for r in range(args.repeats):
            for tls in (False, True):
                x = run_once(args, d, tls, cert)
                log("repeat %d %s: %r" % (r, "tls" if tls else "plain", x))
                runs[tls].append(x)
        med = lambda tls, k: statistics.median([x[k] for x in runs[tls] if x[k] is not None])
        print("| %d lite clients, %g entries/s, %d worker(s), medians of %d | plain | TLS | TLS/plain |"
              % (args.clients, args.rate, args.workers, args.repeats))
        print("|---|---|---|---|")
        for k, label, spec in (("msgs_per_s", "delivered messages/s", ".0f"),
                               ("fan_cpu_pct", "fanout CPU %", ".1f"),
                               ("all_cpu_pct", "whole server CPU %", ".1f"),
                               ("us_per_msg", "fanout CPU µs per delivered message", ".2f"),
                               ("kb_per_client", "fanout PSS per client, KiB", ".1f"),
                               ("p50_ms", "latency p50, ms", ".1f"), ("p99_ms", "latency p99, ms", ".1f"),
                               ("loadgen_cpu_pct", "load generator CPU %", ".0f")):
            p, t = med(False, k), med(True, k)
            print("| %s | %s | %s | %.2f |" % (label, format(p, spec), format(t, spec), t / p if p else float("nan")))
        print("| failed / disconnected (all runs) | %d / %d | %d / %d | |" % (
            sum(x["failed"] for x in runs[False]), sum(x["disconnected"] for x in runs[False]),
            sum(x["failed"] for x in runs[True]), sum(x["disconnected"] for x in runs[True])))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

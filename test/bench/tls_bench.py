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
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (cpu_ticks, memory, wait_port, wait_mark, loadgen_result, children)


def make_cert(d):
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return crt, key


def run_once(args, d, tls, cert):
    port = bench.free_port()
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        f.write("host: 127.0.0.1\nport: %d\nworkers: %d\nbuffer_size: 100000\n" % (port, args.workers))
        f.write("ct_log:\n  state_file: %s\n" % os.path.join(d, "state.json"))
        if tls:
            f.write("tls:\n  cert_file: %s\n  key_file: %s\n" % cert)
    logf = open(os.path.join(d, "server.log"), "w")
    srv = subprocess.Popen([args.server, "--config", cfg, "--replay", args.corpus, "--rate", str(args.rate),
                            "--loop", "--bench-stamp"], stdout=logf, stderr=logf, cwd=d, start_new_session=True)
    try:
        if not bench.wait_port(port):
            raise RuntimeError("server did not listen: " + open(os.path.join(d, "server.log")).read()[-1500:])
        time.sleep(1.5)
        roles = {}
        for line in open(os.path.join(d, "server.log")):
            if "started fanout" in line:
                roles[int(line.split("pid=")[-1])] = "fanout"
        fan = [p for p in bench.children(srv.pid) if p in roles]
        idle = sum(bench.memory(p)[1] for p in fan)
        mark = os.path.join(d, "mark")
        if os.path.exists(mark):
            os.unlink(mark)
        url = "%s://127.0.0.1:%d/" % ("wss" if tls else "ws", port)
        lg = subprocess.Popen([args.loadgen, "--url", url, "-n", str(args.clients), "--duration",
                               str(args.duration), "--warmup", str(args.warmup), "--ramp", str(args.ramp), "--mark", mark,
                               "-q", "--corpus", args.corpus, "--handshake-timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        bound = args.clients / args.ramp + args.warmup + args.duration + 120
        if not bench.wait_mark(mark, "start", lg, bound):
            raise RuntimeError("window never opened: %r" % (lg.communicate()[1][-500:],))
        all_pids = bench.children(srv.pid) + [srv.pid]
        a = {p: bench.cpu_ticks(p) for p in all_pids}
        t0 = time.monotonic()
        time.sleep(1.0)
        loaded = sum(bench.memory(p)[1] for p in fan)
        bench.wait_mark(mark, "end", lg, bound)
        b = {p: bench.cpu_ticks(p) for p in all_pids}
        secs = time.monotonic() - t0
        res = bench.loadgen_result(lg, bound)
        hz = bench.HZ
        fan_cpu = sum(b[p] - a[p] for p in fan) / hz
        all_cpu = sum(b[p] - a[p] for p in all_pids if a.get(p) is not None and b.get(p) is not None) / hz
        msgs = res["msgs_per_s"] * secs
        return {"loadgen_cpu_pct": res["cpu_pct"], "established": res["established"], "failed": res["failed"], "msgs_per_s": res["msgs_per_s"],
                "fan_cpu_pct": 100 * fan_cpu / secs, "all_cpu_pct": 100 * all_cpu / secs,
                "us_per_msg": 1e6 * fan_cpu / msgs if msgs else None,
                "kb_per_client": (loaded - idle) / res["established"] if res["established"] else None,
                "p50_ms": res["latency"].get("p50_ms"), "p99_ms": res["latency"].get("p99_ms"),
                "disconnected": res["disconnected"]}
    finally:
        if srv.poll() is None:
            os.killpg(srv.pid, 15)
            try:
                srv.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, 9)
                srv.wait()
        logf.close()


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
                bench.log("repeat %d %s: %r" % (r, "tls" if tls else "plain", x))
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

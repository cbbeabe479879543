#!/usr/bin/env python3
"""bench_nats.py - the NATS scale-out measurements of docs/benchmarks.md.

Starts a nats-server -js on a free loopback port and runs:
  1. nats_bench throughput (-n 10000), REPEATS times: ingest ring -> NATS -> edge ring;
  2. nats_bench latency at --rate (the real CT rate), REPEATS times;
  3. fanout capacity: certstream-loadgen (CLIENTS lite WebSocket clients) against
     an all-in-one server replaying the golden corpus at --rate, and against an
     edge server fed through NATS at the same rate (by nats_bench on a fixed
     stream), REPEATS times each; delivered msg/s and the server's CPU.
Prints medians as markdown. Everything it starts is stopped; temp dirs removed.

usage: bench_nats.py --build BUILD_DIR --testdata test/data [--repeats 3] [--rate 300]
       [--clients 1000] [--fan-rate 500] [--window 8]"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import subprocess
import tempfile
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Server, free_port  # noqa: E402


def kv(line):
    return {k: float(v) if re.match(r"^[0-9.]+$", v) else v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def cpu_of_session(sid):
    """user+sys seconds of every process in session sid."""
    total = 0.0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            if int(st[3]) == sid:   # field 6 (session) is index 3 after the comm
                total += (int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])) / tck
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_http(port, path="/health", timeout=20):
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
                return r.read()
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server on %d did not answer" % port)


ALL_ROWS = {}


def leg(bench, name, url, a):
    """nats_bench throughput and latency, a.repeats times each; with a
    baseline the two binaries' runs alternate (same machine state)."""
    rows = ALL_ROWS.setdefault(name, {"throughput": [], "latency": []})
    if rows["throughput"]:
        return
    pairs = [(n, b) for n, b in ([(name, bench)] + ([("baseline", a.baseline)] if a.baseline and name != "baseline" else []))]
    for mode, extra in (("throughput", ["-n", "10000"]),
                        ("latency", ["--rate", str(a.rate), "--seconds", "10"])):
        for _ in range(a.repeats):
            for n, b in pairs:
                out = subprocess.run([b, "--url", url, "--testdata", a.testdata, mode] + extra,
                                     capture_output=True, text=True, check=True).stdout
                ALL_ROWS.setdefault(n, {"throughput": [], "latency": []})[mode].append(kv(out.strip().splitlines()[-1]))
    for n, _ in pairs:
        table(n, ALL_ROWS[n], a)


def table(name, rows, a):
    t = rows["throughput"]
    lat = rows["latency"]
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    print("%s:" % name)
    print("| measure | median of %d | runs |" % a.repeats)
    print("|---|---|---|")
    print("| throughput, entries/s | %.0f | %s |" % (med(t, "entries_per_s"),
          ", ".join("%.0f" % r["entries_per_s"] for r in t)))
    print("| CPU per 1,000 entries, publisher (ingest side), full speed | %.1f ms | %s |" % (
        med(t, "cpu_ms_per_1000_publisher"), ", ".join("%.1f" % r["cpu_ms_per_1000_publisher"] for r in t)))
    print("| CPU per 1,000 entries, consumer (edge side), full speed | %.1f ms | %s |" % (
        med(t, "cpu_ms_per_1000_consumer"), ", ".join("%.1f" % r["cpu_ms_per_1000_consumer"] for r in t)))
    print("| CPU per 1,000 entries, publisher, at %.0f/s | %.1f ms | %s |" % (
        a.rate, med(lat, "cpu_ms_per_1000_publisher"), ", ".join("%.1f" % r["cpu_ms_per_1000_publisher"] for r in lat)))
    print("| CPU per 1,000 entries, consumer, at %.0f/s | %.1f ms | %s |" % (
        a.rate, med(lat, "cpu_ms_per_1000_consumer"), ", ".join("%.1f" % r["cpu_ms_per_1000_consumer"] for r in lat)))
    for k in ("latency_ms_p50", "p99", "max"):
        print("| added latency at %.0f/s, %s | %.2f ms | %s |" % (
            a.rate, k.replace("latency_ms_", ""), med(lat, k), ", ".join("%.2f" % r[k] for r in lat)))
    print()


def ratios(a):
    """current / baseline of each run pair's publisher CPU per 1,000 entries."""
    cur, base = ALL_ROWS["current"], ALL_ROWS["baseline"]
    for mode in ("throughput", "latency"):
        rs = [c["cpu_ms_per_1000_publisher"] / b["cpu_ms_per_1000_publisher"]
              for c, b in zip(cur[mode], base[mode])]
        print("publisher CPU per 1,000 entries, current / baseline, %s: median %.2fx (runs %s)" % (
            mode, statistics.median(rs), ", ".join("%.2f" % r for r in rs)))
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--fan-rate", type=float, default=500)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--baseline", help="another nats_bench binary (e.g. built from an earlier commit): "
                    "the NATS leg is measured with both, interleaved, and printed side by side")
    ap.add_argument("--leg-only", action="store_true", help="only the NATS leg (no fanout comparison)")
    a = ap.parse_args()
    bench = os.path.join(a.build, "test/nats/nats_bench")
    server = os.path.join(a.build, "certstream-server")
    loadgen = os.path.join(a.build, "test/loadgen/certstream-loadgen")
    tmp = tempfile.mkdtemp(prefix="cs-bench-nats-")
    port = free_port()
    nats = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "nats://127.0.0.1:%d" % port
    procs = []
    try:
        time.sleep(0.5)
        benches = [("current", bench)] + ([("baseline", a.baseline)] if a.baseline else [])
        for name, b in benches:
            leg(b, name, url, a)
        if a.baseline:
            ratios(a)
        if a.leg_only:
            return

        # fanout capacity: all-in-one vs edge
        def measure(p, sid):
            """loadgen's window (--mark): delivered msg/s, the server's cores
            and its CPU per delivered message within the window."""
            mark = os.path.join(tmp, "mark")
            if os.path.exists(mark):
                os.unlink(mark)
            lg = subprocess.Popen([loadgen, "-n", str(a.clients), "--port", str(p), "--stream", "lite",
                                   "-d", str(a.window), "--warmup", "2", "-q", "--mark", mark],
                                  stdout=subprocess.PIPE, text=True)
            c0 = t0 = c1 = t1 = None
            while lg.poll() is None:
                text = open(mark).read() if os.path.exists(mark) else ""
                if c0 is None and "start" in text:
                    c0, t0 = cpu_of_session(sid), time.time()
                if c1 is None and "end" in text:
                    c1, t1 = cpu_of_session(sid), time.time()
                time.sleep(0.02)
            out = lg.stdout.read()
            j = json.loads(out.strip().splitlines()[-1])
            if c1 is None:
                c1, t1 = cpu_of_session(sid), time.time()
            cores = (c1 - c0) / (t1 - t0)
            return j["msgs_per_s"], cores, j["disconnected"], cores / max(j["msgs_per_s"], 1) * 1e6

        results = {"all-in-one": [], "edge": []}
        for rep in range(a.repeats):
            d = tempfile.mkdtemp(prefix="cs-bench-aio-", dir=tmp)
            p = free_port()
            aio = Server(server, d, p, "workers: 1\nct_log:\n  state_file: %s/s.json\n" % d,
                         replay=os.path.join(a.testdata, "golden/live_ct.json"), rate=a.fan_rate, settle=0,
                         tag="-aio").start()
            procs.append(aio.proc)
            wait_http(p)
            results["all-in-one"].append(measure(p, aio.pid))
            aio.stop()

            stream = "BENCHFAN%d" % rep
            p = free_port()
            edge = Server(server, d, p, "workers: 1\ningest:\n  source: nats\nnats:\n  url: \"%s\"\n  stream: %s\n"
                          "  subject_prefix: %s\n  position_file: %s/pos\n" % (url, stream, stream, d), settle=0,
                          tag="-edge").start()
            procs.append(edge.proc)
            wait_http(p)
            deadline = time.time() + 20
            while b'"ready":true' not in wait_http(p, "/health/deep") and time.time() < deadline:
                time.sleep(0.1)
            feed = subprocess.Popen([bench, "--url", url, "--testdata", a.testdata, "--stream", stream,
                                     "latency", "--rate", str(a.fan_rate), "--seconds", str(a.window + 8)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(feed)
            time.sleep(1)
            results["edge"].append(measure(p, edge.pid))
            feed.wait()
            edge.stop()
        offered = a.clients * a.fan_rate
        print()
        print("| server (1 fanout worker, %d lite clients, %.0f entries/s = %.0f msg/s offered) | delivered msg/s | server CPU, cores (all its processes) | CPU µs per delivered msg | disconnected | runs (msg/s, cores) |" % (
            a.clients, a.fan_rate, offered))
        print("|---|---|---|---|---|---|")
        for k, runs in results.items():
            print("| %s | %.0f | %.2f | %.2f | %d | %s |" % (
                k, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                statistics.median(r[3] for r in runs),
                max(r[2] for r in runs), "; ".join("%.0f, %.2f" % (r[0], r[1]) for r in runs)))
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    p.kill()
                p.wait()
        nats.terminate()
        nats.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

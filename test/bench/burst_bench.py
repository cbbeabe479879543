#!/usr/bin/env python3
"""burst_bench.py - latency from `seen` while following growing logs that
deliver their entries in bursts, against the burst size.

The growing fake log (test/fakelog/fakelog.py --synthetic-many) serves
--logs RFC 6962 logs growing at --per-log entries/s each (default 30 x 10 =
300 entries/s, every entry a distinct real certificate with its chain), each
by `burst` entries at a time (--grow-step: a log that integrates entries in
batches), the logs' steps spread evenly over a step's period. The server
polls every --poll-ms, so each step is fetched as one get-entries answer:
one burst of `burst` entries landing in the ring at once. certstream-loadgen
opens --clients lite WebSocket clients and measures, over --duration s after
--warmup s, latency = arrival time - `seen` (the millisecond `seen` the
server writes when it follows logs; no --bench-stamp), per-client rates
(--target-rate = the offered rate) and gaps (--dense).

The server (all its processes) is pinned to --server-cpu with taskset, the
fake log and the load generator to the other cores (--client-cpus). Every
point runs --repeats times; the table shows medians. --servers NAME=BINARY
compares builds (e.g. before/after) in the same run, interleaved.

  python3 test/bench/burst_bench.py --servers before=old/certstream-server,after=build-gcc/certstream-server \\
      --bursts 10,64,256 --repeats 3
"""
import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from benchlib import (Server, cpu_delta, cpu_snapshot, descendants, fmt, free_port, growing_logs_yaml,  # noqa: E402
                      loadgen_result, log_stamped as log, median_of, metrics, start_fakelog, start_loadgen,
                      stop_all, wait_for, wait_mark)


def point(a, name, binary, burst, loadgen):
    d = tempfile.mkdtemp(prefix="cs-burst-")
    procs, srv = [], None
    try:
        names = ["b%d" % i for i in range(a.logs)]
        fake, base = start_fakelog(d, a.testdata, "b=%d:1000@%g" % (a.logs, a.per_log), ["--grow-step", str(burst)],
                                   prefix=["taskset", "-c", a.client_cpus])
        procs.append(fake)
        port = free_port()
        yaml = "workers: 1\nlog_level: warn\n"
        if a.buffer_size:
            yaml += "buffer_size: %d\n" % a.buffer_size
        yaml += growing_logs_yaml(d, base, names, "  poll_interval_ms: %d\n  batch_size: 256\n"
                                  "  operator_rate_limit_ms: 0\n" % a.poll_ms)
        srv = Server(binary, d, port, yaml, settle=0, prefix=["taskset", "-c", a.server_cpu], listen_timeout=120)
        procs.append(srv.start().proc)
        wait_for(lambda: metrics(port).get("certstream_entries_published_total", 0) > 0, 120,
                 "the first published entry", interval=0.5, exc=RuntimeError)
        mark = os.path.join(d, "mark")
        lg = start_loadgen(["taskset", "-c", a.client_cpus, loadgen, "-n", str(a.clients), "--url",
                            "ws://127.0.0.1:%d/" % port, "--duration", str(a.duration), "--warmup", str(a.warmup),
                            "--ramp", "1000", "--dense", "--target-rate", str(a.logs * a.per_log),
                            "--mark", mark, "--handshake-timeout", "30", "-q"], session=True)
        procs.append(lg)
        bound = a.clients / 1000 + a.warmup + a.duration + 120
        if not wait_mark(mark, "start", lg, bound) and lg.poll() is None:
            raise RuntimeError("timed out after %.1f s waiting for the loadgen's window" % bound)
        c0 = cpu_snapshot(descendants(srv.pid))
        m0, t0 = metrics(port), time.monotonic()
        j = loadgen_result(lg, bound)
        t1 = time.monotonic()
        cpu = sum(cpu_delta(c0, cpu_snapshot(c0)).values())
        m1 = metrics(port)
        return {"name": name, "burst": burst, "p50": j["latency"]["p50_ms"], "p90": j["latency"]["p90_ms"],
                "p99": j["latency"]["p99_ms"], "max": j["latency"]["max_ms"], "n": j["latency"]["n"],
                "msgs_per_s": j["msgs_per_s"], "fed": j["per_client"].get("fully_fed"),
                "rate_min": j["per_client"]["min"], "rate_median": j["per_client"]["median"],
                "gaps": j["gaps"], "disconnected": j["disconnected"], "established": j["established"],
                "server_cpu_pct": 100 * cpu / (t1 - t0),
                "published_per_s": (m1.get("certstream_entries_published_total", 0)
                                    - m0.get("certstream_entries_published_total", 0)) / (t1 - t0)}
    finally:
        stop_all(procs, 30)
        if srv:
            srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", required=True, help="NAME=BINARY[,NAME=BINARY...]")
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build-gcc", "test", "loadgen", "certstream-loadgen"))
    ap.add_argument("--testdata", default=os.path.join(ROOT, "test", "data"))
    ap.add_argument("--bursts", default="10,64,256", help="entries per poll of a log")
    ap.add_argument("--logs", type=int, default=30)
    ap.add_argument("--per-log", type=float, default=10.0, help="entries/s each log grows by")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--poll-ms", type=int, default=500, help="ct_log.poll_interval_ms")
    ap.add_argument("--buffer-size", type=int, default=0, help="buffer_size (0: the default)")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpus", default="1")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))   # unwind: every point stops what it started
    servers = [tuple(x.split("=", 1)) for x in a.servers.split(",")]
    bursts = [int(x) for x in a.bursts.split(",")]
    runs = {}
    for r in range(a.repeats):
        for b in bursts:
            for name, binary in servers:
                log("burst %d, %s, run %d" % (b, name, r + 1))
                try:
                    res = point(a, name, binary, b, a.loadgen)
                except Exception as e:  # noqa: BLE001  (SystemExit = SIGTERM: stop)
                    res = {"error": str(e)}
                log("  ", json.dumps(res))
                runs.setdefault((b, name), []).append(res)

    print("burst_bench: %d logs x %g entries/s growing a burst at a time, polled every %d ms, %d lite clients, "
          "server on CPU %s, fake log and clients on %s, %g s windows after %g s, medians of %d runs"
          % (a.logs, a.per_log, a.poll_ms, a.clients, a.server_cpu, a.client_cpus, a.duration, a.warmup, a.repeats))
    print("\n| burst (entries) | server | p50 ms | p90 ms | p99 ms | max ms | delivered msg/s | per-client median msg/s "
          "| fully fed | gaps | server CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bursts:
        for name, _ in servers:
            rs = runs[(b, name)]
            cols = (("p50", ".1f"), ("p90", ".1f"), ("p99", ".1f"), ("max", ".1f"), ("msgs_per_s", ".0f"),
                    ("rate_median", ".1f"), ("fed", ".0f"), ("gaps", ".0f"), ("server_cpu_pct", ".1f"))
            print("| %d | %s | %s |" % (b, name, " | ".join(fmt(median_of(rs, k), spec) for k, spec in cols)),
                  flush=True)


if __name__ == "__main__":
    main()

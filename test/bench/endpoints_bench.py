#!/usr/bin/python3
"""endpoints_bench.py - CPU cost of the observability endpoints.

Starts the server (one fanout worker, replaying the golden corpus) and asks
each endpoint N times over one kept-alive connection; the cost is the
worker's CPU time (utime + stime from /proc) per request, so the client's
own time and the machine's load do not count. /health is the baseline
measured in the same run: the ratio is what the endpoint's body costs.

usage: endpoints_bench.py --server BIN --testdata DIR [--requests N] [--repeats R]
Prints a markdown table of medians over the repeats."""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from server import Server  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import cpu_secs  # noqa: E402



def run_one(s, worker, path, n, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    size = 0
    c0 = cpu_secs(worker)
    for _ in range(n):
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status)
        size = len(body)
    c1 = cpu_secs(worker)
    conn.close()
    return (c1 - c0) / n * 1e6, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    s = Server(a.server, a.testdata, workers=1, rate=200, loop=True)
    with s:
        time.sleep(2)
        worker = s.children()[0]
        st, _, body = s.http("/latest.json")
        sha = json.loads(body)["messages"][0]["data"]["leaf_cert"]["sha256"]
        s.http("/api/cert/" + sha)   # builds the index once
        cases = [
            ("/health", "/health", None),
            ("/metrics (text)", "/metrics", None),
            ("/metrics (OpenMetrics)", "/metrics", {"Accept": "application/openmetrics-text"}),
            ("/health/deep", "/health/deep", None),
            ("/api/stats", "/api/stats", None),
            ("/api/logs", "/api/logs", None),
            ("/api/cert/{sha256}", "/api/cert/" + sha, None),
        ]
        res = {name: [] for name, _, _ in cases}
        sizes = {}
        for _ in range(a.repeats):
            for name, path, hdr in cases:
                us, size = run_one(s, worker, path, a.requests, hdr)
                res[name].append(us)
                sizes[name] = size
        base = statistics.median(res["/health"])
        print("| endpoint | body bytes | worker CPU per request (median of %d x %d) | runs | vs /health |"
              % (a.repeats, a.requests))
        print("|---|---|---|---|---|")
        for name, _, _ in cases:
            m = statistics.median(res[name])
            print("| %s | %d | %.1f us | %s | %.1fx |" % (name, sizes[name], m,
                                                        ", ".join("%.1f" % v for v in res[name]), m / base))
    for fn in os.listdir(s.dir):
        os.unlink(os.path.join(s.dir, fn))
    os.rmdir(s.dir)


if __name__ == "__main__":
    main()

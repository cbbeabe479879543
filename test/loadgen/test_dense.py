#!/usr/bin/env python3
"""certstream-loadgen --dense against the real server following the fake log:
the golden argon2026h2 records sit at their real cert_index with malformed
entries between them, which the server skips; every index skipped after the
client's first message is a gap, counted exactly.

  test_dense.py --loadgen BIN --server BIN --testdata DIR
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from server import FakeLog, Server, wait_for  # noqa: E402

ARGON = "https://ct.googleapis.com/logs/us1/argon2026h2/"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    a = ap.parse_args()
    with open(os.path.join(a.testdata, "golden", "live_ct.json")) as f:
        idx = sorted(r["cert_index"] for r in json.load(f) if r["log_url"] == ARGON)
    first, last = idx[0], idx[-1]
    # the clients connect while the log is empty; it then grows to all 20
    # indexes at once: they see every record, and the 7 skipped indexes
    seen = idx
    want_gaps = (last - seen[0] + 1) - len(seen)
    with FakeLog(a.testdata, ["--golden", "argon=" + ARGON, "--size", "argon=0"]) as fl:
        ct = {"poll_interval_ms": 100, "retry_initial_delay_ms": 50, "retry_max_delay_ms": 200,
              "operator_rate_limit_ms": 0}
        with Server(a.server, a.testdata, replay=False, ct_log=ct,
                    env={"CERTSTREAM_CT_LOGS_URL": fl.url("/loglist.json")}) as s:
            u = fl.url("/argon/")
            wait_for(lambda: {lg["url"]: lg["next_index"] for lg in s.health_deep()["logs"]} == {u: first}, 60,
                     "the server to start at %d" % first)
            lg = subprocess.Popen([a.loadgen, "--port", str(s.port), "-n", "3", "--dense", "--duration", "60",
                                   "--warmup", "0", "-q"], stdout=subprocess.PIPE, text=True)
            try:
                wait_for(lambda: s.metric("certstream_active_connections", 0) == 3, 30, "3 clients")
                fl.control("size", log="argon", size=last - first + 1)
                wait_for(lambda: s.metric("certstream_entries_published_total", 0) == len(idx), 120,
                         "all %d records published" % len(idx))
                time.sleep(0.5 * float(os.environ.get("CERTSTREAM_TEST_TIME_SCALE", "1")))
            finally:
                lg.terminate()
                out, _ = lg.communicate(timeout=60)
    j = json.loads(out.splitlines()[-1])
    normal = j["classes"]["normal"]
    print("loadgen: msgs %d, gaps %d (want %d), out of order %d" % (normal["msgs_total"], j["gaps"], 3 * want_gaps,
                                                                   j["out_of_order"]))
    assert normal["msgs_total"] == 3 * len(seen), (normal["msgs_total"], 3 * len(seen))
    assert j["gaps"] == 3 * want_gaps, (j["gaps"], 3 * want_gaps)
    assert j["out_of_order"] == 0 and normal["unparsed"] == 0, j
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()

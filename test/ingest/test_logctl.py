#!/usr/bin/env python3
"""test_logctl.py - per-log control, as an operator sees it: the real server
following six synthetic RFC 6962 logs of the growing fake log
(test/fakelog/fakelog.py --synthetic-many), taken from the fake log's own log
list (which gives each log a log id and an operator "Operator <name>").
Every override is checked where it shows, on the fake log's side (its request
counters) and in the server's /metrics, /health/deep and log:

  s0  log_overrides by URL: batch_size 32 -> every get-entries asks for at
      most 32 entries, and the largest window asked for is exactly 32;
      all 1200 entries published exactly once.
  s1  enabled: false (by name) -> not one request; not in /health/deep.
  s2  expected_log_id wrong -> not one request; unhealthy with the reason in
      /health/deep; certstream_ct_logs_refused 1; the reason logged.
  s3  a custom_logs item with s3's URL: fetch_concurrency 1, poll_interval_ms
      100 -> never more than 1 get-entries in flight (answers are slowed to
      0.3 s); get-sth about 10 times a second.
  s4  defaults (fetch_concurrency 4, poll_interval_ms 1000): 4 in flight at
      once with the same slow answers; about 1 get-sth a second.
  s5  operator_pacing {"Operator s5": {requests_per_second: 2}}, batch_size
      16 -> at most 2 requests a second over a 4 s window (the others run
      with operator_rate_limit_ms 1).
  s6  only in the Apple-form list (apple_logs_url, a file written from the
      fake log's list; ct_logs_url is the same list without s6), which also
      repeats s0 under its log id with the URL written without the trailing
      '/': s6 followed and published 0..1199 exactly once, s0 once in
      /health/deep.

Usage: test_logctl.py --server BIN --testdata DIR --fakelog PY
"""
import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import free_port, journal_published, wait_for  # noqa: E402

SIZE = 1200


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--fakelog", required=True)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="cs-logctl-")
    fake = server = None
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    try:
        pf = os.path.join(d, "fakeport")
        slow = ["--fault", "s3:slow:entries:100000:0.3", "--fault", "s4:slow:entries:100000:0.3"]
        fake = subprocess.Popen([sys.executable, a.fakelog, "--testdata", a.testdata, "--port-file", pf,
                                 "--synthetic-many", "s=7:%d" % SIZE] + slow, stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(pf), 20, "the fake log")
        base = "http://127.0.0.1:%d/" % int(open(pf).read())
        url = {n: base + n + "/" for n in ("s0", "s1", "s2", "s3", "s4", "s5", "s6")}
        # the Chrome-form list without s6; the Apple-form list with s6 and s0 again
        full = json.loads(get(base + "loglist.json"))
        chrome = dict(full, operators=[o for o in full["operators"] if o["name"] != "Operator s6"])
        s6 = [o for o in full["operators"] if o["name"] == "Operator s6"][0]
        s0 = json.loads(json.dumps([o for o in full["operators"] if o["name"] == "Operator s0"][0]))
        s0["logs"][0]["url"] = s0["logs"][0]["url"].rstrip("/")
        apple = {"version": "1", "assetVersion": 1, "assetVersionV2": 1, "log_list_timestamp": full["log_list_timestamp"],
                 "operators": [s6, s0]}
        with open(os.path.join(d, "chrome.json"), "w") as f:
            json.dump(chrome, f)
        with open(os.path.join(d, "apple.json"), "w") as f:
            json.dump(apple, f)
        # every log from index 0
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"logs": {u: {"next_index": 0, "tree_size": 1} for u in url.values()}}, f)
        wrong_id = base64.b64encode(hashlib.sha256(b"not s2").digest()).decode()
        right_id = base64.b64encode(hashlib.sha256(b"s2").digest()).decode()
        port = free_port()
        cfg = os.path.join(d, "config.yaml")
        with open(cfg, "w") as f:
            f.write("host: 127.0.0.1\nport: %d\nworkers: 1\nlog_level: info\n" % port)
            f.write("ct_logs_url: file://%s\n" % os.path.join(d, "chrome.json"))
            f.write("apple_logs_url: file://%s\n" % os.path.join(d, "apple.json"))
            f.write("ct_log:\n  state_file: %s\n  poll_interval_ms: 1000\n  operator_rate_limit_ms: 1\n"
                    "  retry_initial_delay_ms: 100\n  retry_max_delay_ms: 400\n" % os.path.join(d, "state.json"))
            f.write("custom_logs:\n  - {name: s3 again, url: \"%s\", fetch_concurrency: 1, poll_interval_ms: 100}\n"
                    % url["s3"])
            f.write("log_overrides:\n")
            f.write("  \"%s\": {batch_size: 32}\n" % url["s0"])
            f.write("  \"Fake log s1\": {enabled: false}\n")
            f.write("  \"%s\": {expected_log_id: \"%s\"}\n" % (url["s2"], wrong_id))
            f.write("  \"Fake log s5\": {batch_size: 16}\n")
            f.write("operator_pacing:\n  \"Operator s5\": {requests_per_second: 2}\n")
        journal = os.path.join(d, "journal")
        env = dict(os.environ, CERTSTREAM_TEST_PUBLISH_JOURNAL=journal)
        env.pop("CERTSTREAM_CONFIG", None)
        log = open(os.path.join(d, "server.log"), "wb")
        server = subprocess.Popen([a.server, "--config", cfg], stdout=log, stderr=log, env=env,
                                  start_new_session=True)

        def stats():
            return json.loads(get(base + "control/stats"))

        def published(u):
            return journal_published(journal, u)

        def deep():
            try:
                return json.loads(get("http://127.0.0.1:%d/health/deep" % port))
            except (OSError, ValueError):
                return None

        def metric(name):
            try:
                t = get("http://127.0.0.1:%d/metrics" % port).decode()
            except OSError:
                return None
            m = re.search(r"^%s(?:\{[^}]*\})? (\d+)$" % re.escape(name), t, re.M)
            return int(m.group(1)) if m else None

        # s0 and s4 caught up: every entry once
        wait_for(lambda: len(published(url["s0"])) == SIZE, 120, "s0 to catch up")
        wait_for(lambda: len(published(url["s4"])) >= SIZE // 2, 120, "s4 to publish")
        # the paced log: requests over a 4 s window
        s_a, t_a = stats(), time.monotonic()
        time.sleep(4)
        s_b, t_b = stats(), time.monotonic()
        wait_for(lambda: len(published(url["s4"])) == SIZE, 120, "s4 to catch up")
        st = stats()
        p0 = published(url["s0"])
        check(sorted(p0) == list(range(SIZE)) and max(p0.values()) == 1, "s0: 0..%d published exactly once" % (SIZE - 1))
        check(st.get("s0 entries_max_span") == 32, "s0: largest get-entries window 32 (got %s)" % st.get("s0 entries_max_span"))
        check(st.get("s0 entries", 0) >= SIZE // 32, "s0: at least %d get-entries (got %s)" % (SIZE // 32, st.get("s0 entries")))
        check(st.get("s4 entries_max_span") == 256, "s4: default window 256 (got %s)" % st.get("s4 entries_max_span"))
        check(not any(k.startswith("s1 ") for k in st), "s1 (enabled: false): no request at all (%s)" %
              {k: v for k, v in st.items() if k.startswith("s1 ")})
        check(not any(k.startswith("s2 ") for k in st), "s2 (expected_log_id wrong): no request at all (%s)" %
              {k: v for k, v in st.items() if k.startswith("s2 ")})
        check(st.get("s3 entries_max_inflight") == 1,
              "s3 (fetch_concurrency 1): 1 get-entries in flight at most (got %s)" % st.get("s3 entries_max_inflight"))
        check(st.get("s4 entries_max_inflight") == 4,
              "s4 (default 4): 4 get-entries in flight (got %s)" % st.get("s4 entries_max_inflight"))
        secs = t_b - t_a
        sth3 = s_b.get("s3 sth", 0) - s_a.get("s3 sth", 0)
        sth4 = s_b.get("s4 sth", 0) - s_a.get("s4 sth", 0)
        check(sth3 >= 2.5 * secs, "s3 (poll_interval_ms 100): %d get-sth in %.1f s, at least %.0f" % (sth3, secs, 2.5 * secs))
        check(sth4 <= secs + 2, "s4 (poll_interval_ms 1000): %d get-sth in %.1f s, at most %.0f" % (sth4, secs, secs + 2))
        req5 = sum(s_b.get("s5 " + e, 0) - s_a.get("s5 " + e, 0) for e in ("sth", "entries"))
        check(1 * secs <= req5 <= 2 * secs + 2,
              "s5 (operator_pacing 2/s): %d requests in %.1f s, between %.0f and %.0f" % (req5, secs, secs, 2 * secs + 2))
        check(st.get("s5 entries_max_span") == 16, "s5: window 16 (got %s)" % st.get("s5 entries_max_span"))
        h = deep()
        logs = {l["url"]: l for l in (h or {}).get("logs", [])}
        check(url["s1"] not in logs, "s1 not in /health/deep")
        wait_for(lambda: len(published(url["s6"])) == SIZE, 120, "s6 to catch up")
        p6 = published(url["s6"])
        check(sorted(p6) == list(range(SIZE)) and max(p6.values()) == 1,
              "s6 (only in Apple's list): 0..%d published exactly once" % (SIZE - 1))
        n0 = [l["url"] for l in h["logs"]].count(url["s0"]) if h else 0
        check(n0 == 1 and url["s6"] in logs and len(h["logs"]) == 6,
              "/health/deep: s0 once, s6 there, 6 logs in all (s1 disabled) (got %d, %s)" % (n0, sorted(logs)))
        l2 = logs.get(url["s2"], {})
        want = "expected_log_id mismatch: the log list gives %s" % right_id
        check(l2.get("health") == "unhealthy" and l2.get("reason") == want,
              "s2 unhealthy in /health/deep with the reason (got %s)" % l2)
        check(metric("certstream_ct_logs_refused") == 1, "certstream_ct_logs_refused 1 (got %s)" % metric("certstream_ct_logs_refused"))
        log.flush()
        text = open(os.path.join(d, "server.log"), "rb").read().decode(errors="replace")
        check(("Fake log s2 (%s): refused: %s" % (url["s2"], want)) in text, "the refusal logged with its reason")
        check("Fake log s1 (%s) not followed: enabled: false" % url["s1"] in text, "the disabled log logged")
        check("operator Operator s5: one request every 500.0 ms" in text, "the paced operator logged")
    finally:
        if server:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        if fake:
            fake.terminate()
            fake.wait()
        if failures:
            sys.stdout.write(open(os.path.join(d, "server.log"), "rb").read().decode(errors="replace")[-4000:])
        shutil.rmtree(d, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

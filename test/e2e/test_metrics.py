#!/usr/bin/python3
"""Observability end to end: the real server following the fake CT log
(test/fakelog/fakelog.py) over loopback, its /metrics checked against
docs/monitoring.md and promtool, its /health/deep and /api answers.

usage: test_metrics.py CASE --server BIN --testdata DIR --docs DIR --packaging DIR
Each CASE is one CTest test."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server  # noqa: E402
from server import Server, free_port  # noqa: E402
from server import run_cases as server_run_cases  # noqa: E402
from wsraw import WSRaw  # noqa: E402

ARGS = None
ARGON_URL = "https://ct.googleapis.com/logs/us1/argon2026h2/"

# The eleven names of the product this server replaces: the only names
# promtool may complain about (counters without _total, a gauge named _count).
PRODUCT = {
    "certstream_messages_sent", "certstream_parse_failures", "certstream_worker_panics",
    "certstream_ct_logs_count", "certstream_static_ct_logs_count", "certstream_static_ct_tiles_fetched",
    "certstream_static_ct_entries_parsed", "certstream_static_ct_checkpoint_errors",
    "certstream_issuer_cache_size", "certstream_duplicates_filtered", "certstream_dedup_cache_size",
}


class FakeLog(server.FakeLog):
    """The shared fake CT log helper, with the calls these tests make."""

    def __init__(self, *args):
        super().__init__(ARGS.testdata, list(args))

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=5) as r:
            return r.read()

    def count(self, key):
        return self.stats().get(key, 0)

    def close(self):
        self.stop()


def cleanup(s):
    for fn in os.listdir(s.dir):
        os.unlink(os.path.join(s.dir, fn))
    os.rmdir(s.dir)


# ---- exposition parsing -------------------------------------------------------

def parse_labels(text):
    out = {}
    for m in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', text):
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return out


def parse(body):
    """{family: type}, [(sample name, labels dict, value)]"""
    types, samples = {}, []
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$', line)
            assert m, "bad sample line %r" % line
            samples.append((m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))))
    return types, samples


def value(samples, name, **labels):
    """The one sample of name whose labels include `labels`, or the sum of
    several when sum=True is not given and more match (asserted one)."""
    hits = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    assert len(hits) == 1, "%s%r: %d samples" % (name, labels, len(hits))
    return hits[0]


def total(samples, name, **labels):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items()))


def documented_metrics():
    """(name, type, labels) of every row of the metric tables in docs/monitoring.md."""
    out = []
    with open(os.path.join(ARGS.docs, "monitoring.md")) as f:
        for line in f:
            m = re.match(r"^\| `(certstream_[a-z0-9_]+)` \| (counter|gauge) \| ([^|]*)\|", line)
            if m:
                labels = re.findall(r"`([a-z_]+)`", m.group(3))
                out.append((m.group(1), m.group(2), labels))
    assert len(out) >= 40, "docs/monitoring.md lists only %d metrics" % len(out)
    return out


def wait_for(what, fn, timeout=60, every=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def scrape(s, accept=None):
    st, h, body = s.http("/metrics", headers={"Accept": accept} if accept else None)
    assert st == 200, st
    return h, body


# ---- the run ------------------------------------------------------------------

def fake_run():
    """The fake log: two RFC 6962 logs serving the same golden entries (one
    is all duplicates of the other; the corpus gaps are malformed entries),
    a tiled log at 20 entries that grows to 300, a 429 and a malformed
    checkpoint; its log list adds a retired log."""
    return FakeLog("--golden", "argon=" + ARGON_URL, "--golden", "twin=" + ARGON_URL,
                   "--tiled", "navigli=static-ct/navigli2025h2", "--size", "navigli=20",
                   "--fault", "argon:429:entries:1:1", "--fault", "navigli:malformed:checkpoint:1")


def follow(fake, workers=2, state_file="/proc/certstream-test/state.json", extra_env=None, extra_yaml=""):
    env = {
        "CERTSTREAM_CT_LOGS_URL": fake.url("/loglist.json"),
        "CERTSTREAM_CT_LOG_STATE_FILE": state_file,
        "CERTSTREAM_CT_LOG_START_OVERLAP": "20",
        "CERTSTREAM_CT_LOG_POLL_INTERVAL_MS": "200",
        "CERTSTREAM_CT_LOG_RETRY_INITIAL_DELAY_MS": "100",
    }
    env.update(extra_env or {})
    return Server(ARGS.server, ARGS.testdata, workers=workers, replay=False, env=env, extra_yaml=extra_yaml)


def case_metrics_documented():
    """Every documented metric is on /metrics with its type, values move as
    the fake log's traffic says; promtool complains about the eleven product
    names only; OpenMetrics on request; the unwritable state file makes
    /health/deep degraded after a minute."""
    fake = fake_run()
    s = follow(fake)
    try:
        s.start()
        t_start = time.time()

        def caught_up():
            _, body = scrape(s)
            _, sm = parse(body)
            return (value(sm, "certstream_messages_sent", log="Fake log argon") +
                    value(sm, "certstream_messages_sent", log="Fake log twin") == 13 and
                    value(sm, "certstream_static_ct_entries_parsed", log="Fake log navigli") == 20 and sm)
        wait_for("the three logs read", caught_up)
        fake.get("/control/size?log=navigli&size=300")
        wait_for("navigli at 300", lambda: value(parse(scrape(s)[1])[1], "certstream_static_ct_entries_parsed",
                                                 log="Fake log navigli") == 300)
        # a client on each worker path, and one killed worker
        ws = WSRaw(s.port, "/full-stream")
        # healthy while the state file has failed for less than a minute (a
        # loaded machine may show a log retrying or a late heartbeat: wait)
        def healthy():
            st, _, health = s.http("/health/deep")
            j = json.loads(health)
            return st == 200 and j["status"] == "healthy" and j
        hj = wait_for("/health/deep healthy", healthy, timeout=30)
        assert hj["state_file"]["ok"] is False and hj["state_file"]["failing_secs"] < 60, hj

        before = json.loads(fake.get("/control/stats"))
        _, body = scrape(s)
        after = json.loads(fake.get("/control/stats"))
        types, sm = parse(body)
        # every documented metric, with its documented type and labels
        for name, typ, labels in documented_metrics():
            assert types.get(name) == typ, "%s: documented %s, served %r" % (name, typ, types.get(name))
            got = [l for n, l, v in sm if n == name]
            assert got, "%s: no sample" % name
            for l in got:
                assert sorted(l) == sorted(labels), "%s: labels %r, documented %r" % (name, sorted(l), labels)

        # values, from what the fake log served
        ct = fake.count
        assert value(sm, "certstream_static_ct_tiles_fetched", log="Fake log navigli") == ct("navigli tile") == 3, \
            (value(sm, "certstream_static_ct_tiles_fetched", log="Fake log navigli"), ct("navigli tile"))
        assert value(sm, "certstream_static_ct_checkpoint_errors", log="Fake log navigli") == 1
        assert value(sm, "certstream_issuer_cache_size") == ct("navigli issuer") >= 1
        assert value(sm, "certstream_ct_logs_count") == 2
        assert value(sm, "certstream_static_ct_logs_count") == 1
        # the twins serve the same 13 certificates: 13 sent, 13 filtered
        assert total(sm, "certstream_messages_sent") == 13 + 300
        assert value(sm, "certstream_duplicates_filtered") == 13
        assert total(sm, "certstream_log_duplicates_filtered_total") == 13
        wait_for("dedup size", lambda: value(parse(scrape(s)[1])[1], "certstream_dedup_cache_size") == 313, 15)
        # 20 indexes per RFC 6962 log, 7 of them malformed in the corpus
        assert value(sm, "certstream_parse_failures", log="Fake log argon") == 7
        assert value(sm, "certstream_parse_failures", log="Fake log twin") == 7
        assert value(sm, "certstream_parse_failures", log="Fake log navigli") == 0
        argon = dict(log="Fake log argon")
        assert value(sm, "certstream_log_request_failures_total", reason="rate_limited", **argon) == 1
        assert value(sm, "certstream_log_request_failures_total", reason="malformed",
                     log="Fake log navigli") == 1
        assert value(sm, "certstream_log_retries_total", **argon) >= 1
        # the log is polled all along: between what the fake log had served
        # before the scrape and after it (plus one request still in flight)
        sent = value(sm, "certstream_log_requests_total", **argon)
        assert before["argon sth"] + before["argon entries"] <= sent <= \
            after["argon sth"] + after["argon entries"] + 1, (sent, before, after)
        assert value(sm, "certstream_log_lag_entries", **argon) == 0
        assert value(sm, "certstream_log_lag_seconds", **argon) == 0
        assert value(sm, "certstream_log_tree_size", log="Fake log navigli") == 300
        assert value(sm, "certstream_log_next_index", log="Fake log navigli") == 300
        assert value(sm, "certstream_log_entries_published_total", log="Fake log navigli") == 300
        assert value(sm, "certstream_log_health", state="healthy", **argon) == 1
        assert value(sm, "certstream_log_health", state="unhealthy", **argon) == 0
        lab = [l for n, l, v in sm if n == "certstream_log_tree_size" and l["log"] == "Fake log navigli"][0]
        assert lab == {"log": "Fake log navigli", "url": fake.url("/navigli/"), "operator": "Operator navigli",
                       "kind": "static"}, lab
        assert value(sm, "certstream_loglist_logs", state="listed") == 4
        assert value(sm, "certstream_loglist_logs", state="skipped") == 1
        assert value(sm, "certstream_loglist_logs", state="followed") == 3
        assert value(sm, "certstream_loglist_last_success_timestamp_seconds") > t_start - 5
        assert value(sm, "certstream_loglist_fetch_failures_total") == 0
        assert value(sm, "certstream_state_file_write_failures_total") >= 1
        assert value(sm, "certstream_state_file_last_write_timestamp_seconds") == 0
        assert value(sm, "certstream_entries_published_total") == 313
        # processes: 1 supervisor, 2 fanout, 3 ingest (one per operator)
        assert value(sm, "certstream_processes", role="supervisor") == 1
        assert value(sm, "certstream_processes", role="fanout") == 2
        assert value(sm, "certstream_processes", role="ingest") == 3
        for role in ("supervisor", "fanout", "ingest"):
            assert value(sm, "certstream_process_resident_memory_bytes", role=role) > 1 << 20
            assert value(sm, "certstream_process_proportional_memory_bytes", role=role) > 0
            assert value(sm, "certstream_process_open_fds", role=role) >= 3
            assert value(sm, "certstream_process_max_fds", role=role) >= 64
            assert 0 < value(sm, "certstream_process_fd_usage_ratio", role=role) < 1
        # process figures are read at most once a second: a newer reading shows the ingest work
        wait_for("ingest CPU counted", lambda: value(parse(scrape(s)[1])[1], "certstream_process_cpu_seconds_total",
                                                     role="ingest") > 0, 10)
        assert value(sm, "certstream_process_starts_total", role="fanout") == 2
        assert value(sm, "certstream_process_starts_total", role="ingest") == 3
        assert value(sm, "certstream_process_starts_total", role="loglist") == 1
        assert total(sm, "certstream_clients", protocol="websocket", stream="full") == 1
        assert total(sm, "certstream_client_messages_sent_total") == 0   # nothing new since it connected

        # promtool: only the product's names may be reported
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        report = (p.stdout + p.stderr).decode()
        lines = [ln for ln in report.splitlines() if ln.strip()]
        named = [re.match(r"^(certstream_[a-z0-9_]+) ", ln) for ln in lines]
        assert all(named), "promtool reports something else:\n%s" % report
        # the product's counters lack _total, its two gauges end in _count
        assert sorted(m.group(1) for m in named) == sorted(PRODUCT - {
            "certstream_issuer_cache_size", "certstream_dedup_cache_size"}), report

        # OpenMetrics when asked
        h, om = scrape(s, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        ctype = h.get("Content-Type", h.get("content-type", ""))
        assert ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
        check_openmetrics(om)
        h, _ = scrape(s, "text/plain")
        assert h.get("Content-Type", h.get("content-type", "")).startswith("text/plain; version=0.0.4")

        # a killed fanout worker: counted by role and cause
        pid = list(s.socket_owners().values())[0]   # the worker serving ws
        os.kill(pid, signal.SIGKILL)
        ws.close()
        wait_for("the restart counted", lambda: value(parse(scrape(s)[1])[1], "certstream_process_restarts_total",
                                                      role="fanout", cause="signal") == 1)
        sm = parse(scrape(s)[1])[1]
        assert value(sm, "certstream_worker_panics") == 1
        wait_for("the new worker started", lambda: value(
            parse(scrape(s)[1])[1], "certstream_process_starts_total", role="fanout") == 3)
        assert value(sm, "certstream_process_restarts_total", role="fanout", cause="error_exit") == 0

        # the state file has failed since the log list arrived: degraded after a minute
        def degraded():
            st, _, b = s.http("/health/deep")
            j = json.loads(b)
            return (st == 200 and j["status"] == "degraded" and j["state_file"]["failing_secs"] >= 60 and
                    j["logs_healthy"] == 3 and j)
        j = wait_for("/health/deep degraded by the state file", degraded, timeout=120, every=1)
        assert j["state_file"] == {"ok": False, "failing_secs": j["state_file"]["failing_secs"]}
        assert j["state_file"]["failing_secs"] >= 60 and j["log_list"]["ok"] is True, j
        assert j["logs_healthy"] == 3 and j["logs_degraded"] == 0 and j["logs_unhealthy"] == 0, j
        assert time.time() - t_start >= 60
    finally:
        s.stop()
        cleanup(s)
        fake.close()


def check_openmetrics(body):
    """OpenMetrics 1.0 structure: every sample belongs to the family declared
    before it (a counter's samples end in _total; the product's counters are
    'unknown' and keep their names), and the exposition ends with # EOF."""
    text = body.decode()
    assert text.endswith("# EOF\n"), text[-100:]
    fams = {}
    seen = set()
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in seen, "family %s declared twice" % name
            seen.add(name)
            fams[name] = typ
            cur = name
        elif line.startswith("# HELP "):
            continue
        else:
            sname = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1)
            want = cur + "_total" if fams[cur] == "counter" else cur
            assert sname == want, "sample %s under family %s (%s)" % (sname, cur, fams[cur])
    for name in PRODUCT:
        assert fams.get(name) in ("unknown", "gauge"), (name, fams.get(name))


def case_loglist_failing():
    """The log list cannot be fetched but custom logs are set: the server
    follows them, and /health/deep says degraded, not healthy."""
    fake = FakeLog("--golden", "argon=" + ARGON_URL)
    yaml = "custom_logs:\n  - name: argon\n    url: %s\n" % fake.url("/argon/")
    s = follow(fake, workers=1, extra_env={"CERTSTREAM_CT_LOGS_URL": fake.url("/no-such-list.json")},
               extra_yaml=yaml)
    try:
        s.start()

        def read():
            sm = parse(scrape(s)[1])[1]
            return total(sm, "certstream_messages_sent") == 13 and sm
        sm = wait_for("the custom log read", read)
        assert value(sm, "certstream_loglist_fetch_failures_total") >= 1
        assert value(sm, "certstream_loglist_last_success_timestamp_seconds") == 0
        assert value(sm, "certstream_ct_logs_count") == 1
        st, _, b = s.http("/health/deep")
        j = json.loads(b)
        assert st == 200 and j["status"] == "degraded" and j["log_list"]["ok"] is False, j
        assert j["logs_healthy"] == 1, j
    finally:
        s.stop()
        cleanup(s)
        fake.close()


def case_alert_rules():
    """The shipped alerting rules pass promtool check rules, and every metric
    they use is documented."""
    rules = os.path.join(ARGS.packaging, "alerts.yml")
    p = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout, p.stdout
    documented = {n for n, _, _ in documented_metrics()}
    with open(rules) as f:
        used = set(re.findall(r"\b(certstream_[a-z0-9_]+)", f.read()))
    assert used and used <= documented, "undocumented in alerts: %s" % sorted(used - documented)
    with open(os.path.join(ARGS.packaging, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]
    used = set(re.findall(r"\b(certstream_[a-z0-9_]+)", " ".join(exprs)))
    assert len(dash["panels"]) >= 7 and used <= documented, sorted(used - documented)


def colon_hex(h):
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2)).upper()


def case_api():
    """/api/stats, /api/logs and /api/cert/{hash} against a server following
    the fake log; CORS headers for an allowed origin only."""
    fake = FakeLog("--golden", "argon=" + ARGON_URL, "--tiled", "navigli=static-ct/navigli2025h2",
                   "--size", "navigli=20", "--fault", "argon:429:entries:1:1")
    yaml = "cors:\n  allowed_origins: https://dash.example.org, http://localhost:3000\n"
    s = follow(fake, workers=2, extra_yaml=yaml)
    try:
        s.start()
        # records of the golden corpus (argon's) and navigli's first 20 entries
        with open(os.path.join(ARGS.testdata, "golden", "live_ct.json"), "rb") as f:
            golden = [r for r in json.load(f) if r["expected_full"] and json.loads(r["expected_full"])
                      ["data"]["source"]["url"] == ARGON_URL]
        assert len(golden) == 13, len(golden)
        def read():
            ls = json.loads(s.http("/api/logs")[2])["logs"]
            return len(ls) == 2 and all(l["next_index"] == l["tree_size"] > 0 and l["lag_entries"] == 0
                                        for l in ls)
        wait_for("argon and navigli read", read)
        st, h, body = s.http("/api/logs", headers={"Origin": "https://dash.example.org"})
        assert st == 200 and h.get("Content-Type") == "application/json", (st, h)
        assert h.get("Access-Control-Allow-Origin") == "https://dash.example.org" and h.get("Vary") == "Origin", h
        logs = {l["name"]: l for l in json.loads(body)["logs"]}
        assert sorted(logs) == ["Fake log argon", "Fake log navigli"], sorted(logs)
        a, n = logs["Fake log argon"], logs["Fake log navigli"]
        assert a["kind"] == "rfc6962" and n["kind"] == "static" and a["operator"] == "Operator argon", a
        assert a["url"] == fake.url("/argon/") and a["health"] == "healthy", a
        assert a["entries_published"] == 13 and a["parse_failures"] == 7 and a["lag_entries"] == 0, a
        assert a["failures"] == {"timeout": 0, "network": 0, "http_status": 0, "rate_limited": 1,
                                 "malformed": 0, "too_large": 0}, a["failures"]
        assert a["retries"] >= 1 and a["requests"] >= 3 and a["last_success"] > time.time() - 60, a
        assert n["tree_size"] == 20 and n["next_index"] == 20 and n["entries_published"] == 20, n

        st, h, body = s.http("/api/stats", headers={"Origin": "https://evil.example.com"})
        assert st == 200 and "Access-Control-Allow-Origin" not in h and h.get("Vary") == "Origin", h
        j = json.loads(body)
        assert j["totals"]["entries_published"] == 33 and j["totals"]["parse_failures"] == 7, j
        assert j["logs"] == {"total": 2, "healthy": 2, "degraded": 0, "unhealthy": 0}, j
        assert j["workers"] == {"fanout": 2, "ingest": 2} and j["uptime_secs"] >= 0, j
        # the state file fails, but for less than a minute yet
        assert j["clients"]["total"] == 0 and j["status"] == "healthy", j
        # rates over the last minute: published 33 since start, within the window
        j = wait_for("a rate window", lambda: json.loads(s.http("/api/stats")[2])["rates"] and
                     json.loads(s.http("/api/stats")[2]))
        r = j["rates"]
        assert 0 < r["window_secs"] <= 61.5, r
        # all 33 entries were published since the start: no window holds more
        assert 0 <= r["entries_published_per_sec"] * r["window_secs"] <= 33.5, r

        # every argon certificate that was streamed is found by each of its hashes
        for rec in golden:
            full = json.loads(rec["expected_full"])
            leaf = full["data"]["leaf_cert"]
            for key, form in (("sha256", leaf["sha256"]), ("sha256", leaf["sha256"].replace(":", "").lower()),
                              ("sha1", leaf["sha1"]), ("fingerprint", leaf["fingerprint"].replace(":", ""))):
                st, h, body = s.http("/api/cert/" + form)
                assert st == 200, (key, form, st, body[:200])
                got = json.loads(body)
                assert got["data"]["leaf_cert"]["sha256"] == leaf["sha256"], form
                assert got["data"]["cert_index"] == full["data"]["cert_index"], form
                # the fixture's message, but named after the fake log that served it
                assert got["data"]["leaf_cert"] == leaf and got["data"]["chain"] == full["data"]["chain"], form
                assert got["data"]["source"] == {"name": "Fake log argon", "url": fake.url("/argon/")}, \
                    got["data"]["source"]
        # a certificate never streamed; bad hashes
        st, _, body = s.http("/api/cert/" + "ab" * 32)
        assert st == 404 and json.loads(body)["error"], (st, body)
        st, _, body = s.http("/api/cert/" + "ab" * 20)
        assert st == 404, st
        for bad in ("xyz", "ab" * 31, "ab" * 33, "AB:CD", "g" * 64, "ab" * 32 + ":"):
            st, _, body = s.http("/api/cert/" + bad)
            assert st == 400 and "error" in json.loads(body), (bad, st, body)
        st, _, _ = s.http("/api/nothing")
        assert st == 404
        # CORS on /example.json too; no header for an origin not listed
        st, h, _ = s.http("/example.json", headers={"Origin": "http://localhost:3000"})
        assert st == 200 and h.get("Access-Control-Allow-Origin") == "http://localhost:3000", h
        st, h, _ = s.http("/example.json", headers={"Origin": "http://localhost:3001"})
        assert st == 200 and "Access-Control-Allow-Origin" not in h, h
        st, h, _ = s.http("/example.json")
        assert st == 200 and "Access-Control-Allow-Origin" not in h, h
    finally:
        s.stop()
        cleanup(s)
        fake.close()


def case_api_off():
    """protocols.api: false turns every /api route off (404)."""
    s = Server(ARGS.server, ARGS.testdata, env={"CERTSTREAM_API_ENABLED": "false"})
    try:
        s.start()
        for path in ("/api/stats", "/api/logs", "/api/cert/" + "ab" * 32):
            st, h, _ = s.http(path)
            assert st == 404, (path, st)
        assert s.http("/metrics")[0] == 200
    finally:
        s.stop()
        cleanup(s)


def case_prometheus_scrape():
    """A real Prometheus scrapes the server (it asks for OpenMetrics first):
    the scrape succeeds, the product's names arrive as written, and the
    shipped rules load."""
    fake = fake_run()
    s = follow(fake, workers=2)
    pdir = tempfile.mkdtemp(prefix="cs-prom-")
    prom = None
    try:
        s.start()
        pport = free_port()
        cfg = os.path.join(pdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: certstream\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % (os.path.join(ARGS.packaging, "alerts.yml"), s.port))
        plog = open(os.path.join(pdir, "prometheus.log"), "wb")
        prom = subprocess.Popen(["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % pport], stdout=plog, stderr=plog)

        def api(path):
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/%s" % (pport, path), timeout=5) as r:
                return json.loads(r.read())["data"]

        def scraped():
            t = api("targets")["activeTargets"]
            return t and t[0]["health"] == "up" and t[0]["lastError"] == "" and t[0]
        wait_for("Prometheus scraping the server", scraped, timeout=60, every=0.5)

        def query(q):
            return api("query?query=" + urllib.request.quote(q))["result"]
        wait_for("argon's and twin's messages", lambda: sum(
            float(r["value"][1]) for r in query('certstream_messages_sent{log=~"Fake log (argon|twin)"}')) == 13)
        got = {r["metric"]["__name__"] for r in query('{__name__=~"certstream_.*",job="certstream"}')}
        assert PRODUCT <= got, sorted(PRODUCT - got)
        assert "certstream_process_cpu_seconds_total" in got and "certstream_log_lag_seconds" in got, sorted(got)
        assert not any(n.endswith("_total_total") or n in ("certstream_messages_sent_total",) for n in got), sorted(got)
        # it negotiated OpenMetrics: there the product's counters are "unknown"
        # and a counter family is named without _total
        meta = wait_for("metadata", lambda: api("metadata?metric=certstream_messages_sent").get(
            "certstream_messages_sent"))
        assert meta[0]["type"] == "unknown", meta
        meta = api("metadata?metric=certstream_process_cpu_seconds")["certstream_process_cpu_seconds"]
        assert meta[0]["type"] == "counter", meta
        groups = api("rules")["groups"]
        assert len(groups) == 1 and len(groups[0]["rules"]) >= 10, groups
        assert all(r["health"] == "ok" for r in groups[0]["rules"]), groups[0]["rules"]
    finally:
        if prom:
            prom.terminate()
            prom.wait(20)
        subprocess.run(["rm", "-rf", pdir], check=True)
        s.stop()
        cleanup(s)
        fake.close()


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}



if __name__ == "__main__":
    sys.exit(server_run_cases(globals(), "docs!", "packaging!"))

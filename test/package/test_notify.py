#!/usr/bin/env python3
"""sd_notify from the real server binary, read from a datagram socket the
test owns (what systemd does for Type=notify):

  ready     READY=1 only after the port answers HTTP; never while the port
            is taken by another program (the workers cannot bind)
  reload    SIGHUP -> RELOADING=1 (with MONOTONIC_USEC) then READY=1
  status    STATUS= counts a connected WebSocket client
  stopping  SIGTERM -> STOPPING=1, exit 0
  watchdog  WATCHDOG=1 every half WATCHDOG_USEC; none while a fanout worker
            is SIGSTOPped; again after SIGCONT

usage: test_notify.py CASE --server BIN --testdata DIR
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from server import Server, free_port  # noqa: E402


class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cs-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []  # (monotonic time, {key: value})

    def recv(self, timeout):
        """Next message or None after timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
        self.msgs.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key, value=None, timeout=30, skip=("STATUS",)):
        """Waits for a message with `key` (=value). Messages with other keys
        are collected; any key not in `skip` before it fails the test."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                break
            if key in m and (value is None or m[key] == value):
                return m
            extra = [k for k in m if k not in skip and k != "MONOTONIC_USEC"]
            assert not extra, "unexpected %r while waiting for %s" % (m, key)
        raise AssertionError("no %s%s within %d s; got %r" % (key, "=" + value if value else "", timeout,
                                                              [m for _, m in self.msgs]))

    def drain(self):
        """Forgets every message so far (the last server's STOPPING=1...)."""
        while self.recv(0.2) is not None:
            pass
        self.msgs.clear()

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start(args, ns, workers=1, env=None):
    srv = Server(args.server, args.testdata, workers=workers, rate=20.0)
    srv.env["NOTIFY_SOCKET"] = ns.path
    srv.env.pop("WATCHDOG_USEC", None)
    srv.env.pop("WATCHDOG_PID", None)
    srv.env.update(env or {})
    srv.proc = subprocess.Popen(srv.args, stdout=srv.log, stderr=srv.log, env=srv.env, start_new_session=True)
    return srv


def port_answers(srv):
    try:
        return srv.http("/health", timeout=5)[0] == 200
    except OSError:
        return False


def stop_ok(srv):
    log = srv.logtext()
    rc = stop(srv)
    assert rc == 0, "server exit status %r:\n%s" % (rc, log)


def stop(srv):
    try:
        rc = srv.stop()
    finally:
        if srv.proc.poll() is None:
            os.killpg(srv.proc.pid, signal.SIGKILL)
            srv.proc.wait()
        shutil.rmtree(srv.dir, ignore_errors=True)
    return rc


def case_ready(args, ns):
    # The port is taken (no SO_REUSEPORT): workers cannot bind, no READY=1.
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    srv = Server(args.server, args.testdata, workers=1, rate=20.0)
    srv.port = blocker.getsockname()[1]
    with open(srv.config) as f:
        cfg = re.sub(r"(?m)^port: \d+$", "port: %d" % srv.port, f.read())
    with open(srv.config, "w") as f:
        f.write(cfg)
    srv.env["NOTIFY_SOCKET"] = ns.path
    srv.proc = subprocess.Popen(srv.args, stdout=srv.log, stderr=srv.log, env=srv.env, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = ns.recv(deadline - time.monotonic())
            assert m is None or "READY" not in m, "READY=1 while the port is taken:\n" + srv.logtext()
    finally:
        stop(srv)
        blocker.close()
    ns.drain()
    # A free port: READY=1 arrives, and by then the port answers.
    srv = start(args, ns)
    try:
        ns.wait_for("READY", "1")
        assert port_answers(srv), "READY=1 but /health does not answer:\n" + srv.logtext()
        assert "ready: 127.0.0.1:%d answers" % srv.port in srv.logtext()
    finally:
        stop_ok(srv)


def case_reload(args, ns):
    srv = start(args, ns)
    try:
        ns.wait_for("READY", "1")
        before = time.monotonic_ns() // 1000
        srv.proc.send_signal(signal.SIGHUP)
        m = ns.wait_for("RELOADING", "1")
        after = time.monotonic_ns() // 1000
        usec = int(m["MONOTONIC_USEC"])
        assert before <= usec <= after, (before, usec, after)
        ns.wait_for("READY", "1")
        assert "SIGHUP: configuration" in srv.logtext()
    finally:
        stop_ok(srv)


def case_status(args, ns):
    import websocket  # python3-websocket
    srv = start(args, ns)
    try:
        ns.wait_for("READY", "1")
        m = ns.wait_for("STATUS", skip=())
        assert re.fullmatch(r"0 clients, \d+/\d+ logs healthy, lag \d+ entries", m["STATUS"]), m
        ws = websocket.create_connection(srv.url("/domains-only"), timeout=10)
        try:
            ws.recv()
            m = ns.wait_for("STATUS", timeout=15, skip=())
            while not m["STATUS"].startswith("1 clients"):
                m = ns.wait_for("STATUS", timeout=15, skip=())
            assert re.fullmatch(r"1 clients, \d+/\d+ logs healthy, lag \d+ entries", m["STATUS"]), m
        finally:
            ws.close()
    finally:
        stop_ok(srv)


def case_stopping(args, ns):
    srv = start(args, ns)
    try:
        ns.wait_for("READY", "1")
        srv.proc.send_signal(signal.SIGTERM)
        ns.wait_for("STOPPING", "1", skip=("STATUS",))
        assert srv.proc.wait(20) == 0, srv.logtext()
    finally:
        stop(srv)


def watchdogs(ns, seconds):
    """WATCHDOG=1 messages in the next `seconds`."""
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = ns.recv(deadline - time.monotonic())
        if m and "WATCHDOG" in m:
            assert m["WATCHDOG"] == "1", m
            n += 1
    return n


def case_watchdog(args, ns):
    # WATCHDOG_USEC=1 s: the supervisor pings every 0.5 s.
    srv = start(args, ns, workers=2, env={"WATCHDOG_USEC": "1000000"})
    try:
        ns.wait_for("READY", "1")
        n = watchdogs(ns, 4)
        # 8 at exactly 0.5 s; a loaded machine with sanitizers may lose a few ticks.
        assert 5 <= n <= 9, "%d WATCHDOG=1 in 4 s, want about 8" % n
        victim = srv.children()[0]
        os.kill(victim, signal.SIGSTOP)
        try:
            watchdogs(ns, 1)  # one already on its way may still arrive
            n = watchdogs(ns, 3)
            assert n == 0, "%d WATCHDOG=1 while worker %d is stopped" % (n, victim)
            assert "watchdog: a child is not running" in srv.logtext()
        finally:
            os.kill(victim, signal.SIGCONT)
        n = watchdogs(ns, 3)
        assert n >= 3, "%d WATCHDOG=1 in 3 s after SIGCONT" % n
        # No WATCHDOG_USEC: no WATCHDOG=1 at all.
    finally:
        stop_ok(srv)
    ns.drain()
    srv = start(args, ns)
    try:
        ns.wait_for("READY", "1")
        assert watchdogs(ns, 2) == 0
    finally:
        stop_ok(srv)


CASES = {"ready": case_ready, "reload": case_reload, "status": case_status,
         "stopping": case_stopping, "watchdog": case_watchdog}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--server", required=True)
    ap.add_argument("--testdata", required=True)
    args = ap.parse_args()
    ns = NotifySocket()
    try:
        CASES[args.case](args, ns)
    finally:
        ns.close()
    print("ok", args.case)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs inside a booted Debian 12 container (systemd-nspawn --boot, see
test_package.py nspawn) as a oneshot unit: installs the .deb files, drives
certstream-server.service through systemctl, and writes what it saw to
/root/cstest-result.json, then powers the container off.

/root/cstest.json (written by the host) holds the fake CT log's port, the
server port and the expected domains-only messages."""
import json
import subprocess
import time
import traceback
import urllib.request

RESULT = "/root/cstest-result.json"
steps = []


def sh(*cmd, check=True):
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p.stdout.strip()


def show(prop):
    return sh("systemctl", "show", "-P", prop, "certstream-server")


def step(name, ok, detail=""):
    steps.append({"step": name, "ok": bool(ok), "detail": str(detail)[-3000:]})
    if not ok:
        raise RuntimeError("%s failed: %s" % (name, detail))


def wait(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise RuntimeError("timed out waiting for " + what)


def main():
    with open("/root/cstest.json") as f:
        cfg = json.load(f)
    port, fport = cfg["port"], cfg["fakelog_port"]
    # Installing starts the service (deb-systemd-invoke): Type=notify makes
    # systemctl wait for READY=1.
    sh("dpkg", "-i", *cfg["debs"])
    step("installed and started", show("ActiveState") == "active" and show("SubState") == "running",
         show("ActiveState") + "/" + show("SubState"))
    step("runs as certstream", sh("ps", "-o", "user=", "-p", show("MainPID")) == "certstream")
    status = wait(lambda: "clients" in show("StatusText") and show("StatusText"), 20, "StatusText")
    step("STATUS=", status.startswith("0 clients, "), status)
    step("watchdog armed", show("WatchdogUSec") == "30s", show("WatchdogUSec"))

    def following():
        with urllib.request.urlopen("http://127.0.0.1:%d/health/deep" % port, timeout=5) as r:
            deep = json.load(r)
        return any(r["url"].endswith("/argon/") and r["next_index"] == cfg["start"] for r in deep["logs"])
    wait(following, 60, "the fake log to be followed")
    import websocket
    ws = websocket.create_connection("ws://127.0.0.1:%d/domains-only" % port, timeout=30)
    urllib.request.urlopen("http://127.0.0.1:%d/control/size?log=argon&size=20" % fport, timeout=5).read()
    got = []
    while len(got) < len(cfg["want"]):
        m = ws.recv()
        if '"message_type":"heartbeat"' not in m:
            got.append(m)
    step("stream", got == cfg["want"], got)
    status = wait(lambda: show("StatusText").startswith("1 clients") and show("StatusText"), 20, "1 client in STATUS=")
    step("STATUS= counts the client", True, status)
    ws.close()

    pid = show("MainPID")
    sh("systemctl", "reload", "certstream-server")
    wait(lambda: show("ActiveState") == "active", 20, "active after reload")
    log = sh("journalctl", "-u", "certstream-server", "--no-pager", "-o", "cat")
    step("reload", show("MainPID") == pid and "SIGHUP: configuration /etc/certstream/config.yaml is valid" in log,
         log[-1500:])

    # Upgrade over the running service: the old server keeps running while
    # dpkg unpacks, then it is restarted; a client gets close 1001 and can
    # reconnect; the new server resumes from the state file.
    import struct
    ws = websocket.create_connection("ws://127.0.0.1:%d/domains-only" % port, timeout=30)
    old_pid = show("MainPID")
    cursor = [l for l in sh("journalctl", "-u", "certstream-server", "-n", "0", "--show-cursor").splitlines()
              if l.startswith("-- cursor: ")][0][len("-- cursor: "):]
    sh("dpkg", "-i", cfg["upgrade_deb"])
    code = None
    while code is None:
        op, frame = ws.recv_data_frame(True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005
    step("upgrade: client closed with 1001", code == 1001, code)
    version = sh("dpkg-query", "-W", "-f=${Version}", "certstream-server")
    step("upgrade: new version running", version == cfg["upgrade_version"] and show("ActiveState") == "active"
         and show("MainPID") not in ("0", old_pid), "%s %s pid %s" % (version, show("ActiveState"), show("MainPID")))
    ws = websocket.create_connection("ws://127.0.0.1:%d/domains-only" % port, timeout=30)
    ws.close()
    log = sh("journalctl", "-u", "certstream-server", "--after-cursor", cursor, "--no-pager", "-o", "cat")
    step("upgrade: positions carried", "resuming at index %d" % (cfg["start"] + 15) in log, log[-2000:])

    sec = sh("systemd-analyze", "security", "certstream-server", check=False)
    line = [l for l in sec.splitlines() if "Overall exposure level" in l]
    step("security (online)", line and float(line[0].split(":")[1].split()[0]) <= 2.0, line)

    sh("systemctl", "stop", "certstream-server")
    step("stopped cleanly", show("ActiveState") == "inactive" and show("ExecMainStatus") == "0",
         show("ActiveState") + " status " + show("ExecMainStatus"))
    with open("/var/lib/certstream/state.json") as f:
        state = json.load(f)
    row = [v for k, v in state["logs"].items() if k.endswith("/argon/")]
    step("state file", row and row[0]["next_index"] == cfg["start"] + 15, state)

    # A stuck worker starves the watchdog: systemd kills and restarts the service.
    sh("mkdir", "-p", "/run/systemd/system/certstream-server.service.d")
    with open("/run/systemd/system/certstream-server.service.d/watchdog.conf", "w") as f:
        f.write("[Service]\nWatchdogSec=3\n")
    sh("systemctl", "daemon-reload")
    sh("systemctl", "start", "certstream-server")
    main_pid = show("MainPID")
    worker = sh("pgrep", "-P", main_pid).split()[0]
    sh("kill", "-STOP", worker)
    wait(lambda: show("MainPID") not in ("0", main_pid) and show("ActiveState") == "active", 60,
         "the watchdog to restart the service")
    log = sh("journalctl", "-u", "certstream-server", "--no-pager", "-o", "cat")
    step("watchdog restart", "Watchdog timeout" in log and int(show("NRestarts")) >= 1, log[-1500:])
    sh("systemctl", "stop", "certstream-server")

    sh("dpkg", "--purge", "certstream-server", "certstream-loadgen")
    left = sh("sh", "-c", "ls -d /etc/certstream /var/lib/certstream /var/lib/private/certstream 2>/dev/null; "
              "getent passwd certstream; true")
    step("purge", left == "", left)


if __name__ == "__main__":
    try:
        main()
        ok = True
    except Exception:
        steps.append({"step": "exception", "ok": False, "detail": traceback.format_exc()})
        ok = False
    with open(RESULT, "w") as f:
        json.dump({"ok": ok, "steps": steps}, f, indent=1)
    subprocess.run(["systemctl", "poweroff", "--no-block"])

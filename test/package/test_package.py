#!/usr/bin/env python3
"""The Debian package, built once per test run with Debian's tools, then:

  build     packaging/build-deb.sh (dpkg-buildpackage -b -us -uc, nocheck:
            the suite is what is running) into BUILDDIR/package-dist
  contents  dpkg-deb -c of both packages: exactly the expected files, modes
            and owners; the conffile; the dependencies
  lintian   no error and no warning (overrides carry their reasons)
  config    the shipped /etc/certstream/config.yaml is the documented
            defaults (config.example.yaml) with only the state file set
  install   as root on this machine: apt installs both .deb files; user,
            state directory, conffile, man page; systemd-analyze verify and
            security (exposure <= 2.0); the installed binary run the way the
            unit runs it (ExecStart, User/Group, WorkingDirectory, UMask,
            LimitNOFILE, no capabilities, no new privileges, NOTIFY_SOCKET and
            WATCHDOG_USEC as systemd sets them) with the log list URL pointed at
            the fake CT log: READY=1, a WebSocket client gets the 9 entries the
            log grows by (exact bytes), SIGHUP -> RELOADING=1/READY=1, SIGTERM
            -> STOPPING=1, exit 0, positions in /var/lib/certstream/state.json;
            then purge and check nothing is left

Exit status 77 (ctest: skipped) when not root, or when certstream-server is
already installed on this machine by someone else (the test will not purge
an operator's installation).

usage: test_package.py CASE --source DIR --build DIR --testdata DIR
"""
import argparse
import fcntl
import glob
import grp
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyutil import free_port  # noqa: E402

SKIP = 77
ARGON_URL = "https://ct.googleapis.com/logs/us1/argon2026h2/"
ARGON0 = 1111014090
LOCK = "/run/lock/certstream-server-package-test.lock"
MARK = "/run/certstream-server-package-test.installed"


def run(cmd, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p


def debs(args):
    d = os.path.join(args.build, "package-dist")
    out = {}
    for name in ("certstream-server", "certstream-loadgen"):
        found = glob.glob(os.path.join(d, "%s_*.deb" % name))
        assert len(found) == 1, "%s: %r (did package_build run?)" % (name, found)
        out[name] = found[0]
    return out


# ---------------------------------------------------------------- build

def case_build(args):
    out = os.path.join(args.build, "package-dist")
    work = os.path.join(args.build, "package-work")
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck", CERTSTREAM_DEB_WORKDIR=work)
    p = run(["sh", os.path.join(args.source, "packaging", "build-deb.sh"), out], check=False, env=env)
    sys.stdout.write(p.stdout[-3000:])
    assert p.returncode == 0, "build-deb.sh failed:\n" + p.stdout[-6000:] + p.stderr[-6000:]
    assert not os.path.exists(work), "build-deb.sh left its work directory"
    d = debs(args)
    for deb in d.values():
        assert os.path.getsize(deb) > 1000, deb


# ---------------------------------------------------------------- contents

DIRS = """./ ./etc/ ./etc/certstream/ ./lib/ ./lib/systemd/ ./lib/systemd/system/ ./usr/ ./usr/bin/
./usr/share/ ./usr/share/certstream-server/ ./usr/share/certstream-server/sysctl.d/
./usr/share/certstream-server/monitoring/ ./usr/share/doc/
./usr/share/doc/certstream-server/ ./usr/share/doc/certstream-server/docs/ ./usr/share/man/
./usr/share/man/man1/ ./usr/share/lintian/ ./usr/share/lintian/overrides/""".split()
SERVER_FILES = {
    "./etc/certstream/config.yaml": "-rw-r--r--",
    "./lib/systemd/system/certstream-server.service": "-rw-r--r--",
    "./usr/bin/certstream-server": "-rwxr-xr-x",
    "./usr/share/certstream-server/sysctl.d/60-certstream-server.conf": "-rw-r--r--",
    "./usr/share/certstream-server/monitoring/alerts.yml": "-rw-r--r--",
    "./usr/share/certstream-server/monitoring/grafana-dashboard.json": "-rw-r--r--",
    "./usr/share/doc/certstream-server/README.md": "-rw-r--r--",
    "./usr/share/doc/certstream-server/changelog.gz": "-rw-r--r--",
    "./usr/share/doc/certstream-server/copyright": "-rw-r--r--",
    "./usr/share/man/man1/certstream-server.1.gz": "-rw-r--r--",
    "./usr/share/lintian/overrides/certstream-server": "-rw-r--r--",
}
LOADGEN = {
    "./": "drwxr-xr-x", "./usr/": "drwxr-xr-x", "./usr/bin/": "drwxr-xr-x", "./usr/share/": "drwxr-xr-x",
    "./usr/share/doc/": "drwxr-xr-x", "./usr/share/doc/certstream-loadgen/": "drwxr-xr-x",
    "./usr/share/man/": "drwxr-xr-x", "./usr/share/man/man1/": "drwxr-xr-x",
    "./usr/bin/certstream-loadgen": "-rwxr-xr-x",
    "./usr/share/doc/certstream-loadgen/changelog.gz": "-rw-r--r--",
    "./usr/share/doc/certstream-loadgen/copyright": "-rw-r--r--",
    "./usr/share/man/man1/certstream-loadgen.1.gz": "-rw-r--r--",
}


def listing(deb):
    """{path: mode} from dpkg-deb -c; every entry must be root/root."""
    out = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        f = line.split()
        assert f[1] == "root/root", line
        out[f[5]] = f[0]
    return out


def case_contents(args):
    d = debs(args)
    want = dict(SERVER_FILES)
    want.update({p: "drwxr-xr-x" for p in DIRS})
    for md in sorted(os.listdir(os.path.join(args.source, "docs"))):
        if md.endswith(".md"):  # uncompressed: the README's links keep working
            want["./usr/share/doc/certstream-server/docs/" + md] = "-rw-r--r--"
    got = listing(d["certstream-server"])
    assert got == want, "certstream-server contents differ:\n missing %r\n unexpected %r\n modes %r" % (
        sorted(set(want) - set(got)), sorted(set(got) - set(want)),
        {k: (got[k], want[k]) for k in got if k in want and got[k] != want[k]})
    got = listing(d["certstream-loadgen"])
    assert got == LOADGEN, "certstream-loadgen contents differ: %r" % sorted(set(got) ^ set(LOADGEN))
    conff = run(["dpkg-deb", "--ctrl-tarfile", d["certstream-server"]]).returncode == 0
    assert conff
    with tempfile.TemporaryDirectory(prefix="cs-pkg-") as t:
        run(["dpkg-deb", "-e", d["certstream-server"], t])
        with open(os.path.join(t, "conffiles")) as f:
            assert f.read().split() == ["/etc/certstream/config.yaml"]
        for script in ("postinst", "postrm", "prerm"):
            m = os.stat(os.path.join(t, script)).st_mode
            assert stat.S_IMODE(m) == 0o755, (script, oct(m))
    fields = run(["dpkg-deb", "-f", d["certstream-server"], "Depends", "Package", "Architecture"]).stdout
    assert re.search(r"^Depends: .*\badduser\b", fields, re.M) and "libsystemd0" in fields, fields
    assert "certstream-loadgen" not in run(["dpkg-deb", "-f", d["certstream-server"], "Depends"]).stdout
    # The unit in the package is the one in the repository.
    with tempfile.TemporaryDirectory(prefix="cs-pkg-") as t:
        run(["dpkg-deb", "-x", d["certstream-server"], t])
        with open(os.path.join(t, "lib/systemd/system/certstream-server.service")) as f, \
                open(os.path.join(args.source, "packaging/certstream-server.service")) as g:
            assert f.read() == g.read()


# ---------------------------------------------------------------- lintian

def case_lintian(args):
    d = debs(args)
    # lintian leaves scratch files (mldbm-elf-*) in its TMPDIR: give it one we remove
    scratch = tempfile.mkdtemp(prefix="cs-lintian-")
    try:
        p = run(["lintian", "--pedantic", "--display-info", "--fail-on", "error,warning", "--show-overrides",
                 d["certstream-server"], d["certstream-loadgen"]], check=False,
                env=dict(os.environ, TMPDIR=scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(p.stdout)
    bad = [l for l in p.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert p.returncode == 0 and not bad, "lintian:\n%s\n%s" % (p.stdout, p.stderr)
    # Every override is used (a stale one would hide nothing and mislead).
    overridden = [l for l in p.stdout.splitlines() if l.startswith("O: ")]
    assert len(overridden) == 1 and "package-supports-alternative-init-but-no-init.d-script" in overridden[0], overridden


# ---------------------------------------------------------------- config

def check_config(binary, path, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTREAM_")}
    e.update(env or {})
    out = run([binary, "--config", path, "--check-config"], env=e).stdout
    return [l for l in out.splitlines() if not l.startswith("#")]


def case_config(args):
    d = debs(args)
    with tempfile.TemporaryDirectory(prefix="cs-pkg-") as t:
        run(["dpkg-deb", "-x", d["certstream-server"], t])
        binary = os.path.join(t, "usr/bin/certstream-server")
        shipped = check_config(binary, os.path.join(t, "etc/certstream/config.yaml"))
        defaults = check_config(binary, os.path.join(args.source, "packaging/config.example.yaml"))
        diff = [(a, b) for a, b in zip(shipped, defaults) if a != b]
        assert len(shipped) == len(defaults) and diff == [
            ('  state_file: "/var/lib/certstream/state.json"', '  state_file: "certstream_state.json"')], diff
        # Every key of the example is there, commented: uncommenting gives the example back.
        with open(os.path.join(t, "etc/certstream/config.yaml")) as f:
            text = f.read()
        with open(os.path.join(args.source, "packaging/config.example.yaml")) as f:
            example = f.read()
        keys = re.findall(r"(?m)^([ ]*[a-z_]+):", example)
        for k in keys:
            if k.strip() in ("ct_log", "state_file"):
                assert re.search(r"(?m)^%s:" % re.escape(k), text), k
            else:
                assert re.search(r"(?m)^#%s:" % re.escape(k), text), "key %r not shown commented" % k


# ---------------------------------------------------------------- install

def installed(pkg):
    p = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "un")


def apt(*a):
    return run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"] + list(a),
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def unit_service(path):
    """[Service] settings of a unit file: {key: [values]}."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def leftovers():
    """What a purge must have removed."""
    left = [p for p in ("/etc/certstream", "/var/lib/certstream", "/usr/bin/certstream-server",
                        "/usr/bin/certstream-loadgen", "/lib/systemd/system/certstream-server.service",
                        "/usr/share/doc/certstream-server", "/usr/share/certstream-server",
                        "/usr/share/man/man1/certstream-server.1.gz") if os.path.lexists(p)]
    left += glob.glob("/etc/systemd/system/*/certstream-server.service")
    left += glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/*certstream*")
    left += glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/*/certstream*")
    left += glob.glob("/var/lib/dpkg/info/certstream-*")
    for name, get in (("user certstream", pwd.getpwnam), ("group certstream", grp.getgrnam)):
        try:
            get("certstream")
            left.append(name)
        except KeyError:
            pass
    for pkg in ("certstream-server", "certstream-loadgen"):
        if installed(pkg):
            left.append("package " + pkg)
    return left


def http(port, path, timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read()


def start_fakelog(args, scratch):
    portfile = os.path.join(scratch, "fakelog.port")
    log = open(os.path.join(scratch, "fakelog.log"), "wb")
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(args.source, "test/fakelog/fakelog.py"),
                          "--testdata", args.testdata, "--port", "0", "--port-file", portfile,
                          "--golden", "argon=" + ARGON_URL, "--size", "argon=5"],
                         stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(portfile) and open(portfile).read().strip():
            return p, int(open(portfile).read())
        assert p.poll() is None, "fakelog exited"
        time.sleep(0.05)
    raise AssertionError("fakelog did not start")


def notify_socket(scratch):
    path = os.path.join(scratch, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o777)  # the service user sends to it, as to systemd's
    return s, path


def wait_notify(sock, key, timeout=60):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        sock.settimeout(max(deadline - time.time(), 0.01))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        fields = dict(l.split("=", 1) for l in data.split("\n") if "=" in l)
        seen.append(fields)
        if fields.get(key) == "1":
            return fields
    raise AssertionError("no %s=1 in %d s; got %r" % (key, timeout, seen))


def run_like_unit(args, unit, scratch):
    """Starts ExecStart as the unit's user, with the unit's directory, umask,
    limits, capabilities and environment, plus what the test overrides."""
    svc = unit_service(unit)
    argv = shlex.split(svc["ExecStart"][0])
    user, group = svc["User"][0], svc["Group"][0]
    pw = pwd.getpwnam(user)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user, "HOME": pw.pw_dir, "SHELL": pw.pw_shell}
    for e in svc.get("Environment", []):
        for kv in shlex.split(e):
            k, v = kv.split("=", 1)
            env[k] = v
    assert not any(k.startswith("CERTSTREAM_") for k in env), "the unit overrides the config file: %r" % env
    nofile = int(svc["LimitNOFILE"][0])
    umask = int(svc["UMask"][0], 8)
    wd = svc["WorkingDirectory"][0]

    def limits():
        os.umask(umask)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        except (ValueError, OSError):
            pass  # the machine's fs.nr_open is lower: keep what we have

    assert svc["CapabilityBoundingSet"] == [""] and svc["NoNewPrivileges"] == ["yes"]
    wrapper = ["setpriv", "--reuid=" + user, "--regid=" + group, "--clear-groups", "--no-new-privs",
               "--inh-caps=-all", "--bounding-set=-all", "--"]
    return wrapper + argv, env, wd, limits, svc


def case_install(args):
    if os.geteuid() != 0:
        print("skipped: installing the package needs root (CI runs as root)")
        return SKIP
    d = debs(args)
    with open(LOCK, "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if installed("certstream-server") and not os.path.exists(MARK):
            print("skipped: certstream-server is installed on this machine and not by this test")
            return SKIP
        open(MARK, "w").close()
        try:
            return install_run_purge(args, d)
        finally:
            if installed("certstream-server") or installed("certstream-loadgen"):
                run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q", "purge",
                     "certstream-server", "certstream-loadgen"], check=False)
            if os.path.exists(MARK):
                os.unlink(MARK)


def install_run_purge(args, d):
    apt("install", "--no-install-recommends", d["certstream-server"], d["certstream-loadgen"])
    pw = pwd.getpwnam("certstream")
    assert pw.pw_uid < 1000 and pw.pw_dir == "/var/lib/certstream" and pw.pw_shell == "/usr/sbin/nologin", pw
    assert grp.getgrgid(pw.pw_gid).gr_name == "certstream"
    st = os.stat("/var/lib/certstream")
    assert st.st_uid == pw.pw_uid and stat.S_IMODE(st.st_mode) == 0o750, (st.st_uid, oct(st.st_mode))
    conff = run(["dpkg-query", "-W", "-f=${Conffiles}", "certstream-server"]).stdout
    assert "/etc/certstream/config.yaml" in conff, conff
    assert run(["/usr/bin/certstream-server", "--version"]).stdout.startswith("certstream-server ")
    if shutil.which("man"):
        assert run(["man", "-w", "certstream-server"]).stdout.strip() == "/usr/share/man/man1/certstream-server.1.gz"
        run(["man", "-w", "certstream-loadgen"])
    unit = "/lib/systemd/system/certstream-server.service"
    p = run(["systemd-analyze", "verify", unit], check=False)
    assert p.returncode == 0 and "certstream" not in p.stderr + p.stdout, "verify:\n" + p.stdout + p.stderr
    p = run(["systemd-analyze", "security", "--offline=true", unit], check=False)
    m = re.search(r"Overall exposure level for certstream-server\.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    print("systemd-analyze security: %s %s" % (m.group(1), m.group(2)))
    assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", p.stdout

    # The service user must reach the notify socket: a directory under /run
    # (0755), not under $TMPDIR, whose parents may be private (mktemp -d).
    scratch = tempfile.mkdtemp(prefix="cs-pkg-", dir="/run")
    os.chmod(scratch, 0o755)
    fake = srv = None
    try:
        fake, fport = start_fakelog(args, scratch)
        nsock, npath = notify_socket(scratch)
        cmd, env, wd, limits, svc = run_like_unit(args, unit, scratch)
        port = free_port()
        env.update({"NOTIFY_SOCKET": npath,
                    "WATCHDOG_USEC": str(int(svc["WatchdogSec"][0]) * 1000000),
                    # the test's overrides: the fake CT log and a free loopback port
                    "CERTSTREAM_CT_LOGS_URL": "http://127.0.0.1:%d/loglist.json" % fport,
                    "CERTSTREAM_HOST": "127.0.0.1", "CERTSTREAM_PORT": str(port)})
        slog = open(os.path.join(scratch, "server.log"), "wb")
        srv = subprocess.Popen(cmd, env=env, cwd=wd, preexec_fn=limits, stdout=slog, stderr=slog)
        logtext = lambda: open(os.path.join(scratch, "server.log"), errors="replace").read()[-6000:]
        try:
            wait_notify(nsock, "READY")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, logtext()))
        assert http(port, "/health")[0] == 200
        with open("/proc/%d/status" % srv.pid) as f:
            status = f.read()
        assert re.search(r"(?m)^Uid:\s+%d\s" % pwd.getpwnam("certstream").pw_uid, status), status
        assert re.search(r"(?m)^CapBnd:\s+0+$", status) and re.search(r"(?m)^NoNewPrivs:\s+1$", status), status
        # Wait until the log is followed from its tree size (argon0 + 5).
        deadline = time.time() + 60
        while True:
            deep = json.loads(http(port, "/health/deep")[1])
            rows = [r for r in deep["logs"] if r["url"].endswith("/argon/")]
            if rows and rows[0]["next_index"] == ARGON0 + 5:
                break
            assert time.time() < deadline, "log not followed: %r\n%s" % (deep, logtext())
            time.sleep(0.2)
        import websocket  # python3-websocket
        ws = websocket.create_connection("ws://127.0.0.1:%d/domains-only" % port, timeout=30)
        with open(os.path.join(args.testdata, "golden", "live_ct.json")) as f:
            golden = [r for r in json.load(f) if r["log_url"] == ARGON_URL and ARGON0 + 5 <= r["cert_index"] < ARGON0 + 20]
        want = [r["expected_domains_only"] for r in sorted(golden, key=lambda r: r["cert_index"])]
        assert len(want) == 9
        urllib.request.urlopen("http://127.0.0.1:%d/control/size?log=argon&size=20" % fport, timeout=5).read()
        got = []
        while len(got) < len(want):
            m = ws.recv()
            if '"message_type":"heartbeat"' in m:
                continue
            got.append(m)
        assert got == want, "stream differs:\n got %r\nwant %r" % (got, want)
        ws.close()
        srv.send_signal(signal.SIGHUP)
        wait_notify(nsock, "RELOADING")
        wait_notify(nsock, "READY")
        srv.send_signal(signal.SIGTERM)
        wait_notify(nsock, "STOPPING")
        assert srv.wait(30) == 0, logtext()
        with open("/var/lib/certstream/state.json") as f:
            state = json.load(f)
        row = [v for k, v in state["logs"].items() if k.endswith("/argon/")]
        assert row and row[0]["next_index"] == ARGON0 + 20, state
        st = os.stat("/var/lib/certstream/state.json")
        assert st.st_uid == pwd.getpwnam("certstream").pw_uid and stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)
        nsock.close()
    finally:
        for p in (srv, fake):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    # remove keeps the configuration, the state and the user; purge removes them.
    apt("remove", "certstream-server", "certstream-loadgen")
    assert not os.path.exists("/usr/bin/certstream-server") and not os.path.exists("/usr/bin/certstream-loadgen")
    assert os.path.exists("/etc/certstream/config.yaml") and os.path.exists("/var/lib/certstream/state.json")
    pwd.getpwnam("certstream")
    status = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "certstream-server"]).stdout.strip()
    assert status == "rc", status
    apt("purge", "certstream-server", "certstream-loadgen")
    left = leftovers()
    assert not left, "left after purge: %r" % left
    return 0


# ---------------------------------------------------------------- nspawn

def case_nspawn(args):
    """A real systemd: a Debian 12 tree (mmdebstrap from Debian's mirror) with
    the package's dependencies, booted with systemd-nspawn --boot; inside, a
    oneshot unit (nspawn_inside.py) installs the .deb files and drives
    certstream-server.service with systemctl. Slow (about a minute plus the
    download): only with CERTSTREAM_TEST_NSPAWN=1."""
    if os.environ.get("CERTSTREAM_TEST_NSPAWN") != "1":
        print("skipped: set CERTSTREAM_TEST_NSPAWN=1 to boot a Debian 12 tree with systemd-nspawn")
        return SKIP
    if os.geteuid() != 0:
        print("skipped: systemd-nspawn needs root")
        return SKIP
    for tool in ("mmdebstrap", "systemd-nspawn"):
        assert shutil.which(tool), tool + " missing: sh packaging/install-deps.sh test with CERTSTREAM_TEST_NSPAWN=1"
    d = debs(args)
    deps = set()
    for deb in d.values():
        for dep in run(["dpkg-deb", "-f", deb, "Depends"]).stdout.split(","):
            name = dep.split("|")[0].split("(")[0].strip()
            if name and not name.startswith("certstream"):
                deps.add(name)
    deps |= {"systemd", "systemd-sysv", "dbus", "procps", "python3", "python3-websocket", "ca-certificates"}
    top = tempfile.mkdtemp(prefix="cs-nspawn-", dir="/var/tmp")
    root = os.path.join(top, "root")
    fake = None
    try:
        mirror = os.environ.get("CERTSTREAM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
        p = run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(sorted(deps)), "bookworm", root, mirror],
                check=False)
        assert p.returncode == 0, "mmdebstrap:\n" + p.stderr[-4000:]
        os.makedirs(os.path.join(root, "root/debs"))
        inside = []
        for deb in d.values():
            shutil.copy(deb, os.path.join(root, "root/debs"))
            inside.append("/root/debs/" + os.path.basename(deb))
        # The "new version" for the upgrade step: the same package with a
        # higher version (dpkg runs the whole upgrade path on it).
        unpacked = os.path.join(top, "upgrade")
        run(["dpkg-deb", "-R", d["certstream-server"], unpacked])
        ctl = os.path.join(unpacked, "DEBIAN/control")
        text = open(ctl).read()
        old_version = re.search(r"(?m)^Version: (\S+)$", text).group(1)
        new_version = old_version + "+upgradetest1"
        with open(ctl, "w") as f:
            f.write(text.replace("Version: " + old_version, "Version: " + new_version))
        upgrade_deb = "certstream-server_%s_amd64.deb" % new_version
        run(["dpkg-deb", "--root-owner-group", "-b", unpacked, os.path.join(root, "root/debs/..", upgrade_deb)])
        fake, fport = start_fakelog(args, top)
        port = free_port()
        with open(os.path.join(args.testdata, "golden", "live_ct.json")) as f:
            golden = [r for r in json.load(f) if r["log_url"] == ARGON_URL and ARGON0 + 5 <= r["cert_index"] < ARGON0 + 20]
        with open(os.path.join(root, "root/cstest.json"), "w") as f:
            json.dump({"port": port, "fakelog_port": fport, "debs": inside, "start": ARGON0 + 5,
                       "upgrade_deb": "/root/" + upgrade_deb, "upgrade_version": new_version,
                       "want": [r["expected_domains_only"] for r in sorted(golden, key=lambda r: r["cert_index"])]}, f)
        shutil.copy(os.path.join(args.source, "test/package/nspawn_inside.py"), os.path.join(root, "root/"))
        # The test's overrides, as an operator's drop-in would set them: the
        # fake CT log (the container shares the host's loopback) and a free port.
        dropin = os.path.join(root, "etc/systemd/system/certstream-server.service.d")
        os.makedirs(dropin)
        with open(os.path.join(dropin, "test.conf"), "w") as f:
            f.write("[Service]\nEnvironment=CERTSTREAM_CT_LOGS_URL=http://127.0.0.1:%d/loglist.json\n"
                    "Environment=CERTSTREAM_HOST=127.0.0.1 CERTSTREAM_PORT=%d\n" % (fport, port))
        with open(os.path.join(root, "etc/systemd/system/cstest.service"), "w") as f:
            f.write("[Unit]\nDescription=certstream package test\nAfter=multi-user.target\n"
                    "[Service]\nType=oneshot\nExecStart=/usr/bin/python3 /root/nspawn_inside.py\n"
                    "StandardOutput=journal+console\n[Install]\nWantedBy=default.target\n")
        os.symlink("/etc/systemd/system/cstest.service",
                   os.path.join(root, "etc/systemd/system/multi-user.target.wants/cstest.service"))
        boot_log = os.path.join(top, "boot.log")
        with open(boot_log, "wb") as bl:
            p = subprocess.run(["timeout", "600", "systemd-nspawn", "-D", root, "--boot", "--register=no",
                                "--keep-unit", "-M", "cstest%d" % os.getpid()], stdout=bl, stderr=bl,
                               stdin=subprocess.DEVNULL)
        result_path = os.path.join(root, "root/cstest-result.json")
        log = open(boot_log, errors="replace").read()
        assert os.path.exists(result_path), "no result from inside (nspawn exit %d):\n%s" % (p.returncode, log[-6000:])
        with open(result_path) as f:
            result = json.load(f)
        for s in result["steps"]:
            print("%s %s" % ("ok  " if s["ok"] else "FAIL", s["step"]))
        assert result["ok"], json.dumps(result, indent=1) + "\n" + log[-4000:]
    finally:
        if fake and fake.poll() is None:
            fake.kill()
            fake.wait()
        shutil.rmtree(top, ignore_errors=True)
    return 0


def case_dockerfile(args):
    """The Dockerfile's steps in scratch Debian trees (dockerfile_steps.py):
    no container engine can run here. Needs Debian's mirror: only with
    CERTSTREAM_TEST_NSPAWN=1."""
    if os.environ.get("CERTSTREAM_TEST_NSPAWN") != "1":
        print("skipped: set CERTSTREAM_TEST_NSPAWN=1 to run the Dockerfile's steps in scratch roots")
        return SKIP
    if os.geteuid() != 0:
        print("skipped: needs root")
        return SKIP
    top = tempfile.mkdtemp(prefix="cs-docker-", dir="/var/tmp")
    fake = None
    try:
        fake, fport = start_fakelog(args, top)
        p = subprocess.run(["/usr/bin/python3", os.path.join(args.source, "test/package/dockerfile_steps.py"),
                            args.source, top, str(fport)], capture_output=True, text=True)
        print(p.stdout)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    finally:
        if fake and fake.poll() is None:
            fake.kill()
            fake.wait()
        shutil.rmtree(top, ignore_errors=True)
    return 0


CASES = {"dockerfile": case_dockerfile, "nspawn": case_nspawn, "build": case_build, "contents": case_contents, "lintian": case_lintian,
         "config": case_config, "install": case_install}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--testdata", required=True)
    args = ap.parse_args()
    rc = CASES[args.case](args) or 0
    if rc == 0:
        print("ok", args.case)
    sys.exit(rc)


if __name__ == "__main__":
    main()

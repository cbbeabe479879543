#!/usr/bin/env python3
"""Executes the Dockerfile without a container engine (none can run on the
build machine; the docker client alone cannot build): every stage's FROM is
a Debian 12 tree made with mmdebstrap from Debian's mirror (minbase, the
contents of the official debian:bookworm and debian:bookworm-slim images up
to documentation), COPY copies (honouring .dockerignore's simple patterns),
RUN runs under systemd-nspawn --pipe with the stage's WORKDIR, as Docker
runs `/bin/sh -c`. Then the final stage's ENTRYPOINT + CMD run as its USER
with the log list pointed at a fake CT log, and the HEALTHCHECK command must
succeed against it; SIGTERM must stop it with status 0.

usage: dockerfile_steps.py SOURCE_DIR WORK_DIR FAKELOG_PORT
Prints one line per step; exit 0 when everything passed."""
import fnmatch
import glob
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys


def instructions(path):
    lines, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            op, _, arg = cur.strip().partition(" ")
            lines.append((op.upper(), arg.strip()))
            cur = ""
    return lines


def nspawn(root, argv, chdir="/", user=None, env=None, check=True):
    # nspawn mounts a fresh tmpfs on /tmp (also over a bind of the tree's own
    # /tmp); an image's /tmp is a plain directory whose contents (COPY ...
    # /tmp/x) RUN steps must see: it lives beside the tree (host_path).
    os.makedirs(root + ".tmp", exist_ok=True)
    os.chmod(root + ".tmp", 0o1777)
    cmd = ["systemd-nspawn", "-q", "--pipe", "--register=no", "--keep-unit", "-D", root, "--chdir=" + chdir,
           "--bind=%s.tmp:/tmp" % root]
    if user:
        cmd.append("--user=" + user)
    for k, v in (env or {}).items():
        cmd.append("--setenv=%s=%s" % (k, v))
    p = subprocess.run(cmd + ["--"] + argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise SystemExit("FAIL %s: exit %d\n%s\n%s" % (argv, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def host_path(root, path):
    """Where an image path lives on the host (/tmp: beside the tree, see nspawn)."""
    if path == "/tmp" or path.startswith("/tmp/"):
        return root + ".tmp" + path[4:]
    return root + path


def ignored(rel, patterns):
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p.rstrip("*") + "/") or fnmatch.fnmatch(rel.split("/")[0], p)
               for p in patterns)


def copy_context(src, dest, patterns):
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        dirnames[:] = [d for d in dirnames
                       if not ignored(os.path.normpath(os.path.join(rel_dir, d)), patterns)]
        for fn in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, fn))
            if ignored(rel, patterns):
                continue
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), os.path.join(dest, rel), follow_symlinks=False)


def main():
    src, work, fport = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mirror = os.environ.get("CERTSTREAM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    with open(os.path.join(src, ".dockerignore")) as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    stages, root, final = {}, None, {}
    workdir, user, env = "/", None, {}
    for op, arg in instructions(os.path.join(src, "Dockerfile")):
        if op == "FROM":
            words = arg.split()
            image, name = words[0], words[2] if len(words) > 2 else "final"
            assert image in ("debian:bookworm", "debian:bookworm-slim"), image
            root = os.path.join(work, name)
            stages[name] = root
            workdir, user, env = "/", None, {}
            p = subprocess.run(["mmdebstrap", "--variant=minbase", "bookworm", root, mirror],
                               capture_output=True, text=True)
            assert p.returncode == 0, p.stderr[-3000:]
            print("ok   FROM %s (mmdebstrap minbase)" % image, flush=True)
        elif op == "WORKDIR":
            workdir = arg
            os.makedirs(host_path(root, arg), exist_ok=True)
        elif op == "COPY":
            words = arg.split()
            if words[0].startswith("--from="):
                from_root = stages[words[0].split("=", 1)[1]]
                srcs = glob.glob(host_path(from_root, words[1]))
                assert srcs, "COPY %s: nothing matches" % arg
                dest = host_path(root, words[2])
                os.makedirs(dest, exist_ok=True)
                for s in srcs:
                    shutil.copy2(s, dest)
            else:
                assert words[0] == ".", arg
                copy_context(src, host_path(root, words[1]), patterns)
            print("ok   COPY %s" % arg, flush=True)
        elif op == "RUN":
            nspawn(root, ["/bin/sh", "-c", arg], chdir=workdir, env=dict(env, DEBIAN_FRONTEND="noninteractive"))
            print("ok   RUN %s" % arg[:100], flush=True)
        elif op == "USER":
            user = arg
        elif op in ("ENTRYPOINT", "CMD"):
            final[op] = json.loads(arg)
        elif op == "HEALTHCHECK":
            final[op] = json.loads(arg[arg.index("CMD") + 3:].strip())
        elif op == "ENV":
            for kv in shlex.split(arg):
                k, _, v = kv.partition("=")
                env[k] = v
        elif op in ("VOLUME", "EXPOSE", "STOPSIGNAL"):
            final[op] = arg
        else:
            raise SystemExit("FAIL: instruction %s not handled by this test" % op)
    assert user and user != "root", "the image must not run as root"
    # Run it: entrypoint in the background, the health check until it passes, SIGTERM.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = " ".join(shlex.quote(a) for a in final["ENTRYPOINT"] + final["CMD"])
    health = " ".join(shlex.quote(a) for a in final["HEALTHCHECK"])
    script = ("%s & pid=$!; ok=1; for i in $(seq 100); do if %s; then ok=0; break; fi; sleep 0.2; done; "
              "kill -TERM $pid; wait $pid; rc=$?; echo health=$ok exit=$rc" % (server, health))
    p = nspawn(root, ["/bin/bash", "-c", script], chdir=workdir, user=user, check=False,
               env={**env, "CERTSTREAM_PORT": str(port), "CERTSTREAM_HOST": "127.0.0.1",
                    "CERTSTREAM_CT_LOGS_URL": "http://127.0.0.1:%d/loglist.json" % fport})
    assert "health=0 exit=0" in p.stdout, "FAIL run:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:])
    assert final.get("EXPOSE") == "8080" and final.get("VOLUME") == "/var/lib/certstream", final
    print("ok   ENTRYPOINT+CMD as %s: HEALTHCHECK passed, SIGTERM -> exit 0" % user)


if __name__ == "__main__":
    main()

"""Small helpers shared by the Python tests and benchmarks under test/:
free loopback ports, polling for a condition, and per-process CPU and memory
read from /proc. Standard library only."""
import os
import shutil
import signal
import socket
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, timeout, what, interval=0.05, exc=AssertionError):
    """Polls cond() until it returns a true value (returned), for at most
    `timeout` seconds; raises `exc` naming `what` otherwise."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            raise exc("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def cpu_secs(pid):
    """User + system CPU seconds of one process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mem_kb(pid):
    """{"priv": private kB, "rss": resident kB} of one process."""
    out = {"priv": 0, "rss": 0}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                out["priv"] += int(line.split()[1])
            elif line.startswith("Rss:"):
                out["rss"] = int(line.split()[1])
    return out


def stop_server_run(server, fake, workdir):
    """The end of a test run of the server (SIGTERM, then SIGKILL of its
    process group after 20 s), the fake log it followed, and its folder."""
    if server and server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    if fake:
        fake.kill()
        fake.wait()
    shutil.rmtree(workdir, ignore_errors=True)

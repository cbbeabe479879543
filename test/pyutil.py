"""Small helpers shared by the Python tests and benchmarks under test/:
free loopback ports, polling for a condition, per-process CPU and memory
read from /proc, and the ingest publish journal. Standard library only."""
import collections
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


JournalLine = collections.namedtuple("JournalLine", "kind url index pid ppid")


def read_journal(path):
    """The lines of an ingest publish journal (CERTSTREAM_TEST_PUBLISH_JOURNAL,
    ingest/ingest.c journal_write) in file order: "B" before an entry goes
    into the ring, "A" after, "S" where a log resumes at a saved position;
    pid is the writer's, ppid its supervisor's (one server, one ring). A last
    line still being written is left for the next read."""
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                k, u, i, pid, ppid = line.split()
                out.append(JournalLine(k, u, int(i), int(pid), int(ppid)))
    return out


def journal_published(path, url=None):
    """{(url, index): number of A lines}, or {index: ...} for one url."""
    c = collections.Counter()
    for j in read_journal(path):
        if j.kind == "A" and url is None:
            c[(j.url, j.index)] += 1
        elif j.kind == "A" and j.url == url:
            c[j.index] += 1
    return c


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

#!/usr/bin/python3
"""What the server does at start to keep its idle memory small, end to end
against the real server replaying the golden corpus.

usage: test_lean.py CASE --server BIN --testdata DIR
Each CASE is one CTest test; the last line is `N passed, N failed`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Server  # noqa: E402
from server import run_cases as server_run_cases  # noqa: E402

ARGS = None


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return [x.decode("utf-8", "replace") for x in f.read().split(b"\0") if x]


def rss_kb(pid, needle):
    """Resident kB of the mappings of pid whose path contains needle."""
    total, cur = 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and "-" in p[0] and len(p[1]) == 4:
                cur = len(p) > 5 and needle in p[5]
            elif cur and line.startswith("Rss:"):
                total += int(p[1])
    return total


def case_gnutls_not_initialised():
    """GnuTLS, loaded only as a dependency of libcurl's, is not initialised:
    the supervisor executes itself once with GNUTLS_NO_IMPLICIT_INIT=1 (same
    pid and name), and then holds fewer of GnuTLS's pages than a server started with
    GNUTLS_NO_IMPLICIT_INIT=0, which it leaves as it is."""
    lean = Server(ARGS.server, ARGS.testdata)
    lean.env.pop("GNUTLS_NO_IMPLICIT_INIT", None)
    full = Server(ARGS.server, ARGS.testdata, env={"GNUTLS_NO_IMPLICIT_INIT": "0"})
    with lean, full:
        env_lean, env_full = environ_of(lean.proc.pid), environ_of(full.proc.pid)
        assert [e for e in env_lean if e.startswith("GNUTLS_")] == ["GNUTLS_NO_IMPLICIT_INIT=1"], env_lean
        assert [e for e in env_full if e.startswith("GNUTLS_")] == ["GNUTLS_NO_IMPLICIT_INIT=0"], env_full
        # the pid ctest started is still the supervisor: it forked the workers;
        # and it keeps the binary's name (ps, top)
        assert lean.worker_pids() and full.worker_pids()
        name = os.path.basename(ARGS.server)[:15]
        for s in (lean, full):
            with open("/proc/%d/comm" % s.proc.pid) as f:
                assert f.read().strip() == name, name
        g_lean, g_full = rss_kb(lean.proc.pid, "libgnutls"), rss_kb(full.proc.pid, "libgnutls")
        print("libgnutls resident in the supervisor: %d kB (not initialised), %d kB (initialised)"
              % (g_lean, g_full))
        assert 0 < g_lean < g_full, (g_lean, g_full)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    sys.exit(server_run_cases(globals()))

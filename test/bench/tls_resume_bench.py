#!/usr/bin/env python3
"""tls_resume_bench.py - server CPU of a full TLS handshake against a
resumed one (session ticket), in the same run.

Starts the server (1 fanout worker, TLS with a throwaway ECDSA P-256
certificate, replaying the corpus slowly so streams cost next to nothing),
then for each repeat makes --n connections with a full handshake and --n
that resume one session (Python's ssl, TLS 1.2; each connection: handshake,
close). Records the fanout worker's CPU time (utime+stime from /proc) per
handshake. Prints medians and the resumed/full ratio as a Markdown table.

Usage: tls_resume_bench.py --server BIN --corpus FILE [--n 300] [--repeats 5]
"""
import argparse
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Server, cpu_delta, cpu_snapshot, free_port, make_cert  # noqa: E402


def handshakes(port, ctx, n, session):
    """n connections (resuming `session` when given); returns the last session."""
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        t = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        if session is not None and not t.session_reused:
            raise RuntimeError("not resumed")
        last = t.session
        t.close()
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="cs-tlsresume-")
    srv = None
    try:
        cert = make_cert(d)
        port = free_port()
        yaml = ("workers: 1\nct_log:\n  state_file: %s\n" % os.path.join(d, "state.json")
                + "tls:\n  cert_file: %s\n  key_file: %s\n" % cert)
        srv = Server(os.path.abspath(args.server), d, port, yaml, replay=os.path.abspath(args.corpus), rate=1,
                     settle=1.5).start()
        fan = srv.fanout()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        session = handshakes(port, ctx, 1, None)
        res = {"full": [], "resumed": []}
        for r in range(args.repeats):
            for mode in ("full", "resumed"):
                a = cpu_snapshot(fan)
                handshakes(port, ctx, args.n, session if mode == "resumed" else None)
                us = 1e6 * sum(cpu_delta(a, cpu_snapshot(fan)).values()) / args.n
                res[mode].append(us)
                print("repeat %d %s: %.0f us of worker CPU per handshake" % (r, mode, us), file=sys.stderr)
        full, resumed = statistics.median(res["full"]), statistics.median(res["resumed"])
        print("| TLS 1.2 handshake, 1 worker, %d per run, medians of %d | server CPU per handshake |"
              % (args.n, args.repeats))
        print("|---|---|")
        print("| full (ECDHE X25519 + ECDSA P-256) | %.0f µs |" % full)
        print("| resumed (session ticket) | %.0f µs |" % resumed)
        print("| resumed / full | %.2f |" % (resumed / full))
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

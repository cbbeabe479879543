#!/bin/sh
# soak.sh - the soak run: hours at the real rate from the growing fake log,
# thousands of steady clients plus clients that reconnect every few seconds,
# memory of every server process sampled every 30 s, gaps and drops counted;
# prints the drift per hour of each figure. Loopback only.
#   test/bench/soak.sh --server build-gcc/certstream-server --hours 1 --out soak-1h
#   test/bench/soak.sh --report soak-1h      # the figures of a run so far
# See test/bench/soak.py --help for every option, docs/benchmarks.md for results.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
exec python3 "$here/soak.py" "$@"

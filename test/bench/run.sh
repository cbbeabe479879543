#!/bin/sh
# run.sh - the load-test matrix: server (replaying the golden corpus with
# benchmark stamps) + certstream-loadgen, plus the writev ceiling; prints a
# markdown table of medians. Loopback only, bounded in time.
#   test/bench/run.sh --quick                 # ~2 min: 1k/10k clients, lite, workers 1 and 2
#   test/bench/run.sh                         # full matrix, 3 repeats (tens of minutes)
#   test/bench/run.sh --clients 1000 --streams full --workers 2 --repeats 5
# See test/bench/bench.py --help for every option, docs/benchmarks.md for results.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# Raise the descriptor limit for everything started below.
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
exec python3 "$here/bench.py" "$@"

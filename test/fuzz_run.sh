#!/bin/sh
# fuzz_run.sh BINARY SEED_DIR SECONDS [-dict=FILE]
# Runs a libFuzzer target for a bounded time on a scratch copy of its seeds
# (the repo's corpus stays small and unchanged). Exit status != 0 on any crash.
set -eu
bin=$1 seeds=$2 secs=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" corpus

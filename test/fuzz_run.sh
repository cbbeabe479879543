#!/bin/sh
# fuzz_run.sh BINARY SEED_DIR SECONDS [-dict=FILE]
# Runs a libFuzzer target for a bounded time on a scratch copy of its seeds
# (the repo's corpus stays small and unchanged). Exit status != 0 on any crash,
# and 2 when the seed folder is missing or empty (fuzzing from nothing would
# pass while testing little). The scratch folder is removed on every exit.
set -eu
bin=$1 seeds=$2 secs=$3
shift 3
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "fuzz_run.sh: seed folder $seeds is missing or empty" >&2
    exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/cs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
mkdir "$work/corpus"
cp -r "$seeds"/. "$work/corpus/"
cd "$work"
# Not exec: the trap above must run after the fuzzer exits. libFuzzer writes
# crash-*/leak-*/timeout-* reproducers into the current folder; they are
# echoed (base64) before the folder goes, so a CI log keeps them.
rc=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" corpus || rc=$?
for f in crash-* leak-* timeout-* oom-*; do
    [ -e "$f" ] || continue
    echo "fuzz_run.sh: reproducer $f (base64):" >&2
    base64 "$f" >&2
done
exit "$rc"

#!/bin/bash
# mutate.sh - the mutation check: does the suite catch deliberate bugs?
#
#   test/mutate.sh [-k] [-d SCRATCH] [NAME...]
#
# Each test/mutations/NAME.mut describes one small bug (see
# test/mutations/README.md). For each one, in a scratch copy of the tree (never
# in the tree itself): apply it, rebuild incrementally, run only the tests it
# names, and report CAUGHT (at least one of them failed) or MISSED (all
# passed). A mutation whose pattern does not match exactly once, or that does
# not compile, is reported INVALID. Before any mutation the named tests are
# run once on the unmodified copy: they must pass, or the run stops.
#
#   -d SCRATCH  scratch folder (default: build-mutate/ in the tree; kept
#               between runs so the rebuilds stay incremental)
#   -k          keep going past a failing baseline
#   NAME...     only these mutations (default: all)
# Environment: MUTATE_CMAKE_ARGS (default: clang, Debug, ASan/UBSan, as
# `make check` but without the fuzzers), JOBS (default: nproc).
# Exit status: 0 when every mutation was caught, 1 otherwise.
# Not part of `make check` (it rebuilds once per mutation); run it when tests
# change and record the result in docs/testing.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/build-mutate
keep_going=0
while getopts "d:k" o; do
    case $o in
        d) scratch=$OPTARG ;;
        k) keep_going=1 ;;
        *) sed -n 2,20p "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
cmake_args=${MUTATE_CMAKE_ARGS:--DCMAKE_BUILD_TYPE=Debug -DCERTSTREAM_SANITIZE=ON -DCERTSTREAM_FUZZ=OFF}
export CC=${CC:-clang}

muts=()
if [ $# -gt 0 ]; then
    for n in "$@"; do muts+=("$root/test/mutations/${n%.mut}.mut"); done
else
    muts=("$root"/test/mutations/*.mut)
fi

# field FILE KEY -> the value of "KEY: value" (first line with that key)
field() { sed -n "s/^$2: //p" "$1" | head -n 1; }

src=$scratch/src
bld=$scratch/build
log=$scratch/log
mkdir -p "$src" "$bld" "$log"
# Refresh the scratch copy of the tree (build folders and .git left out).
# tar keeps modification times, so unchanged files are not rebuilt.
(cd "$root" && tar cf - --exclude='./build*' --exclude=./.git --exclude=./test/clients/node_modules .) |
    (cd "$src" && tar xf -)
# Files that earlier runs mutated are rebuilt from scratch: an interrupted run
# may have left an object built from a mutated copy.
for m in "$root"/test/mutations/*.mut; do
    f=$(sed -n 's/^file: //p' "$m" | head -n 1)
    [ -n "$f" ] && [ -f "$src/$f" ] && touch "$src/$f"
done
ln -sfn "$root/test/clients/node_modules" "$src/test/clients/node_modules"
if [ ! -f "$bld/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086
    cmake -S "$src" -B "$bld" $cmake_args > "$log/cmake.txt"
fi
echo "mutate: building the scratch copy in $bld" >&2
cmake --build "$bld" -j "$jobs" > "$log/build.txt" 2>&1 || { tail -30 "$log/build.txt" >&2; exit 2; }

tests_regex() { # "a b c" -> ^(a|b|c)$
    local t; t=$(echo "$1" | tr -s ' ,' '\n' | sed '/^$/d' | paste -sd'|'); echo "^($t)\$"
}

all_tests=""
for m in "${muts[@]}"; do
    [ -f "$m" ] || { echo "mutate: no such mutation $m" >&2; exit 2; }
    all_tests="$all_tests $(field "$m" tests)"
done
all_tests=$(echo "$all_tests" | tr -s ' ,' '\n' | sed '/^$/d' | sort -u | paste -sd' ')
echo "mutate: baseline run of: $all_tests" >&2
if ! (cd "$bld" && ctest -R "$(tests_regex "$all_tests")" -j "$jobs" --timeout 300 > "$log/baseline.txt" 2>&1); then
    grep -E "Failed|Timeout|\*\*\*" "$log/baseline.txt" >&2 || true
    echo "mutate: the named tests fail without any mutation (see $log/baseline.txt)" >&2
    [ $keep_going = 1 ] || exit 2
fi

caught=0 missed=0 invalid=0
results=()
for m in "${muts[@]}"; do
    name=$(basename "$m" .mut)
    file=$(field "$m" file)
    tests=$(field "$m" tests)
    t0=$(date +%s)
    if ! python3 - "$src/$file" "$m" <<'PY'
import sys
path, mut = sys.argv[1], sys.argv[2]
find = repl = None
for line in open(mut, encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("find: ") and find is None:
        find = line[6:]
    elif line.startswith("replace: ") and repl is None:
        repl = line[9:]
    elif line == "replace:" and repl is None:
        repl = ""
text = open(path, encoding="utf-8").read()
if not find or repl is None or text.count(find) != 1:
    sys.stderr.write("%s: pattern found %d times in %s\n" % (mut, text.count(find or "\0"), path))
    sys.exit(1)
open(path, "w", encoding="utf-8").write(text.replace(find, repl))
PY
    then
        invalid=$((invalid + 1)); results+=("INVALID $name (pattern does not match exactly once in $file)")
        continue
    fi
    status=""
    if ! cmake --build "$bld" -j "$jobs" > "$log/$name.build.txt" 2>&1; then
        invalid=$((invalid + 1)); status="INVALID $name (does not compile: $log/$name.build.txt)"
    elif (cd "$bld" && ctest -R "$(tests_regex "$tests")" -j "$jobs" --timeout 300 --output-on-failure > "$log/$name.txt" 2>&1); then
        missed=$((missed + 1)); status="MISSED  $name: $tests all passed"
    else
        failed=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' "$log/$name.txt" | paste -sd' ')
        caught=$((caught + 1)); status="CAUGHT  $name by: $failed"
    fi
    # restore the file (and its timestamp, so the next build redoes only it)
    cp -p "$root/$file" "$src/$file"
    touch "$src/$file"
    results+=("$status ($(( $(date +%s) - t0 )) s)")
    echo "${results[-1]}" >&2
done
cmake --build "$bld" -j "$jobs" > "$log/restore.txt" 2>&1 || true

echo
echo "mutation check: ${#muts[@]} mutations: $caught caught, $missed missed, $invalid invalid"
printf '%s\n' "${results[@]}"
[ "$missed" = 0 ] && [ "$invalid" = 0 ]

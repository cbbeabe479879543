#!/bin/sh
# build-deb.sh [OUTDIR]
# Builds the Debian packages (certstream-server, certstream-loadgen) with
# Debian's own tools: dpkg-buildpackage -b -us -uc on a copy of the checkout
# (dpkg-buildpackage writes its results into the parent directory, so the
# copy lives in build-deb/), then moves the .deb, .buildinfo and .changes
# files into OUTDIR (default dist/). `make deb` runs this after installing
# the build dependencies (and the test suite's, npm clients included).
# DEB_BUILD_OPTIONS=nocheck skips the test suite.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/dist}
work=${CERTSTREAM_DEB_WORKDIR:-$here/build-deb}
src=$work/certstream-server

rm -rf "$work"
mkdir -p "$src" "$out"
# The files of the checkout: tracked and untracked-but-not-ignored in a git
# tree (no build directories, no node_modules), else everything but builds.
if git -C "$here" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$here" ls-files -z -co --exclude-standard | (cd "$here" && xargs -0 sh -c '
        for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh) > "$work/files"
else
    (cd "$here" && find . -path ./dist -prune -o -path "./build*" -prune -o \
        -path ./test/clients/node_modules -prune -o -type f -print) > "$work/files"
fi
tar -C "$here" -cf - -T "$work/files" | tar -C "$src" -xf -
rm -f "$work/files"
# The npm test clients (installed by `sh packaging/install-deps.sh test` or
# `deb`) are not in git; the package build's test run needs them.
if [ -d "$here/test/clients/node_modules" ]; then
    tar -C "$here" -cf - test/clients/node_modules | tar -C "$src" -xf -
fi

# nocheck is also the build profile, so the test-only build dependencies
# (<!nocheck> in debian/control) are not required.
profile=""
case " ${DEB_BUILD_OPTIONS:-} " in *" nocheck "*) profile="-Pnocheck" ;; esac
(cd "$src" && dpkg-buildpackage -b -us -uc -J"$(nproc)" $profile)

rm -f "$out"/certstream-server_*.deb "$out"/certstream-loadgen_*.deb \
      "$out"/certstream-server_*.buildinfo "$out"/certstream-server_*.changes
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
rm -rf "$work"
ls -l "$out"

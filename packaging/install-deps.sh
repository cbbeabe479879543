#!/bin/sh
# install-deps.sh build|test|deb
# Installs the Debian 12 packages the build (or the build plus the test suite)
# needs, only when some are missing, and the npm test clients for `test`.
# Shared by `make run`, `make check`, `make deb` and CI. `deb` is the build
# list plus Debian's packaging tools and what the package build's own test
# run needs; `test` includes the `deb` list (the package tests build it).
set -eu
mode=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs="build-essential cmake pkg-config libevent-dev libcurl4-openssl-dev
 libmbedtls-dev libcjson-dev libcyaml-dev libyaml-dev libwebsockets-dev ca-certificates
 libsystemd-dev libpcre2-dev libidn2-dev zlib1g-dev libnats-dev libssl-dev"
# Packaging (make deb, the Dockerfile's build stage): dpkg-buildpackage and
# debhelper; unless DEB_BUILD_OPTIONS has nocheck, also what the package
# build's own run of the test suite needs (the npm clients included).
deb_pkgs="dpkg-dev debhelper fakeroot"
deb_check_pkgs="python3 python3-websocket python3-websockets curl procps iproute2 nodejs npm nats-server"
# The package tests: lintian, systemd-analyze (systemd), setpriv
# (util-linux), the adduser the package depends on, man-db for `man -w`;
# mmdebstrap and systemd-container only for the optional boot test
# (CERTSTREAM_TEST_NSPAWN=1).
pkgtest_pkgs="lintian systemd util-linux adduser man-db"
nspawn_pkgs="mmdebstrap systemd-container"
test_pkgs="clang libclang-rt-14-dev python3 python3-websocket python3-websockets
 curl nodejs npm procps iproute2
 chromium haproxy openssl nats-server"
# promtool checks live /metrics output and packaging/alerts.yml; Debian ships
# it only in the prometheus package (no separate promtool package in Debian 12).
test_pkgs="$test_pkgs prometheus"

pkgs=$build_pkgs
deb_check=no
case " ${DEB_BUILD_OPTIONS:-} " in *" nocheck "*) ;; *) [ "$mode" = deb ] && deb_check=yes ;; esac
[ "$mode" = deb ] && pkgs="$build_pkgs $deb_pkgs"
[ "$deb_check" = yes ] && pkgs="$pkgs $deb_check_pkgs"
[ "$mode" = test ] && pkgs="$build_pkgs $test_pkgs $deb_pkgs $pkgtest_pkgs"
[ "${CERTSTREAM_TEST_NSPAWN:-0}" = 1 ] && pkgs="$pkgs $nspawn_pkgs"

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
# nodejs/npm may come from outside Debian's packages (a preinstalled node):
# only ask apt for them when no working node/npm is on PATH.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo "$missing" | xargs)

if [ -n "$missing" ]; then
  echo "install-deps: installing: $missing"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
fi

if { [ "$mode" = test ] || [ "$deb_check" = yes ]; } && [ -f "$here/test/clients/package.json" ]; then
  if [ ! -d "$here/test/clients/node_modules/ws" ] || [ ! -d "$here/test/clients/node_modules/eventsource" ]; then
    echo "install-deps: npm packages for test clients"
    (cd "$here/test/clients" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

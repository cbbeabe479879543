#!/bin/sh
# smoke.sh standin|lws-client|server - short end-to-end checks of the load
# generator and the libwebsockets client (CTest, loopback only).
#   standin     loadgen (WebSocket + SSE + lws sample) against writev-ceiling's
#               stand-in server, and writev-ceiling's ceiling mode
#   lws-client  cs-lws-client output compared with the golden corpus
#   server      loadgen against the real server's replay
# Environment: LOADGEN CEILING LWS_CLIENT CORPUS [SERVER].
set -eu
mode=$1
work=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait until something listens on 127.0.0.1:$1
    i=0
    while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "nothing listens on port $1"; return 1; }
        sleep 0.1
    done
}

# check JSONFILE PYTHON-EXPRESSION...: the loadgen's last line parses as
# JSON and every expression on `j` holds.
check() {
    f=$1
    shift
    python3 - "$f" "$@" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
if not lines:
    sys.exit("no output")
j = json.loads(lines[-1])
bad = [e for e in sys.argv[2:] if not eval(e, {"j": j})]
if bad:
    print(lines[-1])
    sys.exit("failed: " + "; ".join(bad))
print("ok:", ", ".join(sys.argv[2:]))
EOF
}

case $mode in
standin)
    port=$(free_port)
    "$CEILING" --corpus "$CORPUS" --port "$port" --rate 300 --duration 40 >"$work/standin.json" 2>"$work/standin.err" &
    pids="$pids $!"
    wait_port "$port"
    "$LOADGEN" --port "$port" -n 20 --duration 2 --warmup 0.5 --lws-sample 2 --stream lite \
        --corpus "$CORPUS" >"$work/ws.out"
    cat "$work/ws.out"
    check "$work/ws.out" 'j["established"] == 20' 'j["failed"] == 0' 'j["msgs"] > 0' 'j["gaps"] == 0' \
        'j["msgs_per_s"] > 20 * 300 * 0.5' 'j["latency"]["n"] > 0' 'j["out_of_order"] == 0' \
        'j["classes"]["normal"]["unparsed"] == 0' 'j["classes"]["lws"]["msgs"] > 0' \
        'j["classes"]["lws"]["latency"]["n"] > 0' 'j["disconnected"] == 0'
    "$LOADGEN" --port "$port" -n 10 --duration 2 --warmup 0.5 --sse --stream full \
        --stall-fraction 0.2 --slow-fraction 0.2 --slow-rate 100000 -q >"$work/sse.out"
    cat "$work/sse.out"
    check "$work/sse.out" 'j["classes"]["stalled"]["established"] == 2' 'j["classes"]["slow"]["clients"] == 2' \
        'j["classes"]["normal"]["msgs"] > 0' 'j["gaps"] == 0' 'j["latency"]["n"] > 0' \
        'j["classes"]["stalled"]["msgs"] == 0'
    "$LOADGEN" --port "$port" -n 5 --duration 1 --stream domains -q >"$work/dom.out"
    check "$work/dom.out" 'j["msgs"] > 0' 'j["latency"]["n"] == 0'
    # Gaps: a stand-in that leaves out every 5th entry must show them.
    gport=$(free_port)
    "$CEILING" --corpus "$CORPUS" --port "$gport" --rate 300 --drop-every 5 --duration 30 >/dev/null 2>&1 &
    pids="$pids $!"
    wait_port "$gport"
    "$LOADGEN" --port "$gport" -n 4 --duration 1.5 --warmup 0.2 --corpus "$CORPUS" -q >"$work/gap.out"
    check "$work/gap.out" 'j["gaps"] > 0' 'j["out_of_order"] == 0' 'j["msgs"] > 0'
    # A non-loopback target is refused (exit 2, before any connection; a
    # name is not even resolved); --allow-remote lifts that (not exercised
    # here: the tests stay on loopback), and loopback still works with it.
    for target in "--url ws://192.0.2.1:80/" "--url http://10.1.2.3:8080/sse?stream=lite" \
                  "--host example.invalid --port 80"; do
        rc=0
        # shellcheck disable=SC2086
        "$LOADGEN" $target -n 1 --duration 1 >/dev/null 2>"$work/remote.err" || rc=$?
        [ "$rc" = 2 ] || { echo "non-loopback target $target: exit $rc, want 2"; exit 1; }
        grep -q "refusing a non-loopback target" "$work/remote.err" || { cat "$work/remote.err"; exit 1; }
    done
    echo "ok: non-loopback targets refused"
    "$LOADGEN" --allow-remote --url "ws://localhost:$port/" -n 4 --duration 1 --warmup 0.2 -q >"$work/allow.out"
    check "$work/allow.out" 'j["established"] == 4' 'j["msgs"] > 0'
    # Per-client rates: every client counted once; fully fed against a rate
    # nobody reaches and one everybody does.
    "$LOADGEN" --port "$port" -n 12 --duration 1.5 --warmup 0.3 --target-rate 1000000 -q >"$work/pc.out"
    check "$work/pc.out" 'j["per_client"]["n"] == 12' 'sum(b["clients"] for b in j["per_client"]["histogram"]) == 12' \
        'j["per_client"]["min"] <= j["per_client"]["median"] <= j["per_client"]["max"]' \
        'j["per_client"]["min"] > 0' 'j["per_client"]["fully_fed"] == 0' 'j["per_client"]["target_rate"] == 1000000'
    "$LOADGEN" --port "$port" -n 12 --duration 1.5 --warmup 0.3 --target-rate 1 -q >"$work/pc1.out"
    check "$work/pc1.out" 'j["per_client"]["fully_fed"] == 12'
    # Reconnecting clients: closed and reopened over and over, none failing.
    "$LOADGEN" --url "ws://127.0.0.1:$port/" --url "http://127.0.0.1:$port/sse?stream=lite" -n 4 \
        --reconnect 0.3 --duration 2 --warmup 0 -q >"$work/rc.out"
    check "$work/rc.out" 'j["reconnects"] >= 8' 'j["failed"] == 0' 'j["disconnected"] == 0' 'j["msgs"] > 0' \
        'j["out_of_order"] == 0'
    # Ceiling mode: starts when 8 clients are in, sends for 2 s.
    cport=$(free_port)
    "$CEILING" --corpus "$CORPUS" --port "$cport" --clients 8 --duration 2 >"$work/ceil.json" 2>/dev/null &
    cpid=$!
    pids="$pids $cpid"
    wait_port "$cport"
    "$LOADGEN" --port "$cport" -n 8 --duration 2 --warmup 0.2 -q >"$work/ceil_lg.out"
    wait "$cpid"
    cat "$work/ceil.json"
    check "$work/ceil.json" 'j["msgs_per_s"] > 1000' 'j["mode"] == "ceiling"'
    check "$work/ceil_lg.out" 'j["msgs_per_s"] > 1000'
    ;;
lws-client)
    port=$(free_port)
    "$CEILING" --corpus "$CORPUS" --port "$port" --rate 200 --duration 40 >/dev/null 2>&1 &
    pids="$pids $!"
    wait_port "$port"
    "$LWS_CLIENT" --timeout 20 "ws://127.0.0.1:$port/" 5 >"$work/lite.txt"
    "$LWS_CLIENT" --timeout 20 "ws://127.0.0.1:$port/domains-only" 5 >"$work/dom.txt"
    python3 - "$CORPUS" "$work/lite.txt" "$work/dom.txt" <<'EOF'
import json, re, sys
corpus = json.load(open(sys.argv[1]))
seen = re.compile(r'"seen":[0-9.]+')
norm = lambda s: seen.sub('"seen":0', s)
lite = {norm(r["expected_lite"]) for r in corpus}
dom = {r["expected_domains_only"] for r in corpus}
ll = open(sys.argv[2]).read().splitlines()
dl = open(sys.argv[3]).read().splitlines()
assert len(ll) == 5 and len(dl) == 5, (len(ll), len(dl))
for l in ll:
    assert norm(l) in lite, "lite line is not a corpus message: " + l[:120]
    assert re.search(r'"seen":\d{10}\.\d{6},', l), "no bench stamp: " + l[-200:]
for l in dl:
    assert l in dom, "domains line is not a corpus message: " + l
print("ok: 5 lite + 5 domains messages match the corpus")
EOF
    # A refused connection exits non-zero.
    dead=$(free_port)
    if "$LWS_CLIENT" --timeout 5 "ws://127.0.0.1:$dead/" 1 >/dev/null 2>&1; then
        echo "connection to a closed port succeeded"; exit 1
    fi
    ;;
server)
    [ -x "${SERVER:-}" ] || { echo "no server binary"; exit 1; }
    port=$(free_port)
    cat >"$work/config.yaml" <<EOF
host: 127.0.0.1
port: $port
workers: 1
EOF
    cd "$work"
    "$SERVER" --config "$work/config.yaml" --replay "$CORPUS" --rate 200 --loop --bench-stamp \
        >"$work/server.log" 2>&1 &
    pids="$pids $!"
    if ! wait_port "$port"; then cat "$work/server.log"; exit 1; fi
    "$LOADGEN" --port "$port" -n 20 --duration 3 --warmup 1 --lws-sample 2 --stream full \
        --corpus "$CORPUS" >"$work/ws.out" || true
    cat "$work/ws.out"
    check "$work/ws.out" 'j["established"] == 20' 'j["msgs"] > 0' 'j["latency"]["n"] > 0' 'j["gaps"] == 0' \
        'j["out_of_order"] == 0' 'j["classes"]["lws"]["msgs"] > 0'
    # Clients that stop reading must not slow the others down.
    "$LOADGEN" --port "$port" -n 10 --duration 2 --warmup 0.5 --stall-fraction 0.3 -q >"$work/stall.out" || true
    check "$work/stall.out" 'j["classes"]["stalled"]["established"] == 3' \
        'j["classes"]["normal"]["disconnected"] == 0' 'j["classes"]["normal"]["msgs_per_s"] > 7 * 200 * 0.8'
    "$LOADGEN" --port "$port" -n 10 --duration 2 --warmup 1 --sse --stream lite --corpus "$CORPUS" -q \
        >"$work/sse.out" || true
    cat "$work/sse.out"
    check "$work/sse.out" 'j["established"] == 10' 'j["msgs"] > 0' 'j["gaps"] == 0' 'j["sse_id_back"] == 0'
    # Without --bench-stamp: latency from the millisecond "seen" every
    # certstream server writes.
    port2=$(free_port)
    sed "s/^port: .*/port: $port2/" "$work/config.yaml" >"$work/config2.yaml"
    "$SERVER" --config "$work/config2.yaml" --replay "$CORPUS" --rate 200 --loop >"$work/server2.log" 2>&1 &
    pids="$pids $!"
    if ! wait_port "$port2"; then cat "$work/server2.log"; exit 1; fi
    "$LOADGEN" --port "$port2" -n 5 --duration 2 --warmup 1 -q >"$work/ms.out" || true
    cat "$work/ms.out"
    check "$work/ms.out" 'j["latency"]["n"] > 0' 'j["seen_ms"] == j["latency"]["n"]' \
        'j["classes"]["normal"]["no_stamp"] == 0' 'j["latency"]["p50_ms"] < 5000'
    ;;
*)
    echo "usage: smoke.sh standin|lws-client|server"; exit 2 ;;
esac

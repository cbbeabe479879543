#!/bin/sh
# fresh_clone.sh [REF] [MAKE_TARGET]
# Proves the checkout stands alone: clones this repository (REF, default
# HEAD) into an empty temporary directory with nothing beside it (no
# ../shared, no test data outside the clone), runs `make check` there (or
# MAKE_TARGET), then the README's replay demo exactly as the README writes it
# (`make build` first), and checks a WebSocket client gets a certificate from
# it. Slow (a full build and test run): run by hand, not by ctest.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
ref=$(git -C "$src" rev-parse "${1:-HEAD}")
target=${2:-check}
top=$(mktemp -d /var/tmp/cs-fresh-XXXXXX)
demo_pid=""
cleanup() {
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
    rm -rf "$top"
}
trap cleanup EXIT INT TERM
git clone -q --no-local "$src" "$top/certstream-server"
cd "$top/certstream-server"
git checkout -q "$ref"
[ "$(ls -A "$top")" = certstream-server ] || { echo "fresh_clone: something beside the clone"; exit 1; }
echo "fresh_clone: $ref in $top/certstream-server (alone in its directory)"
make "$target"

# The README's demo, the command as the README gives it.
demo=$(grep -E '^\./build/certstream-server --replay ' README.md | head -1)
[ -n "$demo" ] || { echo "fresh_clone: no replay demo line in README.md"; exit 1; }
make build
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "fresh_clone: demo: $demo --port $port"
sh -c "exec $demo --port $port --host 127.0.0.1" > "$top/demo.log" 2>&1 &
demo_pid=$!
/usr/bin/python3 - "$port" <<'PY'
import json, sys, time, websocket
port = int(sys.argv[1])
deadline = time.time() + 30
while True:
    try:
        ws = websocket.create_connection("ws://127.0.0.1:%d/" % port, timeout=10)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
while True:
    m = json.loads(ws.recv())
    if m["message_type"] == "certificate_update":
        break
print("fresh_clone: demo streamed a certificate for", m["data"]["leaf_cert"]["all_domains"][:2])
PY
kill -TERM "$demo_pid"
wait "$demo_pid"
demo_pid=""
echo "fresh_clone: OK"

#!/bin/sh
# The main job on the built-in example: the surviving node of a 3-node
# cluster (spec/fixtures/survivor-2.9.10.tar.gz, written by nats-server
# 2.9.10) is unpacked into a temp dir, inspected, prepared, and served by a
# standalone nats-server on 127.0.0.1, which is asked what it serves.
# usage: scripts/demo.sh build/js-recover build/jscheck
set -eu
bin=$(realpath "$1")
check=$(realpath "$2")
cd "$(dirname "$0")/.."
dir=$(mktemp -d -t js-recover-demo.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
tar xzf spec/fixtures/survivor-2.9.10.tar.gz -C "$dir"

echo "== js-recover inspect $dir"
"$bin" inspect "$dir"
echo
echo "== js-recover prepare $dir"
"$bin" prepare "$dir"
echo
echo "== nats-server -c $dir/recovery.conf  (on a free port, for the demo)"
nats-server -c "$dir/recovery.conf" -a 127.0.0.1 -p -1 -l "$dir/server.log" &
pid=$!
i=0
until grep -q "Server is ready" "$dir/server.log" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then echo "server did not start:"; cat "$dir/server.log"; exit 1; fi
    sleep 0.1
done
port=$(sed -n 's/.*Listening for client connections on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/server.log" | head -n 1)
grep -E "Restored|Recovering|WRN|ERR" "$dir/server.log" || true
echo
echo "== what the standalone server serves (libnats client)"
"$check" --url "nats://127.0.0.1:$port" | "$bin" run scripts/served.lua
echo
echo "demo done: every stream above, with its consumers, came back from the survivor's disk"

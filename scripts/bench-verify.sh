#!/bin/sh
# verify's speed and memory against reading the same bytes, and against
# nats-server 2.9.10 rebuilding its state from the same blocks.
# usage: scripts/bench-verify.sh build/js-recover [MiB=2048]
# All figures come from one run on one tree, with a warm page cache.
set -eu
bin=$(realpath "$1")
mib=${2:-2048}
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/js-recover-bench-verify.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
now() { date +%s.%N; }
rate() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / t / 1048576 }'; }

echo "generating ${mib} MiB of blocks in $dir ..."
JSR_BUILD=$(dirname "$bin") lua5.4 scripts/gen-blocks.lua "$dir" "$mib" 8 8
bytes=$(find "$dir/jetstream" -name '*.blk' -printf '%s\n' | awk '{ s += $1 } END { print s }')
blocks=$(find "$dir/jetstream" -name '*.blk' | wc -l)

read_all() { find "$dir/jetstream" -name '*.blk' -print0 | xargs -0 -n 64 sh -c 'for f; do dd if="$f" of=/dev/null bs=1M status=none; done' sh; }
read_all   # warm the page cache
t=$(now); read_all; t_dd=$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')
"$bin" verify "$dir" --json >/dev/null # warm
t=$(now)
/usr/bin/time -f '%M' -o "$dir/rss" "$bin" verify "$dir" --json >"$dir/verify.json"
t_v=$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')
rss=$(cat "$dir/rss")
live=$(sed -n 's/^      "live": \([0-9]*\),$/\1/p' "$dir/verify.json" | awk '{ s += $1 } END { print s }')

# the server rebuilds every stream from its blocks (there are no index files)
"$bin" prepare "$dir" >/dev/null
t=$(now)
nats-server -c "$dir/recovery.conf" -a 127.0.0.1 -p -1 -l "$dir/server.log" &
pid=$!
until grep -q "Server is ready" "$dir/server.log" 2>/dev/null; do sleep 0.01; done
t_srv=$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')
restored=$(grep -o 'Restored [0-9,]* messages' "$dir/server.log" | tr -d , | awk '{ s += $2 } END { print s }')
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

echo
echo "store: $(rate "$bytes" 1) MiB in $blocks blocks, 8 streams; $live live messages"
printf '%-44s %8s s %8s MiB/s\n' "dd bs=1M of every block (warm)" "$t_dd" "$(rate "$bytes" "$t_dd")"
printf '%-44s %8s s %8s MiB/s\n' "js-recover verify (one core, warm)" "$t_v" "$(rate "$bytes" "$t_v")"
printf '%-44s %8s s %8s MiB/s\n' "nats-server 2.9.10 start, rebuilding state" "$t_srv" "$(rate "$bytes" "$t_srv")"
echo "verify / dd:     $(awk -v a="$t_dd" -v b="$t_v" 'BEGIN { printf "%.0f%%", 100 * a / b }')   (target >= 80%)"
echo "verify vs server: $(awk -v a="$t_srv" -v b="$t_v" 'BEGIN { printf "%.1fx faster", a / b }')   (target >= 2x)"
echo "verify peak RSS: $((rss / 1024)) MiB   (target < 64 MiB)"
if [ "$restored" != "$live" ]; then
    echo "MISMATCH: the server restored $restored messages, verify counted $live"
    exit 1
fi
echo "the server restored the same $restored messages verify counted: it loads these blocks"

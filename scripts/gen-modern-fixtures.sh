#!/bin/sh
# Writes a small store with a real nats-server 2.10+ (the fixtures in
# spec/fixtures/modern-<version>.tar.gz; spec/fixtures/README.md says what
# is in them), and the server's own account of each stream next to it.
#
#   scripts/gen-modern-fixtures.sh VERSION OUT.tar.gz
#
# The server is ~/.cache/js-recover/servers/VERSION/nats-server (make
# servers), the nats CLI the pinned one; it listens on 127.0.0.1 on a port
# the kernel picks, and is stopped by its PID (SIGTERM: it writes
# msgs/index.db as it stops).
#
# Streams: PLAIN (3 subjects, 32 KB blocks, messages deleted in the oldest
# block and in the newest; a durable consumer WORK that acked 10), CMP (the same with compression: s2), PURGED
# (purged), and the KV bucket CFG (keys put, one updated, one deleted).
# state.json: `nats stream info --json` state of each, taken before the
# server stopped.
set -eu
ver=${1:?usage: gen-modern-fixtures.sh VERSION OUT.tar.gz}
out=${2:?usage: gen-modern-fixtures.sh VERSION OUT.tar.gz}
cache=${JSR_SERVERS:-${XDG_CACHE_HOME:-$HOME/.cache}/js-recover/servers}
srv=$cache/$ver/nats-server
nats=$cache/natscli-$(sed -n 's/^JSR_NATSCLI_VERSION="\(.*\)"/\1/p' scripts/servers.env)/nats
[ -x "$srv" ] || { echo "gen-modern-fixtures: no $srv (make servers)" >&2; exit 2; }
[ -x "$nats" ] || { echo "gen-modern-fixtures: no $nats (make servers)" >&2; exit 2; }

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || :; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir "$work/store"
"$srv" -js -sd "$work/store" -a 127.0.0.1 -p -1 -l "$work/log" </dev/null >/dev/null 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/.*Listening for client connections on \(127\.0\.0\.1:[0-9]*\).*/nats:\/\/\1/p' "$work/log" 2>/dev/null | head -1)
  [ -n "$url" ] && grep -q 'Server is ready' "$work/log" && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/log" >&2; echo "gen-modern-fixtures: server did not start" >&2; exit 1; }

n() { "$nats" --server "$url" "$@" >/dev/null; }
body="message {{Count}} $(printf 'lorem ipsum %.0s' $(seq 12))"
# max-bytes this small makes the server use its smallest blocks (32,000 bytes)
n stream add PLAIN --subjects 'plain.>' --storage file --max-bytes 120000 --defaults
n stream add CMP --subjects 'cmp.>' --storage file --max-bytes 120000 --compression s2 --defaults
for s in 1 2 3; do
  n pub "plain.$s" --count 150 "$body" 2>/dev/null
  n pub "cmp.$s" --count 150 "$body" 2>/dev/null
done
# deletes in the oldest block and in the newest, as a client's plain
# delete (no_erase: the record stays, index.db's delete map has it) and
# one secure erase (the record marked deleted in place; not in CMP: 2.10.27
# writes an erased record at its uncompressed offset into the compressed
# file, which breaks the block for the server too)
for q in 5 6 200 449; do
  for s in PLAIN CMP; do n req "\$JS.API.STREAM.MSG.DELETE.$s" "{\"seq\":$q,\"no_erase\":true}" 2>/dev/null; done
done
n stream rmm PLAIN 7 -f
# a durable pull consumer that has acknowledged the first 10 messages
n consumer add PLAIN WORK --pull --ack explicit --deliver all --defaults
n consumer next PLAIN WORK --count 10 --ack 2>/dev/null
n stream add PURGED --subjects 'purged.>' --storage file --defaults
n pub purged.x --count 20 "$body" 2>/dev/null
n stream purge PURGED -f
n kv add CFG
for k in a b c d; do n kv put CFG "$k" "value of $k"; done
n kv put CFG b "b again"
n kv del CFG c -f
{
  printf '{'
  sep=
  for s in PLAIN CMP PURGED KV_CFG; do
    printf '%s"%s":' "$sep" "$s"
    "$nats" --server "$url" stream info "$s" --json | tr -d '\n' | sed 's/.*"state": *\({[^}]*}\).*/\1/'
    sep=,
  done
  printf '}\n'
} >"$work/store/state.json"
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
pid=
"$srv" --version >"$work/store/server-version.txt"
tar -C "$work/store" -czf "$out" --owner=0 --group=0 --numeric-owner .
ls -l "$out"

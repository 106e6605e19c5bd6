#!/usr/bin/env bash
# `make bench`: how long prepare takes next to the copy an operator makes
# first, on a generated store at cluster scale.
#
# usage: scripts/bench.sh <path/to/js-recover>
#
# For each store size (blocks of BENCH_BLOCK_KB, then BENCH_BIG_FACTOR times
# bigger) it generates a store (scripts/gen-bench-store.lua), copies it once
# to warm the caches (that copy is not used), then measures, in this one run
# and on the same tree:
#   cp -a store copy        wall time (the copy the runbook makes first)
#   sync                    the copy's writeback, timed on its own: prepare
#                           makes its changes durable with syncfs(2), which
#                           would otherwise also pay for the copy's dirty pages
#   js-recover prepare copy wall time and peak RSS
# and checks that prepare did its job on the copy.  Page caches cannot be
# dropped here (no root needed, none assumed): every measured copy is fresh,
# and nothing is deleted between the warm-up and the measurements.
#
# Knobs (environment):
#   BENCH_STREAMS=10000 BENCH_ACCOUNTS=10 BENCH_CONSUMERS=2 (per stream)
#   BENCH_BLOCK_KB=64      message block size per stream
#   BENCH_MSG_BYTES=1024   payload bytes per message
#   BENCH_BIG_FACTOR=8     second store with blocks this many times bigger (0: skip)
#   BENCH_TARGET_PCT=5     prepare must stay under this share of cp -a
#   BENCH_WARM=1           warm-up copy before the measured one (0: skip)
#   BENCH_DIRTY=0          1: also run prepare straight after a copy, without
#                          the sync between (prepare's syncfs absorbs the copy's
#                          writeback): shows what an operator sees
#   BENCH_PHASES=0         1: also time prepare's stages, on one more copy (wraps
#                          the Lua library's functions via `js-recover run`)
#   BENCH_STRICT=0         1: exit 1 when the target is missed
#   BENCH_FIXTURE=../shared/fixtures/survivor-2.9.10.tar.gz   small real files
#   TMPDIR                 where the stores go (needs ~3x the big store free)
set -euo pipefail

BIN=${1:?usage: scripts/bench.sh <path/to/js-recover>}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
BUILD_DIR=$(dirname "$BIN")
LUA=${LUA:-lua5.4}
STREAMS=${BENCH_STREAMS:-10000}
ACCOUNTS=${BENCH_ACCOUNTS:-10}
CONSUMERS=${BENCH_CONSUMERS:-2}
BLOCK_KB=${BENCH_BLOCK_KB:-64}
MSG_BYTES=${BENCH_MSG_BYTES:-1024}
BIG_FACTOR=${BENCH_BIG_FACTOR:-8}
TARGET_PCT=${BENCH_TARGET_PCT:-5}
WARM=${BENCH_WARM:-1}
DIRTY=${BENCH_DIRTY:-0}
PHASES=${BENCH_PHASES:-0}
STRICT=${BENCH_STRICT:-0}
FIXTURE=${BENCH_FIXTURE:-$ROOT/../shared/fixtures/survivor-2.9.10.tar.gz}

die() { echo "bench: $*" >&2; exit 2; }
[ -x "$BIN" ] || die "$BIN: not an executable (run make first)"
[ -f "$BUILD_DIR/jsr.so" ] || die "$BUILD_DIR/jsr.so missing (make builds it)"
command -v "$LUA" >/dev/null || die "$LUA not found (Debian package lua5.4)"
[ -e "$FIXTURE" ] || die "$FIXTURE: fixture not found (set BENCH_FIXTURE)"

TIMECMD=
if [ -x /usr/bin/time ] && /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null; then
    TIMECMD=/usr/bin/time
else
    echo "bench: /usr/bin/time (GNU) not found: peak RSS is sampled from /proc instead" \
         "(a lower bound; install the Debian package 'time' for the exact figure)" >&2
fi

# ------------------------------------------------------------------ helpers
if [ -n "${EPOCHREALTIME:-}" ]; then
    now() { echo "${EPOCHREALTIME/,/.}"; }
else
    now() { date +%s.%N; }
fi
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", 100 * a / b; else print "inf" }'; }
verdict() { awk -v p="$1" -v t="$TARGET_PCT" 'BEGIN { print (p + 0 < t + 0) ? "PASS" : "MISS" }'; }
human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1
    while (b >= 1024 && i < 5) { b /= 1024; i++ } printf "%.1f %s", b, u[i] }'; }

# Runs "$@", sets T (seconds).
timed() {
    local s e
    s=$(now)
    "$@"
    e=$(now)
    T=$(elapsed "$s" "$e")
}

# Runs prepare on $1; sets PREP_T (s), PREP_RSS (KiB), PREP_RC.  Output to $2.
run_prepare() {
    local copy=$1 log=$2 s e
    PREP_RC=0
    s=$(now)
    if [ -n "$TIMECMD" ]; then
        "$TIMECMD" -f '%e %M' -o "$work/time.out" "$BIN" prepare "$copy" >"$log" 2>&1 \
            || PREP_RC=$?
        e=$(now)
        PREP_RSS=$(awk 'END { print $2 }' "$work/time.out")
    else
        "$BIN" prepare "$copy" >"$log" 2>&1 &
        local pid=$! hwm=0 v
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
            sleep 0.02
        done
        wait "$pid" || PREP_RC=$?
        e=$(now)
        PREP_RSS="~$hwm"
    fi
    PREP_T=$(elapsed "$s" "$e")
}

FAILS=0
check() { # description, command...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "    ok   $what"
    else
        echo "    FAIL $what"
        FAILS=$((FAILS + 1))
    fi
}

meta_sum_ok() { # dir key
    "$LUA" - "$1" "$2" "$BUILD_DIR" <<'EOF'
package.cpath = arg[3] .. "/?.so;" .. package.cpath
local jsr = require "jsr"
local function rd(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
os.exit(jsr.metasum(arg[2], rd(arg[1] .. "/meta.inf")) == rd(arg[1] .. "/meta.sum") and 0 or 1)
EOF
}
count_r3() { # copy: stream/consumer meta.inf still at num_replicas 3
    { find "$1/jetstream" -path '*/streams/*' -name meta.inf -print0 |
        xargs -0 grep -l '"num_replicas":3[,}]' 2>/dev/null || true; } | wc -l
}

verify() { # store copy rc log
    local store=$1 copy=$2 rc=$3 log=$4
    local s="$copy/jetstream/ACC0/streams/S0" w="$copy/jetstream/ACC0/streams/S1"
    echo "  checks on the prepared copy:"
    check "prepare exited 0 (was $rc)" test "$rc" -eq 0
    local applied
    applied=$(grep -m1 -o '[0-9]* changes applied' "$log" || echo 'no "changes applied" line')
    check "prepare says: $applied" grep -q 'changes applied' "$log"
    check "jetstream/\$SYS is gone" test ! -e "$copy/jetstream/\$SYS"
    check "\$SYS/_js_ kept under .js-recover/removed/" \
        sh -c 'ls -d "$1"/.js-recover/removed/*/*SYS*/_js_/_meta_' _ "$copy"
    check "recovery.conf written" test -s "$copy/recovery.conf"
    check "S0 (interest) meta.inf: num_replicas 1, retention limits" \
        sh -c 'grep -q "\"num_replicas\":1," "$1/meta.inf" && grep -q "\"retention\":\"limits\"" "$1/meta.inf"' _ "$s"
    check "S1 (workqueue) meta.inf: retention limits" grep -q '"retention":"limits"' "$w/meta.inf"
    check "S0 meta.sum matches its new meta.inf" meta_sum_ok "$s" S0
    check "S0/C2 (was R3) meta.inf: num_replicas 0" \
        sh -c 'grep -q "\"num_replicas\":0}" "$1/meta.inf"' _ "$s/obs/C2"
    check "S0/C2 meta.sum matches" meta_sum_ok "$s/obs/C2" S0/C2
    local left
    left=$(count_r3 "$copy")
    check "no stream or consumer meta.inf left at num_replicas 3 ($left)" test "$left" -eq 0
    check "S0 message block untouched" cmp -s "$store/jetstream/ACC0/streams/S0/msgs/1.blk" \
        "$s/msgs/1.blk"
}

# ------------------------------------------------------------------ work dir
work=$(mktemp -d "${TMPDIR:-/tmp}/jsr-bench.XXXXXX")
cleanup() {
    local rc=$?
    echo "bench: removing $work" >&2
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "bench: js-recover $("$BIN" --version 2>/dev/null | head -1 || true) ($BIN)"
echo "bench: stores under $work (removed at the end)"
echo "bench: $STREAMS streams in $ACCOUNTS accounts, $CONSUMERS consumers each;" \
     "blocks of $BLOCK_KB KiB ($MSG_BYTES-byte messages)$([ "$BIG_FACTOR" -gt 0 ] 2>/dev/null && echo ", then x$BIG_FACTOR");" \
     "target: prepare < $TARGET_PCT% of cp -a"

declare -A R # results: R[key,size]
SIZES=()

bench_size() { # label block_kb
    local label=$1 kb=$2 store="$work/store-$1"
    SIZES+=("$label")
    echo
    echo "== store $label: $kb KiB message blocks"
    local s e
    s=$(now)
    "$LUA" "$ROOT/scripts/gen-bench-store.lua" "$store" --streams "$STREAMS" \
        --accounts "$ACCOUNTS" --consumers "$CONSUMERS" --block-kb "$kb" \
        --msg-bytes "$MSG_BYTES" --fixture "$FIXTURE" --build "$BUILD_DIR" | sed 's/^/  /'
    e=$(now)
    R[gen,$label]=$(elapsed "$s" "$e")
    timed sync
    R[gensync,$label]=$T
    echo "  generated in ${R[gen,$label]} s (+ ${R[gensync,$label]} s sync)"
    R[files,$label]=$(find "$store" -type f | wc -l)
    R[dirs,$label]=$(find "$store" -type d | wc -l)
    R[bytes,$label]=$(du -sb "$store" | cut -f1)
    R[disk,$label]=$(($(du -sk "$store" | cut -f1) * 1024))
    R[blk,$label]=$(find "$store/jetstream" -path '*/streams/*/msgs/*.blk' -printf '%s\n' |
        awk '{ s += $1 } END { print s + 0 }')
    echo "  store: ${R[files,$label]} files, ${R[dirs,$label]} directories," \
         "$(human "${R[bytes,$label]}") of file bytes" \
         "($(human "${R[blk,$label]}") in stream message blocks), $(human "${R[disk,$label]}") on disk"

    # room for the warm-up copy, the measured one and (BENCH_DIRTY,
    # BENCH_PHASES) one more each, all kept until this size is done
    local need=$((R[disk,$label] * (2 + (DIRTY == 1) + (PHASES == 1)) + R[disk,$label] / 4))
    local avail
    avail=$(($(df -Pk "$work" | awk 'NR == 2 { print $4 }') * 1024))
    if [ "$avail" -lt "$need" ]; then
        die "only $(human "$avail") free under $work, need $(human "$need")" \
            "(set TMPDIR elsewhere or lower BENCH_BIG_FACTOR)"
    fi

    # Nothing is deleted between here and the measurements: ext4 is slow to
    # allocate inodes next to ones freed in the last minutes (seen as cp -a
    # times 2-3x longer right after an rm -rf of a copy), so every copy of
    # this size stays until the end of it.
    if [ "$WARM" = 1 ]; then
        timed cp -a "$store" "$work/warm-$label"
        R[warm,$label]=$T
        sync
        echo "  warm-up cp -a: $T s (kept aside, not used)"
    fi

    local copy="$work/copy-$label"
    timed cp -a "$store" "$copy"
    R[cp,$label]=$T
    echo "  cp -a store copy: ${R[cp,$label]} s"
    timed sync
    R[sync,$label]=$T
    echo "  sync (the copy's writeback): ${R[sync,$label]} s"
    run_prepare "$copy" "$work/prepare-$label.log"
    R[prep,$label]=$PREP_T
    R[rss,$label]=$PREP_RSS
    R[rc,$label]=$PREP_RC
    echo "  js-recover prepare copy: ${R[prep,$label]} s, peak RSS ${R[rss,$label]} KiB" \
         "(exit $PREP_RC; output in prepare-$label.log)"
    verify "$store" "$copy" "$PREP_RC" "$work/prepare-$label.log"
    if [ "$PREP_RC" -ne 0 ]; then
        echo "  prepare's last lines:"
        tail -n 15 "$work/prepare-$label.log" | sed 's/^/    /'
    fi

    if [ "$DIRTY" = 1 ]; then
        timed cp -a "$store" "$copy-dirty"
        R[dcp,$label]=$T
        run_prepare "$copy-dirty" "$work/prepare-$label-dirty.log"
        R[dprep,$label]=$PREP_T
        echo "  without the sync: cp -a ${R[dcp,$label]} s, then prepare $PREP_T s (exit $PREP_RC)"
        [ "$PREP_RC" -eq 0 ] || FAILS=$((FAILS + 1))
    fi
    if [ "$PHASES" = 1 ]; then
        cp -a "$store" "$copy-phases"
        sync
        echo "  where prepare's time goes (a second, instrumented run on a fresh copy):"
        "$BIN" run "$work/phases.lua" "$copy-phases" 2>&1 >/dev/null | sed 's/^/    /' ||
            echo "    (the instrumented run failed)"
    fi
    echo "  removing this size's store and copies ..."
    timed rm -rf "$store" "$copy" "$copy-dirty" "$copy-phases" "$work/warm-$label"
    sync
    echo "  removed in $T s"
}

if [ "$PHASES" = 1 ]; then
    # Times prepare's stages by wrapping the library's functions; modules
    # this version lacks are skipped.  For developers: names change.
    cat >"$work/phases.lua" <<'EOF'
local function wall()
  local p = io.popen("date +%s.%N")
  local s = tonumber(p:read("l"))
  p:close()
  return s
end
local rows, acc = {}, {}
local function wrap(modname, fname, label, per_call)
  local ok, mod = pcall(require, modname)
  if not ok or type(mod) ~= "table" or type(mod[fname]) ~= "function" then return end
  local f = mod[fname]
  mod[fname] = function(...)
    local a = acc[label]
    if not a then -- rows in the order the stages start
      a = { label = label, n = 0, cpu = 0, wall = 0, per_call = per_call }
      acc[label] = a
      rows[#rows + 1] = a
    end
    local w = per_call and 0 or wall()
    local c = os.clock()
    local r = table.pack(f(...))
    a.n, a.cpu = a.n + 1, a.cpu + os.clock() - c
    if not per_call then a.wall = a.wall + wall() - w end
    return table.unpack(r, 1, r.n)
  end
end
wrap("jsr.model", "scan", "model.scan (walk, read meta files)")
wrap("jsr.lost", "analyze", "lost.analyze (what the dead nodes held)")
wrap("jsr.donework", "find", "  donework.find (work-queue blocks)", true)
wrap("jsr.prepare", "plan", "prepare.plan")
wrap("jsr.salvage", "analyze", "  salvage.analyze (Raft logs vs store)")
wrap("jsr.prepare", "apply", "prepare.apply (stage, journal, commit)")
wrap("jsr.prepare", "standalone_config", "  prepare.standalone_config (credentials, recovery.conf)")
wrap("jsr.prepare", "print_plan", "print_plan")
wrap("jsr.raft", "meta_state", "  raft.meta_state (meta snapshot)", true)
wrap("jsr.raft", "log", "  raft.log (group logs)", true)
wrap("jsr.raft", "latest_snapshot", "  raft.latest_snapshot", true)
wrap("jsr.blocks", "scan", "  blocks.scan (message blocks)", true)
wrap("jsr.blocks", "tail", "  blocks.tail (a stream's newest blocks)", true)
wrap("jsr", "read_meta", "  jsr.read_meta", true)
local w0 = wall()
local rc = require("jsr.prepare").run(nil, ...)
local total = wall() - w0
io.stderr:write(("%-42s %9s %9s %8s\n"):format("stage", "wall s", "cpu s", "calls"))
for _, a in ipairs(rows) do
  io.stderr:write(("%-42s %9s %9.2f %8d\n"):format(a.label, a.per_call and "" or ("%.2f"):format(a.wall),
    a.cpu, a.n))
end
io.stderr:write(("%-42s %9.2f %9.2f\n"):format("total (exit " .. tostring(rc) .. ")", total, os.clock()))
return rc
EOF
fi

bench_size "${BLOCK_KB}K" "$BLOCK_KB"
BASE="${BLOCK_KB}K"
if [ "$BIG_FACTOR" -gt 0 ] 2>/dev/null; then
    bench_size "$((BLOCK_KB * BIG_FACTOR))K" "$((BLOCK_KB * BIG_FACTOR))"
    BIG="$((BLOCK_KB * BIG_FACTOR))K"
fi

# ------------------------------------------------------------------ table
echo
echo "== figures ($STREAMS streams, $((STREAMS * CONSUMERS)) consumers," \
     "$((STREAMS * (CONSUMERS + 1) + 1)) Raft groups; $(nproc) CPUs; $(df -PT "$work" | awk 'NR == 2 { print $2 }') under $work)"
row() { printf '  %-34s' "$1"; shift; for v in "$@"; do printf ' %18s' "$v"; done; echo; }
hdr=()
for z in "${SIZES[@]}"; do hdr+=("blocks $z"); done
row "" "${hdr[@]}"
line() { # label key [suffix]
    local l=$1 k=$2 suf=${3:-} vals=()
    for z in "${SIZES[@]}"; do vals+=("${R[$k,$z]:--}$suf"); done
    row "$l" "${vals[@]}"
}
vals=(); for z in "${SIZES[@]}"; do vals+=("${R[files,$z]} / ${R[dirs,$z]}"); done
row "files / directories" "${vals[@]}"
vals=(); for z in "${SIZES[@]}"; do vals+=("$(human "${R[bytes,$z]}")"); done
row "file bytes" "${vals[@]}"
vals=(); for z in "${SIZES[@]}"; do vals+=("$(human "${R[blk,$z]}")"); done
row "  of which stream message blocks" "${vals[@]}"
vals=(); for z in "${SIZES[@]}"; do vals+=("$(human "${R[disk,$z]}")"); done
row "on disk" "${vals[@]}"
line "generate (s)" gen
[ "$WARM" = 1 ] && line "warm-up cp -a (s, not used)" warm
line "cp -a (s)" cp
line "sync after cp (s)" sync
line "prepare (s)" prep
line "prepare peak RSS (KiB)" rss
[ "$DIRTY" = 1 ] && line "prepare right after cp, no sync (s)" dprep
vals=(); vals2=(); vals3=()
for z in "${SIZES[@]}"; do
    p=$(pct "${R[prep,$z]}" "${R[cp,$z]}")
    R[pct,$z]=$p
    vals+=("$p % $(verdict "$p")")
    p2=$(pct "${R[prep,$z]}" "$(awk -v a="${R[cp,$z]}" -v b="${R[sync,$z]}" 'BEGIN { print a + b }')")
    vals2+=("$p2 %")
    vals3+=("${R[rc,$z]}")
done
row "prepare / cp -a (< $TARGET_PCT %)" "${vals[@]}"
row "prepare / (cp -a + sync)" "${vals2[@]}"
row "prepare exit status" "${vals3[@]}"
if [ -n "${BIG:-}" ]; then
    echo
    echo "  message bytes x$BIG_FACTOR ($(human "${R[blk,$BASE]}") -> $(human "${R[blk,$BIG]}")):" \
         "cp -a x$(awk -v a="${R[cp,$BASE]}" -v b="${R[cp,$BIG]}" 'BEGIN { printf "%.2f", b / a }')," \
         "prepare ${R[prep,$BASE]} s -> ${R[prep,$BIG]} s" \
         "(x$(awk -v a="${R[prep,$BASE]}" -v b="${R[prep,$BIG]}" 'BEGIN { printf "%.2f", b / a }'))"
fi
echo
V=$(verdict "${R[pct,$BASE]}")
echo "bench: $V: prepare took ${R[pct,$BASE]} % of cp -a on the $BASE store (target < $TARGET_PCT %)" \
     "; $FAILS check(s) failed"
if [ "$FAILS" -gt 0 ]; then exit 1; fi
if [ "$STRICT" = 1 ] && [ "$V" != PASS ]; then exit 1; fi
exit 0

#!/bin/sh
# Builds the pinned nats-server releases and the nats CLI that the version
# specs and the drill matrix run against, with `go install`, into a cache
# outside the clone so a fresh clone (and CI) reuses what an earlier run
# built: $JSR_SERVERS (default ~/.cache/js-recover/servers)/<version>/.
# Each binary is checked by its --version before it is kept.  Without Go it
# says so and exits 0: the suite then runs on Debian's 2.9.10 alone and
# names the versions it skipped.
#
# usage: scripts/build-servers.sh            build what is missing
#        scripts/build-servers.sh --list     print "<version> <path>" per built binary
set -u
. "$(dirname "$0")/servers.env"
cache=${JSR_SERVERS:-${XDG_CACHE_HOME:-$HOME/.cache}/js-recover/servers}

if [ "${1:-}" = --list ]; then
    for v in $JSR_SERVER_VERSIONS; do
        [ -x "$cache/$v/nats-server" ] && echo "$v $cache/$v/nats-server"
    done
    [ -x "$cache/natscli-$JSR_NATSCLI_VERSION/nats" ] && echo "natscli $cache/natscli-$JSR_NATSCLI_VERSION/nats"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] && PATH=$PATH:/usr/local/go/bin
fi
if ! command -v go >/dev/null 2>&1; then
    echo "build-servers: no Go on this machine: the specs run on Debian's nats-server only (skipped: $JSR_SERVER_VERSIONS, natscli $JSR_NATSCLI_VERSION)"
    exit 0
fi

# one build: module@version into dir, kept only when `bin --version` prints want
build() { # module version dir bin want
    if [ -x "$3/$4" ] && "$3/$4" --version 2>&1 | grep -q "$5"; then
        return 0
    fi
    mkdir -p "$3.tmp" || return 1
    start=$(date +%s)
    if ! GOBIN="$3.tmp" CGO_ENABLED=0 go install "$1@$2" >"$3.tmp/build.log" 2>&1; then
        echo "build-servers: go install $1@$2 failed (log: $3.tmp/build.log)" >&2
        tail -5 "$3.tmp/build.log" >&2
        return 1
    fi
    if ! "$3.tmp/$4" --version 2>&1 | grep -q "$5"; then
        echo "build-servers: $3.tmp/$4 --version does not say $5: $("$3.tmp/$4" --version 2>&1 | head -1)" >&2
        return 1
    fi
    rm -rf "$3" && mv "$3.tmp" "$3" || return 1
    echo "build-servers: $1@$2 built in $(( $(date +%s) - start )) s: $3/$4"
}

rc=0
for v in $JSR_SERVER_VERSIONS; do
    build github.com/nats-io/nats-server/v2 "v$v" "$cache/$v" nats-server "v$v" || rc=1
done
build github.com/nats-io/natscli/nats "v$JSR_NATSCLI_VERSION" "$cache/natscli-$JSR_NATSCLI_VERSION" nats "$JSR_NATSCLI_VERSION" || rc=1
exit $rc

#!/usr/bin/env bash
# Installs the Tansu Kafka-protocol broker used by the tests and the demo.
#
# The build takes about 12 minutes on 2 cores, so the binary is installed once
# into a cache folder outside the checkout (PARTITA_CACHE, default
# ~/.cache/partita) and reused whenever it is already there.
# Prints the path of the tansu binary on stdout.
set -euo pipefail

TANSU_VERSION=0.6.0
CACHE="${PARTITA_CACHE:-$HOME/.cache/partita}"
ROOT="$CACHE/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"

if [[ ! -x "$BIN" ]]; then
    mkdir -p "$ROOT"
    LOG="$CACHE/tansu-$TANSU_VERSION-install.log"
    echo "installing tansu $TANSU_VERSION into $ROOT (about 12 minutes, once; the build's log: $LOG)" >&2
    start=$SECONDS
    # sqlite:// storage (libsql) survives broker restarts and reports exact
    # high watermarks; dynostore brings the memory engine used by benchmarks.
    if ! cargo install tansu --locked --version "$TANSU_VERSION" \
        --features dynostore,libsql --root "$ROOT" > "$LOG" 2>&1; then
        echo "error: installing tansu failed; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    echo "installed tansu $TANSU_VERSION in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s" >&2
fi
echo "$BIN"

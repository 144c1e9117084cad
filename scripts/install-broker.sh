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
    echo "installing tansu $TANSU_VERSION into $ROOT (about 12 minutes, once)" >&2
    mkdir -p "$ROOT"
    # sqlite:// storage (libsql) survives broker restarts and reports exact
    # high watermarks; dynostore brings the memory engine used by benchmarks.
    cargo install tansu --locked --version "$TANSU_VERSION" \
        --features dynostore,libsql --root "$ROOT" >&2
fi
echo "$BIN"

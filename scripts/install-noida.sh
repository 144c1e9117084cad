#!/usr/bin/env bash
# Installs noida-db (PyPI, MIT), a single-binary broker that implements
# Kafka's transactions, pinned, into a cache outside the checkout
# (PARTITA_CACHE, default ~/.cache/partita), once; prints the binary's
# path. The exactly-once tests run against it (docs/TESTING.md).
set -euo pipefail

VERSION=0.2.3
CACHE="${PARTITA_CACHE:-$HOME/.cache/partita}"
DIR="$CACHE/noida-db-$VERSION"
# The package holds the broker itself as a plain executable.
BIN="$DIR/noida_db/noida-db"

if [[ ! -x $BIN ]]; then
    python=$(command -v python3 || true)
    if [[ -z $python ]]; then
        echo "error: installing noida-db needs python3 with pip" >&2
        exit 1
    fi
    rm -rf "$DIR.tmp"
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$DIR.tmp" "noida-db==$VERSION" >&2
    rm -rf "$DIR"
    mv "$DIR.tmp" "$DIR"
fi
echo "$BIN"

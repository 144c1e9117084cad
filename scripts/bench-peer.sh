#!/usr/bin/env bash
# Partita's engine against a peer, Fluvio's SmartModule engine
# (fluvio-smartengine 0.50.1), on the same records in one process:
# bench/peer-fluvio (its doc comment says what is measured and how).
#
#   scripts/bench-peer.sh [--records N] [--rounds R] [--json FILE]
#
# Builds Partita's components (scripts/build-wasm.sh), the SmartModules
# (bench/peer-fluvio/modules, for wasm32-unknown-unknown, a target rustup
# adds when missing) and the benchmark in release mode, then runs it. The
# benchmark is a workspace of its own, built in bench/peer-fluvio/target, so
# that the peer's wasmtime and dependencies are built only here (the first
# build takes several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown >&2
fi
bash scripts/build-wasm.sh >/dev/null 2>&1
modules_target="$PWD/bench/peer-fluvio/target/modules"
cargo build --release -q --manifest-path bench/peer-fluvio/modules/Cargo.toml \
    --target wasm32-unknown-unknown --target-dir "$modules_target"
cargo build --release -q --manifest-path bench/peer-fluvio/Cargo.toml
exec bench/peer-fluvio/target/release/partita-peer-fluvio \
    --components target/wasm/components \
    --modules "$modules_target/wasm32-unknown-unknown/release" "$@"

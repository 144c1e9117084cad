#!/usr/bin/env bash
# Sets up everything the tests need and runs them all:
#   - the wasm32-wasip2 target and every Wasm component (scripts/build-wasm.sh),
#   - the Tansu broker, built once into a cache outside the checkout
#     (scripts/install-broker.sh; the tests start their own brokers from it),
#   - the C toolchain for processors written in C (clang, wit-bindgen,
#     wasm-tools: scripts/install-c-toolchain.sh), built alongside the broker,
#   - noida-db (scripts/install-noida.sh, pip), a broker that implements
#     transactions, for the exactly-once tests,
#   - headless Chromium (scripts/install-chromium.sh), for the tests that
#     look at HTML pages as a person would,
#   - the library without its `cli` feature, as an embedder builds it,
#   - then `cargo test` over the whole workspace.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# The broker takes the longest to build the first time; build it alongside
# the components and the test binaries instead of before them.
log "broker (Tansu), installed once into ${PARTITA_CACHE:-$HOME/.cache/partita}"
mkdir -p target
bash scripts/install-broker.sh > target/broker-install.log 2>&1 &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null || true' EXIT

log "noida-db (a broker with transactions, for the exactly-once tests)"
export PARTITA_NOIDA="$(bash scripts/install-noida.sh)"

log "headless Chromium"
export PARTITA_CHROMIUM="$(bash scripts/install-chromium.sh)"

# After Chromium: both install Debian packages, and apt takes one at a time.
log "C toolchain (clang, wit-bindgen, wasm-tools), installed once into the same cache"
bash scripts/install-c-toolchain.sh > target/c-toolchain-install.log 2>&1 &
c_pid=$!
trap 'kill $broker_pid $c_pid 2>/dev/null || true' EXIT

log "Wasm components"
bash scripts/build-wasm.sh

log "test binaries"
cargo test --workspace --no-run
# The broker tests run this `partita`, built above with the workspace's
# features, instead of building one of their own with `cargo build -p
# partita` (whose different feature set rebuilds a large part of the tree).
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir="$PWD/$target_dir"
export PARTITA_BIN="$target_dir/debug/partita"
if [[ ! -x $PARTITA_BIN ]]; then
    echo "error: cargo test --no-run built no $PARTITA_BIN" >&2
    exit 1
fi

log "the library without its command line (what an embedder builds)"
cargo build -p partita --lib --no-default-features

log "waiting for the broker install"
if ! wait $broker_pid; then
    cat target/broker-install.log >&2
    echo "error: installing the broker failed (log above)" >&2
    exit 1
fi
if ! wait $c_pid; then
    cat target/c-toolchain-install.log >&2
    echo "error: installing the C toolchain failed (log above)" >&2
    exit 1
fi
trap - EXIT
export PARTITA_TANSU="$(bash scripts/install-broker.sh)"

log "tests"
cargo test --workspace --no-fail-fast "$@"

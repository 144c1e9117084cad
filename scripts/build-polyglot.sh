#!/usr/bin/env bash
# Builds the processors written in JavaScript, Python and C into components.
#
#   scripts/build-polyglot.sh [--js-only | --python-only | --c-only] [DIR...]
#
# With no DIR, builds every processors/js/*/ (a folder holding processor.js,
# whose default export is the processor class), every processors/python/*/
# (a folder holding processor.py, which ends with
# `Processor = partita.export(TheClass)`) and every processors/c/*/ (a folder
# holding processor.c, which defines processor_init and processor_process;
# every .c file of the folder is compiled). A DIR names one such folder,
# anywhere on disk. Each component is written to target/wasm/components/ as
# NAME_js.wasm, NAME_py.wasm or NAME_c.wasm, NAME being the folder's name
# with `-` as `_` (processors/js/csv-to-json -> csv_to_json_js.wasm).
#
# A JavaScript processor imports the helper by its package name,
# `@partita/processor` (guest-sdk/js; `npm install PATH/guest-sdk/js` gives
# editors and node tests the same name), and its own modules by relative
# paths; esbuild bundles them into one module, always with this checkout's
# helper, before componentize-js. A Python processor imports `partita`
# (guest-sdk/python; `pip install PATH/guest-sdk/python` for tests under
# CPython).
#
# The toolchains come from the package registries, at pinned versions, and
# are installed once into a cache folder outside the checkout
# (PARTITA_CACHE, default ~/.cache/partita), then reused:
#   - JavaScript: npm @bytecodealliance/componentize-js and esbuild, exactly
#     as locked in guest-sdk/js/toolchain/package-lock.json (about 20 s,
#     400 MB);
#   - Python: PyPI componentize-py (version below) in a virtualenv
#     (about 5 s, 72 MB);
#   - C: Debian's clang, lld and wasi-libc, wit-bindgen's C generator and
#     wasm-tools (scripts/install-c-toolchain.sh; about 3 minutes).
# A component is rebuilt only when one of its inputs changed (its folder, the
# helper of its language, the WIT, the toolchain, this script): about 20 s
# per JavaScript component, 8 s per Python one and 1 s per C one on 2 cores.
#
# Prints the paths of the components on stdout, one per line; progress goes
# to stderr.
set -euo pipefail
START="$PWD"
cd "$(dirname "$0")/.."
ROOT="$PWD"

COMPONENTIZE_PY_VERSION=0.25.1
CACHE="${PARTITA_CACHE:-$HOME/.cache/partita}"
OUT="$ROOT/target/wasm/components"
WORK="$ROOT/target/polyglot"

langs="js python c"
dirs=()
for arg in "$@"; do
    case "$arg" in
        --js-only) langs="js" ;;
        --python-only) langs="python" ;;
        --c-only) langs="c" ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        -*)
            echo "error: unknown option $arg (see --help)" >&2
            exit 2
            ;;
        /*) dirs+=("$arg") ;;
        *) dirs+=("$START/$arg") ;;
    esac
done

log() { printf '%s\n' "$*" >&2; }

hash_of() { sha256sum | cut -c1-16; }

# Content hash of every file under the given paths, with their names.
tree_hash() {
    find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/node_modules/*' -print0 \
        | sort -z | xargs -0 sha256sum | hash_of
}

# The JavaScript toolchain, installed from the lock file; prints the path
# of componentize-js.
js_toolchain() {
    local lock="$ROOT/guest-sdk/js/toolchain/package-lock.json"
    local dir
    dir="$CACHE/componentize-js-$(hash_of < "$lock")"
    local bin="$dir/node_modules/.bin/componentize-js"
    if [[ ! -x "$bin" ]]; then
        command -v npm > /dev/null || { log "error: npm is needed to install componentize-js (apt-get install npm)"; exit 1; }
        log "installing componentize-js into $dir (once)"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        cp "$ROOT/guest-sdk/js/toolchain/package.json" "$lock" "$dir.tmp/"
        (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    echo "$bin"
}

# The Python toolchain in a virtualenv; prints the path of componentize-py.
python_toolchain() {
    local dir="$CACHE/componentize-py-$COMPONENTIZE_PY_VERSION"
    local bin="$dir/bin/componentize-py"
    if [[ ! -x "$bin" ]]; then
        command -v python3 > /dev/null || { log "error: python3 is needed to install componentize-py"; exit 1; }
        log "installing componentize-py $COMPONENTIZE_PY_VERSION into $dir (once)"
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION" >&2 \
            || { rm -rf "$dir"; exit 1; }
    fi
    echo "$bin"
}

# Runs "$@" (a build writing $tmp) unless $stamp says the inputs are the same
# as for the existing $out; then moves $tmp to $out and records the stamp.
build_if_changed() {
    local name="$1" out="$2" stamp="$3" inputs="$4"
    shift 4
    if [[ -f "$out" && -f "$stamp" && "$(cat "$stamp")" == "$inputs" ]]; then
        log "$name: up to date"
        echo "$out"
        return
    fi
    log "$name: building"
    local start=$SECONDS
    if ! "$@"; then
        rm -f "$out.tmp"
        log "error: building $name failed (the toolchain's message is above)"
        exit 1
    fi
    mv "$out.tmp" "$out"
    echo "$inputs" > "$stamp"
    log "$name: built in $((SECONDS - start)) s, $(du -h "$out" | cut -f1)"
    echo "$out"
}

# The component name of processor folder DIR: the folder's name with `-` as
# `_`, then `_SUFFIX`. (The loop at the end calls each build_* only for a
# folder that holds its language's processor file.)
component_name() {
    echo "$(basename "$1" | tr '-' '_')_$2"
}

build_js() {
    local dir
    dir="$(realpath "$1")"
    local name
    name="$(component_name "$dir" js)"
    local tool
    tool="$(js_toolchain)"
    local work="$WORK/js/$name"
    mkdir -p "$work" "$OUT"
    local inputs
    inputs="$(tree_hash "$dir" "$ROOT/guest-sdk/js"/*.js "$ROOT/wit/processor.wit" "$ROOT/scripts/build-polyglot.sh" "$ROOT/guest-sdk/js/toolchain/package-lock.json")"
    # The entry module imports the WIT interfaces, which exist only inside a
    # component, and exports the processor class through the helper.
    cat > "$work/entry.js" << EOF
// Generated by scripts/build-polyglot.sh: the component's entry module.
import * as state from 'partita:processor/state@0.1.0';
import * as tables from 'partita:processor/tables@0.1.0';
import * as log from 'partita:processor/log@0.1.0';
import { exportProcessor } from '@partita/processor';
import Processor from '$dir/processor.js';

export const processor = exportProcessor(Processor, { state, tables, log });
EOF
    local esbuild
    esbuild="$(dirname "$tool")/esbuild"
    js_build() {
        # One module: the entry, the helper and the processor's own modules
        # (componentize-js reads no module outside its working folder).
        "$esbuild" "$work/entry.js" --bundle --format=esm --platform=neutral \
            --external:'partita:*' --alias:@partita/processor="$ROOT/guest-sdk/js/partita.js" \
            --outfile="$work/bundle.js" --log-level=warning >&2 &&
            (cd "$work" && "$tool" bundle.js --wit "$ROOT/wit/processor.wit" --world-name stage \
                --disable stdio random clocks http fetch-event -o "$OUT/$name.wasm.tmp" >&2)
    }
    build_if_changed "$name" "$OUT/$name.wasm" "$work/stamp" "$inputs" js_build
}

build_python() {
    local dir
    dir="$(realpath "$1")"
    local name
    name="$(component_name "$dir" py)"
    local tool
    tool="$(python_toolchain)"
    local work="$WORK/python/$name"
    mkdir -p "$work" "$OUT"
    local inputs
    inputs="$(tree_hash "$dir" "$ROOT/guest-sdk/python/partita" "$ROOT/wit/processor.wit" "$ROOT/scripts/build-polyglot.sh")-$COMPONENTIZE_PY_VERSION"
    py_build() {
        # The module named on the command line is the processor; it must
        # define the class `Processor` that componentize-py exports.
        (cd "$work" && "$tool" -d "$ROOT/wit/processor.wit" -w stage componentize processor \
            -p "$dir" -p "$ROOT/guest-sdk/python" -o "$OUT/$name.wasm.tmp" >&2)
    }
    build_if_changed "$name" "$OUT/$name.wasm" "$work/stamp" "$inputs" py_build
}

build_c() {
    local dir
    dir="$(realpath "$1")"
    local name
    name="$(component_name "$dir" c)"
    local tools
    tools="$(bash "$ROOT/scripts/install-c-toolchain.sh")"
    local work="$WORK/c/$name"
    mkdir -p "$work" "$OUT"
    local inputs
    inputs="$(tree_hash "$dir" "$ROOT/guest-sdk/c" "$ROOT/wit/processor.wit" "$ROOT/scripts/build-polyglot.sh" "$ROOT/scripts/install-c-toolchain.sh")"
    c_build() {
        # The bindings (stage.h, stage.c and the world's type as an object
        # file), then one core module holding the processor, the helper and
        # the bindings, then the component. The module imports nothing but
        # the world's interfaces (the helper avoids stdio), so it needs no
        # WASI adapter.
        local said
        rm -rf "$work/bindings"
        said="$("$tools/wit-bindgen" c "$ROOT/wit/processor.wit" --world stage --out-dir "$work/bindings" 2>&1)" ||
            { log "$said"; return 1; }
        clang --target=wasm32-wasi -mexec-model=reactor -std=c11 -O2 -Wall -Wextra \
            -I "$work/bindings" -I "$ROOT/guest-sdk/c" "$dir"/*.c "$ROOT/guest-sdk/c/partita.c" \
            "$work/bindings/stage.c" "$work/bindings/stage_component_type.o" -o "$work/core.wasm" >&2 &&
            "$tools/wasm-tools" component new "$work/core.wasm" -o "$OUT/$name.wasm.tmp" >&2
    }
    build_if_changed "$name" "$OUT/$name.wasm" "$work/stamp" "$inputs" c_build
}

if [[ ${#dirs[@]} -eq 0 ]]; then
    for lang in $langs; do
        for d in "processors/$lang"/*/; do
            [[ -d "$d" ]] && dirs+=("${d%/}")
        done
    done
fi

for d in "${dirs[@]}"; do
    if [[ -f "$d/processor.js" && "$langs" == *js* ]]; then
        build_js "$d"
    elif [[ -f "$d/processor.py" && "$langs" == *python* ]]; then
        build_python "$d"
    elif [[ -f "$d/processor.c" && "$langs" == *c* ]]; then
        build_c "$d"
    elif [[ ! -f "$d/processor.js" && ! -f "$d/processor.py" && ! -f "$d/processor.c" ]]; then
        log "error: $d holds none of processor.js, processor.py and processor.c"
        exit 1
    fi
done

#!/usr/bin/env bash
# Partita's benchmarks in one command: builds in release mode, runs every
# measurement below one after the other on this machine, prints a report
# with the ratios, writes every figure to target/bench/results.json (keep
# them to compare runs over time) and rewrites the generated block of
# docs/BENCHMARKS.md.
#
#   scripts/bench.sh [--smoke] [--out DIR]
#
#   1. engine: criterion (host/benches/engine.rs): a native identity and
#      the passthrough processor at batches of 1, 64 and 512 records of
#      100 B and 1 KB, count over 4,096 keys, component loading;
#   1a. state: criterion (host/benches/state.rs, engine_1m): count over
#      1,000,000 records with distinct keys, with the durable and the
#      in-memory store, and over 4,096 keys, against passthrough;
#   1b. the engine against a peer: scripts/bench-peer.sh, Partita and
#      Fluvio's SmartModule engine (fluvio-smartengine) on the same records,
#      an identity and a JSON field extraction (its first build takes about
#      11 minutes: a second wasmtime and the peer's dependencies; --no-peer
#      leaves it out);
#   2. end to end: scripts/bench-e2e.sh --count: a bare rdkafka loop,
#      `partita run` passthrough and count (durable state, a key per record)
#      over the same 1,000,000 records on a private Tansu (memory://), then
#      each one's end-to-end latency (p50, p99) at half the slowest one's
#      records/s for 15 s;
#   3. partitions: scripts/bench-partitions.sh over 4, 64, 256 and 1,000
#      partitions (threads, peak RSS, time to the first and last commit),
#      4 chained stages of 250 partitions each, then the same 1,000,000
#      records on 4 and on 1,000 partitions.
#
# About 8 minutes on 2 cores once built. Performance is read from ratios of
# runs in the same invocation; the machine is shared, so single figures
# move from run to run.
#
# --smoke runs every step but the peer's with tiny sizes on the debug build
# that the tests use (scripts/test.sh runs it, so that the command cannot
# rot; the peer's build alone would take longer than the whole test run); its
# figures mean nothing and docs/BENCHMARKS.md is left alone. --out puts the
# logs and results elsewhere (default target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

smoke=""
peer=1
out="$ROOT/target/bench"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke)
            smoke=1
            shift
            ;;
        --no-peer)
            peer=""
            shift
            ;;
        --out)
            [[ $# -ge 2 ]] || { echo "error: --out needs a folder" >&2; exit 2; }
            out="$(realpath -m "$2")"
            shift 2
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *)
            echo "error: unknown argument $1 (see --help)" >&2
            exit 2
            ;;
    esac
done

rm -rf "$out"
mkdir -p "$out"
started=$SECONDS
step() { printf '== %s (%d s)\n' "$*" $((SECONDS - started)) >&2; }

# run LOG COMMAND...: runs COMMAND with its output in LOG; shows the end of
# LOG if it fails.
run() {
    local log="$1"
    shift
    if ! "$@" > "$log" 2>&1; then
        echo "error: $* failed; the end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

if [[ -n $smoke ]]; then
    engine=(--profile dev)
    engine_args=(--warm-up-time 0.01 --measurement-time 0.05 --sample-size 10)
    state_records=20000
    e2e=(--debug --records 20000 --latency-s 3)
    sweep=(--debug --records-per-partition 20 4 64)
    staged=(--debug --records-per-partition 20 --stages 4 8)
else
    engine=()
    engine_args=()
    state_records=1000000
    e2e=(--records 1000000 --latency-s 15)
    sweep=(4 64 256 1000)
    staged=(--stages 4 1000)
fi

step "engine (criterion)"
CRITERION_HOME="$out/criterion" run "$out/engine.log" \
    cargo bench "${engine[@]}" --workspace --bench engine -- --noplot "${engine_args[@]}"

step "state: count over distinct keys (criterion)"
PARTITA_STATE_RECORDS="$state_records" CRITERION_HOME="$out/criterion" run "$out/state.log" \
    cargo bench "${engine[@]}" -p partita --bench state -- engine_1m --noplot "${engine_args[@]}"

if [[ -z $smoke && -n $peer ]]; then
    step "engine against a peer: fluvio-smartengine"
    run "$out/peer.log" bash scripts/bench-peer.sh --json "$out/peer.json"
fi

step "end to end: bare loop, passthrough, count"
run "$out/e2e.log" bash scripts/bench-e2e.sh "${e2e[@]}" --repeats 1 --settings tansu --count \
    --json "$out/e2e.json"

step "partitions: ${sweep[*]}"
run "$out/partitions.log" bash scripts/bench-partitions.sh "${sweep[@]}" --json "$out/partitions.json"
step "partitions: 4 chained stages, ${staged[-1]} partitions in all"
run "$out/stages.log" bash scripts/bench-partitions.sh "${staged[@]}" --json "$out/stages.json"
if [[ -z $smoke ]]; then
    step "partitions: the same 1,000,000 records on 4 and on 1,000"
    run "$out/scale-4.log" bash scripts/bench-partitions.sh --records-per-partition 250000 4 \
        --json "$out/scale-4.json"
    run "$out/scale-1000.log" bash scripts/bench-partitions.sh --records-per-partition 1000 1000 \
        --json "$out/scale-1000.json"
fi

step "report"
report=(python3 scripts/bench-report.py "$out")
if [[ -n $smoke ]]; then
    report+=(--smoke)
else
    report+=(--update docs/BENCHMARKS.md)
fi
"${report[@]}"
step "done: $out/results.json"

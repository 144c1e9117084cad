#!/usr/bin/env bash
# How `partita run` scales with the partitions of a stage: threads, peak
# resident memory, time to the first commit and records/s, for one stage
# over 4, 64, 256 and 1,000 partitions.
#
#   scripts/bench-partitions.sh [--records-per-partition N] [--processor passthrough|count]
#                               [--stages S] [--json FILE] [--debug] [PARTITIONS...]
#
# Builds partita in release mode, starts a private Tansu broker (memory://)
# on a free port, and for each partition count P: creates an input topic of
# P partitions holding P × N records (default N = 200; 100-byte values,
# distinct keys), runs `partita run` on a one-stage pipeline (passthrough by
# default; count keeps durable state, one store per partition) with the
# compiled component already cached, and waits until the group has
# committed every record. With --stages S (default 1), the P partitions
# are S stages of P/S partitions each, chained: stage 1 reads the input
# topic, each next stage the topic the one before writes, every topic of
# P/S partitions, and the run ends when the last stage has committed every
# record. It samples the process's thread count every
# 100 ms (the peak includes the threads that start partitions, and the
# consumers of partitions with changelog records to restore, which end once
# all have started),
# reads the thread count and peak resident memory (VmHWM) once every
# record is committed, then stops it with SIGINT (it must exit 0). Prints
# one line per P (and, with --json, the same figures to FILE for
# scripts/bench.sh; --debug uses the tests' debug build instead of building
# in release mode, to check that the script works). Everything started is
# stopped at exit; work files are in target/bench-partitions/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

per=200
stages=1
processor=passthrough
counts=()
json=""
profile=release
usage() {
    echo "usage: $0 [--records-per-partition N] [--processor passthrough|count] [--stages S] [--json FILE] [--debug] [PARTITIONS...]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --debug)
            profile=debug
            shift
            ;;
        --json)
            [[ $# -ge 2 ]] || usage
            json="$(realpath -m "$2")"
            shift 2
            ;;
        --records-per-partition)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || usage
            per="$2"
            shift 2
            ;;
        --stages)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || usage
            stages="$2"
            shift 2
            ;;
        --processor)
            [[ $# -ge 2 && ("$2" == passthrough || "$2" == count) ]] || usage
            processor="$2"
            shift 2
            ;;
        *)
            [[ "$1" =~ ^[0-9]+$ && "$1" -gt 0 ]] || usage
            counts+=("$1")
            shift
            ;;
    esac
done
[[ ${#counts[@]} -gt 0 ]] || counts=(4 64 256 1000)
for p in "${counts[@]}"; do
    if ((p % stages != 0)); then
        echo "error: $p partitions cannot be split over $stages stages" >&2
        exit 2
    fi
done

WORK="$ROOT/target/bench-partitions"
step() { printf '== %s\n' "$*" >&2; }

step "building ($profile): partita, the $processor component, the bench tools"
bash scripts/build-wasm.sh >/dev/null 2>&1
bin_dir="${CARGO_TARGET_DIR:-$ROOT/target}/$profile"
partita="$bin_dir/partita"
if [[ $profile == release ]]; then
    cargo build --release -q -p partita --bin partita
    cargo build --release -q -p partita-tests --bin kafka-tool --bin bench-probe
else
    # The binaries the tests built (`cargo test --workspace --no-run`).
    partita="${PARTITA_BIN:-$partita}"
fi
tool="$bin_dir/kafka-tool"
probe="$bin_dir/bench-probe"
for b in "$partita" "$tool" "$probe"; do
    [[ -x $b ]] || {
        echo "error: $b is missing (with --debug, build it first: cargo test --workspace --no-run)" >&2
        exit 1
    }
done
tansu="$(bash scripts/install-broker.sh)"

rm -rf "$WORK"
mkdir -p "$WORK"
cp "target/wasm/components/$processor.wasm" "$WORK/"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"
run_pid=""
sampler=""
cleanup() {
    [[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null || true
    [[ -n "$run_pid" ]] && kill -KILL "$run_pid" 2>/dev/null || true
    PARTITA_BROKER_PORT="$port" bash scripts/broker.sh stop "$WORK/broker" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting a memory:// broker on $bootstrap"
PARTITA_BROKER_STORAGE=memory PARTITA_BROKER_PORT="$port" \
    bash scripts/broker.sh start "$WORK/broker" >&2

printf '{"key":"k","value":"1"}\n' > "$WORK/one.jsonl"
"$partita" test "$WORK/$processor.wasm" --input "$WORK/one.jsonl" >/dev/null

rows=()
((stages == 1)) || echo "each run: $stages chained stages of partitions/$stages partitions each; records/s counts input records"
printf '%11s %13s %12s %14s %18s %19s %10s\n' partitions "threads, peak" "at the end" "peak RSS MiB" "s to first commit" "s to all committed" "records/s"
for p in "${counts[@]}"; do
    topic="scale.$p"
    per_stage=$((p / stages))
    # Input records: N per partition of a stage, each through every stage.
    records=$((per_stage * per))
    # Topic i (1..S) is what stage i writes; the input is scale.P.
    topics=("$topic")
    for ((i = 1; i <= stages; i++)); do topics+=("$topic.$i"); done
    for t in "${topics[@]}" "$topic.dlq"; do
        "$tool" --bootstrap "$bootstrap" create-topic "$t" --partitions "$per_stage" >/dev/null
    done
    # Key: a distinct one per record; value: the number 1, padded with
    # zeros to 100 bytes (count reads it as a number).
    awk -v n="$records" 'BEGIN { for (i = 0; i < n; i++) printf "k%07d\t%0100d\n", i, 1 }' |
        "$tool" --bootstrap "$bootstrap" produce "$topic" --tab-key >/dev/null
    {
        printf '[kafka]\nbootstrap = "%s"\ngroup = "scale-%s"\ncommit_interval_ms = 100\n' "$bootstrap" "$p"
        printf '\n[kafka.consumer]\n"fetch.wait.max.ms" = "10"\n"fetch.queue.backoff.ms" = "10"\n'
        printf '\n[state]\ndir = "%s/state-%s"\nmemory_mb = 4\n' "$WORK" "$p"
        for ((i = 1; i <= stages; i++)); do
            printf '\n[[stage]]\nname = "s%s"\nprocessor = "%s.wasm"\n' "$i" "$processor"
            printf 'input = "%s"\noutputs = { default = "%s" }\n' "${topics[i - 1]}" "${topics[i]}"
            printf 'dlq = "%s.dlq"\n' "$topic"
        done
    } > "$WORK/scale-$p.toml"
    start="$(date +%s%N)"
    "$partita" run "$WORK/scale-$p.toml" 2>"$WORK/scale-$p.log" &
    run_pid=$!
    (
        most=0
        while [[ -r "/proc/$run_pid/status" ]]; do
            n="$(awk '/^Threads:/ { print $2 }' "/proc/$run_pid/status" 2>/dev/null || echo 0)"
            [[ -n "$n" && "$n" -gt "$most" ]] && most="$n" && echo "$most" > "$WORK/threads-$p"
            sleep 0.1
        done
    ) &
    sampler=$!
    if ! "$probe" --bootstrap "$bootstrap" wait-committed --group "scale-$p.s$stages" --topic "${topics[stages - 1]}" \
        --total "$records" --since-ns "$start" --pid "$run_pid" --timeout-s 600 > "$WORK/scale-$p.samples"; then
        echo "error: $p partitions did not finish; its log:" >&2
        tail -n 20 "$WORK/scale-$p.log" >&2
        exit 1
    fi
    rss_kb="$(awk '/^VmHWM:/ { print $2 }' "/proc/$run_pid/status")"
    threads_now="$(awk '/^Threads:/ { print $2 }' "/proc/$run_pid/status")"
    kill -INT "$run_pid"
    rc=0
    wait "$run_pid" || rc=$?
    run_pid=""
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=""
    if [[ "$rc" != 0 ]]; then
        echo "error: $p partitions: partita exited with status $rc; its log:" >&2
        tail -n 20 "$WORK/scale-$p.log" >&2
        exit 1
    fi
    first_ms="$(awk '$2 > 0 { print $1; exit }' "$WORK/scale-$p.samples")"
    done_ms="$(tail -n 1 "$WORK/scale-$p.samples" | cut -d' ' -f1)"
    printf '%11s %13s %12s %14.0f %18.2f %19.2f %10.0f\n' "$p" "$(cat "$WORK/threads-$p")" "$threads_now" \
        "$(echo "$rss_kb / 1024" | bc -l)" "$(echo "$first_ms / 1000" | bc -l)" \
        "$(echo "$done_ms / 1000" | bc -l)" "$(echo "$records * 1000 / $done_ms" | bc -l)"
    rows+=("$p $(cat "$WORK/threads-$p") $threads_now $rss_kb $first_ms $done_ms $records")
    # Free the broker's memory before the next size.
    for t in "${topics[@]}"; do
        "$tansu" topic delete "$t" --broker "tcp://$bootstrap" >/dev/null 2>&1 || true
    done
done
if [[ -n $json ]]; then
    printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
runs = []
for line in sys.stdin:
    p, peak, end, rss_kb, first_ms, done_ms, records = line.split()
    runs.append({"partitions": int(p), "threads_peak": int(peak), "threads_end": int(end),
                 "peak_rss_mib": int(rss_kb) / 1024, "first_commit_s": float(first_ms) / 1e3,
                 "all_committed_s": float(done_ms) / 1e3,
                 "records_per_s": int(records) / (float(done_ms) / 1e3)})
json.dump({"processor": sys.argv[1], "records_per_partition": int(sys.argv[2]),
           "stages": int(sys.argv[4]), "runs": runs},
          open(sys.argv[3], "w"), indent=2)
' "$processor" "$per" "$json" "$stages"
fi

#!/usr/bin/env bash
# End-to-end benchmark (issue 3): records/s and CPU per record of
# `partita run` with the passthrough processor against a bare rdkafka
# consume → produce loop (tests/src/bin/bare-pipeline.rs) with the same
# librdkafka settings, on the same broker and the same records.
#
#   scripts/bench-e2e.sh [--records N] [--repeats R] [--partitions P]
#                        [--commit-interval-ms MS] [--settings default|tansu|both]
#                        [--baseline PARTITA_BINARY] [--count] [--json FILE] [--debug]
#                        [--latency-s S] [--latency-rate R]
#
# Builds everything in release mode, starts a private Tansu broker with the
# memory:// engine on a free port, creates the input topic (P partitions,
# default 4) and produces N records (default 2,000,000) of 100-byte values
# with distinct keys. Then, for each client setting, it runs the bare loop
# and partita one after the other, R times each (default 3), alternating,
# each run in a new consumer group writing to a new output topic. With
# --baseline, another build of partita (an earlier commit's, say) runs the
# same pipeline in turn with the two others, and the table gains its
# column and the ratio of this build to it. With --count, `partita run`
# of the count processor (a running total per key, so as many state keys
# as records, durable state written to its changelog) runs in turn too,
# and the table gains its column and its ratio to passthrough; with both,
# the baseline build runs count too (column "baseline count", and the
# ratio of this build's count to it). --json
# writes the medians to FILE (scripts/bench.sh reads it); --debug uses the
# debug build that the tests use instead of building in release mode (for
# a quick check that the script works, not for figures). With
# --latency-s S, each kind then runs S more seconds on fresh topics while
# records arrive at half the records/s of the slowest kind (its first run's
# total: on 2 cores the probe shares the machine, and at half the bare
# loop's rate count fell behind without end),
# and the end-to-end latency of its outputs is measured (bench-probe
# latency: from the record's timestamp, set when it was sent, to when the
# output is read; the first third of S is left out as warm-up): p50, p99
# and the largest. --latency-rate R sends R records/s instead (to see how
# latency moves with the load).
#
# Client settings (given to both, partita through [kafka.consumer], the
# bare loop through --consumer-property):
# - "default": Partita's own client settings, librdkafka's defaults
#   otherwise. Tansu 0.6 caps this at about 170,000 records/s: its fetch
#   handler sleeps half of fetch.wait.max.ms (500 ms) after every read, even
#   one that found records, and answers at most 5 MB.
# - "tansu": the same plus fetch.wait.max.ms=10 and
#   fetch.queue.backoff.ms=10, which lift that cap so that the clients
#   themselves are measured (docs/BENCHMARKS.md explains both).
#
# Each run is timed from the start of the process until its group's
# committed offsets (OffsetFetch; the memory engine's watermarks are wrong)
# add up to N; a probe reads them every 20 ms, with the CPU time of the
# process and of the broker (/proc/PID/stat) each time they move. The run
# is then stopped with SIGINT, and its output topic is read back: it must
# hold the same records (key, value, headers, timestamp) as the input. It
# is deleted afterwards, so that the broker's memory does not grow run
# after run.
#
# Prints a table per setting of medians over the repeats: "total" is from
# the start of the process (startup and group join included) to all N
# committed; "steady" is from the moment 20% of N are committed to the
# moment 80% are, which leaves out the startup, the group join and the
# tail. Both commit every MS milliseconds (default 100, finer than
# partita's default of 1000, so that progress is seen to within 0.1 s).
# Raw samples are kept in target/bench-e2e/. Everything started is stopped
# at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

records=2000000
repeats=3
partitions=4
commit_ms=100
settings="default tansu"
baseline=""
count=""
json=""
profile=release
latency_s=0
latency_rate=""
usage() {
    echo "usage: $0 [--records N] [--repeats R] [--partitions P] [--commit-interval-ms MS]" \
        "[--settings default|tansu|both] [--baseline PARTITA_BINARY] [--count] [--json FILE] [--debug]" \
        "[--latency-s S] [--latency-rate R]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count=1; shift; continue ;;
        --debug) profile=debug; shift; continue ;;
    esac
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --json) json="$(realpath -m "$2")" ;;
        --latency-s)
            [[ "$2" =~ ^[0-9]+$ && "$2" -ge 3 ]] || usage
            latency_s="$2"
            ;;
        --latency-rate)
            [[ "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || usage
            latency_rate="$2"
            ;;
        --records | --repeats | --partitions | --commit-interval-ms)
            [[ "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || usage
            case "$1" in
                --records) records="$2" ;;
                --repeats) repeats="$2" ;;
                --partitions) partitions="$2" ;;
                --commit-interval-ms) commit_ms="$2" ;;
            esac
            ;;
        --baseline)
            [[ -x "$2" ]] || {
                echo "error: --baseline: $2 is not an executable file" >&2
                exit 2
            }
            baseline="$(realpath "$2")"
            ;;
        --settings)
            case "$2" in
                default | tansu) settings="$2" ;;
                both) settings="default tansu" ;;
                *) usage ;;
            esac
            ;;
        *) usage ;;
    esac
    shift 2
done
if [[ -n "$latency_rate" ]] && ((latency_s == 0)); then
    echo "error: --latency-rate needs --latency-s" >&2
    exit 2
fi

# Consumer properties of each setting, KEY=VALUE separated by spaces.
setting_properties() {
    case "$1" in
        default) echo "" ;;
        tansu) echo "fetch.wait.max.ms=10 fetch.queue.backoff.ms=10" ;;
    esac
}
# The probe reads with the fast setting: its reads are not measured.
probe_fast=(-X fetch.wait.max.ms=10 -X fetch.queue.backoff.ms=10)

WORK="$ROOT/target/bench-e2e"
step() { printf '== %s\n' "$*" >&2; }

step "building ($profile): partita, the passthrough and count components, the bench tools"
bash scripts/build-wasm.sh >/dev/null 2>&1
bin_dir="${CARGO_TARGET_DIR:-$ROOT/target}/$profile"
partita="$bin_dir/partita"
if [[ $profile == release ]]; then
    cargo build --release -q -p partita --bin partita
    cargo build --release -q -p partita-tests --bin kafka-tool --bin bare-pipeline --bin bench-probe
else
    # The binaries the tests built (`cargo test --workspace --no-run`);
    # building them here with other features would rebuild much of the tree.
    partita="${PARTITA_BIN:-$partita}"
fi
tool="$bin_dir/kafka-tool"
bare="$bin_dir/bare-pipeline"
probe="$bin_dir/bench-probe"
for b in "$partita" "$tool" "$bare" "$probe"; do
    [[ -x $b ]] || {
        echo "error: $b is missing (with --debug, build it first: cargo test --workspace --no-run)" >&2
        exit 1
    }
done
tansu="$(bash scripts/install-broker.sh)"

rm -rf "$WORK"
mkdir -p "$WORK"
cp target/wasm/components/passthrough.wasm target/wasm/components/count.wasm "$WORK/"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"
run_pid=""
cleanup() {
    if [[ -n "$run_pid" ]]; then
        kill -KILL "$run_pid" 2>/dev/null || true
    fi
    PARTITA_BROKER_PORT="$port" bash scripts/broker.sh stop "$WORK/broker" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting a memory:// broker on $bootstrap"
PARTITA_BROKER_STORAGE=memory PARTITA_BROKER_PORT="$port" \
    bash scripts/broker.sh start "$WORK/broker" >&2
broker_pid="$(cat "$WORK/broker/broker.pid")"

step "producing $records records of 100 bytes to bench.in ($partitions partitions)"
"$tool" --bootstrap "$bootstrap" create-topic bench.in --partitions "$partitions" >/dev/null
"$tool" --bootstrap "$bootstrap" create-topic bench.in.dlq --partitions "$partitions" >/dev/null
# Key: a distinct one per record; value: the record's number in 100 digits
# (count reads it as a number).
awk -v n="$records" 'BEGIN { for (i = 0; i < n; i++) printf "k%07d\t%0100d\n", i, i }' |
    "$tool" --bootstrap "$bootstrap" produce bench.in --tab-key >&2
input_digest="$("$probe" --bootstrap "$bootstrap" "${probe_fast[@]}" digest \
    --topic bench.in --expect "$records")"
[[ "$input_digest" == "count=$records "* ]] || {
    echo "error: bench.in reads back as $input_digest, expected $records records" >&2
    exit 1
}

# Fill the compiled-component cache, as any second run of partita finds it.
printf '{"key":"k","value":"v"}\n' > "$WORK/one.jsonl"
"$partita" test "$WORK/passthrough.wasm" --input "$WORK/one.jsonl" >/dev/null
"$partita" test "$WORK/count.wasm" --input "$WORK/one.jsonl" >/dev/null 2>&1 || true
if [[ -n "$baseline" ]]; then
    "$baseline" test "$WORK/passthrough.wasm" --input "$WORK/one.jsonl" >/dev/null
fi

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# True while process $1 runs (a zombie, exited and not yet reaped, does not).
alive() {
    [[ -r "/proc/$1/stat" && "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]]
}

# Stops the measured process with SIGINT; kills it after 60 s.
stop_run() {
    kill -INT "$run_pid" 2>/dev/null || true
    local waited=0
    while alive "$run_pid" && ((waited < 600)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$run_pid"; then
        echo "warning: the run did not stop within 60 s of SIGINT; killing it" >&2
        kill -KILL "$run_pid" 2>/dev/null || true
    fi
    local rc=0
    wait "$run_pid" || rc=$?
    run_pid=""
    return "$rc"
}

# stop_checked NAME: stops the measured process; fails with the end of its
# log ($WORK/NAME.log) unless it exits 0.
stop_checked() {
    local rc=0
    stop_run || rc=$?
    if [[ "$rc" != 0 ]]; then
        echo "error: $1 exited with status $rc; its log:" >&2
        tail -n 20 "$WORK/$1.log" >&2
        exit 1
    fi
}

# start_kind SETTING KIND NAME GROUP INPUT OUTPUT: starts the bare loop or
# `partita run` (passthrough, count, or the baseline build) from INPUT to
# OUTPUT in group GROUP; its pid in run_pid, its log in $WORK/NAME.log.
start_kind() {
    local setting="$1" kind="$2" name="$3" group="$4" input="$5" out="$6"
    local log="$WORK/$name.log" props p
    read -ra props <<< "$(setting_properties "$setting")"
    if [[ "$kind" != bare ]]; then
        local bin="$partita" processor=passthrough
        [[ "$kind" == baseline* ]] && bin="$baseline"
        [[ "$kind" == *count ]] && processor=count
        {
            printf '[kafka]\nbootstrap = "%s"\ngroup = "%s"\ncommit_interval_ms = %s\n' \
                "$bootstrap" "$group" "$commit_ms"
            printf '\n[kafka.consumer]\n'
            for p in "${props[@]}"; do printf '"%s" = "%s"\n' "${p%%=*}" "${p#*=}"; done
            printf '\n[[stage]]\nname = "pass"\nprocessor = "%s.wasm"\n' "$processor"
            printf 'input = "%s"\noutputs = { default = "%s" }\n' "$input" "$out"
        } > "$WORK/$name.toml"
        "$bin" run "$WORK/$name.toml" 2>"$log" &
    else
        local args=()
        for p in "${props[@]}"; do args+=(--consumer-property "$p"); done
        "$bare" --bootstrap "$bootstrap" --group "$group" --input "$input" --output "$out" \
            --commit-interval-ms "$commit_ms" "${args[@]}" 2>"$log" &
    fi
    run_pid=$!
}

# latency_one SETTING KIND RATE: end-to-end latency of KIND at RATE
# records/s on fresh topics; appends a line to latency.txt.
latency_one() {
    local setting="$1" kind="$2" rate="$3"
    local name="latency-$setting-$kind" log="$WORK/latency-$setting-$kind.log"
    "$tool" --bootstrap "$bootstrap" create-topic "$name.in" --partitions "$partitions" >/dev/null
    "$tool" --bootstrap "$bootstrap" create-topic "$name.out" --partitions "$partitions" >/dev/null
    "$tool" --bootstrap "$bootstrap" create-topic "$name.in.dlq" --partitions "$partitions" >/dev/null
    start_kind "$setting" "$kind" "$name" "bench-$name" "$name.in" "$name.out"
    local measured
    if ! measured="$("$probe" --bootstrap "$bootstrap" "${probe_fast[@]}" latency \
        --input "$name.in" --output "$name.out" --rate "$rate" \
        --seconds "$latency_s" --warmup-s "$((latency_s / 3))")"; then
        echo "error: $name: no latency measured; its log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    stop_checked "$name"
    echo "$setting $kind $rate $measured" >> "$WORK/latency.txt"
    echo "   $name at $rate records/s: $measured" >&2
}

# run_one SETTING KIND N: one measured run; appends a line to runs.txt.
run_one() {
    local setting="$1" kind="$2" n="$3"
    local name="$setting-$kind-$n"
    local group="bench-$name" out="bench.out.$name" log="$WORK/$name.log"
    "$tool" --bootstrap "$bootstrap" create-topic "$out" --partitions "$partitions" >/dev/null
    local broker_before start
    broker_before="$(ticks "$broker_pid")"
    start="$(date +%s%N)"
    start_kind "$setting" "$kind" "$name" "$group" bench.in "$out"
    if ! "$probe" --bootstrap "$bootstrap" wait-committed --group "$group.pass" \
        --topic bench.in --total "$records" --since-ns "$start" \
        --pid "$run_pid" --pid "$broker_pid" --timeout-s 300 > "$WORK/$name.samples"; then
        echo "error: $name did not finish; its log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    stop_checked "$name"
    local output_digest
    output_digest="$("$probe" --bootstrap "$bootstrap" "${probe_fast[@]}" digest \
        --topic "$out" --expect "$records")"
    if [[ "$kind" == *count ]]; then
        # One output (the key's new total) per input.
        if [[ "$output_digest" != "count=$records "* ]]; then
            echo "error: $name: $out holds $output_digest, expected $records records" >&2
            exit 1
        fi
    elif [[ "$output_digest" != "$input_digest" ]]; then
        echo "error: $name: $out holds $output_digest, bench.in $input_digest" >&2
        exit 1
    fi
    "$tansu" topic delete "$out" --broker "tcp://$bootstrap" >/dev/null
    echo "$setting $kind $n $broker_before $WORK/$name.samples" >> "$WORK/runs.txt"
    echo "   $name: all $records committed after" \
        "$(tail -n 1 "$WORK/$name.samples" | cut -d' ' -f1) ms; output checked" >&2
}

step "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for setting in $settings; do
    for ((n = 1; n <= repeats; n++)); do
        run_one "$setting" bare "$n"
        run_one "$setting" partita "$n"
        if [[ -n "$baseline" ]]; then
            run_one "$setting" baseline "$n"
        fi
        if [[ -n "$count" ]]; then
            run_one "$setting" count "$n"
        fi
        if [[ -n "$baseline" && -n "$count" ]]; then
            run_one "$setting" baseline-count "$n"
        fi
    done
done
if ((latency_s > 0)); then
    for setting in $settings; do
        # Half the records/s of the slowest kind measured above (its first
        # run's total), so that every kind can keep up: on 2 cores, the
        # probe that sends and reads shares the machine.
        kinds=(bare partita)
        [[ -n "$count" ]] && kinds+=(count)
        slowest_ms=0
        for kind in "${kinds[@]}"; do
            done_ms="$(tail -n 1 "$WORK/$setting-$kind-1.samples" | cut -d' ' -f1)"
            slowest_ms="$(python3 -c "print(max($slowest_ms, $done_ms))")"
        done
        rate="$(python3 -c "print(max(1, int($records * 1000 / $slowest_ms / 2)))")"
        how="half the slowest kind's"
        if [[ -n "$latency_rate" ]]; then
            rate="$latency_rate"
            how="--latency-rate"
        fi
        step "latency at $rate records/s ($how), $latency_s s each"
        for kind in "${kinds[@]}"; do
            latency_one "$setting" "$kind" "$rate"
        done
    done
fi
step "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

touch "$WORK/latency.txt"
python3 - "$WORK/runs.txt" "$records" "$(getconf CLK_TCK)" "$json" "$WORK/latency.txt" <<'PY'
import json, statistics, sys

path, records, hz, json_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
latency = {}
for line in open(sys.argv[5]):
    setting, kind, rate, *fields = line.split()
    values = dict(f.split("=") for f in fields)
    latency.setdefault(setting, {})[kind] = {
        "rate": int(rate), **{k: int(v) for k, v in values.items()}}
LO, HI = 0.2, 0.8
runs = {}
for line in open(path):
    setting, kind, n, broker_before, samples_path = line.split()
    samples = []
    for s in open(samples_path):
        ms, count, ticks = s.split()
        proc, broker = map(int, ticks.split(","))
        samples.append((float(ms) / 1e3, int(count), proc, broker))
    done = samples[-1]
    lo = next(s for s in samples if s[1] >= LO * records)
    hi = next(s for s in samples if s[1] >= HI * records)
    steady_known = hi is not lo
    if not steady_known:
        print(f"warning: {setting} {kind} run {n}: no commit seen between {LO:.0%} and "
              f"{HI:.0%} of the records, so no steady figures; use more --records", file=sys.stderr)
    steady, secs = hi[1] - lo[1], hi[0] - lo[0]
    unknown = lambda f: f() if steady_known else None
    runs.setdefault((setting, kind), []).append({
        "total_rate": records / done[0],
        "steady_rate": unknown(lambda: steady / secs),
        "total_cpu": done[2] / hz / records * 1e6,
        "steady_cpu": unknown(lambda: (hi[2] - lo[2]) / hz / steady * 1e6),
        "steady_cores": unknown(lambda: (hi[2] - lo[2]) / hz / secs),
        "broker_total_cpu": (done[3] - int(broker_before)) / hz / records * 1e6,
        "broker_cpu": unknown(lambda: (hi[3] - lo[3]) / hz / steady * 1e6),
        "first_s": next(s[0] for s in samples if s[1] > 0),
        "done_s": done[0],
    })


def median(rs, key):
    """The median of `key` over runs `rs`; None if a run lacks it."""
    values = [r[key] for r in rs]
    return None if None in values else statistics.median(values)


def show(fmt, v):
    return "n/a" if v is None else fmt.format(v)


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"


rows = [
    ("records/s, total (start to all committed)", "total_rate", "{:,.0f}"),
    (f"records/s, steady ({LO:.0%} to {HI:.0%} committed)", "steady_rate", "{:,.0f}"),
    ("CPU µs/record, total", "total_cpu", "{:.2f}"),
    ("CPU µs/record, steady", "steady_cpu", "{:.2f}"),
    ("CPU cores busy, steady", "steady_cores", "{:.2f}"),
    ("broker CPU µs/record, total", "broker_total_cpu", "{:.2f}"),
    ("broker CPU µs/record, steady", "broker_cpu", "{:.2f}"),
    ("s to the first commit", "first_s", "{:.2f}"),
    ("s to all committed", "done_s", "{:.2f}"),
]
medians = {}
for (setting, kind), rs in runs.items():
    medians.setdefault(setting, {})[kind] = {key: median(rs, key) for key in rs[0]}
if json_path:
    with open(json_path, "w") as f:
        json.dump({"records": records, "value_bytes": 100, "settings": medians,
                   "latency": latency}, f, indent=2)
for setting in dict.fromkeys(s for s, _ in runs):
    bare, part = runs[(setting, "bare")], runs[(setting, "partita")]
    base = runs.get((setting, "baseline"))
    cnt = runs.get((setting, "count"))
    base_cnt = runs.get((setting, "baseline-count"))
    print(f"\nsetting {setting}: {records:,} records of 100 B, median of {len(bare)} run(s) each")
    head = f"{'':44} {'bare':>10} {'partita':>10} {'partita/bare':>13}"
    if base:
        head += f" {'baseline':>10} {'partita/baseline':>17}"
    if cnt:
        head += f" {'count':>10} {'count/partita':>14}"
    if base_cnt:
        head += f" {'baseline count':>15} {'count/baseline':>15}"
    print(head)
    for label, key, fmt in rows:
        b, p = median(bare, key), median(part, key)
        line = f"{label:44} {show(fmt, b):>10} {show(fmt, p):>10} {ratio(p, b):>13}"
        if base:
            o = median(base, key)
            line += f" {show(fmt, o):>10} {ratio(p, o):>17}"
        if cnt:
            c = median(cnt, key)
            line += f" {show(fmt, c):>10} {ratio(c, p):>14}"
        if base_cnt:
            bc = median(base_cnt, key)
            line += f" {show(fmt, bc):>15} {ratio(median(cnt, key), bc):>15}"
        print(line)
    for kind, l in latency.get(setting, {}).items():
        print(f"latency of {kind} at {l['rate']:,} records/s: p50 {l['p50_ms']} ms, "
              f"p99 {l['p99_ms']} ms, max {l['max_ms']} ms ({l['measured']:,} outputs measured)")
    print("every run: records/s total, steady; CPU µs/record total, steady; broker µs/record steady")
    kinds = [("bare", bare), ("partita", part)] + ([("baseline", base)] if base else []) \
        + ([("count", cnt)] if cnt else []) \
        + ([("baseline-count", base_cnt)] if base_cnt else [])
    for kind, rs in kinds:
        for i, r in enumerate(rs, 1):
            print(f"  {kind:14} {i}: {r['total_rate']:>9,.0f} {show('{:,.0f}', r['steady_rate']):>9}   "
                  f"{r['total_cpu']:.2f} {show('{:.2f}', r['steady_cpu'])}   "
                  f"{show('{:.2f}', r['broker_cpu'])}")
PY

#!/usr/bin/env bash
# The main job, from nothing: builds Partita and the example processors,
# installs and starts a local Kafka-protocol broker (Tansu), produces sample
# legacy orders (CSV lines, some of them malformed) and a customers reference
# table (a compacted topic in Kafka Connect's JSON envelope, as a JDBC source
# connector writes it), runs a three-stage pipeline on them, csv-to-json then
# enrich then count, until every order is processed, stops it cleanly and
# shows the results.
#
# It also plays the validation story: the legacy system's own output for
# the same orders (legacy.orders.json) is compared with the new pipeline's
# (orders.json) by `partita validate`. The parse stage starts on a first
# version with a rounding bug (amounts with three decimals, in Bahraini
# dinars, rounded to two); the validation finds it, the fixed version is
# written over the stage's file (hot swap, no restart), and a second
# validation over the orders processed after the swap passes.
#
#   scripts/demo.sh [--orders N]
#
# The broker listens on 127.0.0.1:$PARTITA_BROKER_PORT (default 19092) with
# its storage in target/demo/broker; it is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

orders=20000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --orders) orders="$2"; shift 2 ;;
        *) echo "usage: $0 [--orders N]" >&2; exit 2 ;;
    esac
done

export PARTITA_BROKER_PORT="${PARTITA_BROKER_PORT:-19092}"
export PARTITA_BOOTSTRAP="127.0.0.1:$PARTITA_BROKER_PORT"
DEMO="$ROOT/target/demo"
LOGS="$ROOT/target/demo-logs"
mkdir -p "$LOGS"
step() { printf '\n== %s\n' "$*" >&2; }

# quiet NAME COMMAND...: runs a long step with its output in
# $LOGS/NAME.log, one line for it here (with the time it took), and the end
# of its log if it fails.
quiet() {
    local name="$1" log="$LOGS/$1.log" start=$SECONDS
    shift
    printf '== %s ... ' "$name" >&2
    if "$@" > "$log" 2>&1; then
        printf 'done in %d s\n' $((SECONDS - start)) >&2
    else
        printf 'failed after %d s; the end of %s:\n' $((SECONDS - start)) "$log" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

# The broker's first install takes about 12 minutes: say so before the
# builds start (its log is in the cache folder).
quiet "the broker (its first build takes about 12 minutes)" bash scripts/install-broker.sh
quiet "building the processors (wasm32-wasip2)" bash scripts/build-wasm.sh
# One release build of both binaries: they share their dependencies.
quiet "building partita (release)" \
    cargo build --release -p partita -p partita-tests --bin partita --bin kafka-tool
partita="$ROOT/target/release/partita"
tool="$ROOT/target/release/kafka-tool"
export PARTITA_KAFKA_TOOL="$tool"

step "starting the broker on $PARTITA_BOOTSTRAP"
rm -rf "$DEMO"
mkdir -p "$DEMO/processors"
bash scripts/broker.sh start "$DEMO/broker" >&2
run_pid=""
cleanup() {
    [[ -n "$run_pid" ]] && kill "$run_pid" 2>/dev/null || true
    bash scripts/broker.sh stop "$DEMO/broker" >/dev/null 2>&1 || true
}
trap cleanup EXIT

customers=95
step "producing $orders legacy orders (every 500th line malformed) and $customers customers of 100"
for t in legacy.orders orders.json orders.enriched orders.counts legacy.orders.dlq orders.json.dlq orders.enriched.dlq; do
    "$tool" create-topic "$t" --partitions 4 --if-not-exists >&2
done
# Customers c0096 to c0100 are missing from the table: enrich rejects their
# orders. Every 97th order is in Bahraini dinars (three decimals). The
# legacy system's own output for the same orders goes to legacy.orders.json.
legacy=(--mills-every 97 --legacy-output legacy.orders.json --malformed-every 500)
bash scripts/sample-data.sh --count "$orders" --customers "$customers" "${legacy[@]}" >&2

# The parse stage starts on the first version, with the rounding bug.
cp target/wasm/components/csv_to_json_round_to_cents.wasm "$DEMO/processors/csv_to_json.wasm"
cp target/wasm/components/{enrich,count}.wasm "$DEMO/processors/"
cat > "$DEMO/pipeline.toml" <<TOML
# Legacy orders arrive as CSV lines keyed by customer. Stage "parse" turns
# them into JSON; stage "enrich" adds the customer's row from the reference
# table (a compacted topic fed by a JDBC source connector, in Kafka Connect's
# JSON envelope, kept up to date while running); stage "count" keeps a
# running count and total per customer in durable state.
[kafka]
bootstrap = "$PARTITA_BOOTSTRAP"
group = "demo"

[[stage]]
name = "parse"
processor = "processors/csv_to_json.wasm"
input = "legacy.orders"
outputs = { default = "orders.json" }
config = { columns = "id,customer,amount,country", numeric = "amount" }

[[stage]]
name = "enrich"
processor = "processors/enrich.wasm"
input = "orders.json"
outputs = { default = "orders.enriched" }
config = { table = "customers", field = "customer", into = "customer_info" }
tables = { customers = { topic = "ref.customers", format = "connect-json", key_format = "connect-json" } }

[[stage]]
name = "count"
processor = "processors/count.wasm"
input = "orders.enriched"
outputs = { default = "orders.counts" }
config = { field = "amount" }
TOML

metrics_port="${PARTITA_METRICS_PORT:-19898}"
step "running the pipeline ($DEMO/pipeline.toml)"
"$partita" run "$DEMO/pipeline.toml" --metrics-addr "127.0.0.1:$metrics_port" 2> "$DEMO/partita.log" &
run_pid=$!

# Done when every stage has committed everything its input topic holds.
lag() {
    "$tool" offsets "$1" --group "$2" |
        awk '{ for (i = 1; i < NF; i++) if ($i == "lag") s += $(i + 1) } END { print s + 0 }'
}
wait_caught_up() {
    local deadline=$((SECONDS + 300)) parse_lag enrich_lag count_lag
    while :; do
        sleep 2
        if ! kill -0 "$run_pid" 2>/dev/null; then
            cat "$DEMO/partita.log" >&2
            echo "error: partita stopped before the pipeline finished (log above)" >&2
            exit 1
        fi
        parse_lag="$(lag legacy.orders demo.parse)"
        enrich_lag="$(lag orders.json demo.enrich)"
        count_lag="$(lag orders.enriched demo.count)"
        echo "   lag: parse ${parse_lag:-?}, enrich ${enrich_lag:-?}, count ${count_lag:-?}" >&2
        [[ "$parse_lag" == 0 && "$enrich_lag" == 0 && "$count_lag" == 0 ]] && return
        if (( SECONDS > deadline )); then
            echo "error: the pipeline did not finish within 300 s; log: $DEMO/partita.log" >&2
            exit 1
        fi
    done
}
wait_caught_up

validate() {
    "$partita" validate --bootstrap "$PARTITA_BOOTSTRAP" \
        --left legacy.orders.json --right orders.json --key /id --window 1m "$@"
}
step "validating: the legacy system's orders against the new pipeline's (parse stage)"
status=0
validate --report "$DEMO/validation-1.html" 2> "$DEMO/validation-1.log" || status=$?
if [[ $status != 1 ]]; then
    cat "$DEMO/validation-1.log" >&2
    echo "error: the first validation should find the rounding bug (exit 1), it exited $status" >&2
    exit 1
fi
echo "   report: $DEMO/validation-1.html"

step "fixing the parse stage: the new version is written over its file (hot swap)"
swapped_at_ms=$(( $(date +%s%N) / 1000000 ))
cp target/wasm/components/csv_to_json.wasm "$DEMO/processors/csv_to_json.wasm.new"
mv "$DEMO/processors/csv_to_json.wasm.new" "$DEMO/processors/csv_to_json.wasm"
reloads() {
    python3 - "http://127.0.0.1:$metrics_port/metrics" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
m = re.search(r'^partita_reloads_total\{stage="parse"\} (\S+)', text, re.M)
print(int(float(m.group(1))) if m else 0)
PY
}
deadline=$((SECONDS + 60))
until [[ "$(reloads)" -ge 1 ]]; do
    if (( SECONDS > deadline )); then
        echo "error: the parse stage did not swap to the fixed version; log: $DEMO/partita.log" >&2
        exit 1
    fi
    sleep 0.5
done
grep -E 'stage "parse".*(passed its trial|swapped)' "$DEMO/partita.log" | tail -2 | sed 's/^[^ ]* *//' >&2 || true

more=$((orders / 4))
step "producing $more more orders, processed by the fixed version"
bash scripts/sample-data.sh --count "$more" --first-id $((orders + 1)) --seed 43 "${legacy[@]}" >&2
orders=$((orders + more))
wait_caught_up

step "validating again, over the orders since the swap"
status=0
validate --from "$swapped_at_ms" --report "$DEMO/validation-2.html" 2> "$DEMO/validation-2.log" || status=$?
if [[ $status != 0 ]]; then
    cat "$DEMO/validation-2.log" >&2
    echo "error: the validation after the fix failed (exit $status)" >&2
    exit 1
fi
echo "   report: $DEMO/validation-2.html"

step "metrics (http://127.0.0.1:$metrics_port/metrics)"
python3 - "http://127.0.0.1:$metrics_port/metrics" <<'PY' >&2 || true
import re, sys, urllib.request
totals = {}
for line in urllib.request.urlopen(sys.argv[1]).read().decode().splitlines():
    m = re.match(r'partita_(records_in|records_out|records_rejected|dlq)_total\{.*stage="([^"]*)".*\} (\S+)', line)
    if m:
        key = (m.group(2), m.group(1))
        totals[key] = totals.get(key, 0) + float(m.group(3))
    t = re.match(r'partita_table_(keys|records_total|invalid_records_total)\{topic="([^"]*)"\} (\S+)', line)
    if t:
        print(f"   table {t.group(2)} {t.group(1)}: {int(float(t.group(3)))}")
for (stage, name), v in sorted(totals.items()):
    print(f"   stage {stage:<6} {name:<17} {int(v)}")
PY

step "stopping partita (SIGINT: finish batches, commit, exit)"
kill -INT "$run_pid"
wait "$run_pid"
run_pid=""
grep -E "progress|stopped|committed" "$DEMO/partita.log" | tail -4 >&2 || true

step "results"
"$tool" consume orders.counts > "$DEMO/counts.jsonl"
"$tool" consume orders.enriched > "$DEMO/enriched.jsonl"
"$tool" consume legacy.orders.dlq > "$DEMO/dlq.parse.jsonl"
"$tool" consume orders.json.dlq > "$DEMO/dlq.enrich.jsonl"
python3 - "$orders" "$DEMO" <<'PY'
import collections, json, sys
orders, demo = int(sys.argv[1]), sys.argv[2]
def read(name):
    return [json.loads(line) for line in open(f"{demo}/{name}")]
latest = {}
counts = read("counts.jsonl")
for rec in counts:
    v = json.loads(rec["value"])
    if v["count"] > latest.get(v["key"], {"count": 0})["count"]:
        latest[v["key"]] = v
info = {}
for rec in read("enriched.jsonl"):
    v = json.loads(rec["value"])
    info[v["customer"]] = v["customer_info"]
dlq = {"parse": read("dlq.parse.jsonl"), "enrich": read("dlq.enrich.jsonl")}
n_dlq = sum(len(d) for d in dlq.values())
print(f"orders produced:              {orders}")
print(f"parsed, enriched and counted: {len(counts)}")
print(f"rejected to the DLQs:         {n_dlq} (parse {len(dlq['parse'])}, enrich {len(dlq['enrich'])})")
print(f"accounted for:                {len(counts) + n_dlq} of {orders}")
print(f"customers counted:            {len(latest)}, with {sum(v['count'] for v in latest.values())} orders")
print("\nDLQ reasons (stage, count, reason):")
for stage, records in dlq.items():
    reasons = collections.Counter(r.get("headers", {}).get("partita.error", "?") for r in records)
    for reason, n in reasons.most_common(6):
        print(f"  {stage:<7} {n:>5}  {reason}")
print("\ntop customers by total amount (customer, name, segment, orders, total):")
for v in sorted(latest.values(), key=lambda v: -v["sum"])[:8]:
    i = info.get(v["key"], {})
    print(f"  {v['key']:<7} {i.get('name', '?'):<16} {i.get('segment', '?'):<10} {v['count']:>6} {v['sum']:>14.2f}")
PY
state_dir="$DEMO/.partita-state"
if [[ -d "$state_dir" ]]; then
    printf '\ndurable state of count (survives restarts): %s, %s\n' "$state_dir" "$(du -sh "$state_dir" | cut -f1)"
fi

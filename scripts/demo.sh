#!/usr/bin/env bash
# The main job, from nothing: builds Partita and the example processors,
# installs and starts a local Kafka-protocol broker (Tansu), produces sample
# legacy orders (CSV lines, some of them malformed), runs a two-stage
# pipeline on them, csv-to-json then count, until every order is processed,
# stops it cleanly and shows the results.
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
step() { printf '\n== %s\n' "$*" >&2; }

step "building partita and the processors"
bash scripts/build-wasm.sh 2>/dev/null
cargo build --release -q -p partita --bin partita
cargo build -q -p partita-tests --bin kafka-tool
partita="$ROOT/target/release/partita"
tool="$ROOT/target/debug/kafka-tool"

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

step "producing $orders legacy orders (every 500th line malformed)"
for t in legacy.orders orders.json orders.counts legacy.orders.dlq orders.json.dlq; do
    "$tool" create-topic "$t" --partitions 4 --if-not-exists >&2
done
"$tool" produce-orders legacy.orders --count "$orders" --malformed-every 500 >&2

cp target/wasm/components/csv_to_json.wasm target/wasm/components/count.wasm "$DEMO/processors/"
cat > "$DEMO/pipeline.toml" <<TOML
# Legacy orders arrive as CSV lines keyed by customer. Stage "parse" turns
# them into JSON; stage "count" keeps a running count and total per customer.
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
name = "count"
processor = "processors/count.wasm"
input = "orders.json"
outputs = { default = "orders.counts" }
config = { field = "amount" }
TOML

metrics_port="${PARTITA_METRICS_PORT:-19898}"
step "running the pipeline ($DEMO/pipeline.toml)"
"$partita" run "$DEMO/pipeline.toml" --metrics-addr "127.0.0.1:$metrics_port" 2> "$DEMO/partita.log" &
run_pid=$!

# Done when both stages have committed everything their input topics hold.
lag() {
    "$tool" offsets "$1" --group "$2" |
        awk '{ for (i = 1; i < NF; i++) if ($i == "lag") s += $(i + 1) } END { print s + 0 }'
}
deadline=$((SECONDS + 300))
while :; do
    sleep 2
    if ! kill -0 "$run_pid" 2>/dev/null; then
        cat "$DEMO/partita.log" >&2
        echo "error: partita stopped before the pipeline finished (log above)" >&2
        exit 1
    fi
    parse_lag="$(lag legacy.orders demo.parse)"
    count_lag="$(lag orders.json demo.count)"
    echo "   lag: parse ${parse_lag:-?}, count ${count_lag:-?}" >&2
    [[ "$parse_lag" == 0 && "$count_lag" == 0 ]] && break
    if (( SECONDS > deadline )); then
        echo "error: the pipeline did not finish within 300 s; log: $DEMO/partita.log" >&2
        exit 1
    fi
done

step "metrics (http://127.0.0.1:$metrics_port/metrics)"
python3 - "http://127.0.0.1:$metrics_port/metrics" <<'PY' >&2 || true
import re, sys, urllib.request
totals = {}
for line in urllib.request.urlopen(sys.argv[1]).read().decode().splitlines():
    m = re.match(r'partita_(records_in|records_out|records_rejected|dlq)_total\{.*stage="([^"]*)".*\} (\S+)', line)
    if m:
        key = (m.group(2), m.group(1))
        totals[key] = totals.get(key, 0) + float(m.group(3))
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
"$tool" consume legacy.orders.dlq > "$DEMO/dlq.jsonl"
python3 - "$orders" "$DEMO/counts.jsonl" "$DEMO/dlq.jsonl" <<'PY'
import json, sys
orders, counts_path, dlq_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
latest = {}
n_counts = 0
for line in open(counts_path):
    rec = json.loads(line)
    v = json.loads(rec["value"])
    n_counts += 1
    if v["count"] > latest.get(v["key"], {"count": 0})["count"]:
        latest[v["key"]] = v
dlq = [json.loads(line) for line in open(dlq_path)]
print(f"orders produced:            {orders}")
print(f"parsed and counted:         {n_counts}")
print(f"rejected to the DLQ:        {len(dlq)}")
print(f"accounted for:              {n_counts + len(dlq)} of {orders}")
if dlq:
    h = dlq[0].get("headers", {})
    print(f"first rejection:            offset {h.get('partita.source.offset')}: {h.get('partita.error')}")
print("\ntop customers by total amount (count, sum):")
for v in sorted(latest.values(), key=lambda v: -v["sum"])[:5]:
    print(f"  {v['key']:<12} {v['count']:>6} {v['sum']:>14.2f}")
PY

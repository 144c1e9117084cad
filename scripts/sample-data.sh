#!/usr/bin/env bash
# Produces sample legacy data to the local broker: orders as CSV lines
# "id,customer,amount,country", keyed by customer, into a topic that it
# creates when missing; and, on request, the customers reference table.
#
#   scripts/sample-data.sh [--count N] [--topic T] [--partitions P]
#                          [--malformed-every K] [--seed S]
#                          [--customers C] [--customers-topic T]
#
# Defaults: 10000 orders into legacy.orders with 4 partitions, none
# malformed. With --malformed-every K, every K-th line uses ';' instead of
# ',' as a broken legacy export would. Orders go to 100 customers, c0001 to
# c0100.
#
# With --customers C, customers c0001 to cC (name and segment) also go to
# the compacted topic ref.customers (or --customers-topic), keys and values
# in Kafka Connect's JSON envelope, as a JDBC source connector with the JSON
# converter (schemas.enable=true) writes a table row:
#   key   {"schema":{"type":"string","optional":false},"payload":"c0001"}
#   value {"schema":{"type":"struct","fields":[...]},"payload":{"id":"c0001","name":"Ada Adams","segment":"retail"}}
# The broker is the one of
# scripts/broker.sh: 127.0.0.1:$PARTITA_BROKER_PORT (9092), or
# $PARTITA_BOOTSTRAP when set. Same seed, same data.
set -euo pipefail
cd "$(dirname "$0")/.."

count=10000
topic=legacy.orders
partitions=4
seed=42
malformed=()
customers=0
customers_topic=ref.customers

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --topic) topic="$2"; shift 2 ;;
        --partitions) partitions="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --malformed-every) malformed=(--malformed-every "$2"); shift 2 ;;
        --customers) customers="$2"; shift 2 ;;
        --customers-topic) customers_topic="$2"; shift 2 ;;
        *)
            echo "usage: $0 [--count N] [--topic T] [--partitions P] [--malformed-every K] [--seed S] [--customers C] [--customers-topic T]" >&2
            exit 2
            ;;
    esac
done

# PARTITA_KAFKA_TOOL names a kafka-tool already built (demo.sh sets it).
tool="${PARTITA_KAFKA_TOOL:-}"
if [[ -z $tool ]]; then
    cargo build -q -p partita-tests --bin kafka-tool >&2
    tool="${CARGO_TARGET_DIR:-target}/debug/kafka-tool"
fi

"$tool" create-topic "$topic" --partitions "$partitions" --if-not-exists
"$tool" produce-orders "$topic" --count "$count" --seed "$seed" "${malformed[@]}"

if (( customers > 0 )); then
    "$tool" create-topic "$customers_topic" --partitions 1 --config cleanup.policy=compact --if-not-exists
    python3 - "$customers" <<'PY' | "$tool" produce "$customers_topic" --tab-key
import json, sys
first = ["Ada", "Bob", "Chloe", "Dev", "Emma", "Femi", "Gus", "Hana", "Ivo", "Jun"]
last = ["Adams", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jansen"]
segments = ["retail", "wholesale", "online"]
key_schema = {"type": "string", "optional": False}
value_schema = {
    "type": "struct",
    "name": "customers",
    "optional": False,
    "fields": [
        {"type": "string", "optional": False, "field": "id"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "string", "optional": True, "field": "segment"},
    ],
}
for i in range(1, int(sys.argv[1]) + 1):
    cid = f"c{i:04d}"
    row = {"id": cid, "name": f"{first[i % 10]} {last[(i // 10) % 10]}", "segment": segments[i % 3]}
    key = json.dumps({"schema": key_schema, "payload": cid}, separators=(",", ":"))
    value = json.dumps({"schema": value_schema, "payload": row}, separators=(",", ":"))
    print(f"{key}\t{value}")
PY
fi

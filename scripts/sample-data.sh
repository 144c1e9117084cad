#!/usr/bin/env bash
# Produces sample legacy data to the local broker: orders as CSV lines
# "id,customer,amount,country", keyed by customer, into a topic that it
# creates when missing; and, on request, the customers reference table.
#
#   scripts/sample-data.sh [--count N] [--topic T] [--partitions P]
#                          [--malformed-every K] [--seed S]
#                          [--customers C] [--customers-topic T]
#                          [--first-id I] [--mills-every M]
#                          [--legacy-output T]
#
# Defaults: 10000 orders into legacy.orders with 4 partitions, none
# malformed. With --malformed-every K, every K-th line uses ';' instead of
# ',' as a broken legacy export would. Orders go to 100 customers, c0001 to
# c0100. Order ids start at 1, or at --first-id.
#
# With --mills-every M, every order whose id is a multiple of M is in
# Bahraini dinars: country BH and an amount with three decimals.
#
# With --legacy-output T, what the legacy system computed for the same
# orders also goes to topic T, keyed by order id: one JSON object per
# well-formed order, {"id":"7","customer":"c0014","amount":901.91,
# "country":"NL"}, with the amount exactly as in the CSV line (the
# malformed lines were rejected by the legacy system too).
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
first_id=1
mills_every=0
legacy_output=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --topic) topic="$2"; shift 2 ;;
        --partitions) partitions="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --malformed-every) malformed=(--malformed-every "$2"); shift 2 ;;
        --customers) customers="$2"; shift 2 ;;
        --customers-topic) customers_topic="$2"; shift 2 ;;
        --first-id) first_id="$2"; shift 2 ;;
        --mills-every) mills_every="$2"; shift 2 ;;
        --legacy-output) legacy_output="$2"; shift 2 ;;
        *)
            echo "usage: $0 [--count N] [--topic T] [--partitions P] [--malformed-every K] [--seed S] [--customers C] [--customers-topic T] [--first-id I] [--mills-every M] [--legacy-output T]" >&2
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
if [[ $first_id == 1 && $mills_every == 0 && -z $legacy_output ]]; then
    "$tool" produce-orders "$topic" --count "$count" --seed "$seed" "${malformed[@]}"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    cat > "$work/orders.py" <<'PY'
import sys
first, mills, legacy_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(legacy_path, "w") as legacy:
    for line in sys.stdin:
        line = line.rstrip("\n")
        sep = ";" if ";" in line else ","
        fields = line.split(sep)
        fields[0] = str(int(fields[0]) + first - 1)
        if sep == ";":
            # Malformed: rejected by both systems. Keyed by customer too.
            print(f"{fields[1]}\t{';'.join(fields)}")
            continue
        oid, customer, amount, country = fields
        if mills and int(oid) % mills == 0:
            amount, country = f"{amount}{1 + int(oid) % 9}", "BH"
        print(f"{customer}\t{oid},{customer},{amount},{country}")
        legacy.write(
            f'{oid}\t{{"id":"{oid}","customer":"{customer}","amount":{amount},"country":"{country}"}}\n'
        )
PY
    "$tool" gen-orders --count "$count" --seed "$seed" "${malformed[@]}" |
        python3 "$work/orders.py" "$first_id" "$mills_every" "$work/legacy.txt" > "$work/orders.txt"
    "$tool" produce "$topic" --tab-key --input "$work/orders.txt"
    if [[ -n $legacy_output ]]; then
        "$tool" create-topic "$legacy_output" --partitions "$partitions" --if-not-exists
        "$tool" produce "$legacy_output" --tab-key --input "$work/legacy.txt"
    fi
fi

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

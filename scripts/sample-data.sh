#!/usr/bin/env bash
# Produces sample legacy data to the local broker: orders as CSV lines
# "id,customer,amount,country", keyed by customer, into a topic that it
# creates when missing.
#
#   scripts/sample-data.sh [--count N] [--topic T] [--partitions P]
#                          [--malformed-every K] [--seed S]
#
# Defaults: 10000 orders into legacy.orders with 4 partitions, none
# malformed. With --malformed-every K, every K-th line uses ';' instead of
# ',' as a broken legacy export would. The broker is the one of
# scripts/broker.sh: 127.0.0.1:$PARTITA_BROKER_PORT (9092), or
# $PARTITA_BOOTSTRAP when set. Same seed, same data.
set -euo pipefail
cd "$(dirname "$0")/.."

count=10000
topic=legacy.orders
partitions=4
seed=42
malformed=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --topic) topic="$2"; shift 2 ;;
        --partitions) partitions="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --malformed-every) malformed=(--malformed-every "$2"); shift 2 ;;
        *)
            echo "usage: $0 [--count N] [--topic T] [--partitions P] [--malformed-every K] [--seed S]" >&2
            exit 2
            ;;
    esac
done

cargo build -q -p partita-tests --bin kafka-tool >&2
tool="${CARGO_TARGET_DIR:-target}/debug/kafka-tool"

"$tool" create-topic "$topic" --partitions "$partitions" --if-not-exists
"$tool" produce-orders "$topic" --count "$count" --seed "$seed" "${malformed[@]}"

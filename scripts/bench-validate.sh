#!/usr/bin/env bash
# Benchmark of `partita validate`: records per second per side over N
# records on each side (default 1,000,000), against the cost of only
# reading the same two topics with the same client (kafka-tool consume), in
# the same run.
#
#   scripts/bench-validate.sh [--records N] [--partitions P]
#
# Builds in release mode, starts a private Tansu broker (SQLite storage,
# whose end offsets are exact: validate reads to the end offsets it takes
# at start) on a free port, produces N JSON orders to each of two topics
# (P partitions each, default 4; the right side keyed differently, 1 in
# 1,000 amounts changed), then runs, each twice and alternating:
#   - read: kafka-tool consume of both topics to /dev/null;
#   - validate: partita validate --key /id --window 30s --format json
#     (the two sides are produced at once, their producer timestamps a few
#     seconds apart at most).
# Prints the best of the two runs of each and the ratio of validate's time to the read-only time.
set -euo pipefail
cd "$(dirname "$0")/.."

records=1000000
partitions=4
while [[ $# -gt 0 ]]; do
    case $1 in
        --records) records=$2; shift 2 ;;
        --partitions) partitions=$2; shift 2 ;;
        *) echo "usage: $0 [--records N] [--partitions P]" >&2; exit 2 ;;
    esac
done

cargo build --release -q -p partita -p partita-tests --bin partita --bin kafka-tool
partita=target/release/partita
tool=target/release/kafka-tool
tansu=$(bash scripts/install-broker.sh)

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bootstrap=127.0.0.1:$port
(cd "$work" && exec "$tansu" broker --listener-url "tcp://$bootstrap" \
    --advertised-listener-url "tcp://$bootstrap" --storage-engine sqlite://tansu.db \
    > broker.log 2>&1) &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

export PARTITA_BOOTSTRAP=$bootstrap
"$tool" create-topic legacy --partitions "$partitions" > /dev/null
"$tool" create-topic new --partitions "$partitions" > /dev/null
echo "producing $records records to each side" >&2
# Legacy: keyed by customer; new: keyed by order id; one amount in 1,000
# differs.
python3 - "$records" "$work" <<'PY'
import sys
n, work = int(sys.argv[1]), sys.argv[2]
with open(f"{work}/left.txt", "w") as l, open(f"{work}/right.txt", "w") as r:
    for i in range(n):
        amount = (i * 7919) % 100000 / 100
        other = amount + (0.01 if i % 1000 == 0 else 0)
        l.write(f'c{i % 100:04}\t{{"id": {i}, "customer": "c{i % 100:04}", "amount": {amount:.2f}}}\n')
        r.write(f'{i}\t{{"customer": "c{i % 100:04}", "amount": {other:.2f}, "id": {i}}}\n')
PY
# Both at once, so that their producer timestamps line up (the window is
# 30 s).
"$tool" --timeout 600 produce legacy --tab-key --input "$work/left.txt" > /dev/null &
"$tool" --timeout 600 produce new --tab-key --input "$work/right.txt" > /dev/null
wait

# Wall seconds of one command, its stdout kept in $work/out.
seconds() {
    local start end
    start=$(date +%s%N)
    "$@" > "$work/out" 2> "$work/err"
    end=$(date +%s%N)
    echo "$(( (end - start) / 1000000 ))e-3"
}
read_only() {
    "$tool" consume legacy > /dev/null
    "$tool" consume new > /dev/null
}
validate() {
    "$partita" validate --bootstrap "$bootstrap" --left legacy --right new --key /id \
        --window 30s --format json || [[ $? == 1 ]]
}
reads=(); validates=()
for _ in 1 2; do
    reads+=("$(seconds read_only)")
    validates+=("$(seconds validate)")
    cp "$work/out" "$work/summary.json"
done
best() { printf '%s\n' "$@" | sort -g | head -1; }
r=$(best "${reads[@]}"); v=$(best "${validates[@]}")
python3 - "$records" "$r" "$v" "$work/summary.json" <<'PY'
import json, sys
n, r, v = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = json.load(open(sys.argv[4]))
print(f"records per side          {n}")
print(f"read both topics only     {r:6.1f} s  {n / r:10.0f} records/s per side")
print(f"partita validate          {v:6.1f} s  {n / v:10.0f} records/s per side")
print(f"validate / read           {v / r:6.2f}")
print(f"counts                    {json.dumps(s['counts'])}")
PY

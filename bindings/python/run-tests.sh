#!/usr/bin/env bash
# Builds waymark-ffi, the sync server and the hostile server in front of it, generates the Python
# bindings from the built library, and runs the pytest suite against them. Exits non-zero on any
# failure.
# Uses $CARGO_TARGET_DIR when set, else the workspace's target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TARGET_DIR="$target"

echo "== build waymark-ffi, waymark-server, uniffi-bindgen and hostile-server"
bindings/build-for-tests.sh

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== generate Python bindings into $out"
"$target/debug/uniffi-bindgen" generate --library "$target/debug/libwaymark_ffi.so" \
  --language python --out-dir "$out"
cp "$target/debug/libwaymark_ffi.so" "$out/"

if ! python3 -c "import pytest" 2>/dev/null; then
  python3 -m pip install --quiet pytest
fi

echo "== pytest bindings/python/tests"
WAYMARK_PY_BINDINGS="$out" WAYMARK_SERVER_BIN="$target/debug/waymark-server" \
  WAYMARK_HOSTILE_BIN="$target/debug/hostile-server" \
  python3 -m pytest -q -p no:cacheprovider bindings/python/tests "$@"

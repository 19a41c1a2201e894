#!/usr/bin/env bash
# Checks that waymark-ffi built as an app ships it (default features) exports none of the
# `debug_force_*` calls that panic on purpose: they exist only with the `test-hooks` feature,
# which the binding suites enable (`build-for-tests.sh`). Exits non-zero if one is exported,
# or if the library exports no uniffi function at all (a check that looks at nothing).
# Uses $CARGO_TARGET_DIR when set, else the workspace's target/.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$(pwd)/target}"

# A package of its own in the command, so no other package's features unify into this build.
cargo build -p waymark-ffi --lib
lib="$target/debug/libwaymark_ffi.so"
symbols="$(nm -D --defined-only "$lib")"

if ! grep -q 'uniffi_waymark_ffi_fn_constructor_waymarkstore_open' <<<"$symbols"; then
  echo "check-shipped-surface: $lib exports no uniffi function; is this the right library?" >&2
  exit 1
fi
if grep -i 'debug_force' <<<"$symbols"; then
  echo "check-shipped-surface: a default build of waymark-ffi exports the test hooks above" >&2
  exit 1
fi
echo "check-shipped-surface: a default build of waymark-ffi exports no test hook"

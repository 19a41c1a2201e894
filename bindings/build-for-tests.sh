#!/usr/bin/env bash
# Builds what the three binding suites (Python, Kotlin on the JVM, Swift on Linux) run against,
# in debug, into $CARGO_TARGET_DIR (default: the workspace's target/):
#   libwaymark_ffi.so   the library the bindings call
#   uniffi-bindgen      generates each language's bindings from that library
#   waymark-server      the real sync server the tests start
#   hostile-server      a server in front of it that lies on demand (tests/src/hostile.rs)
#
# One cargo invocation, so that features unify once: the four are built with the same feature
# set as `cargo build -p waymark-ffi -p waymark-server -p uniffi-bindgen`, and the second suite
# to run rebuilds nothing. `--lib` and the named `--bin`s keep the e2e package's other binaries
# (load tool, e2e-server) out of it.
#
# `waymark-ffi/test-hooks` adds the `debug_force_*` calls the suites use to check that a panic
# becomes an error; a default build, as apps ship, has none (`check-shipped-surface.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p waymark-ffi -p waymark-server -p uniffi-bindgen -p waymark-e2e \
  --features waymark-ffi/test-hooks \
  --lib --bin waymark-server --bin uniffi-bindgen --bin hostile-server

#!/usr/bin/env bash
# Runs the Swift package's XCTest suite on Linux against the host build of waymark-ffi.
#
#   sudo ios/scripts/test-linux.sh [extra swift test args, e.g. --filter SyncTests]
#
# 1. builds waymark-ffi, waymark-server, uniffi-bindgen and hostile-server (debug) into
#    $CARGO_TARGET_DIR (default: the workspace's target/; bindings/build-for-tests.sh);
# 2. generates the Swift bindings (waymark.swift, waymarkFFI.h) from libwaymark_ffi.so;
# 3. prepares a Debian trixie root with Debian's swiftlang (scripts/swift-linux-root.sh; the host,
#    bookworm, has no Swift package) at $WAYMARK_SWIFT_ROOT (default /var/cache/waymark/swift-trixie);
# 4. copies the package, the generated files, the library and the two server binaries into the
#    root under /waymark and runs `swift test` there with chroot.
# Binaries built on bookworm (glibc 2.36) run unchanged in trixie (glibc 2.41).
# Exits with swift test's status. Needs root (debootstrap, chroot, mount).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TARGET_DIR="$target"
ROOT="${WAYMARK_SWIFT_ROOT:-/var/cache/waymark/swift-trixie}"
export WAYMARK_SWIFT_ROOT="$ROOT"
started=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
  echo "test-linux.sh must run as root (it builds and enters a chroot)" >&2
  exit 1
fi

echo "== build waymark-ffi, waymark-server, uniffi-bindgen and hostile-server"
bindings/build-for-tests.sh
lib="$target/debug/libwaymark_ffi.so"
server="$target/debug/waymark-server"
hostile="$target/debug/hostile-server"

gen="$(mktemp -d)"
MOUNTED=()
cleanup() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
  rm -rf "$gen"
}
trap cleanup EXIT

echo "== generate Swift bindings"
"$target/debug/uniffi-bindgen" generate --library "$lib" --language swift --out-dir "$gen" --no-format

echo "== prepare the trixie root with swiftlang at $ROOT"
ios/scripts/swift-linux-root.sh

echo "== copy the package, bindings, library and servers into the root"
work="$ROOT/waymark"
rm -rf "$work/pkg" "$work/lib" "$work/bin"
mkdir -p "$work/pkg" "$work/lib" "$work/bin" "$work/build"
# The package as committed (no host .build/ or stale generated files), plus the fresh bindings.
tar -C ios --exclude=./.build --exclude=./.swiftpm --exclude=./WaymarkFFI.xcframework \
  --exclude=./Sources/Waymark/waymark.swift --exclude=./Sources/waymarkFFI/waymarkFFI.h -cf - . |
  tar -C "$work/pkg" -xf -
cp "$gen/waymark.swift" "$work/pkg/Sources/Waymark/waymark.swift"
cp "$gen/waymarkFFI.h" "$work/pkg/Sources/waymarkFFI/waymarkFFI.h"
cp "$lib" "$work/lib/"
cp "$server" "$hostile" "$work/bin/"

for m in proc dev; do mkdir -p "$ROOT/$m"; done
mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" && MOUNTED+=("$ROOT/dev")
mkdir -p "$ROOT/tmp" && chmod 1777 "$ROOT/tmp"

echo "== swift test (in the trixie root)"
# The build cache stays in /waymark/build between runs; the sources are fresh each time.
log="$work/swift-test.log"
set +e
chroot "$ROOT" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 TMPDIR=/tmp \
  WAYMARK_SERVER_BIN=/waymark/bin/waymark-server \
  WAYMARK_HOSTILE_BIN=/waymark/bin/hostile-server \
  LD_LIBRARY_PATH=/waymark/lib \
  /bin/sh -c 'cd /waymark/pkg && exec swift test --scratch-path /waymark/build -j 2 \
    --disable-swift-testing \
    -Xlinker -L/waymark/lib -Xlinker -rpath -Xlinker /waymark/lib "$@"' swift-test "$@" 2>&1 |
  tee "$log"
status=${PIPESTATUS[0]}
set -e

# XCTest's summary ("Executed N tests, with M failures ...") counts assertion failures; count the
# test cases instead, for one plain closing line.
passed=$(grep -cE "^Test Case '.*' passed \(" "$log" || true)
failed=$(grep -cE "^Test Case '.*' failed \(" "$log" || true)
echo "swift: $passed passed, $failed failed"
if [ "$status" -eq 0 ] && { [ "$passed" -eq 0 ] || [ "$failed" -ne 0 ]; }; then
  echo "swift test exited 0 but $passed tests passed and $failed failed" >&2
  status=1
fi

echo "== swift test exited $status after $(($(date +%s) - started)) s in all"
exit $status

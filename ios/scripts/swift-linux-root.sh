#!/usr/bin/env bash
# Build a Debian trixie root with Debian's Swift toolchain (`swiftlang`) in it, for running
# `swift test` on a Debian bookworm host (which has no Swift package).
#
#   sudo ios/scripts/swift-linux-root.sh          # root goes to $WAYMARK_SWIFT_ROOT
#
# WAYMARK_SWIFT_ROOT   where the root lives (default /var/cache/waymark/swift-trixie)
# WAYMARK_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#
# Idempotent: a finished root carries a stamp naming the package set; a second run with the same
# set returns at once. A half-built root (interrupted run, no stamp) is removed and rebuilt.
# Only Debian's packages are used: debootstrap (from the host's apt) and trixie's archive.
# Needs root (debootstrap, chroot, mount). About 2.4 GB on disk once built.
set -euo pipefail

ROOT="${WAYMARK_SWIFT_ROOT:-/var/cache/waymark/swift-trixie}"
MIRROR="${WAYMARK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=trixie
# swiftlang pulls gcc and binutils; swift build's linker step also needs the C runtime headers and
# crt files (libc6-dev); libwaymark_ffi.so and waymark-server link libcrypto.so.3 (libssl3t64);
# the core's HTTP client (reqwest + rustls platform verifier) refuses to build without a system CA
# store ("cannot build an HTTP client: builder error"), even for http:// URLs (ca-certificates).
PACKAGES="swiftlang libc6-dev libssl3t64 ca-certificates"
STAMP="$ROOT/.waymark-swift-root"
WANT="suite=$SUITE packages=$PACKAGES"

log() { echo "[swift-linux-root] $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "swift-linux-root.sh must run as root (debootstrap, chroot)" >&2
  exit 1
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$ROOT/usr/bin/swift" ]; then
  log "root ready at $ROOT ($(cat "$STAMP"))"
  exit 0
fi

start=$(date +%s)

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi

MOUNTED=()
cleanup() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

if [ ! -f "$ROOT/.debootstrap-done" ]; then
  if [ -e "$ROOT" ]; then
    log "removing incomplete root $ROOT"
    # never follow into anything still mounted from an interrupted run
    for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
  fi
  mkdir -p "$ROOT"
  log "debootstrap $SUITE into $ROOT from $MIRROR"
  # The bookworm host's keyring knows the keys that sign trixie's Release file.
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 || {
    tail -30 "$ROOT.debootstrap.log" >&2
    exit 1
  }
  touch "$ROOT/.debootstrap-done"
fi

# apt inside the root: the same mirror, name resolution from the host.
cat >"$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
SRC
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"

for m in proc sys dev; do
  mkdir -p "$ROOT/$m"
done
mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" && MOUNTED+=("$ROOT/dev")

log "installing $PACKAGES (swiftlang is a ~450 MB download)"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  apt-get update -qq
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends $PACKAGES >"$ROOT.apt.log" 2>&1 || {
  tail -30 "$ROOT.apt.log" >&2
  exit 1
}
chroot "$ROOT" apt-get clean

chroot "$ROOT" /usr/bin/swift --version >&2
echo "$WANT" >"$STAMP"
end=$(date +%s)
log "root ready at $ROOT in $((end - start)) s, $(du -sh --one-file-system "$ROOT" | cut -f1)"

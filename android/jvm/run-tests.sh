#!/usr/bin/env bash
# Builds waymark-ffi, waymark-server, uniffi-bindgen and hostile-server for the host, generates
# the Kotlin bindings from the built library, and runs the JUnit 5 tests of android/jvm with
# Maven: the generated Kotlin plus the platform-neutral sources of android/waymark/src/main/kotlin,
# against libwaymark_ffi.so (through JNA), a real waymark-server and a hostile server in front
# of it. Exits non-zero on failure.
#
# Uses $CARGO_TARGET_DIR when set, else the workspace's target/. Extra arguments go to Maven
# (e.g. -Dtest=SyncJourneyTest, or -Dmaven.repo.local=/tmp/m2 for a fresh local repository).
# Needs cargo, Java >= 17 and Maven (installed with apt-get when missing); the first run downloads the
# Kotlin compiler, JUnit, JNA and kotlinx-coroutines from Maven Central.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TARGET_DIR="$target"

if ! command -v mvn >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing maven (and a Java runtime) from Debian's packages"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq maven
fi
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "run-tests.sh: $tool is missing" >&2; exit 2; }
done

echo "== build waymark-ffi, waymark-server, uniffi-bindgen and hostile-server"
bindings/build-for-tests.sh

gen="$repo/android/jvm/target/generated-sources/uniffi"
rm -rf "$gen"
mkdir -p "$gen"
echo "== generate Kotlin bindings into $gen"
"$target/debug/uniffi-bindgen" generate --library "$target/debug/libwaymark_ffi.so" \
  --language kotlin --no-format --out-dir "$gen"

echo "== mvn test (android/jvm)"
cd "$repo/android/jvm"
mvn -q -B test \
  -Dwaymark.generated="$gen" \
  -Djna.library.path="$target/debug" \
  -Dwaymark.server="$target/debug/waymark-server" \
  -Dwaymark.hostile="$target/debug/hostile-server" \
  "$@"
# Maven's -q hides Surefire's summary: print it from the reports, on a line of its own.
echo
python3 - target/surefire-reports <<'PY' || true
import sys, glob, xml.etree.ElementTree as ET
t = f = e = s = 0
for p in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(p).getroot()
    t += int(r.get("tests", 0)); f += int(r.get("failures", 0))
    e += int(r.get("errors", 0)); s += int(r.get("skipped", 0))
print(f"Tests run: {t}, Failures: {f}, Errors: {e}, Skipped: {s}")
PY

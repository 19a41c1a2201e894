#!/usr/bin/env bash
# Builds libwaymark_ffi.so for the Android ABIs the library ships (arm64-v8a, armeabi-v7a,
# x86_64) with cargo-ndk, into android/waymark/src/main/jniLibs/<abi>/, and generates the
# Kotlin bindings once so a mistake shows here rather than in Gradle.
#
# One-time setup (on the developer's machine or CI with the Android SDK):
#   1. Android NDK r26 or later: `sdkmanager "ndk;27.2.12479018"`, then
#      export ANDROID_NDK_HOME="$ANDROID_HOME/ndk/27.2.12479018"
#   2. cargo install cargo-ndk
#   3. rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#   4. perl and make (OpenSSL's build uses them): the vendored-openssl feature builds OpenSSL
#      from source for SQLCipher, so nothing is linked from the device.
#
# Usage: android/scripts/build-native.sh [--debug]   (release by default)
# Then:  cd android && ./gradlew :waymark:assembleRelease   (AAR in waymark/build/outputs/aar)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
profile=release
[[ "${1:-}" == "--debug" ]] && profile=debug

: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the NDK (see the comment at the top)}"
command -v cargo-ndk >/dev/null || { echo "cargo-ndk is missing: cargo install cargo-ndk" >&2; exit 2; }

jni="$repo/android/waymark/src/main/jniLibs"
mkdir -p "$jni"

# API 26 = the module's minSdk. waymark-ffi passes vendored-openssl on to waymark-core
# (rusqlite's bundled-sqlcipher-vendored-openssl).
args=(ndk -t arm64-v8a -t armeabi-v7a -t x86_64 --platform 26 -o "$jni"
      build -p waymark-ffi --features vendored-openssl)
[[ "$profile" == release ]] && args+=(--release)
cargo "${args[@]}"

# Strip debug info: the release library is ~12 MB unstripped per ABI.
strip="$(find "$ANDROID_NDK_HOME/toolchains/llvm/prebuilt" -name llvm-strip -type f | head -n1)"
if [[ -n "$strip" ]]; then
  for so in "$jni"/*/libwaymark_ffi.so; do "$strip" --strip-debug "$so"; done
fi

# The bindings are generated from the library's metadata (any ABI will do); Gradle does this
# again at build time into waymark/build/generated/uniffi/kotlin.
cargo build -p uniffi-bindgen
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"${CARGO_TARGET_DIR:-$repo/target}/debug/uniffi-bindgen" generate \
  --library "$jni/arm64-v8a/libwaymark_ffi.so" --language kotlin --no-format --out-dir "$out"
ls -l "$jni"/*/libwaymark_ffi.so
echo "bindings OK: $(find "$out" -name '*.kt' | wc -l) Kotlin file(s)"

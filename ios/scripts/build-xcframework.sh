#!/usr/bin/env bash
# Builds WaymarkFFI.xcframework (device + simulator) and the Swift bindings, on macOS with Xcode.
# Not run in CI (it needs Xcode); Linux CI runs scripts/test-linux.sh instead.
#
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
#   ios/scripts/build-xcframework.sh            # release build; PROFILE=debug for a debug one
#
# Writes
#   ios/WaymarkFFI.xcframework          static libwaymark_ffi.a for ios-arm64 and
#                                       ios-arm64_x86_64-simulator, with waymarkFFI.h + module map
#   ios/Sources/Waymark/waymark.swift   the generated Swift API
# after which ios/ is a Swift package an app adds as a local package (File > Add Package
# Dependencies > Add Local..., or `.package(path: "../waymark/ios")`): Package.swift switches to
# the XCFramework when it exists. Both outputs are ignored by git; rebuild after changing Rust.
#
# SQLCipher needs OpenSSL's libcrypto, which iOS does not ship: the `vendored-openssl` feature of
# waymark-ffi (-> waymark-core -> rusqlite's bundled-sqlcipher-vendored-openssl) builds it from
# source for each target (a few minutes per target the first time).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
PROFILE="${PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null; then
  echo "build-xcframework.sh needs macOS with Xcode (xcodebuild, lipo)" >&2
  exit 1
fi

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
for t in "${targets[@]}"; do
  echo "== cargo build waymark-ffi for $t ($PROFILE)"
  cargo build -p waymark-ffi --features vendored-openssl --target "$t" "${profile_flag[@]}"
done

# Bindings come from a host build of the same sources (library mode reads the metadata in it).
echo "== generate the Swift bindings"
cargo build -p waymark-ffi -p uniffi-bindgen "${profile_flag[@]}"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
"$target_dir/$PROFILE/uniffi-bindgen" generate --library "$target_dir/$PROFILE/libwaymark_ffi.dylib" \
  --language swift --out-dir "$gen" --no-format
mkdir -p "$gen/headers"
cp "$gen/waymarkFFI.h" "$gen/headers/"
# Xcode finds a framework's Clang module through a file named module.modulemap.
cp "$gen/waymarkFFI.modulemap" "$gen/headers/module.modulemap"
cp "$gen/waymark.swift" ios/Sources/Waymark/waymark.swift

echo "== one simulator library for arm64 + x86_64"
mkdir -p "$gen/sim"
lipo -create \
  "$target_dir/aarch64-apple-ios-sim/$PROFILE/libwaymark_ffi.a" \
  "$target_dir/x86_64-apple-ios/$PROFILE/libwaymark_ffi.a" \
  -output "$gen/sim/libwaymark_ffi.a"

echo "== xcodebuild -create-xcframework"
rm -rf ios/WaymarkFFI.xcframework
xcodebuild -create-xcframework \
  -library "$target_dir/aarch64-apple-ios/$PROFILE/libwaymark_ffi.a" -headers "$gen/headers" \
  -library "$gen/sim/libwaymark_ffi.a" -headers "$gen/headers" \
  -output ios/WaymarkFFI.xcframework

echo "== done: ios/WaymarkFFI.xcframework and ios/Sources/Waymark/waymark.swift"

#!/usr/bin/env bash
# Builds ios/build/AuthenticatorCoreFFI.xcframework: the Rust core as a static library for iOS devices
# (aarch64-apple-ios) and the Apple-silicon simulator (aarch64-apple-ios-sim), with the generated C
# header and module map. Package.swift uses it on Apple platforms as the `AuthenticatorCoreFFI` binary
# target. Run on macOS with Xcode and:
#     rustup target add aarch64-apple-ios aarch64-apple-ios-sim
# (Not run in CI: there is no Xcode there. CI tests the same Swift code on Linux.)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim)

# Generated Swift + header + module map, checked against bindings/api-surface.txt.
cargo xtask bindings --check

for t in "${TARGETS[@]}"; do
  cargo build -p authenticator-core --profile "$PROFILE" --target "$t"
done

out=ios/build
headers="$out/headers"
rm -rf "$out/AuthenticatorCoreFFI.xcframework" "$headers"
mkdir -p "$headers"
cp ios/Sources/AuthenticatorCoreFFI/AuthenticatorCoreFFI.h "$headers/"
cp ios/Sources/AuthenticatorCoreFFI/module.modulemap "$headers/module.modulemap"

args=()
for t in "${TARGETS[@]}"; do
  args+=(-library "target/$t/$PROFILE/libauthenticator_core.a" -headers "$headers")
done
xcodebuild -create-xcframework "${args[@]}" -output "$out/AuthenticatorCoreFFI.xcframework"
echo "built $out/AuthenticatorCoreFFI.xcframework"

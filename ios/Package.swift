// swift-tools-version:6.0
// The iOS shell of phone sign-in: the generated bindings (`AuthenticatorCore` over the C module
// `AuthenticatorCoreFFI`) and a thin hand-written layer (`PhoneSignIn`). Generated sources are
// copied in by `cargo xtask bindings` and never edited by hand.
//
// - On Apple platforms the Rust core comes from `build/AuthenticatorCoreFFI.xcframework`, built by
//   `./build-xcframework.sh` on a Mac (see docs/EMBEDDING.md).
// - On Linux (CI: Swift 6 in a Debian trixie chroot, `cargo xtask swift-test`) it links the
//   `libauthenticator_core.so` that cargo built in ../target/debug, and the tests use OpenSSL's
//   libcrypto for the P-256 that plays the Secure Enclave.
import PackageDescription

#if os(Linux)
// Absolute, so the rpath works from any working directory.
let rustLibDir = Context.packageDirectory + "/../target/debug"
let ffiTarget: Target = .systemLibrary(name: "AuthenticatorCoreFFI", path: "Sources/AuthenticatorCoreFFI")
let coreLinker: [LinkerSetting] = [
    .linkedLibrary("authenticator_core"),
    .unsafeFlags(["-L", rustLibDir, "-Xlinker", "-rpath", "-Xlinker", rustLibDir]),
]
let testOnlyTargets: [Target] = [.systemLibrary(name: "COpenSSL", path: "Tests/COpenSSL")]
let testDependencies: [Target.Dependency] = ["PhoneSignIn", "AuthenticatorCore", "COpenSSL"]
#else
let ffiTarget: Target = .binaryTarget(name: "AuthenticatorCoreFFI", path: "build/AuthenticatorCoreFFI.xcframework")
let coreLinker: [LinkerSetting] = []
let testOnlyTargets: [Target] = []
let testDependencies: [Target.Dependency] = ["PhoneSignIn", "AuthenticatorCore"]
#endif

let package = Package(
    name: "PhoneSignIn",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "PhoneSignIn", targets: ["PhoneSignIn"]),
        .library(name: "AuthenticatorCore", targets: ["AuthenticatorCore"]),
    ],
    targets: [
        ffiTarget,
        .target(
            name: "AuthenticatorCore",
            dependencies: ["AuthenticatorCoreFFI"],
            path: "Sources/AuthenticatorCore",
            // Swift 6.0.3 crashes (TransferNonSendable assertion) compiling uniffi's async
            // foreign-trait helpers in Swift 6 mode; the generated code is built in Swift 5 mode.
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: coreLinker
        ),
        .target(name: "PhoneSignIn", dependencies: ["AuthenticatorCore"], path: "Sources/PhoneSignIn"),
        .testTarget(name: "PhoneSignInTests", dependencies: testDependencies, path: "Tests/PhoneSignInTests"),
    ] + testOnlyTargets
)

//! `cargo xtask swift-test`: builds the iOS SwiftPM package (`ios/`) and runs its Swift Testing
//! suite with Swift 6 in the Debian trixie chroot, against the real `libauthenticator_core.so`
//! (built on the host; it needs an older glibc than the chroot's) and a real `signin-server`.

use anyhow::{bail, Context, Result};

use crate::bindings;
use crate::builds::ShellTools;
use crate::toolchains::{self, Chroot};

pub fn swift_test(tools: &ShellTools) -> Result<usize> {
    toolchains::install_swift_chroot()?;
    bindings::generate(tools)?;
    // The project is at /src inside the chroot; build products stay under target/.
    let project = std::fs::canonicalize(std::env::current_dir()?)?;
    let server = std::fs::canonicalize(&tools.server)?;
    let server = server.strip_prefix(&project).with_context(|| {
        format!(
            "{} is outside the project, so the chroot cannot see it (CARGO_TARGET_DIR?)",
            server.display()
        )
    })?;
    let chroot = Chroot::enter(&toolchains::swift_root(), true)?;
    let script = format!(
        "cd /src/ios && SIGNIN_SERVER=/src/{} \
         swift test --scratch-path /src/target/swift-build 2>&1",
        server.display()
    );
    let (ok, out) = crate::run_tee(&mut chroot.command(&script)?)?;
    drop(chroot);
    if !ok {
        bail!("Swift tests failed");
    }
    // Swift Testing ends with "✔ Test run with N tests passed after X seconds."
    let passed = out
        .lines()
        .find_map(|l| {
            let rest = l.split("Test run with ").nth(1)?;
            let mut w = rest.split_whitespace();
            let n = w.next()?.parse().ok()?;
            (w.next()? == "tests" && w.next()? == "passed").then_some(n)
        })
        .context("Swift Testing did not report a pass count")?;
    println!("xtask: Swift: {passed} tests passed");
    Ok(passed)
}

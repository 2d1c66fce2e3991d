//! `cargo xtask swift-test`: builds the iOS SwiftPM package (`ios/`) and runs its Swift Testing
//! suite with Swift 6 in the Debian trixie chroot, against the real `libauthenticator_core.so`
//! (built on the host; it needs an older glibc than the chroot's) and a real `signin-server`.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::toolchains::{self, Chroot};
use crate::{bindings, run};

pub fn swift_test() -> Result<usize> {
    toolchains::install_swift_chroot()?;
    bindings::generate()?;
    run(Command::new("cargo").args(["build", "--quiet", "-p", "signin-server"]))?;
    let chroot = Chroot::enter(&toolchains::swift_root(), true)?;
    // The project is at /src inside the chroot; build products stay under target/.
    let script = "cd /src/ios && SIGNIN_SERVER=/src/target/debug/signin-server \
                  swift test --scratch-path /src/target/swift-build 2>&1";
    let (ok, out) = crate::run_tee(
        Command::new("chroot")
            .arg(chroot.root())
            .args(["sh", "-c", script]),
    )?;
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

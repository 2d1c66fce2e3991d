//! `cargo xtask mobile-size`: the size of the phone library as the apps ship it.
//!
//! Builds the `authenticator-core` cdylib for the host (x86_64 here) with the `mobile` profile
//! of the root Cargo.toml (`opt-level = "s"`, LTO, one codegen unit, stripped, `panic = "unwind"`
//! for uniffi's `catch_unwind`) and, for comparison, with the default `release` profile; prints
//! both sizes and fails when the mobile library is larger than [`LIMIT_BYTES`] (issue 12:
//! "cdylib stripped ≤ 6 MB"). Only sizes: no tool is installed. Figures: docs/PERFORMANCE.md,
//! "Mobile library size".
//!
//! Both builds use their own profile directories (`target/mobile`, `target/release`), so they
//! do not replace the debug cdylib the Kotlin and Swift suites load (`builds::product_cdylib`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run;

/// The target, "≤ 6 MB" (decimal megabytes).
pub const LIMIT_BYTES: u64 = 6_000_000;
const LIBRARY: &str = "libauthenticator_core.so";

pub fn mobile_size() -> Result<()> {
    let mobile = build(&["--profile", "mobile"], "mobile")?;
    let release = build(&["--release"], "release")?;
    println!("xtask: authenticator-core cdylib (x86_64 host, {LIBRARY}):");
    println!("xtask:   profile mobile:  {}", describe(mobile));
    println!("xtask:   profile release: {}", describe(release));
    if release > 0 {
        let ratio = mobile as f64 / release as f64;
        println!("xtask:   mobile / release: {:.0}%", ratio * 100.0);
    }
    println!("xtask:   limit: {}", describe(LIMIT_BYTES));
    if mobile > LIMIT_BYTES {
        bail!(
            "the mobile cdylib is {} bytes, more than the {LIMIT_BYTES}-byte (6 MB) limit",
            mobile
        );
    }
    Ok(())
}

/// `cargo build -p authenticator-core --lib <profile args>` and the size of the cdylib it made.
fn build(profile_args: &[&str], profile_dir: &str) -> Result<u64> {
    run(Command::new("cargo")
        .args(["build", "-p", "authenticator-core", "--lib"])
        .args(profile_args))?;
    let path = target_dir().join(profile_dir).join(LIBRARY);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("the build made no {}", path.display()))?
        .len();
    Ok(size)
}

/// `CARGO_TARGET_DIR` when set (relative to the workspace root, the current directory), else
/// `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn describe(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!("{bytes} bytes ({mib:.2} MiB)")
}

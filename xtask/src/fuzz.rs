//! `cargo xtask fuzz --seconds N`: every libFuzzer target of `fuzz/` (cargo-fuzz, nightly,
//! AddressSanitizer) for N seconds each, in turn. Installs the nightly toolchain (minimal
//! profile) and `cargo-fuzz` when missing. A crash stops the run and leaves the input under
//! `fuzz/artifacts/<target>/`; it becomes a regression test (docs/SECURITY.md, "Fuzzing").
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run;

/// The targets of `fuzz/Cargo.toml`, each named for what it feeds.
pub const TARGETS: [&str; 7] = [
    "enrollment_url",
    "push_apns",
    "push_fcm",
    "push_webpush",
    "protocol_json",
    "device_auth_header",
    "core_api",
];

/// Seconds per target in `cargo xtask test` (CI).
pub const CI_SECONDS: u64 = 10;

pub fn fuzz(seconds: u64) -> Result<()> {
    if seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    install()?;
    for target in TARGETS {
        crate::step(&format!("fuzz {target} for {seconds} s"), || {
            let out = Command::new("cargo")
                .current_dir("fuzz")
                .args(["+nightly", "fuzz", "run", "-O", target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                .output()
                .context("cargo fuzz")?;
            let log = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{target} failed (a crash is saved under fuzz/artifacts/{target}/):\n{}",
                    tail.join("\n")
                );
            }
            let done = log
                .lines()
                .find(|l| l.starts_with("Done "))
                .unwrap_or("(no libFuzzer summary)");
            println!("xtask: {target}: {done}, 0 crashes");
            Ok(())
        })?;
    }
    Ok(())
}

/// The nightly toolchain and cargo-fuzz, each only when missing.
fn install() -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let has_cargo_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

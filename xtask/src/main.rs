//! `cargo xtask <command>`: the project's one entry point for CI and local checks.
//!
//! `cargo xtask test` is the README's test command and what `.ci/run` calls: formatting, lints,
//! protocol vectors freshness, every test in the workspace, then the generated bindings' API
//! check and the Kotlin (JVM) and Swift (Linux, in a trixie chroot) suites of the mobile shells.
#![forbid(unsafe_code)]

mod bindings;
mod kotlin;
mod postgres;
mod snippets;
mod surface;
mod swift;
mod toolchains;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks: CI, checks, generation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: fmt, clippy, vectors, all tests.
    Test,
    /// `cargo fmt --check` and clippy with warnings as errors.
    Lint,
    /// Regenerate the protocol test vectors (JSON and the PROTOCOL.md section).
    Vectors {
        /// Fail instead of writing when the checked-in files differ.
        #[arg(long)]
        check: bool,
    },
    /// Build the cdylib, generate Kotlin + Swift, check names and the API surface
    /// (`bindings/api-surface.txt`), copy the sources into android/ and ios/.
    Bindings {
        /// Fail with a diff instead of rewriting the surface file when the API changed.
        #[arg(long)]
        check: bool,
    },
    /// Compile the Android shell's platform-free sources with `kotlinc -Werror` and run the
    /// JVM tests against the real cdylib and a real signin-server.
    KotlinTest,
    /// Build the iOS SwiftPM package and run its Swift Testing suite in the trixie chroot.
    SwiftTest,
    /// Install kotlinc, JNA, JUnit and the Swift chroot (skipped when present).
    InstallToolchains,
    /// Run the server and end-to-end suites against a throwaway PostgreSQL cluster.
    PostgresTest,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::Test => test(),
        Task::Lint => lint(),
        Task::Vectors { check } => vectors(check),
        Task::Bindings { check } => step("bindings", || bindings::bindings(check)),
        Task::KotlinTest => kotlin_test().map(|_| ()),
        Task::SwiftTest => swift_test().map(|_| ()),
        Task::InstallToolchains => step("install toolchains", toolchains::install_all),
        Task::PostgresTest => step("tests on PostgreSQL", postgres::test_on_postgres),
    }
}

fn kotlin_test() -> Result<usize> {
    let mut passed = 0;
    step("kotlin tests", || {
        passed = kotlin::kotlin_test()?;
        Ok(())
    })?;
    Ok(passed)
}

fn swift_test() -> Result<usize> {
    let mut passed = 0;
    step("swift tests", || {
        passed = swift::swift_test()?;
        Ok(())
    })?;
    Ok(passed)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn test() -> Result<()> {
    let started = Instant::now();
    lint()?;
    vectors(true)?;
    step("cargo test --workspace", || {
        run(Command::new("cargo").args(["test", "--workspace", "--all-targets"]))
    })?;
    step("cargo test --doc", || {
        run(Command::new("cargo").args(["test", "--workspace", "--doc"]))
    })?;
    step(
        "server + end-to-end tests on PostgreSQL",
        postgres::test_on_postgres,
    )?;
    step("install toolchains", toolchains::install_all)?;
    step("bindings --check", || bindings::bindings(true))?;
    let kotlin = kotlin_test()?;
    let swift = swift_test()?;
    println!("xtask: mobile shells: Kotlin {kotlin} tests passed, Swift {swift} tests passed");
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn lint() -> Result<()> {
    step("cargo fmt --check", || {
        run(Command::new("cargo").args(["fmt", "--all", "--check"]))
    })?;
    step("cargo clippy", || {
        run(Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })
}

const VECTORS_JSON: &str = "authenticator-protocol/tests/vectors/v1.json";
const PROTOCOL_MD: &str = "docs/PROTOCOL.md";
const BEGIN: &str = "<!-- VECTORS-BEGIN";
const END: &str = "<!-- VECTORS-END -->";

/// The generator is deterministic (RFC 6979), so a fresh run must equal the checked-in files.
fn vectors(check: bool) -> Result<()> {
    step("protocol vectors", || {
        let gen = |extra: &[&str]| -> Result<String> {
            let out = Command::new("cargo")
                .args([
                    "run",
                    "--quiet",
                    "-p",
                    "authenticator-protocol",
                    "--example",
                    "vectors",
                    "--",
                ])
                .args(extra)
                .output()?;
            if !out.status.success() {
                bail!(
                    "vector generator failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(String::from_utf8(out.stdout)?)
        };
        let json = gen(&[])?;
        let md_section = gen(&["--markdown"])?;
        let md = std::fs::read_to_string(PROTOCOL_MD)?;
        let a = md
            .find(BEGIN)
            .context("PROTOCOL.md has no VECTORS-BEGIN marker")?;
        let a = a + md[a..].find("-->").context("unterminated marker")? + 4;
        let b = md
            .find(END)
            .context("PROTOCOL.md has no VECTORS-END marker")?;
        let new_md = format!("{}{}{}", &md[..a], md_section, &md[b..]);
        let old_json = std::fs::read_to_string(VECTORS_JSON).unwrap_or_default();
        if check {
            if old_json != json || md != new_md {
                bail!(
                    "protocol vectors are stale: run `cargo xtask vectors` and commit the result"
                );
            }
        } else {
            std::fs::write(VECTORS_JSON, json)?;
            std::fs::write(PROTOCOL_MD, new_md)?;
        }
        Ok(())
    })
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("xtask: ── {name}");
    let t = Instant::now();
    f().with_context(|| format!("step failed: {name}"))?;
    println!("xtask: ── {name}: ok ({:.1?})", t.elapsed());
    Ok(())
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

/// Runs `cmd`, echoing its output lines as they come, and returns them with the exit status.
pub(crate) fn run_tee(cmd: &mut Command) -> Result<(bool, String)> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    }
    Ok((child.wait()?.success(), text))
}

//! `cargo xtask <command>`: the project's one entry point for CI and local checks.
//!
//! `cargo xtask test` is the README's test command and all that `.ci/run` calls: first it
//! installs what is missing (Debian packages, rustup components, kotlinc, the Swift chroot; see
//! `toolchains`), then formatting, lints, protocol vectors freshness, every test in the
//! workspace on SQLite and the server and end-to-end suites again on PostgreSQL, then the
//! generated bindings' API check and the Kotlin (JVM) and Swift (Linux, in a trixie chroot)
//! suites of the mobile shells, and every fuzz target for a few seconds. The Rust steps share one build (see `builds`).
#![forbid(unsafe_code)]

mod bench;
mod bindings;
mod builds;
mod fuzz;
mod kotlin;
mod leftovers;
mod mobile_size;
mod postgres;
mod snippets;
mod surface;
mod swift;
mod system;
mod toolchains;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use builds::{ShellTools, Workspace};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks: CI, checks, generation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: installs what is missing, then fmt, clippy, vectors, all tests.
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
    /// Install everything `test` needs (skipped when present): Debian packages (Chromium,
    /// chromedriver, PostgreSQL, JNA, JUnit, debootstrap, ...), rustfmt + clippy, kotlinc
    /// (target/tools) and the Swift chroot (target/swiftroot). Needs root or `sudo -n` for apt.
    #[command(alias = "install")]
    InstallToolchains,
    /// Run the server and end-to-end suites against a throwaway PostgreSQL cluster.
    PostgresTest,
    /// Build the authenticator-core cdylib with the `mobile` and `release` profiles, print
    /// both sizes and fail when the mobile one is over 6 MB.
    MobileSize,
    /// The server load scenarios (docs/PERFORMANCE.md): full ceremonies on SQLite and
    /// PostgreSQL at several concurrencies, the crypto bound and the ratio, and memory with
    /// 10,000 pending requests and parked long-polls. Release builds; a few minutes.
    Bench,
    /// Every fuzz target of `fuzz/` (cargo-fuzz, nightly, ASan) for `--seconds` each; installs
    /// the nightly toolchain and cargo-fuzz when missing.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::Test => test(),
        Task::Lint => lint(),
        Task::Vectors { check } => vectors(check, &|extra: &[&str]| {
            let mut cmd = Command::new("cargo");
            cmd.args(["run", "--quiet", "-p", "authenticator-protocol"])
                .args(["--example", "vectors", "--"])
                .args(extra);
            cmd
        }),
        Task::Bindings { check } => {
            let tools = step_with(
                "build signin-server + uniffi-bindgen",
                ShellTools::standalone,
            )?;
            step("bindings", || bindings::bindings(check, &tools))
        }
        Task::KotlinTest => {
            let tools = step_with(
                "build signin-server + uniffi-bindgen",
                ShellTools::standalone,
            )?;
            step_with("kotlin tests", || kotlin::kotlin_test(&tools)).map(|_| ())
        }
        Task::SwiftTest => {
            let tools = step_with(
                "build signin-server + uniffi-bindgen",
                ShellTools::standalone,
            )?;
            step_with("swift tests", || swift::swift_test(&tools)).map(|_| ())
        }
        Task::InstallToolchains => step("install", toolchains::install_all),
        Task::PostgresTest => {
            let workspace = step_with("cargo build --workspace --all-targets", Workspace::build)?;
            step("tests on PostgreSQL", || {
                postgres::test_on_postgres(&workspace)
            })
        }
        Task::MobileSize => step("mobile library size", mobile_size::mobile_size),
        Task::Bench => bench::bench(),
        Task::Fuzz { seconds } => fuzz::fuzz(seconds),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn test() -> Result<()> {
    let started = Instant::now();
    // The browsers, drivers and servers already running are not this run's (`leftovers`).
    let running_before = leftovers::snapshot();
    // Before anything else: a fresh machine gets every package now, not one failure at a time.
    step("install", toolchains::install_all)?;
    lint()?;
    // One build for every Rust step below (same packages and features as clippy; see builds.rs).
    let workspace = step_with("cargo build --workspace --all-targets", Workspace::build)?;
    let generator = workspace.executable("authenticator-protocol", "example", "vectors")?;
    vectors(true, &|extra: &[&str]| {
        let mut cmd = Command::new(&generator);
        cmd.args(extra);
        cmd
    })?;
    let sqlite_targets = builds::sqlite_test_targets()?;
    step("cargo test --workspace (SQLite)", || {
        run(Command::new("cargo")
            .arg("test")
            .args(builds::WORKSPACE_ARGS)
            .args(&sqlite_targets))
    })?;
    step("cargo test --doc", || {
        run(Command::new("cargo")
            .arg("test")
            .args(builds::WORKSPACE_ARGS)
            .arg("--doc"))
    })?;
    step("server + end-to-end tests on PostgreSQL", || {
        postgres::test_on_postgres(&workspace)
    })?;
    // The mobile steps build the app's authenticator-core cdylib; they come last because that
    // build and the workspace build replace each other's cdylib (builds.rs).
    let tools = workspace.shell_tools()?;
    step("bindings --check", || bindings::bindings(true, &tools))?;
    let kotlin = step_with("kotlin tests", || kotlin::kotlin_test(&tools))?;
    let swift = step_with("swift tests", || swift::swift_test(&tools))?;
    println!("xtask: mobile shells: Kotlin {kotlin} tests passed, Swift {swift} tests passed");
    // Every fuzz target briefly (installs nightly + cargo-fuzz when missing): a target that no
    // longer builds, or an input it now crashes on in seconds, fails CI. The long runs are
    // `cargo xtask fuzz --seconds 600` (docs/SECURITY.md, "Fuzzing").
    step("fuzz: every target briefly", || {
        fuzz::fuzz(fuzz::CI_SECONDS)
    })?;
    step("no process left behind", || {
        leftovers::check(&running_before)
    })?;
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// fmt, and clippy with the shared build's package selection and features (`builds.rs`): one
/// clippy run covers the PostgreSQL-only test target too (it used to be a second clippy run).
fn lint() -> Result<()> {
    step("cargo fmt --check", || {
        run(Command::new("cargo").args(["fmt", "--all", "--check"]))
    })?;
    step("cargo clippy", || {
        run(Command::new("cargo")
            .arg("clippy")
            .args(builds::WORKSPACE_ARGS)
            .args(["--all-targets", "--", "-D", "warnings"]))
    })
}

const VECTORS_JSON: &str = "authenticator-protocol/tests/vectors/v1.json";
const PROTOCOL_MD: &str = "docs/PROTOCOL.md";
const BEGIN: &str = "<!-- VECTORS-BEGIN";
const END: &str = "<!-- VECTORS-END -->";

/// The generator is deterministic (RFC 6979), so a fresh run must equal the checked-in files.
/// `cargo xtask vectors` runs it with `cargo run`; `cargo xtask test` runs the example binary
/// of the shared build (`cargo run -p` alone would build it with other features, i.e. again).
/// `generator(args)` is the command that runs the `vectors` example with `args`.
fn vectors(check: bool, generator: &dyn Fn(&[&str]) -> Command) -> Result<()> {
    step("protocol vectors", || {
        let gen = |extra: &[&str]| -> Result<String> {
            let out = generator(extra)
                .output()
                .context("running the vector generator")?;
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

pub(crate) fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    step_with(name, f)
}

fn step_with<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("xtask: ── {name}");
    let t = Instant::now();
    let value = f().with_context(|| format!("step failed: {name}"))?;
    println!("xtask: ── {name}: ok ({:.1?})", t.elapsed());
    Ok(value)
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

//! The builds `cargo xtask test` shares between its steps.
//!
//! Cargo reuses an artifact only when a unit's features, its dependencies' features and its
//! profile are the same, and with resolver 2 the features depend on which packages a command
//! selects and on whether dev-dependencies are active. So every Rust step of `cargo xtask test`
//! uses one package selection and one feature set, [`WORKSPACE_ARGS`] (`--workspace` with
//! `e2e-tests/postgres-tests`): clippy (check mode, cannot share codegen, but shares build
//! scripts and proc macros), one `cargo build --all-targets` (which makes the same units as
//! `cargo test --all-targets` plus the normal-mode binaries: the vector generator example,
//! `uniffi-bindgen`, `signin-server`), the SQLite `cargo test`, the doctests, the PostgreSQL pass
//! (it runs the test binaries of that build) and the Kotlin and Swift suites (they take the
//! server and the bindgen from it).
//!
//! The one deliberate second build is the `authenticator-core` cdylib ([`product_cdylib`]):
//! bindings are generated from, and the mobile suites load, the library as an app builds it,
//! without the `testing` fakes and the dev-dependency features (tokio `test-util`, ...). It runs
//! after every workspace step: a cdylib's file names carry no hash, so the two builds of
//! `authenticator-core` overwrite each other and whichever runs later rebuilds it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::run;

/// The feature that adds the PostgreSQL-only test target (`tests/tests/cluster.rs`). It only
/// gates that target (`required-features`), so enabling it everywhere compiles the same code
/// for every other target; [`check_feature_only_gates_targets`] keeps that true.
pub const POSTGRES_FEATURE: &str = "postgres-tests";
/// Package selection and features of every shared workspace command.
pub const WORKSPACE_ARGS: [&str; 3] = ["--workspace", "--features", "e2e-tests/postgres-tests"];

/// One compiled target from cargo's JSON messages.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub package: String,
    pub target: String,
    pub kind: Vec<String>,
    /// Built as a test harness (what `cargo test` runs).
    pub test: bool,
    pub executable: PathBuf,
    pub manifest_dir: PathBuf,
}

/// The shared `cargo build --workspace --all-targets` and what it produced.
pub struct Workspace {
    artifacts: Vec<Artifact>,
}

impl Workspace {
    pub fn build() -> Result<Workspace> {
        check_feature_only_gates_targets()?;
        let artifacts = cargo_artifacts(
            Command::new("cargo")
                .arg("build")
                .args(WORKSPACE_ARGS)
                .arg("--all-targets"),
        )?;
        Ok(Workspace { artifacts })
    }

    /// The test harness binaries (unit and integration tests, benches and examples in test mode).
    pub fn test_binaries(&self) -> impl Iterator<Item = &Artifact> {
        self.artifacts.iter().filter(|a| a.test)
    }

    /// A normal-mode executable (`kind`: "bin" or "example").
    pub fn executable(&self, package: &str, kind: &str, name: &str) -> Result<PathBuf> {
        self.artifacts
            .iter()
            .find(|a| {
                !a.test
                    && a.package == package
                    && a.target == name
                    && a.kind.iter().any(|k| k == kind)
            })
            .map(|a| a.executable.clone())
            .with_context(|| format!("the workspace build made no {kind} `{name}` of {package}"))
    }

    /// The server and the bindgen for the mobile suites, from this build.
    pub fn shell_tools(&self) -> Result<ShellTools> {
        Ok(ShellTools {
            server: self.executable("signin-server", "bin", "signin-server")?,
            bindgen: self.executable("bindings", "bin", "uniffi-bindgen")?,
        })
    }
}

/// What the bindings step and the Kotlin/Swift suites run besides the cdylib.
pub struct ShellTools {
    pub server: PathBuf,
    pub bindgen: PathBuf,
}

impl ShellTools {
    /// For `cargo xtask bindings|kotlin-test|swift-test` on their own: a small build of just
    /// these two, so that running them does not rebuild the workspace (and, through the shared
    /// `authenticator-core` file names, the other way round).
    pub fn standalone() -> Result<ShellTools> {
        let artifacts = cargo_artifacts(Command::new("cargo").args([
            "build",
            "-p",
            "signin-server",
            "-p",
            "bindings",
            "--bins",
        ]))?;
        let find = |package: &str, name: &str| {
            artifacts
                .iter()
                .find(|a| a.package == package && a.target == name)
                .map(|a| a.executable.clone())
                .with_context(|| format!("cargo built no `{name}`"))
        };
        Ok(ShellTools {
            server: find("signin-server", "signin-server")?,
            bindgen: find("bindings", "uniffi-bindgen")?,
        })
    }
}

/// `cargo build -p authenticator-core`: the cdylib as an app builds it (no `testing` feature),
/// into target/debug/libauthenticator_core.so, where the Kotlin and Swift suites load it from.
pub fn product_cdylib() -> Result<()> {
    run(Command::new("cargo").args(["build", "--quiet", "-p", "authenticator-core"]))
}

/// Target selection of the SQLite `cargo test`: exactly `--all-targets` except the test targets
/// that need PostgreSQL (their `required-features` name [`POSTGRES_FEATURE`]), which the
/// PostgreSQL pass runs. Same units as the shared build, so nothing is compiled again.
pub fn sqlite_test_targets() -> Result<Vec<String>> {
    let meta = metadata()?;
    let mut included: Vec<String> = Vec::new();
    let mut excluded: Vec<String> = Vec::new();
    for target in workspace_targets(&meta) {
        if !target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"))
        {
            continue;
        }
        let name = target["name"].as_str().context("target name")?.to_owned();
        let needs_postgres = target["required-features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == POSTGRES_FEATURE));
        let list = if needs_postgres {
            &mut excluded
        } else {
            &mut included
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }
    if let Some(clash) = excluded.iter().find(|n| included.contains(n)) {
        bail!(
            "test target name `{clash}` is used both by a PostgreSQL-only test and by another \
             test: `cargo test --test {clash}` cannot tell them apart; rename one"
        );
    }
    let mut args: Vec<String> = ["--lib", "--bins", "--examples", "--benches"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for name in included {
        args.push("--test".to_owned());
        args.push(name);
    }
    Ok(args)
}

/// The shared build compiles e2e-tests with [`POSTGRES_FEATURE`] for the SQLite pass too. That
/// is only the same check as compiling without it while the feature does nothing but gate test
/// targets, so code behind `cfg(feature = "postgres-tests")` is refused here.
fn check_feature_only_gates_targets() -> Result<()> {
    let needle = format!("feature = \"{POSTGRES_FEATURE}\"");
    let mut offenders = Vec::new();
    for dir in ["tests/src", "tests/tests"] {
        rust_files_containing(Path::new(dir), &needle, &mut offenders)?;
    }
    if !offenders.is_empty() {
        bail!(
            "{offenders:?} use `cfg({needle})`: xtask builds e2e-tests with that feature for the \
             SQLite pass as well (one shared build), so it may only gate test targets through \
             `required-features`; see xtask/src/builds.rs"
        );
    }
    Ok(())
}

fn rust_files_containing(dir: &Path, needle: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let p = e?.path();
        if p.is_dir() {
            rust_files_containing(&p, needle, out)?;
        } else if p.extension().is_some_and(|x| x == "rs")
            && std::fs::read_to_string(&p)?.contains(needle)
        {
            out.push(p);
        }
    }
    Ok(())
}

fn metadata() -> Result<serde_json::Value> {
    let out = Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn workspace_targets(meta: &serde_json::Value) -> Vec<&serde_json::Value> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .collect()
}

/// Runs `cmd` (a cargo build) with JSON messages and returns the executables it produced,
/// fresh ones included. Diagnostics and progress still go to the terminal.
fn cargo_artifacts(cmd: &mut Command) -> Result<Vec<Artifact>> {
    let out = cmd
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    // `json-render-diagnostics`: cargo itself prints the warnings and errors on stderr.
    let artifacts = parse_artifacts(&String::from_utf8_lossy(&out.stdout))?;
    if !out.status.success() {
        bail!("{cmd:?} exited with {}", out.status);
    }
    Ok(artifacts)
}

/// The executables in cargo's JSON messages (other lines are printed as they are).
fn parse_artifacts(stdout: &str) -> Result<Vec<Artifact>> {
    let mut artifacts = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            println!("{line}");
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(exe), Some(manifest), Some(id)) = (
            msg["executable"].as_str(),
            msg["manifest_path"].as_str(),
            msg["package_id"].as_str(),
        ) else {
            continue;
        };
        artifacts.push(Artifact {
            package: package_name(id),
            target: msg["target"]["name"].as_str().unwrap_or("").to_owned(),
            kind: msg["target"]["kind"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            test: msg["profile"]["test"] == true,
            executable: PathBuf::from(exe),
            manifest_dir: Path::new(manifest)
                .parent()
                .context("manifest dir")?
                .to_path_buf(),
        });
    }
    Ok(artifacts)
}

/// `path+file:///w/tests#e2e-tests@0.1.0` → `e2e-tests`; `path+file:///w/xtask#0.1.0` → `xtask`.
fn package_name(id: &str) -> String {
    let (url, fragment) = id.split_once('#').unwrap_or((id, ""));
    match fragment.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => url.rsplit('/').next().unwrap_or(url).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{package_name, parse_artifacts, sqlite_test_targets};
    use std::path::Path;

    #[test]
    fn artifacts_from_cargo_json() {
        // As printed by cargo 1.95 (`cargo build --message-format=json`), plus a library
        // artifact (no executable) and a build-finished line, which are skipped.
        let out = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/xtask#0.1.0","manifest_path":"/w/xtask/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"xtask","src_path":"/w/xtask/src/main.rs","edition":"2021","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/w/target/debug/xtask"],"executable":"/w/target/debug/xtask","fresh":true}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#e2e-tests@0.1.0","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["test"],"crate_types":["bin"],"name":"cluster","src_path":"/w/tests/tests/cluster.rs","edition":"2021","doc":false,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":true},"features":["postgres-tests"],"filenames":["/w/target/debug/deps/cluster-0123"],"executable":"/w/target/debug/deps/cluster-0123","fresh":false}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#e2e-tests@0.1.0","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"e2e","src_path":"/w/tests/src/lib.rs","edition":"2021","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/w/target/debug/deps/libe2e-1.rlib"],"executable":null,"fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        let a = parse_artifacts(out).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].package.as_str(), a[0].target.as_str(), a[0].test),
            ("xtask", "xtask", false)
        );
        assert_eq!(a[0].kind, ["bin"]);
        assert_eq!(
            (a[1].package.as_str(), a[1].target.as_str(), a[1].test),
            ("e2e-tests", "cluster", true)
        );
        assert_eq!(a[1].manifest_dir, Path::new("/w/tests"));
        assert_eq!(
            a[1].executable,
            Path::new("/w/target/debug/deps/cluster-0123")
        );
    }

    /// Runs `cargo metadata` on this workspace: the PostgreSQL-only target is left out of the
    /// SQLite pass, every other integration test is named.
    #[test]
    fn sqlite_pass_selects_all_but_the_postgres_only_tests() {
        let args = sqlite_test_targets().unwrap();
        assert_eq!(args[..4], ["--lib", "--bins", "--examples", "--benches"]);
        let tests: Vec<&str> = args[4..]
            .chunks(2)
            .map(|pair| {
                assert_eq!(pair[0], "--test");
                pair[1].as_str()
            })
            .collect();
        assert!(
            tests.contains(&"ceremony") && tests.contains(&"browser") && tests.contains(&"api")
        );
        assert!(!tests.contains(&"cluster"));
    }

    #[test]
    fn package_names_from_ids() {
        assert_eq!(
            package_name("path+file:///w/tests#e2e-tests@0.1.0"),
            "e2e-tests"
        );
        assert_eq!(package_name("path+file:///w/xtask#0.1.0"), "xtask");
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0"),
            "serde"
        );
    }
}

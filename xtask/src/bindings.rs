//! `cargo xtask bindings [--check]`: builds the `authenticator-core` cdylib, generates Kotlin and
//! Swift from it with the root `uniffi.toml`, checks the package and module names (a wrong config
//! is ignored silently by uniffi), compares the API surface with `bindings/api-surface.txt`, and
//! copies the generated sources into the (git-ignored) places the Android and iOS shells read.
//! Generated code is never edited by hand: every run overwrites it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::builds::{self, ShellTools};
use crate::{run, surface};

pub const KOTLIN_PACKAGE: &str = "org.phonesignin.core";
pub const SWIFT_MODULE: &str = "AuthenticatorCore";
pub const FFI_MODULE: &str = "AuthenticatorCoreFFI";
pub const OUT_DIR: &str = "target/bindings";
pub const SURFACE_FILE: &str = "bindings/api-surface.txt";
pub const CDYLIB_DIR: &str = "target/debug";

pub fn kotlin_file() -> PathBuf {
    Path::new(OUT_DIR)
        .join(KOTLIN_PACKAGE.replace('.', "/"))
        .join("authenticator_core.kt")
}

/// Where the shells pick up the generated code (all git-ignored).
pub const ANDROID_GENERATED: &str = "android/src/generated/kotlin";
pub const IOS_SOURCES: &str = "ios/Sources";

pub fn bindings(check: bool, tools: &ShellTools) -> Result<()> {
    generate(tools)?;
    check_surface(check)?;
    crate::snippets::sync(check)
}

/// Builds the cdylib, generates, checks the names and copies the sources into android/ and ios/.
pub fn generate(tools: &ShellTools) -> Result<()> {
    // The cdylib as an app builds it (`cargo build -p authenticator-core`: no `testing` fakes);
    // the bindgen comes from the workspace build. Both use the one pinned uniffi version.
    builds::product_cdylib()?;
    let lib = Path::new(CDYLIB_DIR).join("libauthenticator_core.so");
    let _ = std::fs::remove_dir_all(OUT_DIR);
    run(Command::new(&tools.bindgen)
        .args(["generate", "--library"])
        .arg(&lib)
        .args([
            "--language",
            "kotlin",
            "--language",
            "swift",
            "--out-dir",
            OUT_DIR,
        ])
        .args(["--config", "uniffi.toml", "--no-format"]))?;
    check_names()?;
    copy_into_shells()
}

fn check_surface(check: bool) -> Result<()> {
    let kotlin = std::fs::read_to_string(kotlin_file())?;
    let swift = std::fs::read_to_string(Path::new(OUT_DIR).join(format!("{SWIFT_MODULE}.swift")))?;
    let mut lines = surface::kotlin(&kotlin);
    lines.extend(surface::swift(&swift));
    let text = format!(
        "# Public API of the generated bindings (Kotlin package {KOTLIN_PACKAGE}, Swift module {SWIFT_MODULE}).\n\
         # Written by `cargo xtask bindings`; CI runs `cargo xtask bindings --check` and fails on drift.\n\
         # A change here is an API change for app developers: review it, update docs/EMBEDDING.md.\n{}\n",
        lines.join("\n")
    );
    let fresh = Path::new(OUT_DIR).join("api-surface.txt");
    std::fs::write(&fresh, &text)?;
    let old = std::fs::read_to_string(SURFACE_FILE).unwrap_or_default();
    if old != text {
        if check {
            let _ = Command::new("diff")
                .args(["-u", SURFACE_FILE])
                .arg(&fresh)
                .status();
            bail!("the exported API changed ({SURFACE_FILE} differs, diff above): run `cargo xtask bindings` and commit it");
        }
        std::fs::write(SURFACE_FILE, &text)?;
        println!("xtask: wrote {SURFACE_FILE} ({} declarations)", lines.len());
    } else {
        println!(
            "xtask: API surface unchanged ({} declarations)",
            lines.len()
        );
    }
    Ok(())
}

fn copy_into_shells() -> Result<()> {
    copy_if_changed(
        &kotlin_file(),
        &Path::new(ANDROID_GENERATED).join("org/phonesignin/core/authenticator_core.kt"),
    )?;
    let ios = Path::new(IOS_SOURCES);
    copy_if_changed(
        &Path::new(OUT_DIR).join(format!("{SWIFT_MODULE}.swift")),
        &ios.join(SWIFT_MODULE).join(format!("{SWIFT_MODULE}.swift")),
    )?;
    copy_if_changed(
        &Path::new(OUT_DIR).join(format!("{FFI_MODULE}.h")),
        &ios.join(FFI_MODULE).join(format!("{FFI_MODULE}.h")),
    )?;
    // SwiftPM only reads a module map called `module.modulemap`.
    copy_if_changed(
        &Path::new(OUT_DIR).join(format!("{FFI_MODULE}.modulemap")),
        &ios.join(FFI_MODULE).join("module.modulemap"),
    )?;
    Ok(())
}

/// uniffi ignores a misspelt config table without a word; the names are checked here instead.
fn check_names() -> Result<()> {
    let kt = kotlin_file();
    let text = std::fs::read_to_string(&kt).with_context(|| {
        format!("{} was not generated: is `[crates.authenticator_core.bindings.kotlin]` in uniffi.toml right?", kt.display())
    })?;
    if !text
        .lines()
        .any(|l| l == format!("package {KOTLIN_PACKAGE}"))
    {
        bail!(
            "{} does not declare `package {KOTLIN_PACKAGE}`",
            kt.display()
        );
    }
    for f in [
        format!("{SWIFT_MODULE}.swift"),
        format!("{FFI_MODULE}.h"),
        format!("{FFI_MODULE}.modulemap"),
    ] {
        let p = Path::new(OUT_DIR).join(&f);
        if !p.exists() {
            bail!("{} was not generated: check `[crates.authenticator_core.bindings.swift]` in uniffi.toml", p.display());
        }
    }
    let modulemap =
        std::fs::read_to_string(Path::new(OUT_DIR).join(format!("{FFI_MODULE}.modulemap")))?;
    if !modulemap.contains(&format!("module {FFI_MODULE}")) {
        bail!("the generated module map does not declare module {FFI_MODULE}");
    }
    let swift = std::fs::read_to_string(Path::new(OUT_DIR).join(format!("{SWIFT_MODULE}.swift")))?;
    if !swift.contains(&format!("import {FFI_MODULE}")) {
        bail!("{SWIFT_MODULE}.swift does not import {FFI_MODULE}");
    }
    Ok(())
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&data[..]) {
        std::fs::create_dir_all(to.parent().expect("a file path"))?;
        std::fs::write(to, data)?;
    }
    Ok(())
}

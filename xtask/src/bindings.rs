//! `cargo xtask bindings [--check]`: builds the `authenticator-core` cdylib, generates Kotlin and
//! Swift from it with the root `uniffi.toml`, checks the package and module names (a wrong config
//! is ignored silently by uniffi), compares the API surface with `bindings/api-surface.txt`, and
//! copies the generated sources into the (git-ignored) places the Android and iOS shells read.
//! Generated code is never edited by hand: every run overwrites it. Three edits of the
//! generated Kotlin are made here, by `harden_kotlin`, each checked to apply (a uniffi upgrade
//! that changes the template fails the run instead of silently dropping the edit).

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

/// The facades' sources, whose public members are part of the surface too.
const FACADES: &[(&str, &str, &str)] = &[
    (
        "kotlin-facade",
        "android/src/common/kotlin/org/phonesignin/android",
        "kt",
    ),
    (
        "kotlin-facade",
        "android/src/main/kotlin/org/phonesignin/android",
        "kt",
    ),
    ("swift-facade", "ios/Sources/PhoneSignIn", "swift"),
];

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
    let kt = kotlin_file();
    let hardened = harden_kotlin(&std::fs::read_to_string(&kt)?)?;
    std::fs::write(&kt, hardened)?;
    copy_into_shells()
}

fn check_surface(check: bool) -> Result<()> {
    let kotlin = std::fs::read_to_string(kotlin_file())?;
    let swift = std::fs::read_to_string(Path::new(OUT_DIR).join(format!("{SWIFT_MODULE}.swift")))?;
    let mut lines = surface::kotlin(&kotlin);
    lines.extend(surface::swift(&swift));
    // The hand-written facades apps call first (`PhoneSignIn`, the platform adapters).
    for (lang, dir, ext) in FACADES {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {dir}"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.retain(|f| f.extension().is_some_and(|x| x == *ext));
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            lines.extend(surface::facade(lang, &name, &std::fs::read_to_string(&f)?));
        }
    }
    let text = format!(
        "# Public API of the generated bindings (Kotlin package {KOTLIN_PACKAGE}, Swift module {SWIFT_MODULE})\n\
         # and of the facades over them (`kotlin-facade <file>`, `swift-facade <file>`: android/src, ios/Sources/PhoneSignIn).\n\
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

/// One edit of the generated Kotlin: `from` must occur exactly `times` times.
struct Edit {
    why: &'static str,
    from: &'static str,
    to: &'static str,
    times: usize,
}

const KOTLIN_EDITS: &[Edit] = &[
    // uniffi lowers a Kotlin String with a strict UTF-8 encoder, which throws
    // java.nio.charset.CharacterCodingException for an unpaired UTF-16 surrogate before any
    // Rust runs. Every text argument (method parameters, record fields, map keys and values,
    // the constructor's data directory, webPushToken) goes through this one function, so
    // here it becomes the typed error callers already handle.
    Edit {
        why: "an unpaired surrogate is AuthenticatorException.InvalidInput",
        from: "        return Charsets.UTF_8.newEncoder().run {
            onMalformedInput(CodingErrorAction.REPORT)
            encode(CharBuffer.wrap(value))
        }
",
        to: "        return try {
            Charsets.UTF_8.newEncoder().run {
                onMalformedInput(CodingErrorAction.REPORT)
                encode(CharBuffer.wrap(value))
            }
        } catch (e: java.nio.charset.CharacterCodingException) {
            throw AuthenticatorException.InvalidInput(\"not valid Unicode text (an unpaired UTF-16 surrogate)\")
        }
",
        times: 1,
    },
    // A call on a closed object: uniffi throws IllegalStateException.
    Edit {
        why: "a call after close() is AuthenticatorException.Closed",
        from: "throw IllegalStateException(\"${this.javaClass.simpleName} object has already been destroyed\")",
        to: "throw AuthenticatorException.Closed()",
        times: 3,
    },
];

/// Makes the generated Kotlin give typed errors where uniffi's template throws untyped ones,
/// and gives the case objects of enums with data (`PushOutcome.Expired`) a readable
/// `toString` (`data object`, Kotlin 1.9+) instead of `PushOutcome$Expired@1e0b4072`.
pub fn harden_kotlin(src: &str) -> Result<String> {
    let mut out = src.to_owned();
    for e in KOTLIN_EDITS {
        let found = out.matches(e.from).count();
        if found != e.times {
            bail!(
                "generated Kotlin: expected {} of the text to edit ({}), found {found}: did uniffi's template change?",
                e.times,
                e.why
            );
        }
        out = out.replace(e.from, e.to);
    }
    let mut objects = 0;
    let lines: Vec<String> = out
        .lines()
        .map(|l| {
            // A sealed class's case object: `    object Expired : PushOutcome()`.
            match l.strip_prefix("    object ") {
                Some(rest) if rest.trim_end().ends_with("()") && rest.contains(" : ") => {
                    objects += 1;
                    format!("    data object {rest}")
                }
                _ => l.to_owned(),
            }
        })
        .collect();
    if objects == 0 {
        bail!("generated Kotlin: no case objects of a sealed class found (PushOutcome has three): did uniffi's template change?");
    }
    let mut text = lines.join("\n");
    if out.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&data[..]) {
        std::fs::create_dir_all(to.parent().expect("a file path"))?;
        std::fs::write(to, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "    fun toUtf8(value: String): ByteBuffer {
        // Make sure we don't have invalid UTF-16, check for lone surrogates.
        return Charsets.UTF_8.newEncoder().run {
            onMalformedInput(CodingErrorAction.REPORT)
            encode(CharBuffer.wrap(value))
        }
    }
a throw IllegalStateException(\"${this.javaClass.simpleName} object has already been destroyed\")
b throw IllegalStateException(\"${this.javaClass.simpleName} object has already been destroyed\")
c throw IllegalStateException(\"${this.javaClass.simpleName} object has already been destroyed\")
sealed class PushOutcome {
    object Expired : PushOutcome()
    companion object
}
";

    #[test]
    fn the_kotlin_edits_apply_to_uniffis_template() {
        let out = harden_kotlin(TEMPLATE).unwrap();
        assert!(out.contains("throw AuthenticatorException.InvalidInput("));
        assert_eq!(
            out.matches("throw AuthenticatorException.Closed()").count(),
            3
        );
        assert!(!out.contains("IllegalStateException"));
        assert!(out.contains("    data object Expired : PushOutcome()"));
        assert!(
            out.contains("    companion object\n"),
            "companion objects stay"
        );
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn a_changed_template_fails_the_run_instead_of_dropping_an_edit() {
        let without_encoder =
            TEMPLATE.replace("CodingErrorAction.REPORT", "CodingErrorAction.REPLACE");
        assert!(harden_kotlin(&without_encoder).is_err());
        let one_destroyed_less = TEMPLATE.replacen("a throw IllegalStateException", "a", 1);
        assert!(harden_kotlin(&one_destroyed_less).is_err());
        let no_case_objects = TEMPLATE.replace("    object Expired", "    class Expired");
        assert!(harden_kotlin(&no_case_objects).is_err());
    }
}

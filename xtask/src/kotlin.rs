//! `cargo xtask kotlin-test`: compiles the Android shell's platform-free Kotlin (the generated
//! bindings, `android/src/common`, the JVM tests and the EMBEDDING.md snippets) with
//! `kotlinc -Werror`, then runs the JUnit 4 tests on the JVM against the real
//! `libauthenticator_core.so` and a real `signin-server` binary.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::builds::ShellTools;
use crate::{bindings, run, run_tee, system, toolchains};

const SOURCE_DIRS: &[&str] = &[
    bindings::ANDROID_GENERATED,
    "android/src/common/kotlin",
    "android/src/test/kotlin",
];
const CLASSES: &str = "target/kotlin/classes";
const JAVA_JARS: &[&str] = &[
    "/usr/share/java/jna.jar",
    "/usr/share/java/junit4.jar",
    "/usr/share/java/hamcrest.jar",
];
const KOTLIN_JARS: &[&str] = &[
    "kotlinx-coroutines-core-jvm.jar",
    "kotlin-test.jar",
    "kotlin-test-junit.jar",
];

fn kotlin_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            kotlin_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "kt") {
            out.push(p);
        }
    }
    Ok(())
}

/// Returns the number of passed tests.
pub fn kotlin_test(tools: &ShellTools) -> Result<usize> {
    system::ensure(toolchains::KOTLIN_NEEDS)?;
    toolchains::install_kotlin()?;
    bindings::generate(tools)?;

    let kotlin_lib = toolchains::kotlin_home().join("lib");
    let mut cp: Vec<String> = JAVA_JARS.iter().map(|s| s.to_string()).collect();
    cp.extend(
        KOTLIN_JARS
            .iter()
            .map(|j| kotlin_lib.join(j).display().to_string()),
    );
    let cp = cp.join(":");

    let mut files = Vec::new();
    for d in SOURCE_DIRS {
        kotlin_files(Path::new(d), &mut files)?;
    }
    // kotlinc takes ~10 s and has no daemon here: skip it when no input changed.
    let mut h = DefaultHasher::new();
    toolchains::KOTLIN_VERSION.hash(&mut h);
    for f in &files {
        f.hash(&mut h);
        std::fs::read(f)?.hash(&mut h);
    }
    let stamp = format!("{:016x}", h.finish());
    let stamp_file = Path::new("target/kotlin/inputs.stamp");
    if std::fs::read_to_string(stamp_file).ok().as_deref() != Some(stamp.as_str()) {
        let _ = std::fs::remove_dir_all(CLASSES);
        std::fs::create_dir_all(CLASSES)?;
        println!("xtask: kotlinc -Werror ({} files)", files.len());
        run(Command::new(toolchains::kotlin_home().join("bin/kotlinc"))
            .args(["-Werror", "-jvm-target", "17", "-cp", &cp, "-d", CLASSES])
            .args(&files))?;
        std::fs::write(stamp_file, &stamp)?;
    } else {
        println!("xtask: Kotlin sources unchanged, reusing {CLASSES}");
    }

    let tests = test_classes()?;
    let run_cp = format!(
        "{CLASSES}:{}:{cp}",
        kotlin_lib.join("kotlin-stdlib.jar").display()
    );
    let (ok, out) = run_tee(
        Command::new("java")
            .arg(format!("-Djna.library.path={}", bindings::CDYLIB_DIR))
            .arg(format!(
                "-Dsignin.server={}",
                std::fs::canonicalize(&tools.server)?.display()
            ))
            .args(["-cp", &run_cp, "org.junit.runner.JUnitCore"])
            .args(&tests),
    )?;
    // JUnitCore ends with "OK (N tests)" or "Tests run: N,  Failures: M".
    if !ok {
        bail!("Kotlin tests failed");
    }
    let passed = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("OK (")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .context("JUnit did not report a pass count")?;
    println!("xtask: Kotlin: {passed} tests passed");
    Ok(passed)
}

/// Fully qualified names of the `*Test.kt` classes under android/src/test/kotlin.
fn test_classes() -> Result<Vec<String>> {
    let mut files = Vec::new();
    kotlin_files(Path::new("android/src/test/kotlin"), &mut files)?;
    let mut classes = Vec::new();
    for f in files.iter().filter(|f| {
        f.file_stem()
            .is_some_and(|s| s.to_string_lossy().ends_with("Test"))
    }) {
        let text = std::fs::read_to_string(f)?;
        let package = text
            .lines()
            .find_map(|l| l.strip_prefix("package "))
            .context("test file without a package")?;
        classes.push(format!(
            "{}.{}",
            package.trim(),
            f.file_stem().unwrap().to_string_lossy()
        ));
    }
    if classes.is_empty() {
        bail!("no Kotlin tests found under android/src/test/kotlin");
    }
    Ok(classes)
}

//! The server's layering, checked on its source tree:
//! - SQL (`sqlx`) is written only in `src/store/`;
//! - the lifecycle and the parts under it (`sign_in/`, `store/`, `accounts/`, `delivery/`,
//!   `audit.rs`, `state.rs`) know nothing of HTTP (`axum`);
//! - pages (`web/`) never import the JSON handlers (`api/`): both call `sign_in`/`accounts`.
use std::path::{Path, PathBuf};

/// A rule: files whose path (relative to `src/`, with `/`) matches `applies` must not
/// mention `forbidden`.
struct Rule {
    name: &'static str,
    applies: fn(&str) -> bool,
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        name: "sqlx only in store/",
        applies: |p| !p.starts_with("store/"),
        forbidden: &["sqlx::", "use sqlx", "sqlx ::"],
    },
    Rule {
        name: "no axum below the HTTP layer",
        applies: |p| {
            ["sign_in/", "store/", "accounts/", "delivery/"]
                .iter()
                .any(|d| p.starts_with(d))
                || p == "audit.rs"
                || p == "state.rs"
        },
        forbidden: &["axum"],
    },
    Rule {
        name: "pages do not import the JSON handlers",
        applies: |p| p.starts_with("web/"),
        forbidden: &["crate::api", "super::super::api"],
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every violation in the tree under `src`: "rule: file:line: text".
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("readable source file");
        for rule in RULES.iter().filter(|r| (r.applies)(&rel)) {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if rule.forbidden.iter().any(|f| code.contains(f)) {
                    found.push(format!("{}: {rel}:{}: {}", rule.name, n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_server_source_follows_the_layering() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "layering violations:\n{}",
        found.join("\n")
    );
}

/// The check itself finds each kind of violation (so the test above cannot pass vacuously).
#[test]
fn the_layering_check_catches_planted_violations() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    for (path, text) in [
        ("store/mod.rs", "use sqlx::AnyPool;\n"),
        ("sign_in/mod.rs", "let x = sqlx::query(\"SELECT 1\");\n"),
        ("sign_in/policy.rs", "use axum::Json;\n"),
        ("delivery/push.rs", "// axum in a comment is fine\n"),
        ("web/signin.rs", "use crate::api::signin::start;\n"),
        ("api/signin.rs", "use axum::Json;\nuse crate::sign_in;\n"),
    ] {
        let file = src.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let found = violations(src);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("sqlx only in store/: sign_in/mod.rs:1"));
    assert!(found[1].starts_with("no axum below the HTTP layer: sign_in/policy.rs:1"));
    assert!(found[2].starts_with("pages do not import the JSON handlers: web/signin.rs:1"));
}

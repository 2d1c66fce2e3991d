//! Code snippets in docs/EMBEDDING.md come from compiled source files, so CI compiles every
//! snippet: a region `// snippet:NAME` … `// end-snippet` in a source file is copied into the
//! fenced code block that follows `<!-- snippet:NAME -->` in the document.

use anyhow::{bail, Context, Result};

pub const DOC: &str = "docs/EMBEDDING.md";
const SOURCES: &[&str] = &[
    "android/src/test/kotlin/org/phonesignin/android/EmbeddingSnippets.kt",
    "ios/Tests/PhoneSignInTests/EmbeddingSnippets.swift",
];

fn regions() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in SOURCES {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("// snippet:") {
                current = Some((name.trim().to_owned(), Vec::new()));
            } else if line.trim() == "// end-snippet" {
                let (name, body) = current
                    .take()
                    .with_context(|| format!("{path}: end-snippet without snippet"))?;
                out.push((name, body.join("\n")));
            } else if let Some((_, body)) = current.as_mut() {
                body.push(line);
            }
        }
    }
    Ok(out)
}

/// Rewrites (or with `check`, verifies) the snippet blocks of docs/EMBEDDING.md.
pub fn sync(check: bool) -> Result<()> {
    let doc = std::fs::read_to_string(DOC).with_context(|| format!("reading {DOC}"))?;
    let mut new = doc.clone();
    for (name, body) in regions()? {
        let marker = format!("<!-- snippet:{name} -->");
        let at = new
            .find(&marker)
            .with_context(|| format!("{DOC} has no {marker}"))?
            + marker.len();
        let open = at
            + new[at..]
                .find("```")
                .context("no code block after the marker")?;
        let body_start = open + new[open..].find('\n').context("unterminated fence")? + 1;
        let close = body_start
            + new[body_start..]
                .find("```")
                .context("unterminated code block")?;
        new.replace_range(body_start..close, &format!("{body}\n"));
    }
    if new != doc {
        if check {
            bail!("{DOC} snippets differ from the compiled sources: run `cargo xtask bindings` and commit");
        }
        std::fs::write(DOC, new)?;
        println!("xtask: updated the snippets in {DOC}");
    }
    Ok(())
}

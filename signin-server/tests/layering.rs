//! The workspace's layering, checked on its source trees:
//! - the domain (`signin-domain`) depends on no HTTP crate (axum, hyper, tower, tower-http): its
//!   `Cargo.toml` says so, and the compiler keeps HTTP out of it;
//! - SQL (`sqlx`) is written only in `signin-domain/src/store/`;
//! - pages (`web/`) never import the JSON handlers (`api/`): both call the domain;
//! - no two top-level modules of any crate of the workspace import each other, directly or
//!   through others (`crate::a::…`, `use crate::{a, b::c}`, and `super::` paths that climb
//!   out of a top-level module; names the crate root re-exports count for the module they
//!   come from).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Text rules

/// A rule: files of `krate` whose path (relative to its `src/`, with `/`) matches `applies`
/// must not mention `forbidden`.
struct Rule {
    name: &'static str,
    krate: &'static str,
    applies: fn(&str) -> bool,
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        name: "sqlx only in the domain's store/",
        krate: "signin-domain",
        applies: |p| !p.starts_with("store/"),
        forbidden: &["sqlx::", "use sqlx", "sqlx ::"],
    },
    Rule {
        name: "sqlx only in the domain's store/",
        krate: "signin-server",
        applies: |_| true,
        forbidden: &["sqlx::", "use sqlx", "sqlx ::"],
    },
    Rule {
        name: "no HTTP in the domain",
        krate: "signin-domain",
        applies: |_| true,
        forbidden: &["axum", "hyper::", "tower::", "tower_http"],
    },
    Rule {
        name: "pages do not import the JSON handlers",
        krate: "signin-server",
        applies: |p| p.starts_with("web/"),
        forbidden: &["crate::api", "super::super::api", "super::api"],
    },
];

/// The HTTP crates the domain must not depend on.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "http-body",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server sits in the workspace")
        .to_path_buf()
}

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

/// Every `.rs` file under `src` with its path relative to `src` (with `/`), sorted.
fn sources(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let rel = file
                .strip_prefix(src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).expect("readable source file");
            (rel, text)
        })
        .collect()
}

/// Every violation of `rules` in the `src` tree of `krate`: "rule: crate/file:line: text".
fn violations(krate: &str, src: &Path, rules: &[Rule]) -> Vec<String> {
    let mut found = Vec::new();
    for (rel, text) in sources(src) {
        for rule in rules
            .iter()
            .filter(|r| r.krate == krate && (r.applies)(&rel))
        {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if rule.forbidden.iter().any(|f| code.contains(f)) {
                    found.push(format!(
                        "{}: {krate}/{rel}:{}: {}",
                        rule.name,
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

/// The dependencies (any section: normal, dev, build, target-specific) of a manifest that
/// are HTTP crates.
fn http_dependencies(manifest: &str) -> Vec<String> {
    let doc: toml::Table = toml::from_str(manifest).expect("a Cargo.toml");
    let mut tables: Vec<&toml::Table> = Vec::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = doc.get(section).and_then(|v| v.as_table()) {
            tables.push(t);
        }
    }
    if let Some(targets) = doc.get("target").and_then(|v| v.as_table()) {
        for target in targets.values().filter_map(|v| v.as_table()) {
            for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(t) = target.get(section).and_then(|v| v.as_table()) {
                    tables.push(t);
                }
            }
        }
    }
    let mut found = Vec::new();
    for table in tables {
        for (name, spec) in table {
            // `name = { package = "axum", … }` renames count too.
            let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
            if HTTP_CRATES.contains(&package) {
                found.push(package.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_domain_and_server_sources_follow_the_layering() {
    let root = workspace_root();
    let mut found = Vec::new();
    for krate in ["signin-domain", "signin-server"] {
        found.extend(violations(krate, &root.join(krate).join("src"), RULES));
    }
    assert!(
        found.is_empty(),
        "layering violations:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_domain_crate_depends_on_no_http_crate() {
    let manifest = std::fs::read_to_string(workspace_root().join("signin-domain/Cargo.toml"))
        .expect("signin-domain/Cargo.toml");
    let found = http_dependencies(&manifest);
    assert!(
        found.is_empty(),
        "signin-domain depends on HTTP crates {found:?}: HTTP belongs in signin-server"
    );
}

/// The checks themselves find each kind of violation (so the tests above cannot pass
/// vacuously).
#[test]
fn the_layering_checks_catch_planted_violations() {
    let dir = tempfile::tempdir().unwrap();
    let plant = |krate: &str, files: &[(&str, &str)]| {
        for (path, text) in files {
            let file = dir.path().join(krate).join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    };
    plant(
        "signin-domain",
        &[
            ("store/mod.rs", "use sqlx::AnyPool;\n"),
            ("sign_in/mod.rs", "let x = sqlx::query(\"SELECT 1\");\n"),
            ("rules/policy.rs", "use axum::Json;\n"),
            ("delivery/push.rs", "// axum in a comment is fine\n"),
        ],
    );
    plant(
        "signin-server",
        &[
            ("web/signin.rs", "use crate::api::signin::start;\n"),
            (
                "api/signin.rs",
                "use axum::Json;\nuse signin_domain::sign_in;\n",
            ),
        ],
    );
    let mut found = Vec::new();
    for krate in ["signin-domain", "signin-server"] {
        found.extend(violations(krate, &dir.path().join(krate), RULES));
    }
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("no HTTP in the domain: signin-domain/rules/policy.rs:1"));
    assert!(
        found[1].starts_with("sqlx only in the domain's store/: signin-domain/sign_in/mod.rs:1")
    );
    assert!(found[2]
        .starts_with("pages do not import the JSON handlers: signin-server/web/signin.rs:1"));

    let manifest = "[package]\nname = \"d\"\n[dependencies]\nserde = \"1\"\n\
                    web = { package = \"axum\", version = \"0.8\" }\n\
                    [target.'cfg(unix)'.dependencies]\nhyper = \"1\"\n\
                    [dev-dependencies]\ntower = \"0.5\"\n";
    let mut http = http_dependencies(manifest);
    http.sort();
    assert_eq!(http, ["axum", "hyper", "tower"]);
}

// ---------------------------------------------------------------------------------------------
// Import cycles between top-level modules

/// Top-level module → top-level modules it imports, each with one place that does it.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The source with comments, string and character literals blanked (newlines kept, so
/// line numbers stay), so that only code is searched.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for &ch in &b[i..=e] {
                        out.push(blank(ch));
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Tokens with their line numbers (identifiers, `::` and single punctuation; whitespace and
/// everything else dropped).
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            // `r#ident`
            let word = word.strip_prefix("r#").map(str::to_owned).unwrap_or(word);
            out.push((Token::Ident(word), line));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '.') {
                i += 1;
            }
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((Token::Path, line));
            i += 2;
        } else {
            out.push((Token::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// The first segment of every path in a `{…}` use group starting at `tokens[start]` (the
/// `{`), and the index after its `}`. `self` stands for the group's own prefix (`None`).
fn group_heads(tokens: &[(Token, usize)], start: usize) -> (Vec<Option<String>>, usize) {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut i = start;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Punct('{') => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
            }
            Token::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return (heads, i + 1);
                }
            }
            Token::Punct(',') if depth == 1 => expect_head = true,
            Token::Ident(name) if depth == 1 && expect_head => {
                heads.push((name != "self").then(|| name.clone()));
                expect_head = false;
            }
            _ => {}
        }
        i += 1;
    }
    (heads, i)
}

/// A file's module path below the crate root: `a/b.rs` and `a/b/mod.rs` are `[a, b]`, the
/// crate roots (`lib.rs`, `main.rs`, `bin/…`) are `[]`.
fn module_path(rel: &str) -> Vec<String> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return Vec::new();
    }
    parts
}

/// The names a crate root file brings in with `use` (`pub use ids::{AccountId, RequestId}`,
/// `use signin_domain::store`), each with the first segment of its path: `crate::AccountId`
/// is a use of module `ids`.
fn root_uses(text: &str) -> BTreeMap<String, String> {
    let code = code_only(text);
    let toks = tokens(&code);
    let mut names = BTreeMap::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].0 != Token::Ident("use".into()) {
            i += 1;
            continue;
        }
        // One `use` item up to its `;`: the first segment, then the names it ends in.
        let end = (i..toks.len())
            .find(|&j| toks[j].0 == Token::Punct(';'))
            .unwrap_or(toks.len());
        let item = &toks[i + 1..end];
        let mut segs = item.iter().filter_map(|(t, _)| match t {
            Token::Ident(s) => Some(s.clone()),
            _ => None,
        });
        let Some(mut first) = segs.next() else {
            i = end;
            continue;
        };
        if first == "crate" || first == "self" {
            first = segs.next().unwrap_or_default();
        }
        // Every identifier that is followed by `,`, `}` or the end names something brought in
        // (or its `as` alias, which is the last identifier before them).
        for (k, (t, _)) in item.iter().enumerate() {
            if let Token::Ident(name) = t {
                let next = item.get(k + 1).map(|(t, _)| t);
                let last = matches!(
                    next,
                    None | Some(Token::Punct(',')) | Some(Token::Punct('}'))
                );
                if last && name != "self" && name != "as" {
                    names.insert(name.clone(), first.clone());
                }
            }
        }
        i = end;
    }
    names
}

/// The graph of one crate's `src` tree (files as `(relative path, text)`).
fn module_graph(files: &[(String, String)]) -> Graph {
    let top_modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| module_path(rel).into_iter().next())
        .collect();
    let mut reexports = BTreeMap::new();
    for (rel, text) in files {
        if module_path(rel).is_empty() {
            reexports.extend(root_uses(text));
        }
    }
    // A name under the crate root → the top-level module it belongs to.
    let resolve = |name: &str| -> Option<String> {
        if top_modules.contains(name) {
            return Some(name.to_owned());
        }
        reexports
            .get(name)
            .filter(|m| top_modules.contains(*m))
            .cloned()
    };
    let mut graph = Graph::new();
    for (rel, text) in files {
        let file_path = module_path(rel);
        let Some(own) = file_path.first().cloned() else {
            continue; // crate roots compose the modules; they are not one of them
        };
        let code = code_only(text);
        let toks = tokens(&code);
        // Inline modules (`mod tests { … }`) deepen the path that `super::` climbs from.
        let mut inline: Vec<usize> = Vec::new(); // brace depth at which each was opened
        let mut depth = 0usize;
        let add = |target: Option<String>, line: usize, graph: &mut Graph| {
            if let Some(t) = target.as_deref().and_then(resolve) {
                if t != own {
                    graph
                        .entry(own.clone())
                        .or_default()
                        .entry(t)
                        .or_insert_with(|| format!("{rel}:{line}"));
                }
            }
        };
        let mut i = 0;
        while i < toks.len() {
            let (tok, line) = &toks[i];
            match tok {
                Token::Punct('{') => {
                    depth += 1;
                    i += 1;
                }
                Token::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                    i += 1;
                }
                Token::Ident(kw)
                    if kw == "mod"
                        && matches!(toks.get(i + 1), Some((Token::Ident(_), _)))
                        && toks.get(i + 2).map(|t| &t.0) == Some(&Token::Punct('{')) =>
                {
                    inline.push(depth);
                    depth += 1;
                    i += 3;
                }
                Token::Ident(kw)
                    if (kw == "crate" || kw == "super")
                        && toks.get(i + 1).map(|t| &t.0) == Some(&Token::Path) =>
                {
                    // Where the path starts: `crate` is the root; each `super` climbs one.
                    let mut level = file_path.len() + inline.len();
                    let mut j = i;
                    if kw == "crate" {
                        level = 0;
                        j += 2;
                    } else {
                        while toks.get(j).map(|t| &t.0) == Some(&Token::Ident("super".into()))
                            && toks.get(j + 1).map(|t| &t.0) == Some(&Token::Path)
                        {
                            level = level.saturating_sub(1);
                            j += 2;
                        }
                    }
                    if level == 0 {
                        match toks.get(j).map(|t| &t.0) {
                            Some(Token::Ident(name)) => add(Some(name.clone()), *line, &mut graph),
                            Some(Token::Punct('{')) => {
                                let (heads, _) = group_heads(&toks, j);
                                for head in heads {
                                    add(head, *line, &mut graph);
                                }
                            }
                            _ => {}
                        }
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }
    graph
}

/// Every cycle of the graph, one per strongly connected component of more than one module:
/// "a -> b -> a" with where each import is.
fn cycles(graph: &Graph) -> Vec<String> {
    // Tarjan's strongly connected components.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        components: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort();
            s.components.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let mut found = Vec::new();
    for component in s.components.iter().filter(|c| c.len() > 1) {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        // One cycle through the component's first module (breadth-first back to it).
        let start = component[0];
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(v) = queue.pop_front() {
            for w in graph[v].keys().map(String::as_str) {
                if !members.contains(w) {
                    continue;
                }
                if w == start {
                    last = Some(v);
                    break 'search;
                }
                if !came_from.contains_key(w) {
                    came_from.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = vec![start];
        let mut v = last.expect("a strongly connected component has a cycle");
        while v != start {
            path.push(v);
            v = came_from[v];
        }
        path.push(start);
        let n = path.len();
        path[1..n - 1].reverse();
        let steps: Vec<String> = path
            .windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[w[0]][w[1]]))
            .collect();
        found.push(format!(
            "{} (modules in the cycle: {}): {}",
            path.join(" -> "),
            component.join(", "),
            steps.join("; ")
        ));
    }
    found
}

/// The workspace's member crates (from the root `Cargo.toml`).
fn workspace_members() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let doc: toml::Table = toml::from_str(&text).expect("the workspace Cargo.toml");
    doc["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|m| m.as_str().expect("a member path").to_owned())
        .collect()
}

/// The import cycles between the top-level modules of a member crate.
fn crate_cycles(member: &str) -> Vec<String> {
    let src = workspace_root().join(member).join("src");
    cycles(&module_graph(&sources(&src)))
}

/// One test per crate, so that a failure names its crate; the list must be the workspace's.
macro_rules! no_cycles {
    ($($test:ident: $member:literal,)*) => {
        const CHECKED: &[&str] = &[$($member),*];
        $(
            #[test]
            fn $test() {
                let found = crate_cycles($member);
                assert!(
                    found.is_empty(),
                    "import cycles between top-level modules of {}:\n{}",
                    $member,
                    found.join("\n")
                );
            }
        )*
    };
}

no_cycles! {
    no_import_cycles_in_signin_domain: "signin-domain",
    no_import_cycles_in_signin_server: "signin-server",
    no_import_cycles_in_authenticator_protocol: "authenticator-protocol",
    no_import_cycles_in_authenticator_core: "authenticator-core",
    no_import_cycles_in_authenticator_cli: "authenticator-cli",
    no_import_cycles_in_bindings: "bindings",
    no_import_cycles_in_tests: "tests",
    no_import_cycles_in_loadtest: "loadtest",
    no_import_cycles_in_xtask: "xtask",
}

#[test]
fn every_workspace_member_is_checked_for_cycles() {
    let mut members = workspace_members();
    members.sort();
    let mut checked: Vec<String> = CHECKED.iter().map(|s| s.to_string()).collect();
    checked.sort();
    assert_eq!(
        members, checked,
        "add new members to no_cycles! in this file"
    );
}

/// The graph sees each way of naming another module, and a planted cycle is reported (so
/// the tests above cannot pass vacuously).
#[test]
fn the_cycle_check_catches_planted_cycles() {
    let files = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    };
    let planted = files(&[
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\npub use e::Thing;\n",
        ),
        // a -> b through a plain path
        ("a/mod.rs", "pub mod inner;\nfn f() { crate::b::g(); }\n"),
        // a/inner.rs climbs out with super::super -> c
        ("a/inner.rs", "use super::super::c::H;\n"),
        // b -> c and d through a group, over two lines; `self` in the group is b's own
        (
            "b.rs",
            "use crate::{\n    c::X,\n    d,\n};\nuse self::z::{self};\n",
        ),
        // c -> a through super:: from a top-level file (climbs to the root at once)
        ("c.rs", "fn h() { super::a::f(); }\n"),
        // d: only comments, strings and a test module's super (which stays in d)
        (
            "d.rs",
            "// crate::a::x\n/* crate::b */\nconst S: &str = \"crate::c::y\";\n\
             mod tests { use super::*; fn t() { let c = 'x'; } }\n",
        ),
        // e names itself through the root's re-export (no edge); lifetimes are no literals
        (
            "e.rs",
            "pub struct Thing;\nfn k<'a>(x: &'a str) { crate::Thing; }\n",
        ),
    ]);
    let graph = module_graph(&planted);
    let edges = |m: &str| -> Vec<&str> {
        graph
            .get(m)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(edges("a"), ["b", "c"], "{graph:#?}");
    assert_eq!(edges("b"), ["c", "d"], "{graph:#?}");
    assert_eq!(edges("c"), ["a"], "{graph:#?}");
    assert!(edges("d").is_empty(), "{graph:#?}");
    assert!(edges("e").is_empty(), "{graph:#?}");
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("a -> b -> c -> a (modules in the cycle: a, b, c)")
            || found[0].starts_with("a -> c -> a (modules in the cycle: a, b, c)"),
        "{found:#?}"
    );
    assert!(found[0].contains("a -> c (a/inner.rs:1)"), "{found:#?}");

    // A root re-export counts for its module: d using crate::Thing depends on e, and e on d
    // makes a second cycle.
    let mut more = planted.clone();
    more.push(("d.rs".into(), "fn u() { let _ = crate::Thing; }\n".into()));
    more.retain(|(p, t)| p != "d.rs" || t.contains("Thing"));
    more.retain(|(p, _)| p != "e.rs");
    more.push(("e.rs".into(), "use crate::d;\npub struct Thing;\n".into()));
    let found = cycles(&module_graph(&more));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().any(|c| c.starts_with("d -> e -> d")),
        "{found:#?}"
    );
}

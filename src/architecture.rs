//! The architecture test (issue 18, docs/architecture.md "Floors"): every
//! import points down. It reads every file under `src/`, finds the paths that
//! leave their module (`crate::…`, `super::…`, grouped `use crate::{…}`),
//! maps both ends to a floor by [`FLOORS`] and fails on any path that points
//! to a higher floor than its own, unless that exact `from -> to` pair is in
//! [`ALLOWED`] (the violations still to remove). A pair in `ALLOWED` that no
//! longer occurs fails too, so the list only shrinks.
//!
//! Test code (`#[cfg(test)]` items) is checked too: a unit test imports from
//! its floor or below, like the code it tests, and builds its fixtures
//! there. A `#[cfg(test)] mod tests` is read as the submodule it is (its
//! `super::` is the file's module). Comments and string literals are
//! skipped.

use std::collections::BTreeSet;
use std::path::Path;

/// The floors, lowest first; a module may import from its own floor or
/// below. A module is matched by its longest prefix (an entry may name a
/// submodule, `a::b`, to place it apart from `a`). `<root>` is `lib.rs` and
/// `main.rs`.
const FLOORS: &[(&str, &[&str])] = &[
    ("values", &["clock", "duration", "secret", "net", "connections"]),
    ("model", &["session", "policy", "audit", "user", "oauth", "token", "ssf", "logout"]),
    ("store", &["store"]),
    ("config", &["config", "telemetry"]),
    ("service", &["service"]),
    ("worker", &["worker"]),
    ("edge", &["http", "cli"]),
    ("root", &["<root>", "architecture"]),
];

/// Upward imports that remain, each `from module -> matched floor entry`.
/// Remove a line when its import goes; never add one.
const ALLOWED: &[(&str, &str)] = &[];

/// One path that leaves its module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Import {
    /// The importing module, `::`-joined (`<root>` for lib.rs, main.rs).
    pub from: String,
    /// The imported path, `::`-joined, from the crate root.
    pub to: String,
}

/// The floor and matched table entry of a module path.
fn floor(path: &[&str]) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, &'static str, usize)> = None;
    for (level, (_, modules)) in FLOORS.iter().enumerate() {
        for module in modules.iter() {
            let segments: Vec<&str> = module.split("::").collect();
            let matches = path.len() >= segments.len() && path[..segments.len()] == segments[..];
            if matches && best.is_none_or(|(_, _, len)| segments.len() > len) {
                best = Some((level, *module, segments.len()));
            }
        }
    }
    best.map(|(level, module, _)| (level, module))
}

/// The module path of a file relative to `src/`: `oauth/mod.rs` is `oauth`,
/// `lib.rs` and `main.rs` are the root (empty).
pub fn module_of(relative: &str) -> Vec<String> {
    let trimmed = relative.strip_suffix(".rs").unwrap_or(relative);
    let mut segments: Vec<String> = trimmed.split('/').map(str::to_owned).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        segments.pop();
    }
    segments
}

/// The text with comments, string and character literals blanked.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime.
            if next == Some('\\') {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Where the item that starts at or after `from` ends: after its `;`, or
/// after the `}` that closes its first block.
fn item_end(bytes: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The text split into the code outside `#[cfg(test)]` items and those
/// items, each with the name of the module it declares (`mod tests { … }`),
/// if it is one.
fn split_tests(text: &str) -> (String, Vec<(Option<String>, String)>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(text.len());
    let mut tests = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let end = item_end(after.as_bytes(), 0);
        let item = &after[..end];
        let head = item.trim_start().trim_start_matches("pub ").trim_start();
        let name = head.strip_prefix("mod ").and_then(|m| {
            let (segments, _) = path_at(m.as_bytes(), 0);
            let body = m.trim_start().trim_start_matches(|c: char| is_ident(c as u8)).trim_start();
            (segments.len() == 1 && body.starts_with('{')).then(|| segments[0].clone())
        });
        tests.push((name, item.to_owned()));
        rest = &after[end..];
    }
    out.push_str(rest);
    (out, tests)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifiers of a path from `at`: `a::b::c`, stopping before `{`,
/// `*` or anything else; returns the segments and where they end.
fn path_at(bytes: &[u8], mut at: usize) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && is_ident(bytes[at]) {
            at += 1;
        }
        if at == start {
            break;
        }
        segments.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
        let mut look = at;
        while look < bytes.len() && bytes[look].is_ascii_whitespace() {
            look += 1;
        }
        if bytes.get(look..look + 2) == Some(b"::") {
            at = look + 2;
        } else {
            break;
        }
    }
    (segments, at)
}

/// The paths a `use` group names, each prefixed with `prefix`; `at` is just
/// after the opening `{`.
fn group_paths(bytes: &[u8], at: usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut i = at;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'}' {
            return;
        }
        let (segments, end) = path_at(bytes, i);
        let mut full = prefix.to_vec();
        full.extend(segments);
        i = end;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'{') {
            group_paths(bytes, i + 1, &full, out);
            i = item_end(bytes, i);
        } else {
            out.push(full);
            // Skip `as name`, `*` up to the next `,` or `}` of this level.
            while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
                i += 1;
            }
        }
    }
}

/// Every path in `text` (a file of module `module`) that names something
/// outside the file's own module, from the crate root; test code included,
/// a `#[cfg(test)] mod` as the submodule it is.
pub fn imports(module: &[String], text: &str) -> Vec<Import> {
    let (code, tests) = split_tests(&strip(text));
    let mut found = paths_in(module, &code);
    for (name, item) in tests {
        let mut inner = module.to_vec();
        inner.extend(name);
        found.extend(paths_in(&inner, &item));
    }
    found
}

/// The paths of [`imports`] in `code` (stripped) of module `module`.
fn paths_in(module: &[String], code: &str) -> Vec<Import> {
    let bytes = code.as_bytes();
    let mut paths: Vec<Vec<String>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'$');
        if boundary && bytes[i..].starts_with(b"crate::") {
            let (segments, end) = path_at(bytes, i + "crate::".len());
            let mut look = end;
            while look < bytes.len() && bytes[look].is_ascii_whitespace() {
                look += 1;
            }
            if bytes.get(look) == Some(&b'{') {
                group_paths(bytes, look + 1, &segments, &mut paths);
            } else {
                paths.push(segments);
            }
            i = end.max(i + 1);
        } else if boundary && bytes[i..].starts_with(b"super::") {
            let mut up = 0;
            let mut j = i;
            while bytes[j..].starts_with(b"super::") {
                up += 1;
                j += "super::".len();
            }
            let base: Vec<String> = module[..module.len().saturating_sub(up)].to_vec();
            let (segments, end) = path_at(bytes, j);
            let mut look = end;
            while look < bytes.len() && bytes[look].is_ascii_whitespace() {
                look += 1;
            }
            if bytes.get(look) == Some(&b'{') {
                let mut prefix = base.clone();
                prefix.extend(segments);
                group_paths(bytes, look + 1, &prefix, &mut paths);
            } else {
                let mut full = base;
                full.extend(segments);
                paths.push(full);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    paths
        .into_iter()
        .filter(|p| !p.is_empty() && p[0] != "self")
        .map(|p| Import { from: display(module), to: p.join("::") })
        .collect()
}

fn display(module: &[String]) -> String {
    if module.is_empty() { "<root>".to_owned() } else { module.join("::") }
}

fn root_floor() -> (usize, &'static str) {
    floor(&["<root>"]).unwrap_or((FLOORS.len() - 1, "<root>"))
}

/// The floor of an importing module: every module must be in [`FLOORS`].
fn floor_of_module(module: &str) -> Result<(usize, &'static str), String> {
    if module == "<root>" {
        return Ok(root_floor());
    }
    let segments: Vec<&str> = module.split("::").collect();
    floor(&segments).ok_or_else(|| format!("module `{module}` is not in architecture::FLOORS: give it a floor"))
}

/// The floor of an imported path; an item of lib.rs itself (`crate::app`,
/// `crate::AppState`) is on the root floor.
fn floor_of_path(path: &str) -> (usize, &'static str) {
    let segments: Vec<&str> = path.split("::").collect();
    floor(&segments).unwrap_or_else(root_floor)
}

/// The upward imports among `imports`: (from, the table entry matched by
/// the target, the target path); an error for a module that has no floor.
pub fn upward(imports: &[Import]) -> Result<BTreeSet<(String, String, String)>, String> {
    let mut found = BTreeSet::new();
    for import in imports {
        let (own, _) = floor_of_module(&import.from)?;
        let (theirs, entry) = floor_of_path(&import.to);
        if theirs > own {
            found.insert((import.from.clone(), entry.to_owned(), import.to.clone()));
        }
    }
    Ok(found)
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push((relative, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[(String, String)], allowed: &[(&str, &str)]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut all = Vec::new();
        for (relative, text) in files {
            all.extend(imports(&module_of(relative), text));
        }
        let up = match upward(&all) {
            Ok(up) => up,
            Err(e) => return vec![e],
        };
        let mut seen = BTreeSet::new();
        for (from, entry, path) in &up {
            seen.insert((from.as_str(), entry.as_str()));
            if !allowed.iter().any(|(f, t)| *f == from.as_str() && *t == entry.as_str()) {
                problems.push(format!("{from} imports crate::{path}, a floor above its own ({entry})"));
            }
        }
        for pair in allowed {
            if !seen.iter().any(|(f, t)| f == &pair.0 && t == &pair.1) {
                problems
                    .push(format!("{} -> {} is allowed but no longer occurs: remove it from ALLOWED", pair.0, pair.1));
            }
        }
        problems
    }

    #[test]
    fn every_import_points_down() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        collect(&root, &root, &mut files).expect("src/ is readable");
        files.retain(|(relative, _)| relative != "architecture.rs");
        assert!(files.len() > 50, "found only {} files under src/", files.len());
        let problems = check(&files, ALLOWED);
        assert!(problems.is_empty(), "the floors do not hold:\n{}", problems.join("\n"));
    }

    #[test]
    fn an_upward_import_fails() {
        let files = vec![
            (
                "oauth/fake.rs".to_owned(),
                "use crate::clock::UnixTime;\nuse crate::http::console::CLIENT_ID;\n".to_owned(),
            ),
            ("clock.rs".to_owned(), "fn f() -> crate::store::StoreError { todo!() }\n".to_owned()),
        ];
        let problems = check(&files, &[]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("clock imports crate::store::StoreError"), "{problems:?}");
        assert!(problems[1].contains("oauth::fake imports crate::http::console::CLIENT_ID"), "{problems:?}");
    }

    #[test]
    fn groups_super_and_test_code_are_read_as_they_mean() {
        let text = r#"
            use crate::{clock::UnixTime, service::{AppState, error::ServiceError}};
            use super::super::http::form;
            // use crate::http::not_an_import;
            const S: &str = "crate::cli::not_an_import";
            #[cfg(test)]
            mod tests { use super::super::Fixture; use crate::cli::Args; }
        "#;
        let module = module_of("oauth/grant/fake.rs");
        let found: Vec<String> = imports(&module, text).into_iter().map(|i| i.to).collect();
        assert_eq!(
            found,
            [
                "clock::UnixTime",
                "service::AppState",
                "service::error::ServiceError",
                "oauth::http::form",
                "oauth::grant::Fixture",
                "cli::Args"
            ]
        );
        let files = vec![("token/fake.rs".to_owned(), text.to_owned())];
        // In token/fake.rs, `super::super::` is the crate root; in its
        // tests, `super::super::` is `token`.
        let problems = check(&files, &[]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("token::fake imports crate::http::form"), "{problems:?}");
        assert!(problems[1].contains("token::fake imports crate::service::AppState"), "{problems:?}");
        assert!(problems[2].contains("token::fake imports crate::service::error::ServiceError"), "{problems:?}");
        assert!(problems[3].contains("token::fake::tests imports crate::cli::Args"), "{problems:?}");
    }

    #[test]
    fn an_upward_import_in_test_code_fails() {
        let text = "pub fn f() {}
#[cfg(test)]
mod tests {
    use crate::service::AppState;
}
";
        let files = vec![("store/fake.rs".to_owned(), text.to_owned())];
        let problems = check(&files, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("store::fake::tests imports crate::service::AppState"), "{problems:?}");
    }

    #[test]
    fn an_allowed_pair_that_is_gone_fails() {
        let files = vec![("audit.rs".to_owned(), "use crate::clock::UnixTime;\n".to_owned())];
        let problems = check(&files, &[("audit", "store")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("no longer occurs"), "{problems:?}");
    }

    #[test]
    fn a_module_without_a_floor_fails() {
        let files = vec![("events.rs".to_owned(), "use crate::clock::UnixTime;\n".to_owned())];
        let problems = check(&files, &[]);
        assert!(problems.iter().any(|p| p.contains("`events` is not in architecture::FLOORS")), "{problems:?}");
    }
}

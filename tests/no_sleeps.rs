//! No fixed sleeps in the tests (kanidm bans `std::thread::sleep` in its
//! tests through clippy; here `clippy.toml` is shared with `src/`, which
//! sleeps on purpose in its retry loops, so the rule is this test): a test
//! that waits for a condition polls it with `support::eventually`. The few
//! sleeps that remain say why on the line above, in a `// sleep: ` comment
//! — pacing that is itself under test, or a wait for something that cannot
//! be observed (an absence, a process's progress). Expiry is no reason: a
//! test of it moves a manual clock (`support::manual::ManualServer`).

use std::path::Path;

/// The marker a justified sleep carries on the line above it.
const JUSTIFIED: &str = "// sleep: ";

/// The 1-based line numbers in `text` that call a sleep without the marker.
fn unjustified_sleeps(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let sleeps = ["time::sleep(", "thread::sleep("].iter().any(|call| code.contains(call));
        let justified = i > 0 && lines[i - 1].trim_start().starts_with(JUSTIFIED);
        if sleeps && !justified {
            found.push(i + 1);
        }
    }
    found
}

fn rust_files(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn every_sleep_in_the_tests_says_why() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    rust_files(&tests, &mut files);
    files.sort();
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("no_sleeps.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for line in unjustified_sleeps(&text) {
            offenders.push(format!("{}:{line}", file.strip_prefix(&tests).unwrap().display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "fixed sleeps in the tests: poll the condition with support::eventually, or say why on the line \
         above with `{JUSTIFIED}...`:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_rule_finds_a_bare_sleep_and_lets_a_justified_one_pass() {
    let text = "async fn t() {\n    tokio::time::sleep(d).await;\n    // sleep: pacing under test\n    \
                std::thread::sleep(d);\n    // tokio::time::sleep(d) in a comment\n}\n";
    assert_eq!(unjustified_sleeps(text), vec![2]);
}

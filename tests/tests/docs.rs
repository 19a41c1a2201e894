//! The documents' claims stay tied to their proofs: every `file::name` a Markdown file of the
//! repository cites (the test that performs an attack, the function that does a thing) names a
//! function, test or module that exists in that file. Renaming or deleting a test then cannot
//! silently leave a claim in the README or `docs/SECURITY.md` without the test behind it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

/// Source files a citation may point into.
const SOURCE_EXTENSIONS: [&str; 4] = [".rs", ".py", ".kt", ".swift"];

/// Build output, dependencies and fuzzing data: no documents of ours below these.
const SKIPPED_DIRS: [&str; 8] = [
    "target",
    ".git",
    "node_modules",
    ".build",
    "build",
    ".gradle",
    "corpus",
    "artifacts",
];

/// Keywords that open a definition in the languages cited.
const DEFINITIONS: [&str; 5] = ["fn", "def", "func", "fun", "mod"];

/// One `file::name` in a document.
#[derive(Debug)]
struct Citation {
    doc: PathBuf,
    file: String,
    name: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the repository")
        .to_path_buf()
}

/// The Markdown files under `dir`, but the changelog: it records what was true when written.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name) {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") && name != "CHANGELOG.md" {
            out.push(path);
        }
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./-".contains(c)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `file.ext::[module::]name` in `text`, as (file, last name).
fn citations_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("::") {
        let head = &text[..at];
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !is_path_char(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let file = &head[start..];
        // A later `::` of the same citation has a module name before it, not a file.
        if !SOURCE_EXTENSIONS.iter().any(|e| file.ends_with(e)) {
            continue;
        }
        let mut rest = &text[at + 2..];
        let name = loop {
            let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
            if rest[end..].starts_with("::") {
                rest = &rest[end + 2..];
            } else {
                break &rest[..end];
            }
        };
        out.push((file.to_string(), name.to_string()));
    }
    out
}

/// Whether `source` defines `name` (`fn name`, `def name`, ``fun `name` ``, `mod name`, ...).
fn defines(source: &str, name: &str) -> bool {
    DEFINITIONS.iter().any(|kw| {
        [format!("{kw} {name}"), format!("{kw} `{name}")]
            .iter()
            .any(|needle| {
                source.match_indices(needle.as_str()).any(|(i, _)| {
                    let before = source[..i].chars().next_back();
                    let after = source[i + needle.len()..].chars().next();
                    !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
                })
            })
    })
}

fn all_citations(root: &Path) -> Vec<Citation> {
    let mut docs = Vec::new();
    markdown_files(root, &mut docs);
    docs.sort();
    let mut out = Vec::new();
    for doc in docs {
        let text = fs::read_to_string(&doc).expect("readable document");
        for (file, name) in citations_in(&text) {
            out.push(Citation {
                doc: doc.clone(),
                file,
                name,
            });
        }
    }
    out
}

#[test]
fn every_test_the_documents_cite_exists_where_they_say() {
    let root = repo_root();
    let citations = all_citations(&root);
    // The README, SECURITY.md and API.md cite a few hundred; far fewer means the parser broke.
    assert!(
        citations.len() > 150,
        "only {} citations found",
        citations.len()
    );
    let mut missing = Vec::new();
    for c in &citations {
        // API.md and a crate's README cite paths from their own crate; the rest from the root.
        let here = c.doc.parent().unwrap_or(&root).join(&c.file);
        let found = [here, root.join(&c.file)]
            .into_iter()
            .find_map(|p| fs::read_to_string(p).ok());
        match found {
            Some(source) if defines(&source, &c.name) => {}
            Some(_) => missing.push(format!(
                "{}: {}::{} (no such function in the file)",
                c.doc.strip_prefix(&root).unwrap_or(&c.doc).display(),
                c.file,
                c.name
            )),
            None => missing.push(format!(
                "{}: {} (no such file)",
                c.doc.strip_prefix(&root).unwrap_or(&c.doc).display(),
                c.file
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "documents cite what does not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_citation_is_read_with_its_module_path_and_a_missing_test_is_noticed() {
    let text = "proved by (`sync-server/tests/storage.rs::sqlite::a_b`) and “core/src/x.rs::c”.";
    assert_eq!(
        citations_in(text),
        vec![
            (
                "sync-server/tests/storage.rs".to_string(),
                "a_b".to_string()
            ),
            ("core/src/x.rs".to_string(), "c".to_string()),
        ]
    );
    let source = "mod sqlite {\n    #[test]\n    fn a_b_c() {}\n}\nfun `c`() {}";
    assert!(!defines(source, "a_b"));
    assert!(defines(source, "a_b_c"));
    assert!(defines(source, "c"));
    assert!(defines(source, "sqlite"));
}

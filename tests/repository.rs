//! The repository documents itself: no tracked file points outside it, and
//! every relative link in its Markdown resolves to a file it carries.
//!
//! Run with: `cargo test -p hse --test repository`
//!
//! Files are those `git ls-files` lists (or, outside a git checkout, every
//! file under the root except build output), so a fresh clone is what is
//! checked. Only the standard library is used: this binary stays light.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Texts that name a place outside the repository: the sibling directory
/// the project was briefed from and the documents that lived there
/// (including the original plan's numbered sections). Built with
/// `concat!` so this file does not match itself.
const OUTSIDE: [&str; 10] = [
    concat!("..", "/shared"),
    concat!("shared", "/DESIGN"),
    concat!("shared", "/API"),
    concat!("shared", "/PROTOCOL"),
    concat!("shared", "/CONVENTIONS"),
    concat!("shared", "/tools"),
    concat!("DESIGN", ".md"),
    concat!("CONVENTIONS", ".md"),
    concat!("seed", " plan"),
    concat!("seed", "-plan"),
];

/// Documents that moved into `docs/`: a mention must say where they are
/// (`docs/API.md`), except inside `docs/` where the bare name is relative.
const MOVED_TO_DOCS: [&str; 2] = [concat!("API", ".md"), concat!("PROTOCOL", ".md")];

#[test]
fn no_tracked_file_refers_outside_the_repository() {
    let root = root();
    let mut found = Vec::new();
    for (path, text) in text_files(&root) {
        for (n, line) in text.lines().enumerate() {
            for needle in OUTSIDE {
                if line.contains(needle) {
                    found.push(format!(
                        "{path}:{}: names `{needle}`: {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
            if let Some(section) = plan_section(line) {
                found.push(format!(
                    "{path}:{}: cites `{section}` of the original plan: {}",
                    n + 1,
                    line.trim()
                ));
            }
            for name in MOVED_TO_DOCS {
                if misplaced_mention(&path, line, name) {
                    found.push(format!(
                        "{path}:{}: `{name}` is `docs/{name}`: {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository (point them at a file it carries):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_relative_markdown_link_resolves_to_a_tracked_file() {
    let root = root();
    let mut broken = Vec::new();
    for (path, text) in text_files(&root)
        .into_iter()
        .filter(|(p, _)| p.ends_with(".md"))
    {
        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
        for (n, target) in relative_links(&text) {
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() {
                continue;
            }
            if !root.join(dir).join(file).exists() {
                broken.push(format!("{path}:{n}: ({target}) does not exist"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "Markdown links to files the repository does not carry:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    let line = concat!("see `..", "/shared", "/DESIGN", ".md`");
    assert!(OUTSIDE.iter().any(|n| line.contains(n)));
    let cited = concat!("the rules (seed", " 6.1.2: only");
    assert_eq!(plan_section(cited), Some(concat!("seed", " 6.1.2")));
    assert_eq!(plan_section("run seed 1. Then seed 6"), None);
    let bare = concat!("the protocol of PROTOCOL", ".md");
    assert!(misplaced_mention("src/x.rs", bare, MOVED_TO_DOCS[1]));
    assert!(!misplaced_mention("docs/API.md", bare, MOVED_TO_DOCS[1]));
    let placed = concat!("the protocol of docs/PROTOCOL", ".md");
    assert!(!misplaced_mention("src/x.rs", placed, MOVED_TO_DOCS[1]));
    let links = relative_links(
        "[a](docs/A.md) [b](https://x.org/b.md) [c](#top)\n```\n[d](nowhere.md)\n```\n[e](E.md#x)",
    );
    assert_eq!(
        links,
        vec![(1, "docs/A.md".to_owned()), (5, "E.md#x".to_owned())]
    );
}

/// A citation of a numbered section of the original plan: `seed`, a
/// space, then a dotted number (a soak seed such as `seed 1` has no dot).
fn plan_section(line: &str) -> Option<&str> {
    line.match_indices("seed ").find_map(|(at, _)| {
        let rest = &line[at + 5..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = rest[..end].trim_end_matches('.');
        (number.contains('.') && number.starts_with(|c: char| c.is_ascii_digit()))
            .then(|| &line[at..at + 5 + number.len()])
    })
}

/// Whether `line` of `path` names `name` without its `docs/` directory.
fn misplaced_mention(path: &str, line: &str, name: &str) -> bool {
    if path.starts_with("docs/") {
        return false;
    }
    line.match_indices(name).any(|(at, _)| {
        let before = &line[..at];
        !before.ends_with("docs/") && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

/// `(line number, target)` of every Markdown link that is not absolute
/// (`scheme:`), not an anchor in the same page, and not inside a fenced
/// code block.
fn relative_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].trim();
            let target = target.split_whitespace().next().unwrap_or_default();
            if !target.is_empty() && !target.starts_with('#') && !target.contains(':') {
                links.push((n + 1, target.to_owned()));
            }
            rest = &rest[end..];
        }
    }
    links
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every tracked file that is UTF-8 text, as `(path relative to the root,
/// contents)`.
fn text_files(root: &Path) -> Vec<(String, String)> {
    let paths = git_files(root).unwrap_or_else(|| walk(root));
    assert!(!paths.is_empty(), "no files found under {}", root.display());
    paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(root.join(&p)).ok()?;
            Some((p, text))
        })
        .collect()
}

fn git_files(root: &Path) -> Option<Vec<String>> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let list = String::from_utf8(out.stdout).ok()?;
    let files: Vec<String> = list
        .split('\0')
        .filter(|p| !p.is_empty() && root.join(p).is_file())
        .map(str::to_owned)
        .collect();
    (!files.is_empty()).then_some(files)
}

/// Outside a git checkout: every file but build output and VCS data.
fn walk(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !matches!(
                    name.to_str(),
                    Some("target" | ".git" | "corpus" | "artifacts")
                ) {
                    dirs.push(path);
                }
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files
}

//! The docs stay true to the code they describe:
//! - every relative link in README.md and docs/*.md names a file that exists;
//! - every line anchor (`#Lx-Ly`) names the item it points at in its link text, in
//!   backticks, and line x of the file contains that item, so an edit above it that moves the
//!   item fails the build instead of leaving the guide pointing at the wrong lines;
//! - docs/CONTRACT.md names every check of the suite, and names no check that does not exist.
//!
//! Docs drift is the usual way a teaching repository rots; this catches the part of it a
//! machine can see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository root (this package lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.expect("readable docs/").path();
        if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
    documents
}

/// A markdown link: its text and its target.
struct Link {
    text: String,
    target: String,
}

/// Every `[text](target)` in `markdown` whose target is not an absolute URL or a fragment.
fn relative_links(markdown: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for (at, _) in markdown.match_indices("](") {
        let Some(open) = markdown[..at].rfind('[') else {
            continue;
        };
        let rest = &markdown[at + 2..];
        let Some(close) = rest.find(')') else {
            continue;
        };
        let target = &rest[..close];
        if target.starts_with("http") || target.starts_with('#') || target.starts_with("mailto:") {
            continue;
        }
        links.push(Link {
            text: markdown[open + 1..at].to_owned(),
            target: target.to_owned(),
        });
    }
    links
}

/// The first backticked name in a link's text, without a leading `fn `/`struct `/... keyword
/// being required: `` `fn stream` `` and `` `stream` `` both name `stream`.
fn named_item(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len]).filter(|name| !name.is_empty())
}

/// `#L12-L30` or `#L12` as (12, 30) or (12, 12).
fn line_range(anchor: &str) -> Option<(usize, usize)> {
    let lines = anchor.strip_prefix('L')?;
    let (first, last) = lines.split_once("-L").unwrap_or((lines, lines));
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Why the anchor `link` points at the wrong lines of `content`, if it does.
fn anchor_problem(link: &Link, anchor: &str, content: &str) -> Option<String> {
    let lines: Vec<&str> = content.lines().collect();
    let Some((first, last)) = line_range(anchor) else {
        return Some("the anchor is not #Lx or #Lx-Ly".to_owned());
    };
    if first == 0 || first > last || last > lines.len() {
        return Some(format!("the file has {} lines", lines.len()));
    }
    let Some(item) = named_item(&link.text) else {
        return Some("the link text names no item in backticks".to_owned());
    };
    if lines[first - 1].contains(item) {
        return None;
    }
    let now: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains(item))
        .map(|(n, _)| format!("L{}", n + 1))
        .collect();
    Some(format!(
        "line {first} does not contain `{item}` (it is on {})",
        if now.is_empty() {
            "no line".to_owned()
        } else {
            now.join(", ")
        }
    ))
}

#[test]
fn every_relative_link_resolves_and_every_line_anchor_names_its_item() {
    let mut broken = Vec::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).expect("readable document");
        let base = document.parent().expect("a document has a folder");
        for link in relative_links(&text) {
            let (path, anchor) = link.target.split_once('#').unwrap_or((&link.target, ""));
            let target = base.join(path);
            let where_ = format!("{}: [{}]({})", document.display(), link.text, link.target);
            if target.is_dir() {
                continue;
            }
            let Ok(content) = std::fs::read_to_string(&target) else {
                broken.push(format!("{where_}: no such file"));
                continue;
            };
            if anchor.starts_with('L')
                && let Some(problem) = anchor_problem(&link, anchor, &content)
            {
                broken.push(format!("{where_}: {problem}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn a_moved_item_is_reported_where_it_now_is() {
    let link = Link {
        text: "`fn b`, L1".into(),
        target: "x.rs#L1".into(),
    };
    let problem = anchor_problem(&link, "L1", "fn a\nfn b\n").expect("a problem");
    assert!(problem.contains("L2"), "{problem}");
    assert!(anchor_problem(&link, "L2", "fn a\nfn b\n").is_none());
    assert!(anchor_problem(&link, "L3", "fn a\nfn b\n").is_some());
    let unnamed = Link {
        text: "L2".into(),
        target: "x.rs#L2".into(),
    };
    assert!(anchor_problem(&unnamed, "L2", "fn a\nfn b\n").is_some());
}

/// The check names docs/CONTRACT.md gives: backticked snake_case words in its `Check:` and
/// `Checks:` paragraphs (a `process::` or `shutdown::` prefix included).
fn contract_check_names(contract: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for paragraph in contract.split("\n\n") {
        let paragraph = paragraph.trim_start();
        if !(paragraph.starts_with("Check:") || paragraph.starts_with("Checks:")) {
            continue;
        }
        for (n, part) in paragraph.split('`').enumerate() {
            let is_name = part.contains('_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:".contains(c));
            if n % 2 == 1 && is_name {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

#[test]
fn the_contract_names_every_check_and_only_real_ones() {
    let contract =
        std::fs::read_to_string(root().join("docs/CONTRACT.md")).expect("docs/CONTRACT.md");
    let named = contract_check_names(&contract);
    let suite: BTreeSet<String> = sse_conformance::checks::all()
        .iter()
        .map(|check| check.name.to_owned())
        .chain(
            sse_conformance::harness::HARNESS_TRIALS
                .iter()
                .map(|name| (*name).to_owned()),
        )
        .chain(
            sse_conformance::shared_log::TRIALS
                .iter()
                .map(|(name, _)| (*name).to_owned()),
        )
        .chain(
            sse_conformance::tokens::TRIALS
                .iter()
                .map(|(name, _)| (*name).to_owned()),
        )
        .collect();
    let unnamed: Vec<_> = suite.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&suite).collect();
    assert!(
        unnamed.is_empty() && unknown.is_empty(),
        "checks CONTRACT.md does not name: {unnamed:?}\nnames in CONTRACT.md that are no check: {unknown:?}"
    );
}

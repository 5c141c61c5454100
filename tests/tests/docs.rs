//! The docs' links resolve: every relative link in README.md and docs/*.md names a file
//! that exists, and every `#Lx-Ly` anchor names lines inside it. Docs drift is the usual
//! way a teaching repository rots; this catches the part of it a machine can see.

use std::path::{Path, PathBuf};

/// The repository root (this package lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `](target)` in `text` that is not an absolute URL.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|link| {
            !link.starts_with("http") && !link.starts_with('#') && !link.starts_with("mailto:")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = root();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.expect("readable docs/").path();
        if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
    let mut broken = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).expect("readable document");
        let base = document.parent().expect("a document has a folder");
        for link in relative_links(&text) {
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = base.join(path);
            let Ok(content) = std::fs::read_to_string(&target).or_else(|_| {
                // A folder link is fine if the folder exists.
                if target.is_dir() {
                    Ok(String::new())
                } else {
                    Err(())
                }
            }) else {
                broken.push(format!("{}: {link} (no such file)", document.display()));
                continue;
            };
            if let Some(lines) = anchor.strip_prefix('L') {
                let last = lines
                    .rsplit('L')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok());
                let count = content.lines().count();
                if last.is_none_or(|last| last == 0 || last > count) {
                    broken.push(format!(
                        "{}: {link} (the file has {count} lines)",
                        document.display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

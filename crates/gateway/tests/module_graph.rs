//! Holds the gateway's layering rule (docs/ARCHITECTURE.md): no module imports a module
//! that imports it back. Reads the crate's own sources, collects every `crate::…` path
//! (grouped `use crate::{…}` included, and `super::…` in nested modules) down to the
//! module it names, and fails naming each pair of modules that import each other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `server/conn.rs` → `server::conn`, `server/mod.rs` → `server`; `None` for `lib.rs`.
fn module_name(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    (parts != ["lib"]).then(|| parts.join("::"))
}

/// The product code: without `//` comments (doc comments name modules in prose) and
/// without the test module at the end of a file (`#[cfg(test)]`).
fn code(text: &str) -> String {
    let text = &text[..text.find("#[cfg(test)]").unwrap_or(text.len())];
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_path(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// Every path written after `prefix` (`crate::`, `super::`), grouped uses expanded.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `my_crate::`
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                out.push(ident_path(item.trim()));
            }
        } else {
            out.push(ident_path(rest));
        }
    }
    out
}

#[test]
fn no_gateway_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| Some((module_name(&root, f)?, code(&std::fs::read_to_string(f).unwrap()))))
        .collect();
    assert!(modules.len() > 20, "found only {} modules", modules.len());
    let resolve = |path: &[String]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].join("::"))
            .find(|m| modules.contains_key(m))
    };
    let mut imports: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in &modules {
        let mut deps = BTreeSet::new();
        for p in paths_after(text, "crate::") {
            deps.extend(resolve(&p));
        }
        if let Some((parent, _)) = name.rsplit_once("::") {
            for p in paths_after(text, "super::").into_iter().filter(|p| !p.is_empty()) {
                let mut full: Vec<String> = parent.split("::").map(str::to_owned).collect();
                full.extend(p);
                deps.extend(resolve(&full));
            }
        }
        deps.remove(name);
        imports.insert(name, deps);
    }
    let mut pairs = Vec::new();
    for (a, deps) in &imports {
        for b in deps {
            if a < &b.as_str() && imports.get(b.as_str()).is_some_and(|d| d.contains(*a)) {
                pairs.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        pairs.is_empty(),
        "modules that import each other:\n{}",
        pairs.join("\n")
    );
    // The context is plain shared data: it names no stage and no engine.
    let context = &imports["context"];
    assert!(context.iter().all(|m| m == "error"), "context imports {context:?}");
}

//! The architecture, checked: crates form layers whose dependencies point only downwards, and
//! inside every crate the modules form no cycle (at every level of nesting: sibling modules of
//! one parent never depend on each other in a loop). Read from the sources themselves
//! (`Cargo.toml` dependencies, `crate::`, `super::` and `self::` paths), so moving a type to the
//! wrong place fails here, in CI, with the cycle or the upward edge named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first: a crate may depend only on crates of lower layers.
const LAYERS: &[&[&str]] = &[
    &["vision", "retry"],
    &["imaging", "protocol", "store"],
    &["camera", "llm"],
    &["streaming"],
    &["service"],
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// The workspace crates named in the `[dependencies]` table of a `Cargo.toml`.
fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = line.split(['.', '=', ' ']).next().unwrap_or("");
        if layer_of(name).is_some() {
            deps.push(name.to_string());
        }
    }
    deps
}

/// Upward or sideways dependencies between crates, as `from -> to` lines.
fn layer_violations(manifests: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, manifest) in manifests {
        let Some(own) = layer_of(name) else {
            bad.push(format!("{name}: crate not in any layer"));
            continue;
        };
        for dep in internal_dependencies(manifest) {
            if layer_of(&dep).is_none_or(|l| l >= own) {
                bad.push(format!("{name} -> {dep}"));
            }
        }
    }
    bad
}

/// A module's path inside its crate (`[]` for the root), from its file's path under `src/`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        parts.push(stem.to_string());
    }
    parts
}

/// The source of a file without its inline test module (by convention at the end) and without
/// comments.
fn production_code(source: &str) -> String {
    let code = source.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path named in `code` through `crate::`, `super::` or `self::`, resolved from
/// module `here` (grouped imports `crate::{a, b::c}` expanded one level).
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let start_ok = i == 0 || !ident(bytes[i - 1]);
        let prefix = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| start_ok && rest.starts_with(p));
        let Some(prefix) = prefix else {
            i += 1;
            continue;
        };
        // Resolve the leading keywords (`super::super::`, `self::super::`).
        let mut base: Vec<String> = match prefix {
            "crate::" => Vec::new(),
            _ => here.to_vec(),
        };
        let mut j = i;
        loop {
            let r = &code[j..];
            if r.starts_with("crate::") {
                j += 7;
            } else if r.starts_with("self::") {
                j += 6;
            } else if r.starts_with("super::") {
                base.pop();
                j += 7;
            } else {
                break;
            }
        }
        let tail = &code[j..];
        let groups: Vec<&str> = if let Some(inner) = tail.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            inner[..end].split(',').collect()
        } else {
            vec![tail]
        };
        for g in groups {
            let segments: Vec<String> = g
                .trim()
                .split("::")
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .collect();
            let mut path = base.clone();
            path.extend(segments);
            found.push(path);
        }
        i = j.max(i + 1);
    }
    found
}

/// The edges between sibling modules: for a reference from `from` to `to`, the two children of
/// their deepest common module on each side (nothing when one contains the other).
fn sibling_edge(
    from: &[String],
    to: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<(Vec<String>, Vec<String>)> {
    // The longest prefix of `to` that is a module (the rest names items).
    let target = (0..=to.len())
        .rev()
        .map(|n| to[..n].to_vec())
        .find(|p| modules.contains(p))?;
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == target.len() {
        return None;
    }
    Some((from[..=common].to_vec(), target[..=common].to_vec()))
}

/// The cycles among sibling modules of a crate whose files are `(path under src/, source)`.
fn module_cycles(files: &[(PathBuf, String)]) -> Vec<String> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(p, _)| module_path(p)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, source) in files {
        if path.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let here = module_path(path);
        for to in references(&production_code(source), &here) {
            if let Some((a, b)) = sibling_edge(&here, &to, &modules) {
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    let mut cycles = Vec::new();
    let mut reported: BTreeSet<BTreeSet<Vec<String>>> = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let members: BTreeSet<Vec<String>> = trail.iter().cloned().collect();
                    if reported.insert(members) {
                        let names: Vec<String> = trail
                            .iter()
                            .chain(std::iter::once(start))
                            .map(|m| m.join("::"))
                            .collect();
                        cycles.push(names.join(" -> "));
                    }
                } else if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((relative, source));
        }
    }
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut list: Vec<(String, PathBuf)> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/ exists")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    list.sort();
    list
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let manifests: Vec<(String, String)> = crates()
        .into_iter()
        .map(|(name, dir)| {
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("readable manifest");
            (name, text)
        })
        .collect();
    assert!(manifests.len() >= 7, "found only {manifests:?}");
    let bad = layer_violations(&manifests);
    assert!(
        bad.is_empty(),
        "dependencies that do not point down: {bad:#?}"
    );
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut all = Vec::new();
    for (name, dir) in crates() {
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &src, &mut files);
        assert!(!files.is_empty(), "{name} has no sources");
        for cycle in module_cycles(&files) {
            all.push(format!("{name}: {cycle}"));
        }
    }
    assert!(all.is_empty(), "module cycles: {all:#?}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    // A cycle through a grouped import and `super::`, two levels down.
    let files = vec![
        (
            PathBuf::from("lib.rs"),
            "pub mod a;\npub mod b;".to_string(),
        ),
        (
            PathBuf::from("a/mod.rs"),
            "use crate::{b::Thing, a::x};".to_string(),
        ),
        (PathBuf::from("a/x.rs"), "fn f() {}".to_string()),
        (PathBuf::from("b.rs"), "use super::a::x::f;".to_string()),
    ];
    assert_eq!(module_cycles(&files), ["a -> b -> a"]);
    // Nested siblings: a::x and a::y use each other; test code does not count.
    let files = vec![
        (PathBuf::from("lib.rs"), String::new()),
        (PathBuf::from("a/mod.rs"), String::new()),
        (PathBuf::from("a/x.rs"), "use super::y::Y;".to_string()),
        (
            PathBuf::from("a/y.rs"),
            "pub struct Y;\n#[cfg(test)]\nuse super::x::X;".to_string(),
        ),
    ];
    assert!(module_cycles(&files).is_empty());
    let files = vec![
        (PathBuf::from("lib.rs"), String::new()),
        (PathBuf::from("a/mod.rs"), String::new()),
        (
            PathBuf::from("a/x.rs"),
            "use super::y::Y; // crate::b".to_string(),
        ),
        (
            PathBuf::from("a/y.rs"),
            "fn g() { crate::a::x::run(); }".to_string(),
        ),
    ];
    assert_eq!(module_cycles(&files), ["a::x -> a::y -> a::x"]);
    // An upward crate edge and a crate outside the layers.
    let manifests = vec![
        (
            "camera".to_string(),
            "[dependencies]\nllm.workspace = true\nvision = { path = \"x\" }\n[dev-dependencies]\nservice.workspace = true".to_string(),
        ),
        ("gadgets".to_string(), String::new()),
    ];
    assert_eq!(
        layer_violations(&manifests),
        ["camera -> llm", "gadgets: crate not in any layer"]
    );
}

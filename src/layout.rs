//! The module layout, checked by tests: no module uses one that uses it back, in `src` and in
//! `src/asl`. Only production code counts: a test module (`mod tests`, inline or `tests.rs`)
//! may drive a module through its caller.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which direct child modules each direct child module uses, by name.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph "module A uses module B" between the direct children of the module whose
/// sources are in `root` and whose path is `prefix` (`crate::asl` for `src/asl`, `crate`
/// for `src`). A directory module (`vm/`) is one node with everything under it. An edge is
/// any path in code, `use` or not, that resolves into another child: `super::b::…`,
/// `crate::asl::b::…`, `super::{b::…}`; comments and string literals are skipped. The root
/// file itself (`mod.rs`, `lib.rs`, `main.rs`) is not a node.
fn module_graph(root: &Path, prefix: &str) -> Graph {
    let prefix: Vec<String> = prefix.split("::").map(String::from).collect();
    let mut files = Vec::new();
    for path in rust_entries(root) {
        let name = stem(&path);
        if path.is_dir() {
            collect(&path, std::slice::from_ref(&name), &name, &mut files);
        } else if !matches!(name.as_str(), "mod" | "lib" | "main") {
            files.push((name.clone(), vec![name], path));
        }
    }
    let mut graph: Graph = files
        .iter()
        .map(|(node, ..)| (node.clone(), BTreeSet::new()))
        .collect();
    for (node, relative, file) in &files {
        let source = std::fs::read_to_string(file).expect("a readable source file");
        let module: Vec<String> = prefix.iter().chain(relative).cloned().collect();
        for used in paths_used(&source, &module) {
            let Some(child) = used.strip_prefix(&prefix[..]).and_then(|rest| rest.first()) else {
                continue;
            };
            if child != node && graph.contains_key(child) {
                graph.get_mut(node).expect("a node").insert(child.clone());
            }
        }
    }
    graph
}

/// A cycle of `graph` as the nodes along it, first node repeated last; `None` if none.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

/// The module files and directories of `dir`, test modules (`tests.rs`) left out.
fn rust_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a module directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .collect();
    entries.sort();
    entries
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// Every file under the directory module `dir`, with its module path below the root.
fn collect(
    dir: &Path,
    module: &[String],
    node: &str,
    out: &mut Vec<(String, Vec<String>, PathBuf)>,
) {
    for path in rust_entries(dir) {
        let mut sub = module.to_vec();
        let name = stem(&path);
        if name != "mod" {
            sub.push(name);
        }
        match path.is_dir() {
            true => collect(&path, &sub, node, out),
            false => out.push((node.to_string(), sub, path)),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Rust source as the few tokens paths are made of; comments, strings and character
/// literals dropped.
fn tokens(source: &str) -> Vec<Tok> {
    let s: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < s.len() && !(s[i] == '*' && s.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('"' | '#')) && raw_string_end(&s, i).is_some() {
            i = raw_string_end(&s, i).expect("checked");
        } else if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '{'), else a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if s.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].iter().collect()));
        } else {
            out.push(match c {
                ':' if next == Some(':') => {
                    i += 1;
                    Tok::PathSep
                }
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                c if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// Where the raw string starting at `i` (`r"…"`, `r#"…"#`) ends, if it is one.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let hashes = s[i + 1..].iter().take_while(|c| **c == '#').count();
    if s.get(i + 1 + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + 2 + hashes;
    while j < s.len() {
        if s[j] == '"'
            && s[j + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

/// The absolute paths (`crate::…`) that the `crate::`, `super::` and `self::` paths of
/// `source`, the file of module `module`, name. Inline modules (`mod inner { … }`) are
/// followed, so their `super::` resolves to the file's module; `mod tests { … }` is skipped.
fn paths_used(source: &str, module: &[String]) -> Vec<Vec<String>> {
    let toks = tokens(source);
    let mut here = module.to_vec();
    // The brace depths at which inline modules opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(m) if m == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    if name == "tests" {
                        i = after_block(&toks, i + 2);
                        continue;
                    }
                    here.push(name.clone());
                    inline.push(depth);
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if inline.last() == Some(&depth) {
                    inline.pop();
                    here.pop();
                }
            }
            Tok::Ident(start)
                if matches!(start.as_str(), "crate" | "super" | "self")
                    && (i == 0 || toks[i - 1] != Tok::PathSep) =>
            {
                let mut relative = Vec::new();
                i = path_tree(&toks, i, Vec::new(), &mut relative);
                out.extend(relative.into_iter().map(|p| resolve(&here, &p)));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The index after the block whose `{` is at `open`.
fn after_block(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0;
    for (i, tok) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Open => depth += 1,
            Tok::Close if depth == 1 => return i + 1,
            Tok::Close => depth -= 1,
            _ => {}
        }
    }
    toks.len()
}

/// Reads the path (tree, for `a::{b, c::d}`) starting at `i`, appending each full path
/// to `out` after `prefix`; returns the index after it.
fn path_tree(toks: &[Tok], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        match toks.get(i) {
            Some(Tok::Ident(seg)) => path.push(seg.clone()),
            Some(Tok::Open) => {
                i += 1;
                while !matches!(toks.get(i), None | Some(Tok::Close)) {
                    i = path_tree(toks, i, path.clone(), out);
                    // Skip what follows an item (`as name`) up to its comma.
                    while !matches!(toks.get(i), None | Some(Tok::Close | Tok::Comma)) {
                        i += 1;
                    }
                    if toks.get(i) == Some(&Tok::Comma) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        i += 1;
        if toks.get(i) != Some(&Tok::PathSep) {
            break;
        }
        i += 1;
    }
    out.push(path);
    i
}

/// A path as written in module `here`, made absolute.
fn resolve(here: &[String], path: &[String]) -> Vec<String> {
    let mut at = here.to_vec();
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            at = vec!["crate".to_string()];
            segs.next();
        }
        Some("self") => {
            segs.next();
        }
        _ => {}
    }
    while segs.peek().is_some_and(|s| *s == "super") {
        at.pop();
        segs.next();
    }
    // `self` inside a group (`vars::{self, …}`) names the group's own path.
    at.extend(segs.filter(|s| *s != "self").cloned());
    at
}

#[test]
fn paths_resolve_through_groups_inline_modules_and_literals() {
    let source = r#"
        use super::vars::{self, Assign};
        use crate::asl::{context::X, error::{names, Failure}};
        // use super::commented::Out;
        const S: &str = "super::quoted::Out {";
        const C: char = '{';
        fn f<'a>(x: &'a str) { super::called::now(); }
        mod inner {
            use super::*;
            use super::super::context::is_task_token;
        }
        #[cfg(test)]
        mod tests {
            use super::super::compile::compile;
        }
        use super::after::Y;
    "#;
    let module = ["crate", "asl", "vm"].map(String::from);
    let used: Vec<String> = paths_used(source, &module)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        used,
        [
            "crate::asl::vars",
            "crate::asl::vars::Assign",
            "crate::asl::context::X",
            "crate::asl::error::names",
            "crate::asl::error::Failure",
            "crate::asl::called::now",
            "crate::asl::vm",
            "crate::asl::context::is_task_token",
            "crate::asl::after::Y",
        ]
    );
}

#[test]
fn no_module_of_asl_uses_one_that_uses_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/asl");
    let graph = module_graph(&root, "crate::asl");
    // The scan must see imports at all: the VM runs compiled programs.
    assert!(
        graph.get("vm").is_some_and(|used| used.contains("program")),
        "{graph:#?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "an import cycle among the modules of src/asl: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn no_module_of_the_crate_uses_one_that_uses_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&root, "crate");
    // The scan must see imports at all: the daemon's shards drive executions with the engine.
    assert!(
        graph
            .get("daemon")
            .is_some_and(|used| used.contains("engine")),
        "{graph:#?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "an import cycle among the modules of src: {}",
            cycle.join(" → ")
        );
    }
}

//! No import cycles between the modules of any crate of the workspace: every source file is a
//! module; a module depends on another when it names an item of it (`use` trees, `crate::`,
//! `$crate::`, `super::`, `self::` and child-module paths; a name reached through a re-export
//! counts for the module that defines the item, and the re-export (`pub use`) itself is the
//! re-exporting module's interface, not a dependency). The graph must be acyclic, so each
//! module can be read knowing only the modules below it. A cycle is printed as the chain of modules with the line that makes
//! each step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, relative to the workspace.
const CRATES: &[&str] = &[
    "ops/src",
    "graph/src",
    "backends/src",
    "loader/src",
    "src",
    "server/src",
    "python/src",
    "cli/src",
    "testing/src",
];

#[derive(Debug)]
struct Module {
    path: Vec<String>,
    /// Code with comments, strings and inline `mod name { … }` bodies blanked.
    code: String,
    file: PathBuf,
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`, `src/lib.rs` → root.
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Blank out comments, string and char literals (keeping line breaks, so line numbers hold).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |e| i + e);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &b[i..j]);
            i = j;
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) && !ident_byte(b, i) {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let start = i + 2 + hashes;
            let end = src[start..].find(&close).map_or(b.len(), |e| start + e + close.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, &b[i..(j + 1).min(b.len())]);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            let lit = if b.get(i + 1) == Some(&b'\\') {
                src[i + 2..].find('\'').map(|e| i + 2 + e + 1)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                src[i + 1..]
                    .char_indices()
                    .nth(1)
                    .filter(|&(_, c)| c == '\'')
                    .map(|(e, _)| i + 1 + e + 1)
            };
            match lit {
                Some(end) => {
                    blank(&mut out, &b[i..end]);
                    i = end;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_byte(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Blank the bodies of inline modules (`mod tests { … }`): their `super::` is the file itself.
fn blank_inline_modules(code: &str) -> String {
    let mut out = code.to_string();
    let mut search = 0;
    while let Some(at) = out[search..].find("mod ") {
        let at = search + at;
        search = at + 4;
        if at > 0 && ident_byte(out.as_bytes(), at) {
            continue;
        }
        let rest = &out[at + 4..];
        let name_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        let after = rest[name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = at + 4 + name_len + (rest[name_len..].len() - after.len());
        let (mut depth, mut j) = (0, open);
        for (k, c) in out[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        j = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[open..j]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(open..j, &blanked);
    }
    out
}

fn load(root: &Path) -> Vec<Module> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let src = std::fs::read_to_string(&file).unwrap();
            Module {
                path: module_path(root, &file),
                code: blank_inline_modules(&strip(&src)),
                file,
            }
        })
        .collect()
}

/// The paths a file names: `use` trees expanded, and every `a::b::c` run in expressions and
/// types; with the line each is on.
fn named_paths(code: &str) -> Vec<(Vec<String>, usize)> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let line_of = |i: usize| code[..i].bytes().filter(|&c| c == b'\n').count() + 1;
    let mut i = 0;
    while i < b.len() {
        let start_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        if start_ok && (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b'$') {
            if code[i..].starts_with("use ") || code[i..].starts_with("use\n") {
                let end = code[i..].find(';').map_or(b.len(), |e| i + e);
                // A re-export (`pub use`) is the module's interface, not something its code
                // depends on: those who name the item through it depend on where it is defined.
                let before = code[..i].trim_end();
                if !["pub", "pub(crate)", "pub(super)"].iter().any(|v| before.ends_with(v)) {
                    let mut paths = Vec::new();
                    use_tree(code[i + 3..end].trim(), Vec::new(), &mut paths);
                    let line = line_of(i);
                    out.extend(paths.into_iter().map(|p| (p, line)));
                }
                i = end;
                continue;
            }
            // A path: idents joined by `::` (generic arguments end it).
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                if b.get(j) == Some(&b'$') {
                    j += 1;
                }
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                segs.push(code[s..j].to_string());
                if code[j..].starts_with("::")
                    && code[j + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                out.push((segs, line_of(i)));
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Expand a `use` tree (`a::{b, c::{d, e}}`) into paths.
fn use_tree(tree: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut part = String::new();
        let mut base = prefix.clone();
        base.extend(head);
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_tree(&part, base.clone(), out);
                    part.clear();
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        use_tree(&part, base, out);
    } else {
        let tree = tree.split(" as ").next().unwrap();
        let mut p = prefix;
        p.extend(
            tree.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        if p.last().is_some_and(|s| s == "self") {
            p.pop();
        }
        if !p.is_empty() {
            out.push(p);
        }
    }
}

/// `pub use` re-exports of a module: name → the path it re-exports.
fn reexports(m: &Module) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    let mut rest = m.code.as_str();
    let next = |r: &str| {
        [r.find("pub use "), r.find("pub(crate) use ")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(at) = next(rest) {
        let start = at + rest[at..].find("use ").unwrap() + 4;
        let end = rest[start..].find(';').map_or(rest.len(), |e| start + e);
        let mut paths = Vec::new();
        use_tree(&rest[start..end], Vec::new(), &mut paths);
        for p in paths {
            if let Some(last) = p.last() {
                map.insert(last.clone(), p);
            }
        }
        rest = &rest[end..];
    }
    map
}

struct Crate {
    modules: Vec<Module>,
    index: BTreeMap<Vec<String>, usize>,
    exports: Vec<BTreeMap<String, Vec<String>>>,
}

impl Crate {
    fn new(root: &Path) -> Crate {
        let modules = load(root);
        let index = modules.iter().enumerate().map(|(i, m)| (m.path.clone(), i)).collect();
        let exports = modules.iter().map(reexports).collect();
        Crate {
            modules,
            index,
            exports,
        }
    }

    /// The absolute module path `p` (as named from module `from`) starts at, if it is one of
    /// ours: `crate::`, `$crate::`, `super::`, `self::`, or a child module's name.
    fn absolute(&self, from: &[String], p: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = from.to_vec();
        let mut rest = p;
        match p.first()?.as_str() {
            "crate" | "$crate" => {
                base.clear();
                rest = &p[1..];
            }
            "self" => rest = &p[1..],
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            first => {
                let mut child = from.to_vec();
                child.push(first.to_string());
                if !self.index.contains_key(&child) {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module defining what `abs` names: the longest module prefix, through re-exports.
    fn resolve(&self, abs: &[String], depth: usize) -> Option<usize> {
        let n = (0..=abs.len()).rev().find(|&n| self.index.contains_key(&abs[..n]))?;
        let m = self.index[&abs[..n]];
        if n < abs.len() && depth < 8 {
            if let Some(target) = self.exports[m].get(&abs[n]) {
                if let Some(t) = self.absolute(&self.modules[m].path, target) {
                    let mut t = t;
                    t.extend(abs[n + 1..].iter().cloned());
                    if let Some(r) = self.resolve(&t, depth + 1) {
                        return Some(r);
                    }
                }
            }
        }
        Some(m)
    }

    /// Module → module edges, with the line that makes each.
    fn edges(&self) -> BTreeMap<(usize, usize), usize> {
        let mut edges = BTreeMap::new();
        for (i, m) in self.modules.iter().enumerate() {
            for (p, line) in named_paths(&m.code) {
                let Some(abs) = self.absolute(&m.path, &p) else {
                    continue;
                };
                if let Some(j) = self.resolve(&abs, 0) {
                    if j != i {
                        edges.entry((i, j)).or_insert(line);
                    }
                }
            }
        }
        edges
    }

    /// Every cycle, as module chains (one per strongly connected component).
    fn cycles(&self) -> Vec<String> {
        let edges = self.edges();
        let n = self.modules.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges.keys() {
            adj[a].push(b);
        }
        let name = |i: usize| {
            let p = &self.modules[i].path;
            if p.is_empty() {
                "(crate root)".to_string()
            } else {
                p.join("::")
            }
        };
        let mut reported = BTreeSet::new();
        let mut out = Vec::new();
        for start in 0..n {
            if reported.contains(&start) {
                continue;
            }
            // The shortest path from `start` back to itself, breadth first.
            let mut prev = vec![usize::MAX; n];
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            while let Some(a) = queue.pop_front() {
                for &b in &adj[a] {
                    if b == start {
                        found = Some(a);
                        break;
                    }
                    if prev[b] == usize::MAX {
                        prev[b] = a;
                        queue.push_back(b);
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            let Some(mut last) = found else { continue };
            let mut chain = vec![start];
            let mut back = vec![last];
            while last != start {
                last = prev[last];
                if last != start {
                    back.push(last);
                }
            }
            chain.extend(back.into_iter().rev());
            let mut text = String::new();
            for (k, &a) in chain.iter().enumerate() {
                let b = chain[(k + 1) % chain.len()];
                let line = edges[&(a, b)];
                let file = self.modules[a].file.display();
                text += &format!("  {} -> {}  ({file}:{line})\n", name(a), name(b));
                reported.insert(a);
            }
            out.push(text);
        }
        out
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in CRATES {
        let root = workspace.join(dir);
        if !root.exists() {
            continue;
        }
        let krate = Crate::new(&root);
        checked += krate.modules.len();
        for cycle in krate.cycles() {
            failures.push(format!("in {dir}:\n{cycle}"));
        }
    }
    assert!(checked > 100, "only {checked} modules found");
    assert!(
        failures.is_empty(),
        "{} import cycles:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_follows_reexports() {
    let dir = std::env::temp_dir().join(format!("gg-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    // a re-exports its child; b uses the re-export; a::c uses b: a cycle b -> a::c -> b.
    std::fs::write(dir.join("a/mod.rs"), "mod c;\npub use c::Thing;\n").unwrap();
    std::fs::write(dir.join("a/c.rs"), "pub struct Thing;\nfn f() { crate::b::g(); }\n").unwrap();
    std::fs::write(
        dir.join("b.rs"),
        "use crate::a::Thing; // \"crate::x\"\npub fn g() {}\n",
    )
    .unwrap();
    let krate = Crate::new(&dir);
    let cycles = krate.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].contains("a::c -> b") && cycles[0].contains("b -> a::c"),
        "{}",
        cycles[0]
    );
    // Without the back edge there is none.
    std::fs::write(dir.join("a/c.rs"), "pub struct Thing;\n").unwrap();
    assert!(Crate::new(&dir).cycles().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

//! The layer order of `src/`, checked: every top-level module uses only modules of the layers
//! below its own, so there is no import cycle and a reader can learn the code bottom-up (the
//! order is drawn in README.md, "Development"). A new module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: a module may use the modules of earlier lines only.
const LAYERS: &[&[&str]] = &[
    // base: no knowledge of reports or of the agent's directories
    &["escape", "exit", "failpoint", "shutdown"],
    &["untrusted"],
    // bytes -> typed verdict
    &["validate"],
    // the state directory and its typed records
    &["spool"],
    // raw TOML -> validated settings
    &["config"],
    // what happened, for people and machines
    &["metrics", "notify", "progress"],
    &["report"],
    // the one admission stage
    &["admit"],
    // the stages
    &["gmp"],
    &["scanners"],
    &["jobs", "watch", "upload"],
    // wiring
    &["app"],
    // the verbs, at the binary's edge
    &["cli", "status"],
    &["logging"],
    &["commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The first path segment of each item of a `use` group or path that starts at `text` (just
/// after `crate::` or the last `super::`): `x::y` gives `x`; `{x::y, z, w::{..}}` gives x, z, w.
fn first_segments(text: &str) -> Vec<String> {
    let ident = |t: &str| -> String {
        t.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = text.trim_start().strip_prefix('{') else {
        return vec![ident(text)];
    };
    // The items of the group, split at its own commas (nested groups kept whole).
    let (mut depth, mut items, mut start) = (0usize, Vec::new(), 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.into_iter().map(ident).collect()
}

/// The byte ranges of the inline modules (`mod x { ... }`) of a file's text.
fn inline_modules(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("mod ") {
        if i > 0 && text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "mod ".len()..];
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let after = rest[name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = text.len() - after.len();
        let mut depth = 0usize;
        for (j, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(open..open + j);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The top-level modules each top-level module uses: `crate::x` (also in `use crate::{...}`
/// groups over several lines) and `super::` chains that climb out of it, comments left out.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            // The module path of the file: src/a/b.rs and src/a/b/mod.rs are a::b.
            let rel = p.strip_prefix(&src).unwrap().with_extension("");
            let mut path: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if path.last().is_some_and(|l| l == "mod") {
                path.pop();
            }
            let module = path[0].clone();
            if module == "main" || module == "lib" {
                continue;
            }
            let text: String = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let used = out.entry(module.clone()).or_default();
            let mut names = Vec::new();
            for (i, _) in text.match_indices("crate::") {
                names.extend(first_segments(&text[i + "crate::".len()..]));
            }
            let inline = inline_modules(&text);
            let mut at = 0;
            while let Some(i) = text[at..].find("super::") {
                let begin = at + i;
                // A whole chain counts once, from its first `super::`.
                let mut end = begin;
                let mut climbs = 0;
                while text[end..].starts_with("super::") {
                    end += "super::".len();
                    climbs += 1;
                }
                // Each inline `mod x { ... }` around it is one more level to climb.
                let depth = path.len() + inline.iter().filter(|r| r.contains(&begin)).count();
                if climbs >= depth {
                    names.extend(first_segments(&text[end..]));
                }
                at = end;
            }
            for n in names {
                if !n.is_empty() && n != module {
                    used.insert(n);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let uses = uses();
    assert!(uses.len() > 10, "src/ not found or not read: {uses:?}");
    let mut wrong = Vec::new();
    for (module, used) in &uses {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("{module} has no layer in tests/it/layers.rs"));
            continue;
        };
        for u in used {
            match layer_of(u) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{module} uses {u}, which is not below it")),
                None => wrong.push(format!("{module} uses {u}, which has no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn validation_stands_alone() {
    // The validator is the agent's judgement of hostile bytes: nothing else of the agent
    // takes part in it.
    let uses = uses();
    assert_eq!(uses.get("validate"), Some(&BTreeSet::new()));
}

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
    &["metrics", "notify"],
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

/// The top-level modules each top-level module uses (`crate::x`), comments left out.
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
            let rel = p.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "main" || module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let used = out.entry(module.clone()).or_default();
            for line in text.lines().map(str::trim_start) {
                if line.starts_with("//") {
                    continue;
                }
                // `crate::x::...` and `use crate::{x::..., y, ...}`
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split([',', '}'])
                            .map(|s| s.trim().split("::").next().unwrap_or(""))
                            .collect(),
                        None => vec![rest
                            .split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap_or("")],
                    };
                    for n in names {
                        if !n.is_empty()
                            && n != module
                            && n.chars().all(|c| c.is_alphanumeric() || c == '_')
                        {
                            used.insert(n.to_string());
                        }
                    }
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

//! The layers of `agent/` stay layered: each top-level module of the library imports (by a
//! `crate::` path, outside its tests) only modules of the layers below it, so there is no module
//! cycle and the host layer never learns about rules. The order is the one `agent/lib.rs` and
//! `docs/architecture.md` describe; a module missing from it fails the test until it is placed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. Modules on one line form one layer and may not import each other.
const LAYERS: &[&[&str]] = &[
    &["rule", "diag", "localfs"],
    &["sysroot"],
    &["host"],
    &["fim"],
    &["checks"],
    &["report"],
    &["baseline"],
    &["engine"],
    &["ssm"],
    &["run"],
    // test-only: the fuzz targets drive parsers of every layer
    &["fuzz"],
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` module and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules it imports through `crate::`, with a file as witness.
fn imports(agent: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(agent, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(agent).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "cli") {
            continue; // the crate root and the binary sit above every layer
        }
        let text = code(&std::fs::read_to_string(&file).unwrap());
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
                && !text[..i].ends_with('$')
            {
                continue;
            }
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() && name != module {
                deps.entry(name)
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    graph
}

#[test]
fn every_module_imports_only_from_layers_below_it() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent");
    let graph = imports(&agent);
    let layer_of = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut problems = Vec::new();
    for (module, deps) in &graph {
        let Some(own) = layer_of(module) else {
            problems.push(format!(
                "agent/{module}: not placed in a layer (add it to LAYERS and docs/architecture.md)"
            ));
            continue;
        };
        for (dep, witness) in deps {
            match layer_of(dep) {
                Some(l) if l < own => {}
                Some(_) => problems.push(format!(
                    "{module} imports {dep} (agent/{witness}), which is not below it"
                )),
                None => problems.push(format!(
                    "{module} imports unknown module {dep} (agent/{witness})"
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
    // every layer names modules that exist, so the table cannot silently go stale
    let known: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            known.contains(module),
            "LAYERS names `{module}`, which agent/ does not have"
        );
    }
}

//! Enforces the layering `lib.rs` documents: each top-level module imports (`crate::…`) only
//! modules of lower layers. The layers are read from `lib.rs`'s opening comment, so the
//! documentation and the check cannot drift apart. Test code (`tests*.rs` files and the
//! trailing `#[cfg(test)] mod tests`) may reach anywhere.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// Same-layer imports still to be removed, as (importer, imported); empty once the daemon/ctl
/// cycle was broken by `explain` and `protocol`.
const PENDING: &[(&str, &str)] = &[];

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// `(layer, module)` from the `//! N. \`a\`, \`b\` — …` lines of lib.rs's opening comment.
fn layers() -> Vec<(usize, String)> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = Vec::new();
    for line in lib.lines().take_while(|l| l.starts_with("//!")) {
        let rest = line.trim_start_matches("//!").trim_start();
        let Some((n, names)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        let names = names.split(" — ").next().unwrap_or("");
        for name in names.split(',') {
            out.push((n, name.trim().trim_matches('`').to_string()));
        }
    }
    out
}

fn declared_modules() -> BTreeSet<String> {
    fs::read_to_string(src().join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ").or(l.strip_prefix("mod ")))
        .map(|m| m.trim_end_matches(';').to_string())
        .filter(|m| m != "layering")
        .collect()
}

/// The module's non-test source files.
fn files(module: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, out);
            } else if name.ends_with(".rs") && !name.starts_with("tests") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.exists() {
        out.push(file);
    }
    let dir = src().join(module);
    if dir.is_dir() {
        walk(&dir, &mut out);
    }
    out
}

/// The top-level modules a source text names as `crate::x` or in `use crate::{x, …}`.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(block) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in block.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(&block[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&block[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

#[test]
fn lib_rs_lists_every_module_in_a_layer() {
    let layered: BTreeSet<String> = layers().into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        layered,
        declared_modules(),
        "every module in lib.rs should be named in exactly one layer of its opening comment"
    );
}

#[test]
fn each_module_imports_only_lower_layers() {
    let layers = layers();
    let layer_of = |m: &str| layers.iter().find(|(_, n)| n == m).map(|(l, _)| *l);
    let mut violations = Vec::new();
    for (layer, module) in &layers {
        for file in files(module) {
            let text = fs::read_to_string(&file).unwrap();
            for used in imports(&text) {
                let Some(used_layer) = layer_of(&used) else {
                    continue;
                };
                if used != *module
                    && used_layer >= *layer
                    && !PENDING.contains(&(module.as_str(), used.as_str()))
                {
                    violations.push(format!(
                        "{} (layer {layer}) imports `{used}` (layer {used_layer})",
                        file.strip_prefix(src()).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a module may import only lower layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn imports_are_found_in_paths_and_use_blocks() {
    let text = "use crate::{\n    compile::{self, time},\n    escape::escape,\n};\n// crate::ctl\nfn f() { crate::eval::decide(); }\n#[cfg(test)]\nmod tests {\n    use crate::daemon;\n}\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["compile", "escape", "eval"]);
}

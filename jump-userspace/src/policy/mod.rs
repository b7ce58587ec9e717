//! Stage 1 of the pipeline: a directory of YAML files → one validated policy model.
//!
//! This module alone reads policy files. It keeps the position of everything it parses, so every
//! error reads `file:line:col: message`, collects all errors (sorted by position) instead of
//! stopping at the first, and never panics on input. Users and groups are only checked for form
//! here; resolving them against the system is the compiler's job (`compile::Directory`).

mod diag;
mod model;
mod parse;
pub mod schema;
pub(crate) mod yaml;

use std::path::Path;

pub use diag::{Diagnostic, PolicyErrors, Severity, Span};
pub use model::*;
use sha2::{Digest, Sha256};

/// Files larger than this are refused: a policy is hand-written text, and the limit bounds the
/// memory a mistaken or hostile file can take.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// At most this many policy files in one directory.
pub const MAX_FILES: usize = 1024;

/// A loaded policy directory.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
    /// Hex SHA-256 over every file's name and contents, in load order.
    pub sha256: String,
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir` (not recursive), in name order, as one
/// policy.
pub fn load_dir(dir: &Path) -> Result<Loaded, PolicyErrors> {
    let dir_name = dir.display().to_string();
    let io_err = |e: std::io::Error| {
        PolicyErrors::from(Diagnostic::error(
            Span::file(&dir_name),
            format!("cannot read policy directory: {e}"),
        ))
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            names.push(path);
        }
    }
    names.sort();
    if names.len() > MAX_FILES {
        return Err(Diagnostic::error(
            Span::file(&dir_name),
            format!(
                "{} policy files, more than the limit of {MAX_FILES}",
                names.len()
            ),
        )
        .into());
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in names {
        let shown = path.display().to_string();
        match read_limited(&path) {
            Ok(text) => files.push((shown, text)),
            Err(msg) => errors.push(Diagnostic::error(Span::file(&shown), msg)),
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    if files.is_empty() {
        return Err(Diagnostic::error(
            Span::file(&dir_name),
            "no policy files (`*.yaml` or `*.yml`) in this directory".to_string(),
        )
        .into());
    }
    load_files(&files)
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read file: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file is {} bytes, more than the limit of {MAX_FILE_BYTES} bytes",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "file is more than the limit of {MAX_FILE_BYTES} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "file is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Loads a policy from `(file name, contents)` pairs, in the order given (the name is what
/// errors show). `load_dir` and tests both come through here.
pub fn load_files(files: &[(String, String)]) -> Result<Loaded, PolicyErrors> {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        // Length-prefixed, so no two different directories hash alike.
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let (policy, warnings) = parse::parse_files(files)?;
    Ok(Loaded {
        policy,
        warnings,
        sha256,
    })
}

/// One file's worth of policy, for tests and examples.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, PolicyErrors> {
    load_files(&[(name.to_string(), text.to_string())])
}

#[cfg(test)]
mod tests;

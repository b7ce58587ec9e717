//! Stage 1 of the pipeline: a directory of YAML files → one validated policy model.
//!
//! This module alone reads policy files. It keeps the position of everything it parses, so every
//! error reads `file:line:col: message`, collects all errors (sorted by position) instead of
//! stopping at the first, and never panics on input. Users and groups are only checked for form
//! here; resolving them against the system is `resolve`'s job (`resolve::Directory`).

mod diag;
mod model;
pub mod moment;
mod named;
mod parse;
mod read;
pub mod schema;
pub(crate) mod yaml;

use std::path::Path;

pub use diag::{Diagnostic, PolicyErrors, Severity, Span};
pub use model::*;
pub use parse::Memo;
use sha2::{Digest, Sha256};

pub use named::{bad_file_name, load_named, read_named, Named};
pub(crate) use parse::reader::Ctx as Reader;
pub use read::check_config_file;
pub use read::{
    is_policy_name, Ownership, ReadOptions, Source, MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES,
};

/// A loaded policy directory.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
    /// Hex SHA-256 over every file's name and contents, in load order.
    pub sha256: String,
    /// Files not readable by everyone (`redact`).
    pub private: Vec<String>,
}

/// Loads every policy file (`*.yaml` / `*.yml`, any case, not hidden) directly in `dir` (not
/// recursive), in name order, as one policy; ownership problems are warnings (`jumpctl`).
pub fn load_dir(dir: &Path) -> Result<Loaded, PolicyErrors> {
    load_dir_with(dir, ReadOptions::default())
}

/// `load_dir` with jumpd's options (ownership refused, reads until stable).
pub fn load_dir_with(dir: &Path, opts: ReadOptions) -> Result<Loaded, PolicyErrors> {
    load_dir_memo(dir, opts, None)
}

/// `load_dir_with`, parsing only the files whose text differs from the last call with the same
/// `memo` (`Memo`): jumpd keeps one across reloads.
pub fn load_dir_memo(
    dir: &Path,
    opts: ReadOptions,
    memo: Option<&mut Memo>,
) -> Result<Loaded, PolicyErrors> {
    let sources = read::read_dir(dir, opts)?;
    let files: Vec<(String, String)> = sources
        .files
        .iter()
        .map(|s| (s.name.clone(), s.text.clone()))
        .collect();
    let private: Vec<String> = sources
        .files
        .iter()
        .filter(|s| s.private)
        .map(|s| s.name.clone())
        .collect();
    let mut loaded = load_files_memo(&files, memo).map_err(|mut e| {
        e.errors.extend(sources.warnings.iter().cloned());
        if opts.redact_private {
            redact(&mut e.errors, &private);
        }
        e
    })?;
    if opts.redact_private {
        redact(&mut loaded.warnings, &private);
    }
    let mut warnings = sources.warnings;
    warnings.append(&mut loaded.warnings);
    loaded.warnings = warnings;
    loaded.private = private;
    // The hash names files within the directory, not by the path the directory was given as
    // (`policies`, `./policies`, `/etc/jump/policies`): the same policy, the same hash.
    loaded.sha256 = hash(sources.files.iter().map(|s| {
        let base = std::path::Path::new(&s.name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&s.name);
        (base, s.text.as_str())
    }));
    Ok(loaded)
}

/// Hides what diagnostics say about files not readable by everyone (`Loaded::private`): jumpd
/// reads them as root, but its log and `jumpctl status` reach admins who may not read them. Only
/// positioned diagnostics can quote a file; whole-file ones (modes, sizes) say nothing of it.
pub fn redact(diags: &mut [Diagnostic], private: &[String]) {
    for d in diags {
        if d.span.line != 0 && private.iter().any(|p| **p == *d.span.file) {
            d.message = "error here, not shown: the file is not readable by everyone".into();
            d.help = Some("run `jumpctl validate` as root to see it".into());
            if d.severity == Severity::Warning {
                d.message = "warning here, not shown: the file is not readable by everyone".into();
            }
        }
    }
}

/// Loads a policy from `(file name, contents)` pairs, in the order given (the name is what
/// errors show). `load_dir` and tests both come through here.
pub fn load_files(files: &[(String, String)]) -> Result<Loaded, PolicyErrors> {
    load_files_memo(files, None)
}

fn load_files_memo(
    files: &[(String, String)],
    memo: Option<&mut Memo>,
) -> Result<Loaded, PolicyErrors> {
    let sha256 = hash(files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
    let (policy, warnings) = parse::parse_files(files, memo)?;
    Ok(Loaded {
        policy,
        warnings,
        sha256,
        private: Vec::new(),
    })
}

/// The policy's hash: SHA-256 over each file's name and contents, in order.
pub(crate) fn hash<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        // Length-prefixed, so no two different directories hash alike.
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// What of a policy directory parses despite its errors (`parse::parse_files_lenient`), for
/// reporting every error at once; `None` when the directory cannot be read.
pub fn load_dir_partial(dir: &Path) -> Option<Policy> {
    let sources = read::read_dir(dir, ReadOptions::default()).ok()?;
    let files: Vec<(String, String)> = sources
        .files
        .iter()
        .map(|s| (s.name.clone(), s.text.clone()))
        .collect();
    Some(parse::parse_files_lenient(&files).0)
}

/// One file's worth of policy, for tests and examples.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, PolicyErrors> {
    load_files(&[(name.to_string(), text.to_string())])
}

#[cfg(test)]
mod tests;

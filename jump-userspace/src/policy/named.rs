//! Stage 1a for policy files that do not come from a directory (an etcd key, jumpd's cache of
//! one): the same bounds the directory reader applies (`MAX_FILES`, `MAX_FILE_BYTES`,
//! `MAX_TOTAL_BYTES`, the bytes YAML allows) and the names a directory entry could have, so a
//! store cannot hand the parser anything a directory could not.

use super::{read, Diagnostic, Loaded, PolicyErrors, Span};

/// One policy file by name. `shown` is what errors say (the etcd key), `name` the file name
/// within the policy (what the hash covers, as for a directory's files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub shown: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The longest file name Linux allows (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Why `name` could not be a file in a policy directory, if it could not: empty, `.`/`..`,
/// longer than `NAME_MAX`, or holding `/`, `\\`, NUL or another control or format character.
pub fn bad_file_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("the file name is empty");
    }
    if name == "." || name == ".." {
        return Some("`.` and `..` are not file names");
    }
    if name.len() > MAX_NAME_BYTES {
        return Some("the file name is longer than 255 bytes");
    }
    if name.contains('/') {
        return Some("a file name cannot hold `/` (policies are not read from subdirectories)");
    }
    // What `escape` would change reads differently on a terminal than it is.
    if crate::escape::escape(name) != name {
        return Some("the file name holds a backslash, a control or an invisible character");
    }
    None
}

/// Loads named files as `load_dir` loads a directory's: in name order, every bound checked,
/// every error collected. `origin` names the whole set in errors about it (`etcd prefix …`).
pub fn load_named(mut files: Vec<Named>, origin: &str) -> Result<Loaded, PolicyErrors> {
    let whole = |msg: String| Diagnostic::error(Span::file(origin), msg);
    if files.len() > super::MAX_FILES {
        return Err(whole(format!(
            "more than {} policy files, the limit",
            super::MAX_FILES
        ))
        .into());
    }
    if files.is_empty() {
        return Err(whole("no policy files (`*.yaml` or `*.yml`)".to_string()).into());
    }
    // Byte order, as a directory listing is sorted.
    files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut errors = Vec::new();
    let mut texts = Vec::new();
    let mut total: u64 = 0;
    for f in files {
        if let Some(why) = bad_file_name(&f.name) {
            errors.push(Diagnostic::error(
                Span::file(&f.shown),
                format!("not a policy file name: {why}"),
            ));
            continue;
        }
        let size = f.bytes.len() as u64;
        if size > super::MAX_FILE_BYTES {
            errors.push(Diagnostic::error(
                Span::file(&f.shown),
                format!(
                    "file is {size} bytes, more than the limit of {} bytes",
                    super::MAX_FILE_BYTES
                ),
            ));
            continue;
        }
        total += size;
        if total > super::MAX_TOTAL_BYTES {
            errors.push(whole(format!(
                "the policy files hold more than {} bytes in total, the limit",
                super::MAX_TOTAL_BYTES
            )));
            break;
        }
        match read::decode(f.bytes) {
            Ok(text) => texts.push((f.shown, f.name, text)),
            Err((l, c, m)) => errors.push(Diagnostic::error(Span::new(&f.shown.into(), l, c), m)),
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    let shown: Vec<(String, String)> = texts
        .iter()
        .map(|(s, _, t)| (s.clone(), t.clone()))
        .collect();
    let mut loaded = super::load_files(&shown)?;
    // The same hash as `load_dir` of a directory holding these files.
    loaded.sha256 = super::hash(texts.iter().map(|(_, n, t)| (n.as_str(), t.as_str())));
    Ok(loaded)
}

/// A directory's policy files as `Named` (`dir/name` shown), for sending elsewhere
/// (`jumpctl push`): what is validated is then exactly what is sent.
pub fn read_named(dir: &std::path::Path) -> Result<(Vec<Named>, Vec<Diagnostic>), PolicyErrors> {
    let sources = read::read_dir(dir, read::ReadOptions::default())?;
    let files = sources
        .files
        .into_iter()
        .map(|s| Named {
            name: std::path::Path::new(&s.name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            shown: s.name,
            bytes: s.text.into_bytes(),
        })
        .collect();
    Ok((files, sources.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, text: &[u8]) -> Named {
        Named {
            shown: format!("/jump/policies/{name}"),
            name: name.into(),
            bytes: text.to_vec(),
        }
    }

    const OK: &str = "zones:\n  dmz: [198.51.100.0/24]\n";

    #[test]
    fn the_hash_is_the_directorys() {
        let dir = std::env::temp_dir().join(format!("jump-named-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.yaml"), OK).unwrap();
        std::fs::write(dir.join("a.yaml"), "{}\n").unwrap();
        let from_dir = super::super::load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let from_keys = load_named(
            vec![named("b.yaml", OK.as_bytes()), named("a.yaml", b"{}\n")],
            "etcd",
        )
        .unwrap();
        assert_eq!(from_keys.sha256, from_dir.sha256);
    }

    #[test]
    fn errors_name_the_key_with_line_and_column() {
        let e = load_named(
            vec![named("x.yaml", b"zones:\n  dmz: [300.1.2.3/8]\n")],
            "etcd",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/jump/policies/x.yaml:2:"), "{e}");
        let e = load_named(vec![named("x.yaml", b"a: 1\nb: \0\n")], "etcd")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/jump/policies/x.yaml:2:4: NUL byte: a policy file is text, and YAML does not allow NUL"
        );
    }

    #[test]
    fn names_no_directory_could_hold_are_refused() {
        for (name, why) in [
            ("", "the file name is empty"),
            ("..", "`.` and `..` are not file names"),
            (
                "../x.yaml",
                "a file name cannot hold `/` (policies are not read from subdirectories)",
            ),
            (
                "a\0.yaml",
                "the file name holds a backslash, a control or an invisible character",
            ),
            (
                "a\u{1b}[2K.yaml",
                "the file name holds a backslash, a control or an invisible character",
            ),
            (
                "a\u{202e}.yaml",
                "the file name holds a backslash, a control or an invisible character",
            ),
        ] {
            assert_eq!(bad_file_name(name), Some(why), "{name:?}");
        }
        assert_eq!(
            bad_file_name(&"a".repeat(256)),
            Some("the file name is longer than 255 bytes")
        );
        assert_eq!(bad_file_name("ops-ü.yaml"), None);
    }

    #[test]
    fn the_directory_bounds_apply() {
        let big = vec![b'#'; super::super::MAX_FILE_BYTES as usize + 1];
        let e = load_named(vec![named("big.yaml", &big)], "etcd")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/jump/policies/big.yaml: file is 1048577 bytes, more than the limit of 1048576 bytes"
        );
        let many: Vec<Named> = (0..=super::super::MAX_FILES)
            .map(|i| named(&format!("{i}.yaml"), b"{}\n"))
            .collect();
        assert_eq!(
            load_named(many, "etcd prefix `/jump/`")
                .unwrap_err()
                .to_string(),
            "etcd prefix `/jump/`: more than 1024 policy files, the limit"
        );
        // One file over the total: as many full-size files as fit, and one more.
        let over = (super::super::MAX_TOTAL_BYTES / super::super::MAX_FILE_BYTES + 1) as usize;
        let too_much: Vec<Named> = (0..over)
            .map(|i| {
                named(
                    &format!("{i}.yaml"),
                    &vec![b'#'; super::super::MAX_FILE_BYTES as usize],
                )
            })
            .collect();
        assert_eq!(
            load_named(too_much, "etcd").unwrap_err().to_string(),
            format!(
                "etcd: the policy files hold more than {} bytes in total, the limit",
                super::super::MAX_TOTAL_BYTES
            )
        );
        assert_eq!(
            load_named(vec![], "etcd").unwrap_err().to_string(),
            "etcd: no policy files (`*.yaml` or `*.yml`)"
        );
    }
}

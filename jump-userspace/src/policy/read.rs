//! Stage 1a: a policy directory → the exact text of its files. This module alone touches the
//! file system for policies: which directory entries are policy files, how each is opened
//! (never following a symlink, never blocking on a FIFO), who may write them (sshd's
//! `StrictModes`), and which bytes a policy may hold. What it returns is exactly what is on
//! disk, or an error naming the file (and `line:col` for bad bytes); it never quotes content.
//!
//! (Over 500 lines, 60 of them tests: every way of reaching a policy file's bytes — listing,
//! opening, ownership and mode, decoding — is refused or allowed here, in one place, so that
//! nothing else in jumpd opens a policy file.)

use std::{
    ffi::{OsStr, OsString},
    io::Read,
    os::{
        fd::{AsFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use nix::{
    dir::{Dir, Type},
    errno::Errno,
    fcntl::{openat, OFlag},
    sys::stat::{fstat, FileStat, Mode, SFlag},
};

use super::{Diagnostic, PolicyErrors, Span};

/// Files larger than this are refused: a policy is hand-written text, and the limit bounds the
/// memory a mistaken or hostile file can take.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// At most this many policy files in one directory.
pub const MAX_FILES: usize = 1024;
/// At most this many bytes over all files: 100,000 rules of one line each are about 12 MiB
/// of YAML (the rule table itself holds `jump_common::MAX_RULES`), and parsing takes a
/// bounded multiple of the input.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;

/// What happens when a policy file or directory can be written by someone other than root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// `jumpctl validate`: a warning (the files may be a draft in a home directory).
    #[default]
    Warn,
    /// jumpd: an error; the policy is not applied.
    Refuse,
}

/// How `read_dir` reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    pub ownership: Ownership,
    /// Read the directory until two reads in a row agree (jumpd: a file half-written by an
    /// editor or by config management is never applied).
    pub until_stable: bool,
    /// Hide what errors say about files not readable by everyone (`super::redact`).
    pub redact_private: bool,
}

/// One policy file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `dir/name`, as errors show it.
    pub name: String,
    pub text: String,
    /// Not readable by everyone: jumpd must not quote it to a non-root admin (`redact`).
    pub private: bool,
}

/// The files of a directory, and warnings about their ownership (`Ownership::Warn`).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub files: Vec<Source>,
    pub warnings: Vec<Diagnostic>,
    /// The latest modification time (ns since 1970) of the directory and its files.
    newest_change: i128,
}

/// A policy whose files all changed longer ago than this is taken as written; a newer one is
/// read again after this long and taken only if it reads the same.
const QUIET: std::time::Duration = std::time::Duration::from_millis(150);
/// At most this many reads in one load before giving up (about 3 s of continuous writing).
const MAX_READS: usize = 20;

/// Whether a directory entry is meant as a policy file: `*.yaml` or `*.yml` in any letter case,
/// not hidden. Hidden files (`.x.yaml`, editors' `.x.yaml.swp`, config management's
/// temporaries) are never policy files, and the watcher ignores them alike.
pub fn is_policy_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    if b.first() == Some(&b'.') {
        return false;
    }
    let lower = b.to_ascii_lowercase();
    lower.ends_with(b".yaml") || lower.ends_with(b".yml")
}

/// Reads every policy file directly in `dir`, in name order.
pub fn read_dir(dir: &Path, opts: ReadOptions) -> Result<Sources, PolicyErrors> {
    if !opts.until_stable {
        return read_once(dir, opts.ownership);
    }
    // A file changed in the last `QUIET` may be half-written (an editor truncates, pauses,
    // writes): it is taken only when a read `QUIET` later finds the same text. Files untouched
    // for longer cost a single read.
    let mut last = read_once(dir, opts.ownership)?;
    for _ in 0..MAX_READS {
        let age = jiff::Timestamp::now().as_nanosecond() - last.newest_change;
        if age >= QUIET.as_nanos() as i128 {
            return Ok(last);
        }
        std::thread::sleep(QUIET);
        let next = read_once(dir, opts.ownership)?;
        if next.files == last.files {
            return Ok(next);
        }
        last = next;
    }
    Err(Diagnostic::error(
        Span::file(&dir.display().to_string()),
        "the policy files kept changing while being read; nothing was applied",
    )
    .with_help("the next change reloads again once the files are written")
    .into())
}

fn read_once(dir: &Path, ownership: Ownership) -> Result<Sources, PolicyErrors> {
    let dir_name = dir.display().to_string();
    let fail = |msg: String| PolicyErrors::from(Diagnostic::error(Span::file(&dir_name), msg));
    // The directory itself may be a symlink (config management swaps one into place).
    let dir_fd: OwnedFd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| fail(format!("cannot read policy directory: {}", errno_text(e))))?;
    let mut out = Sources::default();
    let mut errors = Vec::new();
    let dir_stat = fstat(&dir_fd).map_err(|e| fail(format!("cannot stat: {}", errno_text(e))))?;
    out.newest_change = changed_ns(&dir_stat);
    let mut modes = Vec::new();
    modes.extend(check_mode(&dir_name, &dir_stat, true));
    modes.extend(check_ancestors(dir));
    let mut names: Vec<(OsString, Option<Type>)> = Vec::new();
    let listing = Dir::openat(
        &dir_fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(format!("cannot read policy directory: {}", errno_text(e))))?;
    for entry in listing {
        let entry =
            entry.map_err(|e| fail(format!("cannot read policy directory: {}", errno_text(e))))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !is_policy_name(name) {
            continue;
        }
        if names.len() == MAX_FILES {
            return Err(fail(format!(
                "more than {MAX_FILES} policy files, the limit"
            )));
        }
        names.push((name.to_os_string(), entry.file_type()));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut total: u64 = 0;
    for (name, kind) in names {
        let shown = PathBuf::from(dir).join(&name).display().to_string();
        match read_file(&dir_fd, &name, kind, &shown, &mut total) {
            Ok((text, st)) => {
                modes.extend(check_mode(&shown, &st, false));
                out.newest_change = out.newest_change.max(changed_ns(&st));
                out.files.push(Source {
                    name: shown,
                    text,
                    private: st.st_mode & 0o004 == 0,
                });
            }
            Err(FileError::Whole(msg)) => errors.push(Diagnostic::error(Span::file(&shown), msg)),
            Err(FileError::At(line, col, msg)) => {
                errors.push(Diagnostic::error(Span::new(&shown.into(), line, col), msg))
            }
            Err(FileError::TooMuch) => {
                errors.push(Diagnostic::error(
                    Span::file(&dir_name),
                    format!("the policy files hold more than {MAX_TOTAL_BYTES} bytes in total, the limit"),
                ));
                break;
            }
        }
    }
    for m in modes {
        match (ownership, m) {
            (_, ModeIssue::Unreadable(d)) | (Ownership::Refuse, ModeIssue::Writable(d)) => {
                errors.push(d)
            }
            (Ownership::Warn, ModeIssue::Writable(mut d)) => {
                d.severity = super::Severity::Warning;
                d.help = Some("jumpd refuses this policy until only root can write it".into());
                out.warnings.push(d);
            }
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    if out.files.is_empty() {
        return Err(fail(
            "no policy files (`*.yaml` or `*.yml`) in this directory".to_string(),
        ));
    }
    Ok(out)
}

enum FileError {
    Whole(String),
    At(u32, u32, String),
    TooMuch,
}

fn type_name(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

fn read_file(
    dir: &OwnedFd,
    name: &OsStr,
    kind: Option<Type>,
    _shown: &str,
    total: &mut u64,
) -> Result<(String, FileStat), FileError> {
    let not_regular = |what: &str| {
        FileError::Whole(format!(
            "is {what}, not a regular file: a name ending in `.yaml` or `.yml` is a policy file"
        ))
    };
    // Refused before opening: opening a device can have effects of its own.
    match kind {
        Some(Type::Symlink) => return Err(symlink_refused()),
        Some(Type::Fifo) => return Err(not_regular("a FIFO")),
        Some(Type::Socket) => return Err(not_regular("a socket")),
        Some(Type::CharacterDevice) => return Err(not_regular("a character device")),
        Some(Type::BlockDevice) => return Err(not_regular("a block device")),
        Some(Type::Directory) => return Err(not_regular("a directory")),
        _ => {}
    }
    // O_NOFOLLOW: a symlink is refused, never followed (it could name any file, which errors
    // would then quote). O_NONBLOCK: a FIFO swapped in after the listing does not hang us; its
    // type is checked on the descriptor below.
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP => symlink_refused(),
        Errno::ENXIO => not_regular("a socket"),
        e => FileError::Whole(format!("cannot open: {}", errno_text(e))),
    })?;
    let st = fstat(&fd).map_err(|e| FileError::Whole(format!("cannot stat: {}", errno_text(e))))?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return Err(not_regular(type_name(st.st_mode)));
    }
    let size = st.st_size.max(0) as u64;
    if size > MAX_FILE_BYTES {
        return Err(FileError::Whole(format!(
            "file is {size} bytes, more than the limit of {MAX_FILE_BYTES} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Whole(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::Whole(format!(
            "file is more than the limit of {MAX_FILE_BYTES} bytes"
        )));
    }
    *total += bytes.len() as u64;
    if *total > MAX_TOTAL_BYTES {
        return Err(FileError::TooMuch);
    }
    let text = decode(bytes).map_err(|(l, c, m)| FileError::At(l, c, m))?;
    Ok((text, st))
}

fn symlink_refused() -> FileError {
    FileError::Whole(
        "is a symbolic link: policy files must be regular files (the policy directory itself may be a symlink)"
            .into(),
    )
}

/// When the content last changed: the later of mtime and ctime (a rename into place keeps the
/// file's old mtime but sets its ctime).
fn changed_ns(st: &FileStat) -> i128 {
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    ns(st.st_mtime, st.st_mtime_nsec).max(ns(st.st_ctime, st.st_ctime_nsec))
}

fn errno_text(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

/// Whether YAML 1.2 allows `c` in a stream (its `c-printable`; a BOM only at the start).
fn yaml_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
        && c != '\u{FEFF}'
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, col as u32)
}

/// Bytes → text, or the `line:col` of the first byte a policy may not hold. A UTF-8 byte order
/// mark at the very start is accepted and dropped (YAML allows it there); positions count from
/// after it, as editors show them. Messages name code points, never the file's text.
pub fn decode(mut bytes: Vec<u8>) -> Result<String, (u32, u32, String)> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let (l, c) = line_col(prefix, valid);
            return Err((
                l,
                c,
                "invalid UTF-8: a policy file is UTF-8 text".to_string(),
            ));
        }
    };
    if let Some((i, ch)) = text.char_indices().find(|&(_, c)| !yaml_printable(c)) {
        let (l, c) = line_col(&text, i);
        let msg = match ch {
            '\0' => "NUL byte: a policy file is text, and YAML does not allow NUL".to_string(),
            '\u{FEFF}' => {
                "byte order mark (U+FEFF) after the start of the file: YAML allows it only first"
                    .to_string()
            }
            c => format!(
                "character U+{:04X} is not allowed in YAML (control characters other than tab and line breaks are not)",
                c as u32
            ),
        };
        return Err((l, c, msg));
    }
    Ok(text)
}

enum ModeIssue {
    /// Someone besides root may change it.
    Writable(Diagnostic),
    /// jumpd, root without CAP_DAC_OVERRIDE after its capability drop, cannot read it.
    Unreadable(Diagnostic),
}

fn describe_owner(st: &FileStat) -> String {
    let owner = nix::unistd::User::from_uid(st.st_uid.into())
        .ok()
        .flatten()
        .map(|u| format!("{} (uid {})", u.name, st.st_uid))
        .unwrap_or_else(|| format!("uid {}", st.st_uid));
    format!("owner {owner}, mode {:04o}", st.st_mode & 0o7777)
}

/// sshd's `StrictModes` for a policy file or directory: owned by root and writable by no one
/// else (group and other write bits clear; the admin group reads through jumpctl, it does not
/// write). And readable by root *without* CAP_DAC_OVERRIDE, which jumpd drops after start:
/// the owner's read bit (and search bit for a directory) must be set.
fn check_mode(shown: &str, st: &FileStat, is_dir: bool) -> Vec<ModeIssue> {
    let mut out = Vec::new();
    let span = Span::file(shown);
    if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        let what = if is_dir {
            "policy directory"
        } else {
            "policy file"
        };
        let who = if st.st_uid != 0 {
            "is not owned by root"
        } else {
            "is writable by others than root"
        };
        out.push(ModeIssue::Writable(Diagnostic::error(
            span.clone(),
            format!(
                "{what} {who} ({}): whoever can write it decides who may connect where",
                describe_owner(st)
            ),
        )));
    }
    let needed = if is_dir { 0o500 } else { 0o400 };
    if st.st_uid == 0 && st.st_mode & needed != needed {
        out.push(ModeIssue::Unreadable(
            Diagnostic::error(
                span,
                format!(
                    "not readable by jumpd after it drops its capabilities ({})",
                    describe_owner(st)
                ),
            )
            .with_help(if is_dir {
                "give root read and search permission: `chmod u+rx`"
            } else {
                "give root read permission: `chmod u+r`"
            }),
        ));
    }
    out
}

/// The directories above the policy directory must not let anyone but root replace it. A
/// sticky directory (`/tmp`) is fine: only an entry's owner may rename or remove it there.
fn check_ancestors(dir: &Path) -> Vec<ModeIssue> {
    // Both where the path says (a symlink's own directory decides who may swap it) and where
    // it leads.
    let mut chain: Vec<PathBuf> = Vec::new();
    for base in [
        std::path::absolute(dir).ok(),
        std::fs::canonicalize(dir).ok(),
    ]
    .into_iter()
    .flatten()
    {
        for a in base.ancestors().skip(1) {
            if !chain.iter().any(|c| c == a) {
                chain.push(a.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    for a in &chain {
        let Ok(st) = nix::sys::stat::stat(a) else {
            continue;
        };
        let sticky = st.st_mode & 0o1000 != 0;
        if st.st_uid != 0 || (st.st_mode & 0o022 != 0 && !sticky) {
            out.push(ModeIssue::Writable(Diagnostic::error(
                Span::file(&a.display().to_string()),
                format!(
                    "directory above the policy directory is writable by others than root ({}): they could replace the policy",
                    describe_owner(&st)
                ),
            )));
        }
    }
    out
}

/// Checks a config file the way `check_mode` checks a policy file (jumpd refuses it).
pub fn check_config_file(path: &Path) -> Result<(), String> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: cannot open: {}", path.display(), errno_text(e)))?;
    let st = fstat(fd.as_fd()).map_err(|e| format!("{}: {}", path.display(), errno_text(e)))?;
    if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return Err(format!(
            "{}: config file is writable by others than root ({}): refusing it",
            path.display(),
            describe_owner(&st)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_yaml_forbids_are_errors_at_their_position() {
        assert_eq!(
            decode(b"a: 1\nb: x\0y\n".to_vec()).unwrap_err(),
            (
                2,
                5,
                "NUL byte: a policy file is text, and YAML does not allow NUL".into()
            )
        );
        assert_eq!(
            decode(b"a: \x07\n".to_vec()).unwrap_err().2,
            "character U+0007 is not allowed in YAML (control characters other than tab and line breaks are not)"
        );
        assert_eq!(
            decode(b"a: 1\n  \xff\n".to_vec()).unwrap_err(),
            (2, 3, "invalid UTF-8: a policy file is UTF-8 text".into())
        );
        assert_eq!(
            decode("a: \u{FEFF}\n".as_bytes().to_vec()).unwrap_err().0,
            1,
            "a BOM inside the file"
        );
        assert_eq!(decode(b"\xEF\xBB\xBFa: 1\n".to_vec()).unwrap(), "a: 1\n");
        assert_eq!(decode(b"a:\t1\r\n".to_vec()).unwrap(), "a:\t1\r\n");
        assert!(decode("x: \u{85}é\n".as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn policy_names_any_case_never_hidden() {
        for n in ["a.yaml", "B.YAML", "c.Yml", "d.yml"] {
            assert!(is_policy_name(OsStr::new(n)), "{n}");
        }
        for n in [".a.yaml", ".a.yaml.swp", "a.yaml~", "README.md", "a.json"] {
            assert!(!is_policy_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn a_config_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("jump-config-{}.yaml", std::process::id()));
        std::fs::write(&d, "watch: true\n").unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o620)).unwrap();
        let e = check_config_file(&d).unwrap_err();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ok = check_config_file(&d);
        std::fs::remove_file(&d).unwrap();
        assert_eq!(
            e,
            format!(
                "{}: config file is writable by others than root (owner root (uid 0), mode 0620): refusing it",
                d.display()
            )
        );
        assert_eq!(ok, Ok(()));
    }
}

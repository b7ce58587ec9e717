//! Several jump hosts on one policy: the layout of jump's keys in etcd, the state each jumpd
//! publishes there, and the etcd client calls jumpd and jumpctl share (`client`). This module
//! alone knows the key layout; what is read from etcd is untrusted until it went through
//! `policy::load_named` (policies) or `NodeStatus::sanitized` (other hosts' state).
//!
//! ```text
//! PREFIX policies/NAME.yaml   one policy file each (jumpctl push writes them in one transaction)
//! PREFIX status/NODE          one host's state, JSON, under a lease (gone when the host is)
//! ```

pub mod client;

use serde::{Deserialize, Serialize};

use crate::policy::{self, Diagnostic, Named, PolicyErrors, Span};

pub const DEFAULT_PREFIX: &str = "/jump/";

/// Where a fleet's keys are and how to reach etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Ends with `/`.
    pub prefix: String,
    pub tls: Option<Tls>,
}

/// PEM files. A CA alone verifies the server; with a certificate and key the client proves
/// itself too (mutual TLS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: std::path::PathBuf,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// A prefix as given, checked and with its trailing `/`.
pub fn normalize_prefix(p: &str) -> Result<String, String> {
    if !p.starts_with('/') || crate::escape::escape(p) != p || p.contains("//") {
        return Err(format!(
            "invalid etcd prefix `{}`: it starts with `/`, and holds no `//`, backslash or control character",
            crate::escape::escape(p)
        ));
    }
    if p.len() > 200 {
        return Err("invalid etcd prefix: longer than 200 bytes".into());
    }
    Ok(if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    })
}

/// A node name goes into a key (`PREFIX status/NODE`): a host name's letters only, so it
/// cannot reach another key (`../policies/x`) or hide in a listing.
pub fn check_node_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && !n.starts_with(['.', '-'])
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid node name `{}`: 1 to 64 of `A-Z a-z 0-9 . - _`, not starting with `.` or `-`",
            crate::escape::escape(n)
        ))
    }
}

/// The host name, jumpd's node name unless one is given.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

pub fn policies_key(prefix: &str) -> String {
    format!("{prefix}policies/")
}

pub fn status_key(prefix: &str, node: &str) -> String {
    format!("{prefix}status/{node}")
}

/// How a key reads in an error: lossy UTF-8, escaped, at most 200 characters.
pub fn show_key(key: &[u8]) -> String {
    let s = String::from_utf8_lossy(key);
    let s: String = s.chars().take(200).collect();
    crate::escape::escape(&s).into_owned()
}

/// The policy files among `PREFIX policies/…` keys. Names that are not policy files
/// (`README.md`, `.x.yaml`) are skipped as a directory's are; a key no directory entry could
/// be named like (`policies/a/b.yaml`, `policies/..`, bytes that are not UTF-8) is an error.
pub fn policy_files(
    prefix: &str,
    kvs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<Vec<Named>, PolicyErrors> {
    let dir = policies_key(prefix);
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in kvs {
        let shown = show_key(&key);
        let Some(rest) = key.strip_prefix(dir.as_bytes()) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(rest) else {
            errors.push(Diagnostic::error(
                Span::file(&shown),
                "not a policy file name: the key is not UTF-8",
            ));
            continue;
        };
        if let Some(why) = policy::bad_file_name(name) {
            errors.push(Diagnostic::error(
                Span::file(&shown),
                format!("not a policy file name: {why}"),
            ));
            continue;
        }
        if !policy::is_policy_name(std::ffi::OsStr::new(name)) {
            continue;
        }
        files.push(Named {
            shown,
            name: name.to_string(),
            bytes: value,
        });
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(PolicyErrors::new(errors))
    }
}

/// What jumpd publishes at `PREFIX status/NODE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    /// The etcd revision of the policy in force (0: none from etcd yet).
    pub revision: i64,
    pub generation: u64,
    pub sha256: String,
    /// Of the last attempt: `applied` or `rejected`.
    pub result: String,
    /// The revision the last attempt read.
    pub attempted_revision: i64,
    /// Why the last attempt was rejected, one per line of the error.
    #[serde(default)]
    pub errors: Vec<String>,
    /// When the last attempt was made (RFC 3339).
    pub at: String,
    /// When this entry was written.
    pub published_at: String,
    pub version: String,
    /// Where the policy in force came from: `etcd`, `cache` or `policy-dir`.
    pub source: String,
}

/// Bounds on what `jumpctl fleet` shows of another host's entry: whoever can write a status
/// key (any jump host) must not flood or forge the table.
pub const MAX_STATUS_BYTES: usize = 64 << 10;
const MAX_FIELD_CHARS: usize = 200;
const MAX_ERRORS: usize = 20;

impl NodeStatus {
    /// Parses another host's entry: at most `MAX_STATUS_BYTES`, strings cut and escaped.
    pub fn parse_untrusted(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_STATUS_BYTES {
            return Err(format!(
                "status entry of {} bytes, more than {MAX_STATUS_BYTES}",
                bytes.len()
            ));
        }
        let s: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable status entry: {e}"))?;
        Ok(s.sanitized())
    }

    fn sanitized(mut self) -> Self {
        let clean = |s: &mut String| {
            let cut: String = s.chars().take(MAX_FIELD_CHARS).collect();
            *s = crate::escape::escape(&cut).into_owned();
        };
        for f in [
            &mut self.node,
            &mut self.sha256,
            &mut self.result,
            &mut self.at,
            &mut self.published_at,
            &mut self.version,
            &mut self.source,
        ] {
            clean(f);
        }
        self.errors.truncate(MAX_ERRORS);
        for e in &mut self.errors {
            clean(e);
        }
        self
    }
}

/// jumpd's etcd link as `jumpctl status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdView {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub node: String,
    /// The revision in force (0: none from etcd).
    pub revision: i64,
    pub source: String,
    pub reachable: bool,
    /// Since when etcd could not be reached (RFC 3339), while it cannot.
    pub unreachable_since: Option<String>,
    pub last_error: Option<String>,
}

impl EtcdView {
    /// The lines `jumpctl status` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "etcd:        {} (prefix {}, node {}): revision {} in force (from {})\n",
            self.endpoints.join(","),
            self.prefix,
            self.node,
            self.revision,
            self.source
        );
        match &self.unreachable_since {
            Some(since) => out.push_str(&format!(
                "             etcd unreachable since {since}: {}; enforcing revision {}\n",
                crate::escape::escape(self.last_error.as_deref().unwrap_or("")),
                self.revision
            )),
            None if self.reachable => out.push_str("             etcd reachable, watching\n"),
            None => out.push_str("             connecting to etcd\n"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &[u8], v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn keys_become_file_names_and_odd_keys_errors() {
        let files = policy_files(
            "/jump/",
            [
                kv(b"/jump/policies/ops.yaml", "{}"),
                kv(b"/jump/policies/README.md", "x"),
                kv(b"/jump/policies/.draft.yaml", "x"),
            ],
        )
        .unwrap();
        assert_eq!(files.len(), 1, "only the policy file");
        assert_eq!(
            (files[0].shown.as_str(), files[0].name.as_str()),
            ("/jump/policies/ops.yaml", "ops.yaml")
        );
        let e = policy_files(
            "/jump/",
            [
                kv(b"/jump/policies/../status/x.yaml", "{}"),
                kv(b"/jump/policies/a\xff.yaml", "{}"),
                kv(b"/jump/policies/\x1b[2Ka.yaml", "{}"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "/jump/policies/../status/x.yaml: not a policy file name: a file name cannot hold `/` (policies are not read from subdirectories)\n\
             /jump/policies/\\e[2Ka.yaml: not a policy file name: the file name holds a backslash, a control or an invisible character\n\
             /jump/policies/a\u{fffd}.yaml: not a policy file name: the key is not UTF-8"
        );
    }

    #[test]
    fn node_names_cannot_reach_other_keys() {
        for bad in [
            "",
            "../policies/x.yaml",
            "a/b",
            ".hidden",
            "-x",
            "a b",
            "a\0b",
            &"x".repeat(65),
        ] {
            assert!(check_node_name(bad).is_err(), "{bad:?}");
        }
        for good in ["jump1", "jump-2.example.org", "host_3"] {
            assert_eq!(check_node_name(good), Ok(()));
        }
    }

    #[test]
    fn prefixes_are_normalized_or_refused() {
        assert_eq!(normalize_prefix("/jump").unwrap(), "/jump/");
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "/a/b/");
        assert!(normalize_prefix("jump/").is_err());
        assert!(normalize_prefix("/a//b/").is_err());
        assert!(normalize_prefix("/a\n/").is_err());
    }

    #[test]
    fn another_hosts_status_is_bounded_and_escaped() {
        let forged = serde_json::json!({
            "node": "x\u{1b}[1A\u{1b}[2Kjump1 applied", "revision": 5, "generation": 1,
            "sha256": "a".repeat(5000), "result": "applied", "attempted_revision": 5,
            "errors": vec!["e"; 1000], "at": "", "published_at": "", "version": "", "source": ""
        });
        let s = NodeStatus::parse_untrusted(forged.to_string().as_bytes()).unwrap();
        assert_eq!(s.node, "x\\e[1A\\e[2Kjump1 applied");
        assert_eq!(s.sha256.len(), 200);
        assert_eq!(s.errors.len(), 20);
        assert!(NodeStatus::parse_untrusted(&vec![b' '; MAX_STATUS_BYTES + 1]).is_err());
        assert!(NodeStatus::parse_untrusted(b"{\"node\": 1}").is_err());
    }
}

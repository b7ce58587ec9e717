//! `jumpctl push` and `jumpctl fleet`: a policy directory into etcd for every jump host, and
//! every host's state out of it (`fleet`). Other hosts' entries are untrusted input: they are
//! parsed with bounds and escaped before they reach the terminal (`NodeStatus::parse_untrusted`).

use std::{io::Write, path::PathBuf};

use clap::Args;

use super::exit;
use crate::{
    compile,
    fleet::{self, client, Connection, NodeStatus, Tls},
    policy::{self, Diagnostic, Severity},
    resolve::{directory::SubuidRange, Directory, FakeDirectory},
};

#[derive(Debug, Clone, Args)]
pub struct EtcdArgs {
    /// etcd endpoints, `http(s)://host:port`, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "URL[,URL…]"
    )]
    pub etcd: Vec<String>,
    /// Key prefix of the fleet
    #[arg(long, default_value = fleet::DEFAULT_PREFIX)]
    pub prefix: String,
    /// PEM CA certificate of etcd's server certificate (TLS)
    #[arg(long)]
    pub etcd_ca: Option<PathBuf>,
    /// PEM client certificate (mutual TLS, with --etcd-key)
    #[arg(long)]
    pub etcd_cert: Option<PathBuf>,
    /// PEM key of --etcd-cert
    #[arg(long)]
    pub etcd_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The policy directory
    pub dir: PathBuf,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// With --passwd/--group the hosts' accounts are checked: unknown ones are errors
    #[command(flatten)]
    pub accounts: super::offline::AccountArgs,
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

impl EtcdArgs {
    fn connection(&self) -> Result<Connection, String> {
        let tls = match (&self.etcd_ca, &self.etcd_cert, &self.etcd_key) {
            (None, None, None) => None,
            (Some(ca), c, k) if c.is_some() == k.is_some() => Some(Tls {
                ca: ca.clone(),
                cert: c.clone(),
                key: k.clone(),
            }),
            _ => {
                return Err(
                    "etcd TLS: --etcd-ca, and both or neither of --etcd-cert and --etcd-key".into(),
                )
            }
        };
        Ok(Connection {
            endpoints: self.etcd.clone(),
            prefix: fleet::normalize_prefix(&self.prefix)?,
            tls,
        })
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Users and groups unknown here are resolved by each jump host: for `push` they stand for
/// nobody, so the rest of the policy is still compiled and checked.
struct Lenient<'a>(&'a dyn Directory);

/// The uid an unknown user stands for while checking: nobody's.
const PLACEHOLDER_UID: u32 = u32::MAX - 2;

impl Directory for Lenient<'_> {
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.0.uid_of(name).or(Some(PLACEHOLDER_UID))
    }
    fn uid_exists(&self, _uid: u32) -> bool {
        true
    }
    fn group_members(&self, name: &str) -> Option<Vec<u32>> {
        self.0.group_members(name).or(Some(Vec::new()))
    }
    fn ifindex(&self, name: &str) -> Option<u32> {
        self.0.ifindex(name)
    }
    fn subuid_ranges(&self) -> Vec<SubuidRange> {
        self.0.subuid_ranges()
    }
    fn account_uids(&self) -> std::collections::BTreeSet<u32> {
        self.0.account_uids()
    }
    fn snapshot(&self) -> Option<FakeDirectory> {
        None
    }
}

/// Whether an error only says a user or group is unknown on this machine.
fn is_unknown_account(d: &Diagnostic) -> bool {
    d.message.starts_with("unknown user `") || d.message.starts_with("unknown group `")
}

/// `validate`, with accounts unknown here as warnings. Returns the files to push, or 1.
/// `lenient: false` (accounts files given): unknown accounts stay errors.
pub fn check_for_push(
    dir: &std::path::Path,
    directory: &dyn Directory,
    lenient: bool,
    now: jiff::Timestamp,
    err: &mut dyn Write,
) -> Result<Vec<policy::Named>, u8> {
    let fail = |err: &mut dyn Write, e: &policy::PolicyErrors| {
        let _ = writeln!(err, "{e}");
        let _ = writeln!(err, "error: invalid policy, nothing pushed");
        exit::FAIL
    };
    let (files, mut warnings) = policy::read_named(dir).map_err(|e| fail(err, &e))?;
    let loaded =
        policy::load_named(files.clone(), &dir.display().to_string()).map_err(|e| fail(err, &e))?;
    warnings.extend(loaded.warnings.iter().cloned());
    match compile::compile_full(&loaded.policy, directory, now) {
        Ok(c) => warnings.extend(c.warnings),
        Err(e) => {
            let (mut unknown, real): (Vec<Diagnostic>, Vec<Diagnostic>) = e
                .errors
                .into_iter()
                .partition(|d| lenient && is_unknown_account(d));
            if !real.is_empty() {
                return Err(fail(err, &policy::PolicyErrors::new(real)));
            }
            for d in &mut unknown {
                d.severity = Severity::Warning;
                d.help = Some("not known on this machine; each jump host resolves it".into());
            }
            warnings.extend(unknown);
            let c = compile::compile_full(&loaded.policy, &Lenient(directory), now)
                .map_err(|e| fail(err, &e))?;
            warnings.extend(c.warnings);
        }
    }
    for w in &warnings {
        let _ = writeln!(err, "{w}");
    }
    Ok(files)
}

pub fn push(a: &PushArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let Some(directory) = a.accounts.load(err) else {
        return exit::ERROR;
    };
    let lenient = a.accounts.passwd.is_none() && a.accounts.group.is_none();
    let files = match check_for_push(&a.dir, &directory, lenient, jiff::Timestamp::now(), err) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let conn = match a.etcd.connection() {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    };
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                String::from_utf8_lossy(&f.bytes).into_owned(),
            )
        })
        .collect();
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let c = client::connect(&conn).await?;
            client::replace_policy(&c, &conn.prefix, &texts).await
        })
    });
    match result {
        Ok(revision) => {
            let _ = writeln!(
                out,
                "pushed {} policy file{} to {}policies/ at revision {revision}",
                texts.len(),
                if texts.len() == 1 { "" } else { "s" },
                conn.prefix
            );
            exit::OK
        }
        Err(e) => {
            let _ = writeln!(err, "error: push failed, nothing changed: {e}");
            exit::ERROR
        }
    }
}

/// One host in `jumpctl fleet`.
#[derive(Debug, serde::Serialize)]
struct Host {
    node: String,
    /// `None`: its entry is unreadable.
    status: Option<NodeStatus>,
    problem: Option<String>,
    current: bool,
}

/// Whether every live host applied `latest`, and each host's line. `latest`: the newest
/// revision of the policy keys, or a newer one hosts attempted (a deletion's) that is not
/// beyond the store's own revision `store` (a host cannot make up a future one).
fn judge(entries: client::Entries, newest: i64, store: i64) -> (i64, Vec<Host>) {
    let latest = entries
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .map(|s| s.attempted_revision)
        .filter(|r| *r <= store)
        .fold(newest, i64::max);
    let hosts = entries
        .into_iter()
        .map(|(node, s)| match s {
            Ok(s) => {
                let current = s.result == "applied" && s.revision == latest;
                let problem = if s.attempted_revision > store {
                    Some(format!(
                        "claims revision {} beyond the store's {store}",
                        s.attempted_revision
                    ))
                } else if s.result != "applied" {
                    Some(format!(
                        "rejected revision {}: {}",
                        s.attempted_revision,
                        s.errors.join(" | ")
                    ))
                } else if s.revision != latest {
                    Some(format!(
                        "behind: revision {} in force, latest is {latest}",
                        s.revision
                    ))
                } else {
                    None
                };
                Host {
                    node,
                    status: Some(s),
                    problem,
                    current,
                }
            }
            Err(e) => Host {
                node,
                status: None,
                problem: Some(crate::escape::escape(&e).into_owned()),
                current: false,
            },
        })
        .collect();
    (latest, hosts)
}

pub fn fleet(a: &FleetArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let conn = match a.etcd.connection() {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    };
    let read = runtime().and_then(|rt| {
        rt.block_on(async {
            let c = client::connect(&conn).await?;
            let policy = client::read_policy(&c, &conn.prefix, None).await?;
            let (entries, store) = client::read_statuses(&c, &conn.prefix).await?;
            Ok::<_, String>((policy.newest, entries, store.max(policy.header_revision)))
        })
    });
    let (newest, entries, store) = match read {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return exit::ERROR;
        }
    };
    let (latest, hosts) = judge(entries, newest, store);
    let all = !hosts.is_empty() && hosts.iter().all(|h| h.current);
    if a.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"latest_revision": latest, "all_current": all, "hosts": hosts})
        );
    } else {
        let _ = writeln!(out, "latest policy revision: {latest}");
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>10} {:<12} {:<9} LAST SEEN",
            "NODE", "REVISION", "GENERATION", "SHA256", "RESULT"
        );
        for h in &hosts {
            match &h.status {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{:<24} {:>9} {:>10} {:<12} {:<9} {}",
                        h.node,
                        s.revision,
                        s.generation,
                        s.sha256.chars().take(12).collect::<String>(),
                        s.result,
                        s.published_at
                    );
                }
                None => {
                    let _ = writeln!(out, "{:<24} unreadable", h.node);
                }
            }
            if let Some(p) = &h.problem {
                let _ = writeln!(out, "  {p}");
            }
        }
        if hosts.is_empty() {
            let _ = writeln!(out, "no live jump hosts under {}status/", conn.prefix);
        }
    }
    if all {
        exit::OK
    } else {
        exit::FAIL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(node: &str, revision: i64, attempted: i64, result: &str) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            revision,
            attempted_revision: attempted,
            result: result.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_fleet_is_current_only_when_every_host_applied_the_latest() {
        let e = |v: Vec<NodeStatus>| -> client::Entries {
            v.into_iter().map(|s| (s.node.clone(), Ok(s))).collect()
        };
        let (l, h) = judge(
            e(vec![st("a", 7, 7, "applied"), st("b", 7, 7, "applied")]),
            7,
            9,
        );
        assert_eq!(l, 7);
        assert!(h.iter().all(|h| h.current));
        let (l, h) = judge(
            e(vec![st("a", 7, 8, "rejected"), st("b", 7, 8, "rejected")]),
            8,
            9,
        );
        assert_eq!(l, 8);
        assert_eq!(h[0].problem.as_deref(), Some("rejected revision 8: "));
        let (_, h) = judge(e(vec![st("a", 5, 5, "applied")]), 7, 9);
        assert_eq!(
            h[0].problem.as_deref(),
            Some("behind: revision 5 in force, latest is 7")
        );
        // A host cannot hold the others back with a made-up future revision.
        let (l, h) = judge(
            e(vec![
                st("a", 7, 7, "applied"),
                st("liar", 99, 99, "applied"),
            ]),
            7,
            9,
        );
        assert_eq!(l, 7);
        assert!(h[0].current);
        assert!(!h[1].current);
    }

    #[test]
    fn push_warns_of_unknown_accounts_and_refuses_real_errors() {
        let dir = std::env::temp_dir().join(format!("jump-push-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("p.yaml"),
            "rules:\n  - name: a\n    users: [alice, ghost]\n    allow: [{to: 198.51.100.0/24}]\n",
        )
        .unwrap();
        let d = FakeDirectory::default().user("alice", 1000, 1000);
        let now = jiff::Timestamp::now();
        let mut err = Vec::new();
        let ok = check_for_push(&dir, &d, true, now, &mut err);
        let mut strict_err = Vec::new();
        let strict = check_for_push(&dir, &d, false, now, &mut strict_err);
        let warned = String::from_utf8(err).unwrap();
        std::fs::write(
            dir.join("q.yaml"),
            "rules:\n  - name: b\n    users: [alice]\n    allow: [{to: 198.51.100.0/33}]\n",
        )
        .unwrap();
        let mut err = Vec::new();
        let bad = check_for_push(&dir, &d, true, now, &mut err);
        let refused = String::from_utf8(err).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(ok.unwrap().len(), 1);
        let f = dir.join("p.yaml").display().to_string();
        assert_eq!(
            warned,
            format!("{f}:3:20: warning: unknown user `ghost`\n  help: not known on this machine; each jump host resolves it\n")
        );
        assert_eq!(bad.unwrap_err(), exit::FAIL);
        assert_eq!(
            strict.unwrap_err(),
            exit::FAIL,
            "with the hosts' accounts given, unknown is an error"
        );
        assert!(String::from_utf8(strict_err)
            .unwrap()
            .contains("error: invalid policy, nothing pushed"));
        assert!(
            refused.ends_with("error: invalid policy, nothing pushed\n"),
            "{refused}"
        );
        assert!(refused.contains("q.yaml:4:"), "{refused}");
    }
}

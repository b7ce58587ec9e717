//! The control socket: how `jumpctl` talks to a running jumpd.
//!
//! A Unix stream socket (default `/run/jump/jumpd.sock`), owned by root and the admin group
//! (default `jump-admin`), mode 0660. The kernel already refuses `connect()` to anyone without
//! write permission on it; jumpd checks again with the caller's SO_PEERCRED credentials, against
//! the admin group as /etc/group lists it *now* (so removing someone from the group revokes a
//! session that still carries the old group), and logs every request and every refusal with the
//! caller's uid and pid.
//!
//! # Protocol
//! Line-delimited JSON: the client writes one request per line, jumpd answers each with one
//! reply line (or, for `events` with `follow`, a stream of lines until either side closes).
//!
//! Requests, tagged by `cmd`:
//! ```text
//! {"cmd":"status"}
//! {"cmd":"reload"}
//! {"cmd":"stats"}
//! {"cmd":"events","follow":false,"user":"alice","verdict":"deny"}   filters optional
//! {"cmd":"check","user":"alice","dest":"198.51.100.7:22/tcp","at":"2026-01-01T09:00:00Z"}
//! {"cmd":"detach"}
//! {"cmd":"grant","user":"alice","dests":["198.51.100.7:22"],"duration":"2h","reason":"INC-1"}
//! {"cmd":"grants"}
//! {"cmd":"revoke","id":3}
//! {"cmd":"show","user":"alice"}                                    user optional
//! ```
//! Replies: `{"ok":true,"data":…}` with `data` a `Status`, `ReloadOutcome`, `Stats`, a list of
//! event records, a check report or a `Detached`; with `follow`, one `{"ok":true,"data":RECORD}`
//! per event. Failures: `{"ok":false,"kind":K,"error":"…"}` with `K` one of `refused` (not
//! root or admin), `rejected` (the reload's policy did not validate; the active one stays),
//! `invalid` (a malformed request or argument), `lagged` (a follower too slow for the event
//! rate, disconnected), `failed` (anything else).
//!
//! A follower never slows the daemon down: events reach it through a bounded broadcast
//! channel, and one that falls `EVENT_BACKLOG` events behind is told so and disconnected.

use std::{
    collections::VecDeque,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{broadcast, mpsc, oneshot},
};

use super::diff::Diff;
use crate::events::Record;

/// Events a follower may fall behind before it is disconnected.
pub const EVENT_BACKLOG: usize = 1024;
/// Events kept for `jumpctl events` without `--follow`.
pub const RECENT_EVENTS: usize = 256;
/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// Connections served at once; one more is told so and closed. Each holds a descriptor, and
/// jumpd needs descriptors of its own to reload (the unit's `LimitNOFILE` is well above this).
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no complete request for this long is closed (idle or half-open).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A reply (or followed event) the peer does not take within this long closes the connection:
/// a client that stopped reading must not hold a slot.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `write_all` bounded by `WRITE_TIMEOUT`.
async fn send<W: AsyncWriteExt + Unpin>(wr: &mut W, line: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(line.as_bytes())).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("the peer took no reply for {WRITE_TIMEOUT:?}"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Reload,
    Stats,
    Events {
        #[serde(default)]
        follow: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
    },
    Check {
        user: String,
        dest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// `--login`: the audit login uid of the process asked about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        login: Option<String>,
    },
    Detach,
    /// `jumpctl grant`.
    Grant(super::grants::GrantRequest),
    /// `jumpctl grants`.
    Grants,
    /// `jumpctl revoke ID`.
    Revoke {
        id: u64,
    },
    /// The effective policy, of one user or of everyone (`jumpctl show`).
    Show {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Reload => "reload",
            Request::Stats => "stats",
            Request::Events { .. } => "events",
            Request::Check { .. } => "check",
            Request::Detach => "detach",
            Request::Grant(_) => "grant",
            Request::Grants => "grants",
            Request::Revoke { .. } => "revoke",
            Request::Show { .. } => "show",
        }
    }
}

/// Why a request failed; `jumpctl` maps each to an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Refused,
    Rejected,
    Invalid,
    Lagged,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Reply {
    pub fn ok(data: impl Serialize) -> Self {
        Self {
            ok: true,
            kind: None,
            error: None,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }

    pub fn err(kind: ErrorKind, error: impl Into<String>) -> Self {
        Self {
            ok: false,
            kind: Some(kind),
            error: Some(error.into()),
            data: Value::Null,
        }
    }

    /// With a payload even though it failed (a rejected reload still reports the status).
    pub fn err_with(kind: ErrorKind, error: impl Into<String>, data: impl Serialize) -> Self {
        Self {
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            ..Self::err(kind, error)
        }
    }

    /// One protocol line, newline included.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"ok":false,"kind":"failed","error":"cannot encode the reply: {e}"}}"#)
        });
        s.push('\n');
        s
    }
}

/// The result of the last reload attempt, as `jumpctl status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    pub ok: bool,
    /// What asked for it: `start`, `sighup`, `jumpctl`, `watch: /etc/group`, …
    pub trigger: String,
    /// RFC 3339.
    pub at: String,
    /// The generation in force afterwards.
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Diff>,
    /// `rules +a; users -1001`, or `no change`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub decisions: u64,
    pub events_sent: u64,
    pub events_suppressed: u64,
    /// Held back by their uid's event budget (summarised per uid).
    #[serde(default)]
    pub events_over_budget: u64,
    /// Lost in the kernel: the ring buffer was full.
    pub events_dropped: u64,
    /// Followers disconnected for being too slow.
    pub followers_dropped: u64,
    /// Times the maps were found rewritten behind jumpd's back (and restored).
    #[serde(default)]
    pub maps_tampered: u64,
}

/// The tamper check of the maps jumpd owns (`datapath::integrity`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Read-backs done.
    pub checks: u64,
    pub last_check_at: Option<String>,
    pub last_tampering: Option<Tampering>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tampering {
    pub at: String,
    pub generation: u64,
    /// What differed, one line per map.
    pub what: Vec<String>,
    /// Whether the maps read back as written after the restore.
    pub restored: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub mode: String,
    pub cgroup: String,
    pub policy_dir: String,
    pub generation: u64,
    pub policy_sha256: String,
    pub rules: usize,
    pub users: usize,
    pub profiles: usize,
    pub hooks: Vec<String>,
    pub started_at: String,
    pub uptime_secs: u64,
    pub last_reload: Option<ReloadOutcome>,
    pub counters: Counters,
    pub capabilities: Vec<String>,
    pub watching: Vec<String>,
    #[serde(default)]
    pub integrity: Integrity,
    /// The etcd policy source, when jumpd has one.
    #[serde(default)]
    pub etcd: Option<crate::fleet::EtcdView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStats {
    pub id: u32,
    pub name: String,
    pub location: String,
    pub allow: u64,
    pub deny: u64,
    /// Allowed, logged as "would deny" (audit rules, or everything in audit mode).
    pub audit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub generation: u64,
    pub rules: Vec<RuleStats>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    pub cgroup: String,
    pub hooks: Vec<String>,
}

/// A caller, from SO_PEERCRED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = nix::unistd::User::from_uid(self.uid.into())
            .ok()
            .flatten()
            .map(|u| format!(" ({})", u.name))
            .unwrap_or_default();
        write!(f, "uid {}{name}", self.uid)?;
        if let Some(pid) = self.pid {
            write!(f, " pid {pid}")?;
        }
        Ok(())
    }
}

/// The admin group as /etc/group has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminGroup {
    pub gid: u32,
    pub members: Vec<String>,
}

/// Root, the admin group as primary group of the caller's process or of its account, or a
/// member listed in /etc/group. Pure; `user` is the caller's account (name, primary gid).
pub fn authorized(peer: &Peer, user: Option<(&str, u32)>, admin: Option<&AdminGroup>) -> bool {
    if peer.uid == 0 {
        return true;
    }
    let Some(admin) = admin else { return false };
    peer.gid == admin.gid
        || user.is_some_and(|(name, primary)| {
            primary == admin.gid || admin.members.iter().any(|m| m == name)
        })
}

fn admin_group(name: &str) -> Option<AdminGroup> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| AdminGroup {
            gid: g.gid.as_raw(),
            members: g.mem,
        })
}

/// Whether a record passes `jumpctl events` filters: `user` is a name or uid, `verdict` one of
/// `allow`, `deny`, `would-deny` (or `audit`).
pub fn matches(r: &Record, user: Option<&str>, verdict: Option<&str>) -> bool {
    let user_ok = user.is_none_or(|u| u == r.user || u == r.uid.to_string());
    let verdict_ok = verdict.is_none_or(|v| v.parse() == Ok(r.verdict));
    user_ok && verdict_ok
}

/// The verdicts `jumpctl events --verdict` knows (`audit` is `would-deny`).
pub const VERDICTS: [&str; 4] = crate::verdict::Verdict::ACCEPTED;

/// Checks `jumpctl events` filters, so a typo is an error rather than an empty answer: the
/// verdict must be one of `VERDICTS`, the user a uid or a name `known` accepts.
pub fn check_filters(
    user: Option<&str>,
    verdict: Option<&str>,
    known: impl Fn(&str) -> bool,
) -> Result<(), String> {
    if let Some(v) = verdict.filter(|v| !VERDICTS.contains(v)) {
        return Err(format!(
            "unknown verdict `{}`: expected allow, deny or would-deny",
            crate::escape::escape(v)
        ));
    }
    if let Some(u) = user.filter(|u| u.parse::<u32>().is_err() && !known(u)) {
        return Err(format!("unknown user `{}`", crate::escape::escape(u)));
    }
    Ok(())
}

fn account_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

/// Decision records fanned out to followers, and the last few for `events` without follow.
pub struct Bus {
    tx: broadcast::Sender<Arc<Record>>,
    recent: Mutex<VecDeque<Arc<Record>>>,
    pub followers_dropped: std::sync::atomic::AtomicU64,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(EVENT_BACKLOG).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
            followers_dropped: Default::default(),
        }
    }

    /// Never blocks: broadcast drops the oldest entry for a receiver that lags.
    pub fn publish(&self, r: Record) {
        let r = Arc::new(r);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(r.clone());
        }
        let _ = self.tx.send(r);
    }

    pub fn recent(&self) -> Vec<Arc<Record>> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A request for the main loop, which owns the kernel and the policy.
pub struct Call {
    pub request: Request,
    pub peer: Peer,
    pub reply: oneshot::Sender<Reply>,
}

/// Creates the socket: parent directory if missing (0750 root:admin), stale socket removed
/// (but never one a live jumpd answers on), owner root:admin, mode 0660.
pub fn bind(path: &Path, group: &str) -> anyhow::Result<UnixListener> {
    let gid = admin_group(group).map(|g| g.gid);
    if gid.is_none() {
        tracing::warn!(
            "group `{group}` does not exist: only root can use the control socket `{}`",
            path.display()
        );
    }
    let gid = gid.map(nix::unistd::Gid::from_raw);
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("failed to create `{}`: {e}", parent.display()))?;
        nix::unistd::chown(parent, None, gid)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o750))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another jumpd answers on the control socket `{}`",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("failed to remove stale `{}`: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        anyhow::anyhow!(
            "failed to create the control socket `{}`: {e}",
            path.display()
        )
    })?;
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), gid)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Removes the socket file when jumpd stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Accepts connections until the runtime stops; each is served on its own task.
pub fn serve(listener: UnixListener, group: String, calls: mpsc::Sender<Call>, bus: Arc<Bus>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::error!("control socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "control socket: {MAX_CONNECTIONS} connections open, refusing another"
                );
                tokio::spawn(async move {
                    let mut stream = stream;
                    let reply = Reply::err(
                        ErrorKind::Failed,
                        format!("busy: {MAX_CONNECTIONS} control connections are open; try again"),
                    );
                    let _ = send(&mut stream, &reply.line()).await;
                });
                continue;
            };
            let (group, calls, bus) = (group.clone(), calls.clone(), bus.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(stream, &group, calls, bus).await {
                    tracing::debug!("control connection ended: {e}");
                }
                drop(slot);
            });
        }
    });
}

async fn connection(
    stream: UnixStream,
    group: &str,
    calls: mpsc::Sender<Call>,
    bus: Arc<Bus>,
) -> anyhow::Result<()> {
    let cred = stream.peer_cred()?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (rd, mut wr) = stream.into_split();
    let account = nix::unistd::User::from_uid(peer.uid.into())
        .ok()
        .flatten()
        .map(|u| (u.name, u.gid.as_raw()));
    let admin = admin_group(group);
    if !authorized(
        &peer,
        account.as_ref().map(|(n, g)| (n.as_str(), *g)),
        admin.as_ref(),
    ) {
        tracing::warn!(
            jump_peer_uid = peer.uid,
            jump_peer_pid = peer.pid,
            "control socket: refused {peer}: neither root nor in group `{group}`"
        );
        let reply = Reply::err(
            ErrorKind::Refused,
            format!(
                "permission denied: uid {} is neither root nor in group `{group}`",
                peer.uid
            ),
        );
        send(&mut wr, &reply.line()).await?;
        return Ok(());
    }
    let mut lines = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut lines).take(MAX_REQUEST as u64 + 1);
        let read = limited.read_line(&mut line);
        let Ok(n) = tokio::time::timeout(IDLE_TIMEOUT, read).await else {
            tracing::debug!("control socket: closing {peer}: no request for {IDLE_TIMEOUT:?}");
            return Ok(());
        };
        let n = n?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_REQUEST {
            let reply = Reply::err(ErrorKind::Invalid, "request too long");
            send(&mut wr, &reply.line()).await?;
            return Ok(());
        }
        let request: Request = match serde_json::from_str(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                let reply = Reply::err(ErrorKind::Invalid, format!("invalid request: {e}"));
                send(&mut wr, &reply.line()).await?;
                continue;
            }
        };
        tracing::info!(
            jump_peer_uid = peer.uid,
            jump_peer_pid = peer.pid,
            jump_control_request = request.name(),
            "control socket: `{}` from {peer}",
            request.name()
        );
        if let Request::Events {
            follow,
            user,
            verdict,
        } = &request
        {
            if let Err(e) = check_filters(user.as_deref(), verdict.as_deref(), account_exists) {
                wr.write_all(Reply::err(ErrorKind::Invalid, e).line().as_bytes())
                    .await?;
                continue;
            }
            // Subscribe before taking the backlog, so nothing falls between the two.
            let mut rx = bus.tx.subscribe();
            let recent: Vec<Value> = bus
                .recent()
                .iter()
                .filter(|r| matches(r, user.as_deref(), verdict.as_deref()))
                .filter_map(|r| serde_json::to_value(&**r).ok())
                .collect();
            if !follow {
                send(&mut wr, &Reply::ok(recent).line()).await?;
                continue;
            }
            loop {
                match rx.recv().await {
                    Ok(r) => {
                        if matches(&r, user.as_deref(), verdict.as_deref()) {
                            send(&mut wr, &Reply::ok(&*r).line()).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        bus.followers_dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(
                            "control socket: dropped a follower ({peer}): {n} events behind"
                        );
                        let reply = Reply::err(
                            ErrorKind::Lagged,
                            format!("disconnected: {n} events behind, too slow to follow"),
                        );
                        let _ = send(&mut wr, &reply.line()).await;
                        return Ok(());
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        calls
            .send(Call {
                request,
                peer: peer.clone(),
                reply: tx,
            })
            .await
            .map_err(|_| anyhow::anyhow!("jumpd is stopping"))?;
        let reply = rx
            .await
            .unwrap_or_else(|_| Reply::err(ErrorKind::Failed, "jumpd is stopping"));
        send(&mut wr, &reply.line()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_encode_as_documented() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (Request::Reload, r#"{"cmd":"reload"}"#),
            (
                Request::Events {
                    follow: true,
                    user: Some("alice".into()),
                    verdict: None,
                },
                r#"{"cmd":"events","follow":true,"user":"alice"}"#,
            ),
            (
                Request::Check {
                    user: "alice".into(),
                    dest: "198.51.100.7:22".into(),
                    at: None,
                    login: None,
                },
                r#"{"cmd":"check","user":"alice","dest":"198.51.100.7:22"}"#,
            ),
            (Request::Detach, r#"{"cmd":"detach"}"#),
            (Request::Show { user: None }, r#"{"cmd":"show"}"#),
            (
                Request::Show {
                    user: Some("alice".into()),
                },
                r#"{"cmd":"show","user":"alice"}"#,
            ),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
        }
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"events"}"#).unwrap(),
            Request::Events {
                follow: false,
                user: None,
                verdict: None
            },
            "filters and follow are optional"
        );
        assert_eq!(
            Reply::err(ErrorKind::Refused, "permission denied").line(),
            "{\"ok\":false,\"kind\":\"refused\",\"error\":\"permission denied\"}\n"
        );
        assert_eq!(
            Reply::ok(Detached {
                cgroup: "/sys/fs/cgroup".into(),
                hooks: vec!["connect4".into()]
            })
            .line(),
            "{\"ok\":true,\"data\":{\"cgroup\":\"/sys/fs/cgroup\",\"hooks\":[\"connect4\"]}}\n"
        );
        let back: Reply =
            serde_json::from_str(Reply::err(ErrorKind::Lagged, "x").line().trim()).unwrap();
        assert_eq!(back.kind, Some(ErrorKind::Lagged));
    }

    #[test]
    fn only_root_and_the_admin_group_are_authorized() {
        let admin = AdminGroup {
            gid: 990,
            members: vec!["alice".into()],
        };
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: None,
        };
        assert!(
            authorized(&peer(0, 0), None, None),
            "root, even without the group"
        );
        assert!(
            authorized(&peer(1001, 1001), Some(("alice", 1001)), Some(&admin)),
            "a listed member"
        );
        assert!(
            authorized(&peer(1003, 990), None, Some(&admin)),
            "the group as the process's gid"
        );
        assert!(
            authorized(&peer(1004, 1004), Some(("dave", 990)), Some(&admin)),
            "the group as the account's primary group"
        );
        assert!(
            !authorized(&peer(1002, 1002), Some(("bob", 1002)), Some(&admin)),
            "anyone else"
        );
        assert!(
            !authorized(&peer(1001, 1001), Some(("alice", 1001)), None),
            "no group: root only"
        );
    }

    fn record(user: &str, uid: u32, verdict: &str) -> Record {
        Record {
            time: String::new(),
            rule_name: String::new(),
            rule_file: None,
            rule_line: None,
            verdict: verdict.parse().unwrap(),
            uid,
            user: user.into(),
            ns_uid: None,
            gid: uid,
            pid: 1,
            comm: String::new(),
            exe: None,
            login_uid: None,
            login_user: None,
            login_trusted: None,
            session_id: None,
            ssh_client: None,
            ssh_client_port: None,
            ssh_server: None,
            ssh_server_port: None,
            proto: "tcp",
            dst_addr: "198.51.100.7".parse().unwrap(),
            dst_port: 22,
            src_addr: None,
            src_port: None,
            rule: "default".into(),
            hook: "connect4",
            decided_by: "uid",
            grant_reason: None,
            option: None,
            policy_generation: 1,
            policy_sha256: String::new(),
            suppressed: 0,
        }
    }

    #[test]
    fn unknown_event_filters_are_errors() {
        let known = |u: &str| u == "alice";
        assert_eq!(check_filters(Some("alice"), Some("deny"), known), Ok(()));
        assert_eq!(check_filters(Some("1001"), Some("audit"), known), Ok(()));
        assert_eq!(check_filters(None, None, known), Ok(()));
        assert_eq!(
            check_filters(None, Some("denied"), known),
            Err("unknown verdict `denied`: expected allow, deny or would-deny".into())
        );
        assert_eq!(
            check_filters(Some("mallory\n"), None, known),
            Err("unknown user `mallory\\n`".into())
        );
    }

    #[test]
    fn event_filters_match_user_by_name_or_uid_and_verdict() {
        let r = record("alice", 1001, "would-deny");
        assert!(matches(&r, None, None));
        assert!(matches(&r, Some("alice"), None));
        assert!(matches(&r, Some("1001"), Some("audit")));
        assert!(matches(&r, None, Some("would-deny")));
        assert!(!matches(&r, Some("bob"), None));
        assert!(!matches(&r, None, Some("deny")));
    }

    #[test]
    fn the_bus_keeps_a_bounded_backlog_and_never_blocks() {
        let bus = Bus::new();
        let mut rx = bus.tx.subscribe();
        for i in 0..(RECENT_EVENTS + EVENT_BACKLOG + 10) as u32 {
            bus.publish(record("u", i, "deny"));
        }
        assert_eq!(bus.recent().len(), RECENT_EVENTS);
        assert_eq!(bus.recent()[0].uid, (EVENT_BACKLOG + 10) as u32);
        assert!(
            matches!(
                rx.try_recv(),
                Err(broadcast::error::TryRecvError::Lagged(_))
            ),
            "a receiver that did not keep up is told it lagged"
        );
    }
}

//! The control protocol between `jumpctl` and jumpd: the wire types both sides use, and
//! nothing else (the daemon serves it in `daemon::control`, the client in `ctl::client`).
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

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where jumpd listens and `jumpctl` connects unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/jump/jumpd.sock";

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
    Grant(GrantRequest),
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

/// The verdicts `jumpctl events --verdict` knows (`audit` is `would-deny`).
pub const VERDICTS: [&str; 4] = crate::verdict::Verdict::ACCEPTED;

/// What a reload changed (`daemon::diff` computes it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    pub users_added: Vec<u32>,
    pub users_removed: Vec<u32>,
    /// The entries themselves changed (networks, ports, windows, defaults), even if no rule or
    /// principal came or went.
    pub entries_changed: bool,
}

/// One grant, as `jumpctl grants` lists it and the state file keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: u64,
    /// The user as the admin named them, and their uid then.
    pub user: String,
    pub uid: u32,
    /// Each as `jumpctl check` writes a destination (`198.51.100.7:22/tcp`).
    pub dests: Vec<String>,
    #[serde(with = "rfc3339")]
    pub from: Timestamp,
    #[serde(with = "rfc3339")]
    pub until: Timestamp,
    pub reason: String,
    /// The audit session the grant is scoped to (`--session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// For a session-scoped grant, when the boot it was made in started (Unix seconds):
    /// session ids count from 1 again at every boot (`daemon::grants::boot_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_boot: Option<i64>,
    /// Who granted it: the control socket peer's uid and pid, and the login uid of that
    /// process (`/proc/PID/loginuid`), the person behind a `sudo`.
    pub granted_by_uid: u32,
    pub granted_by_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by_login_uid: Option<u32>,
}

mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The reply to `show`: the effective policy as jumpd renders it from the image it installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub generation: u64,
    pub mode: String,
    /// The uid asked about (`null`: everyone).
    pub user: Option<u32>,
    pub text: String,
}

/// The reply to `grant`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub grant: Grant,
    /// The generation in force with the grant.
    pub generation: u64,
}

/// The reply to `revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: Grant,
    /// The generation in force without the grant.
    pub generation: u64,
}

/// A grant request as the control socket carries it (`Request::Grant`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    pub user: String,
    pub dests: Vec<String>,
    /// `--for`, like `90m` or `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// `--until`, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
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
}

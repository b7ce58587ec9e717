//! A decoded event made readable: user and rule names, addresses in their family's notation.
//! What the kernel could not know (names, the executable, the session's SSH client, and the
//! audit login uid and session where the kernel did not capture them) is looked up here, in
//! `/proc` (see `proc`) and through caches with a fixed capacity, so a flood of distinct uids,
//! pids or sessions cannot grow the daemon's memory.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
};

use super::{
    pids::{Decider, Pids},
    proc::{Proc, SshConn, UNSET},
};

use jump_common::{action, hook, proto, Event};
use serde::Serialize;

use crate::{
    compile::image::RuleInfo,
    escape::{escape, escape_word},
};

/// One decision, as every sink writes it. Field names are the journald fields without the
/// `JUMP_` prefix, lower-case. `None` means "not known" and the field is left out (here and
/// in every sink).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// When the kernel decided (RFC 3339, UTC): the journal's own timestamp is when jumpd
    /// logged it, which is later for events decided while jumpd was not reading.
    pub time: String,
    pub verdict: &'static str,
    pub uid: u32,
    pub user: String,
    /// The task's own uid where `uid` is the owner of that subordinate uid (a user namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_uid: Option<u32>,
    pub gid: u32,
    pub pid: u32,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The audit login uid (who logged in, whatever `su`/`sudo` did since) and its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    #[serde(skip)]
    pub login_user: Option<String>,
    /// Whether the login uid's session was opened by a privileged process (`login`): only
    /// then does it name the person. `None` without a login uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_trusted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u32>,
    /// The SSH connection of the audit session, from the session's sshd (`proc::ssh_conn`):
    /// the client's address and port, and the jump host's address and port it connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_client_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_server: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_server_port: Option<u16>,
    pub proto: &'static str,
    pub dst_addr: IpAddr,
    pub dst_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The deciding rule as people read it: `ops-ssh (policies/20-access.yaml:7:5)`.
    pub rule: String,
    /// The same, field by field: the rule's name, and where it is written (left out for the
    /// policy default and the compiler's own rules).
    pub rule_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_line: Option<u32>,
    pub hook: &'static str,
    /// The socket option a `setsockopt-*` decision judged, e.g. `IP_FREEBIND`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<&'static str>,
    pub policy_generation: u64,
    pub policy_sha256: String,
    /// Similar events the kernel suppressed before this one (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u32,
}

impl Record {
    /// `deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl`,
    /// with ` as 165536` after the user when the task ran as one of the user's subordinate
    /// uids, followed by ` login=bob(1000)` when someone else logged in (` login=?bob(1000)
    /// (untrusted)` when no privileged process opened that login session), and ` suppressed=N`
    /// when the kernel held back similar events before this one.
    ///
    /// User-controlled text (names, the command, the rule) is escaped (`crate::escape`): this
    /// line is what people read, in the journal, the text sink and `jumpctl events`.
    pub fn message(&self) -> String {
        let ns = self.ns_uid.map(|u| format!(" as {u}")).unwrap_or_default();
        let mut m = format!(
            "{} {}({}){ns} -> {}/{} rule={} hook={} pid={} comm={}",
            self.verdict,
            escape_word(&self.user),
            self.uid,
            socket_addr(self.dst_addr, self.dst_port),
            self.proto,
            escape(&self.rule),
            self.hook,
            self.pid,
            escape_word(&self.comm)
        );
        if let Some(option) = self.option {
            m.push_str(&format!(" option={option}"));
        }
        if let Some(login) = self.login_uid.filter(|l| *l != self.uid) {
            let name = escape_word(self.login_user.as_deref().unwrap_or("?"));
            if self.login_trusted == Some(false) {
                m.push_str(&format!(" login=?{name}({login}) (untrusted)"));
            } else {
                m.push_str(&format!(" login={name}({login})"));
            }
        }
        if self.suppressed > 0 {
            m.push_str(&format!(" suppressed={}", self.suppressed));
        }
        m
    }
}

/// `policies/20-access.yaml:7:5` → (`policies/20-access.yaml`, 7).
fn split_location(loc: &str) -> Option<(String, u32)> {
    let (rest, _col) = loc.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some((file.to_string(), line.parse().ok()?))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn socket_addr(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// An IPv4-mapped IPv6 address (how events carry IPv4) as IPv4, others as they are.
fn unmap(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    v6.to_ipv4_mapped()
        .map(IpAddr::V4)
        .unwrap_or(IpAddr::V6(v6))
}

pub fn verdict_name(a: u8) -> &'static str {
    match a {
        action::ALLOW => "allow",
        action::AUDIT => "would-deny",
        _ => "deny",
    }
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP | proto::ICMPV6 => "icmp",
        _ => "other",
    }
}

/// A map that forgets everything when it is full: cheap, bounded, and right for facts that
/// rarely change (user names, a session's SSH client).
// INVARIANT (bounded): `map.len() <= cap` after every call.
pub(crate) struct BoundedCache<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        assert!(cap > 0, "a cache holds at least one entry");
        Self {
            map: HashMap::new(),
            cap,
        }
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            self.map.clear();
        }
        self.map.insert(k, v);
    }

    pub(crate) fn get_or(&mut self, k: K, f: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(&k) {
            return v.clone();
        }
        let v = f();
        self.insert(k, v.clone());
        v
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// How many user names and sessions the enricher remembers. A host has far fewer active users
/// and sessions; a flood of distinct ones only costs lookups, never memory.
pub const USER_CACHE: usize = 4096;
pub const SESSION_CACHE: usize = 4096;

fn system_user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Turns kernel events into records for the policy generation that is active.
pub struct Enricher {
    proc: Proc,
    /// What `proc` said per live process (`pids`).
    pids: Pids,
    logins: super::login::LoginTrust,
    user_name: fn(u32) -> Option<String>,
    users: BoundedCache<u32, String>,
    /// SSH connection by audit session id. Only final answers are kept (see
    /// `SshSearch::complete`); session ids are never reused, so a final answer stays true.
    ssh: BoundedCache<u32, Option<SshConn>>,
    /// Rule table and hash of each generation still in use; the kernel may report the previous
    /// generation for a decision made just before a switch.
    generations: Vec<(u64, Vec<RuleInfo>, String)>,
    /// CLOCK_TAI − CLOCK_REALTIME in ns: events carry CLOCK_TAI.
    tai_offset_ns: i64,
    /// Now in (CLOCK_TAI, CLOCK_BOOTTIME) ns.
    clocks: fn() -> (u64, u64),
}

fn system_clocks() -> (u64, u64) {
    use nix::time::{clock_gettime, ClockId};
    let ns = |id| {
        clock_gettime(id)
            .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
            .unwrap_or(0)
    };
    (ns(ClockId::CLOCK_TAI), ns(ClockId::CLOCK_BOOTTIME))
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    pub fn new() -> Self {
        Self::with(Proc::default(), system_user_name)
    }

    /// An enricher reading `proc` and naming users with `user_name` (tests pass fakes).
    pub fn with(proc: Proc, user_name: fn(u32) -> Option<String>) -> Self {
        Self {
            logins: super::login::LoginTrust::new(proc.root()),
            proc,
            pids: Pids::default(),
            user_name,
            users: BoundedCache::new(USER_CACHE),
            ssh: BoundedCache::new(SESSION_CACHE),
            generations: Vec::new(),
            tai_offset_ns: 0,
            clocks: system_clocks,
        }
    }

    /// The decision's time moved from CLOCK_TAI to CLOCK_BOOTTIME, which process start times
    /// use; `None` if the clocks say it is in the future or before boot.
    fn decided_boot(&self, e: &Event) -> Option<u64> {
        let (tai, boot) = (self.clocks)();
        boot.checked_sub(tai.checked_sub(e.ts_ns)?)
    }

    pub fn set_tai_offset(&mut self, ns: i64) {
        self.tai_offset_ns = ns;
    }

    /// Remembers a generation's rule table; keeps the last two.
    pub fn set_generation(&mut self, generation: u64, rules: Vec<RuleInfo>, sha256: String) {
        self.generations.push((generation, rules, sha256));
        if self.generations.len() > 2 {
            self.generations.remove(0);
        }
    }

    fn user(&mut self, uid: u32) -> String {
        let name = self.user_name;
        self.users
            .get_or(uid, || name(uid).unwrap_or_else(|| uid.to_string()))
    }

    fn ssh_conn(&mut self, session: u32) -> Option<SshConn> {
        if let Some(c) = self.ssh.get(&session) {
            return c;
        }
        let found = self.proc.ssh_conn(session);
        if found.complete {
            self.ssh.insert(session, found.conn);
        }
        found.conn
    }

    pub fn record(&mut self, e: &Event) -> Record {
        let uid = e.uid;
        let user = self.user(uid);
        let unknown = || (format!("#{}", e.rule_id), None);
        let ((rule_name, at), sha) =
            match self.generations.iter().find(|(g, ..)| *g == e.generation) {
                Some((_, rules, sha)) => {
                    let named = match rules.get(e.rule_id as usize) {
                        Some(r) if r.location.is_empty() => (r.name.clone(), None),
                        Some(r) => (r.name.clone(), Some(r.location.clone())),
                        None => unknown(),
                    };
                    (named, sha.clone())
                }
                None => (unknown(), String::new()),
            };
        let rule = match &at {
            Some(loc) => format!("{rule_name} ({loc})"),
            None => rule_name.clone(),
        };
        let (rule_file, rule_line) = match at.as_deref().and_then(split_location) {
            Some((f, l)) => (Some(f), Some(l)),
            None => (at, None),
        };
        let comm_len = e.comm.iter().position(|&c| c == 0).unwrap_or(e.comm.len());
        let comm = String::from_utf8_lossy(&e.comm[..comm_len]).into_owned();
        let decided_boot = self.decided_boot(e);
        let decider = decided_boot.map(|decided_boot| Decider {
            pid: e.pid,
            comm: &comm,
            comm_raw: &e.comm,
            decided_tai: e.ts_ns,
            decided_boot,
        });
        // `JUMP_EXE`, only where it is the decider's (`Proc::exe_of`).
        let exe = decider.as_ref().and_then(|d| self.pids.exe(&self.proc, d));
        // The kernel's values when it captured them (they are right even if the process has
        // exited since), else what /proc says now.
        let (login_uid, session_id) = if e.login_uid != UNSET || e.session_id != UNSET {
            (e.login_uid, e.session_id)
        } else {
            match &decider {
                Some(d) => self.pids.audit(&self.proc, d),
                None => self.proc.audit(e.pid),
            }
        };
        let login_uid = (login_uid != UNSET).then_some(login_uid);
        let login_user = login_uid.map(|l| self.user(l));
        let login_trusted = login_uid.map(|_| self.logins.trusted(session_id));
        let ssh = self.ssh_conn(session_id);
        let time = jiff::Timestamp::from_nanosecond(e.ts_ns as i128 - self.tai_offset_ns as i128)
            .map(|t| t.to_string())
            .unwrap_or_default();
        Record {
            time,
            verdict: verdict_name(e.action),
            uid,
            user,
            ns_uid: (e.ns_uid != jump_common::NO_NS_UID).then_some(e.ns_uid),
            gid: e.gid,
            pid: e.pid,
            comm,
            exe,
            login_uid,
            login_user,
            login_trusted,
            session_id: (session_id != UNSET).then_some(session_id),
            ssh_client: ssh.map(|c| c.client.ip()),
            ssh_client_port: ssh.map(|c| c.client.port()),
            ssh_server: ssh.map(|c| c.server.ip()),
            ssh_server_port: ssh.map(|c| c.server.port()),
            proto: proto_name(e.proto),
            dst_addr: unmap(e.dst_addr),
            dst_port: e.dst_port,
            src_addr: (e.src_addr != [0; 16]).then(|| unmap(e.src_addr)),
            src_port: (e.src_port != 0).then_some(e.src_port),
            rule,
            rule_name,
            rule_file,
            rule_line,
            hook: hook::name(e.hook),
            // `setsockopt-*` events carry the option's level and name in the port fields.
            option: hook::is_sockopt(e.hook)
                .then(|| jump_common::sockopt::name(i32::from(e.src_port), i32::from(e.dst_port))),
            policy_generation: e.generation,
            policy_sha256: sha,
            suppressed: e.suppressed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::proc::FakeProc;

    fn record() -> Record {
        Record {
            time: "2026-01-05T09:00:00Z".into(),
            verdict: "deny",
            uid: 1001,
            user: "alice".into(),
            ns_uid: None,
            gid: 1001,
            pid: 4711,
            comm: "curl".into(),
            exe: None,
            login_uid: Some(1001),
            login_user: Some("alice".into()),
            login_trusted: Some(true),
            session_id: Some(3),
            ssh_client: None,
            ssh_client_port: None,
            ssh_server: None,
            ssh_server_port: None,
            proto: "tcp",
            dst_addr: "203.0.113.7".parse().unwrap(),
            dst_port: 443,
            src_addr: None,
            src_port: None,
            rule: "default".into(),
            rule_name: "default".into(),
            rule_file: None,
            rule_line: None,
            hook: "connect4",
            option: None,
            policy_generation: 1,
            policy_sha256: String::new(),
            suppressed: 0,
        }
    }

    fn event() -> Event {
        Event {
            ts_ns: 0,
            generation: 1,
            cookie: 0,
            uid: 1001,
            gid: 100,
            pid: 4711,
            rule_id: 0,
            login_uid: UNSET,
            session_id: UNSET,
            suppressed: 0,
            ns_uid: jump_common::NO_NS_UID,
            dst_addr: "::ffff:198.51.100.10".parse::<Ipv6Addr>().unwrap().octets(),
            src_addr: [0; 16],
            dst_port: 22,
            src_port: 0,
            family: 10,
            proto: 6,
            hook: hook::CONNECT6,
            action: action::DENY,
            _pad1: [0; 7],
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    fn names(uid: u32) -> Option<String> {
        match uid {
            1000 => Some("bob".into()),
            1001 => Some("alice".into()),
            _ => None,
        }
    }

    fn enricher(fake: &FakeProc) -> Enricher {
        let mut en = Enricher::with(fake.proc(), names);
        en.set_generation(
            1,
            vec![
                RuleInfo {
                    name: "default".into(),
                    location: String::new(),
                },
                RuleInfo {
                    name: "ops-ssh".into(),
                    location: "policies/20-access.yaml:7:5".into(),
                },
            ],
            "ab".into(),
        );
        en
    }

    #[test]
    fn message_names_user_destination_rule_and_hook() {
        let r = record();
        assert_eq!(
            r.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl"
        );
        let r6 = Record {
            dst_addr: "2001:db8::7".parse().unwrap(),
            ..r
        };
        assert_eq!(r6.message(), "deny alice(1001) -> [2001:db8::7]:443/tcp rule=default hook=connect4 pid=4711 comm=curl");
    }

    #[test]
    fn message_names_the_login_user_behind_su_and_the_suppressed_count() {
        let r = Record {
            login_uid: Some(1000),
            login_user: Some("bob".into()),
            suppressed: 41,
            ..record()
        };
        assert_eq!(
            r.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl login=bob(1000) suppressed=41"
        );
        let forged = Record {
            login_uid: Some(1000),
            login_user: Some("bob".into()),
            login_trusted: Some(false),
            ..record()
        };
        assert_eq!(
            forged.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl login=?bob(1000) (untrusted)"
        );
        let no_login = Record {
            login_uid: None,
            ..record()
        };
        assert_eq!(
            no_login.message(),
            record().message(),
            "an unknown login uid adds nothing"
        );
    }

    #[test]
    fn a_command_name_cannot_forge_or_erase_a_line_but_the_field_keeps_it() {
        let comm = "x\n\x1b[2Kdeny";
        let r = Record {
            comm: comm.into(),
            user: "ev il".into(),
            rule: "r\x1b[1A".into(),
            ..record()
        };
        let m = r.message();
        assert_eq!(
            m,
            "deny ev\\x20il(1001) -> 203.0.113.7:443/tcp rule=r\\e[1A hook=connect4 pid=4711 comm=x\\n\\e[2Kdeny"
        );
        assert!(
            !m.contains(['\n', '\x1b']),
            "one line, no escape sequence: {m:?}"
        );
        assert_eq!(r.comm, comm, "the structured field keeps the exact text");
        let fake = FakeProc::new("comm");
        let mut e = event();
        e.comm[..14].copy_from_slice(b"x\n\x1b[2Kdeny\0\0\0\0");
        assert_eq!(enricher(&fake).record(&e).comm, comm);
    }

    #[test]
    fn a_subordinate_uid_is_named_after_its_owner() {
        let fake = FakeProc::new("subuid");
        let r = enricher(&fake).record(&Event {
            ns_uid: 165_536,
            ..event()
        });
        assert_eq!((r.uid, r.ns_uid), (1001, Some(165_536)));
        assert_eq!(
            r.message(),
            "deny alice(1001) as 165536 -> 198.51.100.10:22/tcp rule=default hook=connect6 pid=4711 comm=curl"
        );
        assert_eq!(enricher(&fake).record(&event()).ns_uid, None);
    }

    #[test]
    fn ipv4_mapped_destinations_are_shown_as_ipv4() {
        let fake = FakeProc::new("mapped");
        let r = enricher(&fake).record(&event());
        assert_eq!(r.dst_addr, "198.51.100.10".parse::<IpAddr>().unwrap());
        assert_eq!(r.rule, "default");
        assert_eq!(r.policy_sha256, "ab");
        assert_eq!(r.hook, "connect6");
        assert_eq!(r.comm, "curl");
        assert_eq!(r.user, "alice");
        assert_eq!(r.time, "1970-01-01T00:00:00Z", "the event's own time");
    }

    #[test]
    fn rules_are_named_with_their_location_and_unknown_ones_by_id() {
        let fake = FakeProc::new("rules");
        let mut en = enricher(&fake);
        let r = en.record(&Event {
            rule_id: 1,
            ..event()
        });
        assert_eq!(r.rule, "ops-ssh (policies/20-access.yaml:7:5)");
        assert_eq!(
            (r.rule_name.as_str(), r.rule_file.as_deref(), r.rule_line),
            ("ops-ssh", Some("policies/20-access.yaml"), Some(7))
        );
        let r = en.record(&Event {
            rule_id: 9,
            ..event()
        });
        assert_eq!(r.rule, "#9", "a rule id outside the table");
        let r = en.record(&Event {
            generation: 7,
            ..event()
        });
        assert_eq!(
            (r.rule.as_str(), r.policy_sha256.as_str()),
            ("#0", ""),
            "a generation no longer known"
        );
    }

    #[test]
    fn an_exited_process_leaves_the_proc_fields_out() {
        let fake = FakeProc::new("exited");
        let r = enricher(&fake).record(&event());
        assert_eq!(
            (r.exe, r.login_uid, r.session_id, r.ssh_client),
            (None, None, None, None)
        );
        assert_eq!((r.src_addr, r.src_port, r.suppressed), (None, None, 0));
    }

    /// sshd at 192.0.2.1:22 with client 192.0.2.5:50022, socket inode 101, in
    /// `/proc/net/tcp` notation (little-endian host).
    const SSH_TCP: &str = "   1: 010200C0:0016 050200C0:C366 01 00000000:00000000 02:000A7B4C 00000000     0        0 101 4 0000000000000000 20 4 30 10 -1";

    #[cfg(target_endian = "little")]
    #[test]
    fn login_uid_session_and_ssh_connection_come_from_proc_when_the_kernel_did_not_capture_them() {
        let fake = FakeProc::new("enrich");
        fake.sshd(4700, 7, 0, "/usr/sbin/sshd", &[101], [&[SSH_TCP], &[]]);
        fake.add(4711, 4700, 1000, 7);
        let r = enricher(&fake).record(&event());
        assert_eq!(r.login_uid, Some(1000));
        assert_eq!(r.login_user.as_deref(), Some("bob"));
        assert_eq!(r.session_id, Some(7));
        assert_eq!(
            (r.ssh_client, r.ssh_client_port),
            (Some("192.0.2.5".parse().unwrap()), Some(50022))
        );
        assert_eq!(
            (r.ssh_server, r.ssh_server_port),
            (Some("192.0.2.1".parse().unwrap()), Some(22))
        );
    }

    #[test]
    fn the_kernels_login_uid_and_session_are_preferred() {
        let fake = FakeProc::new("kernel");
        fake.add(4711, 1, 1000, 7);
        let r = enricher(&fake).record(&Event {
            login_uid: 1002,
            session_id: 9,
            ..event()
        });
        assert_eq!((r.login_uid, r.session_id), (Some(1002), Some(9)));
        assert_eq!(
            r.login_user.as_deref(),
            Some("1002"),
            "no account: the number"
        );
    }

    #[test]
    fn source_and_suppressed_count_are_kept_where_known() {
        let fake = FakeProc::new("source");
        let r = enricher(&fake).record(&Event {
            src_addr: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            src_port: 40000,
            suppressed: 3,
            ..event()
        });
        assert_eq!(r.src_addr, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(r.src_port, Some(40000));
        assert_eq!(r.suppressed, 3);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_sessions_ssh_connection_is_cached_only_once_known_for_sure() {
        let fake = FakeProc::new("sshcache");
        let mut en = enricher(&fake);
        let client = |c: Option<SshConn>| c.map(|c| c.client.to_string());
        // The session's sshd cannot be read: no answer, and nothing cached for its session.
        fake.sshd(4700, 7, 0, "/usr/sbin/sshd", &[101], [&[SSH_TCP], &[]]);
        let fd = fake.dir.join("4700/fd");
        std::fs::rename(&fd, fake.dir.join("4700/fd.away")).unwrap();
        assert_eq!(en.ssh_conn(7), None);
        assert_eq!(en.ssh.len(), 0);
        std::fs::rename(fake.dir.join("4700/fd.away"), &fd).unwrap();
        assert_eq!(client(en.ssh_conn(7)).as_deref(), Some("192.0.2.5:50022"));
        assert_eq!(en.ssh.len(), 1);
        // Cached: the session's sshd has gone, its answer stays.
        std::fs::remove_dir_all(fake.dir.join("4700")).unwrap();
        assert_eq!(client(en.ssh_conn(7)).as_deref(), Some("192.0.2.5:50022"));
        // A session no sshd holds is a final answer too.
        assert_eq!(en.ssh_conn(8), None);
        assert_eq!(en.ssh.len(), 2);
    }

    #[test]
    fn caches_stay_within_their_capacity() {
        let mut c = BoundedCache::new(3);
        for k in 0..100u32 {
            assert_eq!(c.get_or(k, || k * 2), k * 2);
            assert!(c.len() <= 3, "the cache holds {} entries", c.len());
        }
        c.insert(99, 1);
        assert_eq!(c.get(&99), Some(1), "replacing a present key keeps it");
        // A flood of distinct uids through the enricher: bounded by USER_CACHE.
        let fake = FakeProc::new("flood");
        let mut en = enricher(&fake);
        for uid in 0..(USER_CACHE as u32 * 2 + 10) {
            en.record(&Event { uid, ..event() });
            assert!(en.users.len() <= USER_CACHE);
        }
        fake.add(4711, 1, 1000, 0);
        for session in 0..(SESSION_CACHE as u32 * 2 + 10) {
            en.ssh_conn(session);
            assert!(en.ssh.len() <= SESSION_CACHE);
        }
    }
}

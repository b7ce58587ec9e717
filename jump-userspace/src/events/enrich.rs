//! Kernel events → `Record`s. What the kernel could not know (names, the executable, the
//! session's SSH client, and the audit login uid and session where the kernel did not capture
//! them) is looked up here, in `/proc` (see `proc`) and through caches with a fixed capacity
//! (`cache`), so a flood of distinct uids, pids or sessions cannot grow the daemon's memory.

use std::sync::Arc;

use jump_common::{hook, Event};

use super::{
    cache::BoundedCache,
    pids::{Decider, Pids},
    proc::{Proc, Sessions, SshConn, UNSET},
    record::{split_location, unmap, Comm, Record},
};
use crate::{compile::image::RuleInfo, policy::Proto, verdict::Verdict};

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
    /// Who is in which audit session, read once per batch of events (`new_batch`) when an
    /// event's session is not in the caches.
    sessions: Option<Sessions>,
    user_name: fn(u32) -> Option<String>,
    users: BoundedCache<u32, Arc<str>>,
    /// SSH connection by audit session id. Only final answers are kept (see
    /// `SshSearch::complete`); session ids are never reused, so a final answer stays true.
    ssh: BoundedCache<u32, Option<SshConn>>,
    /// Rule table and hash of each generation still in use; the kernel may report the previous
    /// generation for a decision made just before a switch.
    generations: Vec<(u64, Vec<Named>, Arc<str>)>,
    /// CLOCK_TAI − CLOCK_REALTIME in ns: events carry CLOCK_TAI.
    tai_offset_ns: i64,
    /// The kernel reads every event's login uid and session (`Kernel::reads_audit_ids`): unset
    /// there means unset, never "look in /proc". An egress event's come from the socket's
    /// record, written at its connect; by the time jumpd reads the event the connector may have
    /// exited and its pid belong to another user's process, whose /proc would name the wrong
    /// person.
    kernel_audit: bool,
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
            sessions: None,
            pids: Pids::default(),
            user_name,
            users: BoundedCache::new(USER_CACHE),
            ssh: BoundedCache::new(SESSION_CACHE),
            generations: Vec::new(),
            tai_offset_ns: 0,
            kernel_audit: false,
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

    pub fn set_kernel_audit(&mut self, reads: bool) {
        self.kernel_audit = reads;
    }

    /// Remembers a generation's rule table; keeps the last two.
    pub fn set_generation(&mut self, generation: u64, rules: Vec<RuleInfo>, sha256: String) {
        let rules = rules.into_iter().map(Named::new).collect();
        self.generations.push((generation, rules, sha256.into()));
        if self.generations.len() > 2 {
            self.generations.remove(0);
        }
    }

    fn user(&mut self, uid: u32) -> Arc<str> {
        let name = self.user_name;
        self.users
            .get_or(uid, || name(uid).unwrap_or_else(|| uid.to_string()).into())
    }

    /// The next events are of a new batch: the processes' sessions are read again when needed.
    pub fn new_batch(&mut self) {
        self.sessions = None;
    }

    /// Whether audit session `session` was opened by a privileged process
    /// (`login::LoginTrust`), with the answers kept for events: a session proven while its
    /// opener ran stays proven.
    pub fn trusted(&mut self, session: u32) -> bool {
        if session == UNSET {
            return false;
        }
        if let Some(t) = self.logins.known(session) {
            return t;
        }
        let proc = &self.proc;
        let index = self.sessions.get_or_insert_with(|| proc.sessions());
        self.logins.trusted_in(session, index)
    }

    fn ssh_conn(&mut self, session: u32) -> Option<SshConn> {
        if let Some(c) = self.ssh.get(&session) {
            return c;
        }
        if session == UNSET {
            return None;
        }
        let proc = &self.proc;
        let index = self.sessions.get_or_insert_with(|| proc.sessions());
        let found = proc.ssh_conn_in(session, index);
        // No process of the session in the batch's index is no final answer: the session may
        // have begun after the index was read (a new login whose first event is in this batch).
        if found.complete && !index.pids(session).is_empty() {
            self.ssh.insert(session, found.conn);
        }
        found.conn
    }

    pub fn record(&mut self, e: &Event) -> Record {
        let uid = e.uid;
        let user = self.user(uid);
        let found = self
            .generations
            .iter()
            .find(|(g, ..)| *g == e.generation)
            .map(|(_, rules, sha)| (rules.get(e.rule_id as usize), sha.clone()));
        let (rule, sha) = match found {
            Some((Some(rule), sha)) => (rule.clone(), sha),
            Some((None, sha)) => (Named::unknown(e.rule_id), sha),
            None => (Named::unknown(e.rule_id), "".into()),
        };
        let comm = Comm::from_kernel(&e.comm);
        let decided_boot = self.decided_boot(e);
        let decider = decided_boot.map(|decided_boot| Decider {
            pid: e.pid,
            comm: &comm,
            comm_raw: &e.comm,
            decided_tai: e.ts_ns,
            decided_boot,
            start_ticks: e.start_ticks,
        });
        // `JUMP_EXE`, only where it is the decider's (`Proc::exe_of`).
        let exe = decider.as_ref().and_then(|d| self.pids.exe(&self.proc, d));
        // The kernel's values when it reads them or captured these (they are right even if the
        // process has exited since), else what /proc says now.
        let (login_uid, session_id) =
            if self.kernel_audit || e.login_uid != UNSET || e.session_id != UNSET {
                (e.login_uid, e.session_id)
            } else {
                match &decider {
                    Some(d) => self.pids.audit(&self.proc, d),
                    None => self.proc.audit(e.pid),
                }
            };
        let login_uid = (login_uid != UNSET).then_some(login_uid);
        let login_user = login_uid.map(|l| self.user(l));
        let login_trusted = login_uid.map(|_| self.trusted(session_id));
        let ssh = self.ssh_conn(session_id);
        // In range: a u64 of nanoseconds and any offset stay within jiff's years ±9999.
        let time = jiff::Timestamp::from_nanosecond(e.ts_ns as i128 - self.tai_offset_ns as i128)
            .unwrap_or_default();
        Record {
            time,
            verdict: Verdict::from_action(e.action),
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
            proto: Proto::name_of(e.proto),
            dst_addr: unmap(e.dst_addr),
            dst_port: e.dst_port,
            src_addr: (e.src_addr != [0; 16]).then(|| unmap(e.src_addr)),
            src_port: (e.src_port != 0).then_some(e.src_port),
            rule: rule.rule,
            rule_name: rule.name,
            rule_file: rule.file,
            rule_line: rule.line,
            hook: hook::name(e.hook),
            grant_reason: rule.reason,
            decided_by: if e.decided_by == jump_common::decided_by::LOGIN {
                "login"
            } else {
                "uid"
            },
            // `setsockopt-*` events carry the option's level and name in the port fields.
            option: hook::is_sockopt(e.hook)
                .then(|| jump_common::sockopt::name(i32::from(e.src_port), i32::from(e.dst_port))),
            policy_generation: e.generation,
            policy_sha256: sha,
            suppressed: e.suppressed,
        }
    }
}

/// A rule as its events name it, worked out once per policy generation rather than per event.
#[derive(Clone)]
struct Named {
    name: Arc<str>,
    /// `name (file:line:col)`, or the name alone for a rule written nowhere (the default).
    rule: Arc<str>,
    file: Option<Arc<str>>,
    line: Option<u32>,
    reason: Option<Arc<str>>,
}

impl Named {
    fn new(r: RuleInfo) -> Self {
        let name: Arc<str> = r.name.into();
        let (rule, file, line) = if r.location.is_empty() {
            (name.clone(), None, None)
        } else {
            let rule = format!("{name} ({})", r.location).into();
            match split_location(&r.location) {
                Some((f, l)) => (rule, Some(f.into()), Some(l)),
                None => (rule, Some(r.location.into()), None),
            }
        };
        Self {
            name,
            rule,
            file,
            line,
            reason: r.reason.map(Into::into),
        }
    }

    /// A rule id the generation's table does not have (or a generation jumpd no longer knows).
    fn unknown(id: u32) -> Self {
        let name: Arc<str> = format!("#{id}").into();
        Self {
            rule: name.clone(),
            name,
            file: None,
            line: None,
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use jump_common::action;

    use super::*;
    use crate::events::proc::FakeProc;

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
            decided_by: 0,
            _pad1: [0; 2],
            start_ticks: 0,
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
                    reason: None,
                },
                RuleInfo {
                    name: "ops-ssh".into(),
                    location: "policies/20-access.yaml:7:5".into(),
                    reason: None,
                },
            ],
            "ab".into(),
        );
        en
    }

    #[test]
    fn a_command_name_is_kept_exactly() {
        let comm = "x\n\x1b[2Kdeny";
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
        assert_eq!(&*r.rule, "default");
        assert_eq!(&*r.policy_sha256, "ab");
        assert_eq!(r.hook, "connect6");
        assert_eq!(r.comm, "curl");
        assert_eq!(&*r.user, "alice");
        assert_eq!(
            r.time.to_string(),
            "1970-01-01T00:00:00Z",
            "the event's own time"
        );
    }

    #[test]
    fn rules_are_named_with_their_location_and_unknown_ones_by_id() {
        let fake = FakeProc::new("rules");
        let mut en = enricher(&fake);
        let r = en.record(&Event {
            rule_id: 1,
            ..event()
        });
        assert_eq!(&*r.rule, "ops-ssh (policies/20-access.yaml:7:5)");
        assert_eq!(
            (r.rule_name.as_ref(), r.rule_file.as_deref(), r.rule_line),
            ("ops-ssh", Some("policies/20-access.yaml"), Some(7))
        );
        let r = en.record(&Event {
            rule_id: 9,
            ..event()
        });
        assert_eq!(&*r.rule, "#9", "a rule id outside the table");
        let r = en.record(&Event {
            generation: 7,
            ..event()
        });
        assert_eq!(
            (r.rule.as_ref(), r.policy_sha256.as_ref()),
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

    /// The process behind the event's pid now (here with login 1000, session 7) may not be
    /// the one that connected the socket: where the kernel reads the ids, its "unset" stands.
    #[test]
    fn where_the_kernel_reads_the_ids_proc_is_never_asked() {
        let fake = FakeProc::new("kernel-reads");
        fake.add(4711, 1, 1000, 7);
        let mut e = enricher(&fake);
        e.set_kernel_audit(true);
        let r = e.record(&event());
        assert_eq!((r.login_uid, r.session_id), (None, None));
        assert_eq!(r.ssh_client, None);
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
        // A session no sshd holds is a final answer too, once a process of it is seen; one
        // with no process may have begun after this batch's look at /proc.
        assert_eq!(en.ssh_conn(8), None);
        assert_eq!(en.ssh.len(), 1);
        fake.add(4800, 1, 1000, 8);
        en.new_batch();
        assert_eq!(en.ssh_conn(8), None);
        assert_eq!(en.ssh.len(), 2);
    }

    /// Events of many sessions in one batch read /proc's sessions once: a process added after
    /// that read is seen in the next batch only.
    #[test]
    fn one_look_at_procs_sessions_per_batch() {
        let fake = FakeProc::new("batch");
        let mut en = enricher(&fake);
        fake.add(4711, 1, 1000, 20);
        for session in 20..30 {
            en.record(&Event {
                login_uid: 1000,
                session_id: session,
                ..event()
            });
        }
        let index = en.sessions.clone().expect("read once");
        assert_eq!(index.pids(20), [4711]);
        fake.add(4712, 1, 1000, 21);
        en.record(&Event {
            login_uid: 1000,
            session_id: 21,
            ..event()
        });
        assert!(
            en.sessions.as_ref().unwrap().pids(21).is_empty(),
            "same batch"
        );
        en.new_batch();
        en.record(&Event {
            login_uid: 1000,
            session_id: 21,
            ..event()
        });
        assert_eq!(en.sessions.as_ref().unwrap().pids(21), [4712]);
    }

    #[test]
    fn the_enrichers_caches_stay_within_their_capacity() {
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

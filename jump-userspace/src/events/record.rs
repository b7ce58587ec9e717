//! A decision as every sink writes it (`Record`) and its one-line message: user and rule
//! names, addresses in their family's notation. `enrich` builds records from kernel events.

use std::{
    fmt::Write,
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use serde::Serialize;

use crate::{
    escape::{escape, escape_word},
    verdict::Verdict,
};

/// One decision, as every sink writes it. Field names are the journald fields without the
/// `JUMP_` prefix, lower-case. `None` means "not known" and the field is left out (here and
/// in every sink). A record of a user, rule and process jumpd has seen allocates nothing: text
/// that jumpd keeps between records (names, rules, the policy's hash, the executable) is shared,
/// the command name is held inline and the time is formatted by each sink as it writes.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// When the kernel decided (RFC 3339, UTC): the journal's own timestamp is when jumpd
    /// logged it, which is later for events decided while jumpd was not reading.
    pub time: jiff::Timestamp,
    pub verdict: Verdict,
    pub uid: u32,
    pub user: Arc<str>,
    /// The task's own uid where `uid` is the owner of that subordinate uid (a user namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_uid: Option<u32>,
    pub gid: u32,
    pub pid: u32,
    pub comm: Comm,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// The audit login uid (who logged in, whatever `su`/`sudo` did since) and its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    #[serde(skip)]
    pub login_user: Option<Arc<str>>,
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
    pub rule: Arc<str>,
    /// The same, field by field: the rule's name, and where it is written (left out for the
    /// policy default and the compiler's own rules).
    pub rule_name: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_file: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_line: Option<u32>,
    pub hook: &'static str,
    /// Whose decision this is (`defaults.identity: person`): `uid`, or `login` when the audit
    /// login uid refused (or narrowed to audit) what the uid alone would have allowed.
    pub decided_by: &'static str,
    /// The reason of the just-in-time grant that decided (`jumpctl grant --reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_reason: Option<Arc<str>>,
    /// The socket option a `setsockopt-*` decision judged, e.g. `IP_FREEBIND`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<&'static str>,
    pub policy_generation: u64,
    pub policy_sha256: Arc<str>,
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
        let mut m = String::new();
        self.write_message(&mut m);
        m
    }

    /// `message`, appended to `m` (the sinks keep one buffer for every record).
    pub fn write_message(&self, m: &mut String) {
        // Writing into a String cannot fail.
        let _ = write!(
            m,
            "{} {}({})",
            self.verdict,
            escape_word(&self.user),
            self.uid
        );
        if let Some(ns) = self.ns_uid {
            let _ = write!(m, " as {ns}");
        }
        let _ = match self.dst_addr {
            IpAddr::V4(a) => write!(m, " -> {a}:{}", self.dst_port),
            IpAddr::V6(a) => write!(m, " -> [{a}]:{}", self.dst_port),
        };
        let _ = write!(
            m,
            "/{} rule={} hook={} pid={} comm={}",
            self.proto,
            escape(&self.rule),
            self.hook,
            self.pid,
            escape_word(&self.comm)
        );
        if let Some(option) = self.option {
            let _ = write!(m, " option={option}");
        }
        if let Some(login) = self.login_uid.filter(|l| *l != self.uid) {
            let name = escape_word(self.login_user.as_deref().unwrap_or("?"));
            let _ = if self.login_trusted == Some(false) {
                write!(m, " login=?{name}({login}) (untrusted)")
            } else {
                write!(m, " login={name}({login})")
            };
        }
        if let Some(reason) = &self.grant_reason {
            let _ = write!(m, " reason={}", escape_word(reason));
        }
        if self.decided_by == "login" {
            m.push_str(" decided-by=login");
        }
        if self.suppressed > 0 {
            let _ = write!(m, " suppressed={}", self.suppressed);
        }
    }
}

/// A command name (the kernel's `comm`, at most 16 bytes) as UTF-8, each invalid sequence
/// replaced by U+FFFD as `String::from_utf8_lossy` does, held inline so that a record carries
/// it without an allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    len: u8,
    bytes: [u8; Comm::CAPACITY],
}

impl Comm {
    /// 16 bytes, each an invalid sequence of its own, read as 16 three-byte U+FFFD.
    const CAPACITY: usize = 3 * jump_common::COMM_LEN;
    const EMPTY: Comm = Comm {
        len: 0,
        bytes: [0; Self::CAPACITY],
    };

    /// The name in a kernel's `comm` buffer: up to its first NUL.
    pub fn from_kernel(raw: &[u8]) -> Self {
        let raw = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
        let mut c = Self::EMPTY;
        for chunk in raw.utf8_chunks() {
            c.push(chunk.valid());
            if !chunk.invalid().is_empty() {
                c.push("\u{fffd}");
            }
        }
        c
    }

    /// Appends `s`, or as many of its characters as fit (only a longer name than the kernel's
    /// could need more).
    fn push(&mut self, s: &str) {
        let mut end = s.len().min(Self::CAPACITY - usize::from(self.len));
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let at = usize::from(self.len);
        self.bytes[at..at + end].copy_from_slice(&s.as_bytes()[..end]);
        self.len += end as u8;
    }

    pub fn as_str(&self) -> &str {
        // Always UTF-8: `push` copies whole characters of a `str`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for Comm {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Self {
        let mut c = Self::EMPTY;
        c.push(s);
        c
    }
}

impl PartialEq<&str> for Comm {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Serialize for Comm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `policies/20-access.yaml:7:5` → (`policies/20-access.yaml`, 7).
pub(super) fn split_location(loc: &str) -> Option<(String, u32)> {
    let (rest, _col) = loc.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some((file.to_string(), line.parse().ok()?))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An IPv4-mapped IPv6 address (how events carry IPv4) as IPv4, others as they are.
pub(super) fn unmap(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    v6.to_ipv4_mapped()
        .map(IpAddr::V4)
        .unwrap_or(IpAddr::V6(v6))
}

/// A decision as the tests of every sink start from: alice denied 203.0.113.7:443 by the default.
#[cfg(test)]
pub(crate) fn sample() -> Record {
    Record {
        time: "2026-01-05T09:00:00Z".parse().unwrap(),
        verdict: Verdict::Deny,
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
        decided_by: "uid",
        grant_reason: None,
        option: None,
        policy_generation: 1,
        policy_sha256: "".into(),
        suppressed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_user_destination_rule_and_hook() {
        let r = sample();
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
            ..sample()
        };
        assert_eq!(
            r.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl login=bob(1000) suppressed=41"
        );
        let forged = Record {
            login_uid: Some(1000),
            login_user: Some("bob".into()),
            login_trusted: Some(false),
            ..sample()
        };
        assert_eq!(
            forged.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl login=?bob(1000) (untrusted)"
        );
        let no_login = Record {
            login_uid: None,
            ..sample()
        };
        assert_eq!(
            no_login.message(),
            sample().message(),
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
            ..sample()
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
    }

    #[test]
    fn a_command_name_reads_as_the_kernel_wrote_it() {
        assert_eq!(Comm::from_kernel(b"curl\0\0\0\0\0\0\0\0\0\0\0\0"), "curl");
        assert_eq!(Comm::from_kernel(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(
            Comm::from_kernel(&[0xff; 16]).as_str(),
            "\u{fffd}".repeat(16),
            "the most a name can grow to"
        );
        assert_eq!(Comm::from(&*"é".repeat(40)).as_str(), "é".repeat(24));
    }

    proptest::proptest! {
        #[test]
        fn a_command_name_is_what_lossy_utf8_makes_of_it(raw in proptest::array::uniform16(proptest::num::u8::ANY)) {
            let name = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
            let comm = Comm::from_kernel(&raw);
            proptest::prop_assert_eq!(comm.as_str(), String::from_utf8_lossy(name));
        }
    }
}

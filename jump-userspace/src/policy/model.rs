//! The validated policy model. Zones are already resolved into networks; users and groups are
//! still names (the compiler resolves them).

use ipnet::IpNet;
use jiff::Timestamp;

use super::Span;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub defaults: Defaults,
    pub zones: Vec<Zone>,
    /// In file order (files by name, rules by position).
    pub rules: Vec<Rule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Egress {
    #[default]
    Deny,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogMode {
    #[default]
    All,
    Deny,
    None,
}

/// `defaults.loopback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Loopback {
    /// 127.0.0.0/8 and ::1 are allowed for everyone unless a rule explicitly denies them.
    #[default]
    Allow,
    /// Loopback is denied for everyone, whatever the rules allow.
    Deny,
    /// No special case: the rules and `egress` decide.
    Policy,
}

/// `defaults.identity`: whom a decision is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Identity {
    /// The uid that connects (binds, creates the socket) alone.
    #[default]
    Uid,
    /// The uid, and also the audit login uid when the task has one: both must allow, so
    /// `sudo`, `su`, setuid programs and user namespaces cannot widen what a person reaches.
    Person,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Defaults {
    pub egress: Egress,
    pub log: LogMode,
    pub loopback: Loopback,
    pub identity: Identity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub nets: Vec<IpNet>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    Name(String),
    Uid(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Icmp,
    Tcp,
    Udp,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Icmp, Proto::Tcp, Proto::Udp];

    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => jump_common::proto::TCP,
            Proto::Udp => jump_common::proto::UDP,
            Proto::Icmp => jump_common::proto::ICMP,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            jump_common::proto::TCP => Some(Proto::Tcp),
            jump_common::proto::UDP => Some(Proto::Udp),
            jump_common::proto::ICMP | jump_common::proto::ICMPV6 => Some(Proto::Icmp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    /// The one name users see for a protocol number, in events, image dumps, `show` and
    /// revocation logs: the policy's word (ICMPv6 is `icmp`, as in a policy), `join` for IGMP
    /// (the entries a multicast join is decided by, `jump_common::proto::IGMP`), `other` for
    /// what no policy names.
    pub fn name_of(n: u8) -> &'static str {
        match Proto::from_number(n) {
            Some(p) => p.name(),
            None if n == jump_common::proto::IGMP => "join",
            None => "other",
        }
    }
}

/// One `allow` or `deny` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub span: Span,
    /// The destinations as written (zone names, addresses, CIDRs), for explanations.
    pub to: Vec<String>,
    /// `to` resolved: zones expanded, addresses as host prefixes, IPv4-mapped IPv6 written as
    /// IPv4, sorted and deduplicated.
    pub nets: Vec<IpNet>,
    /// Sorted, deduplicated, never empty.
    pub protos: Vec<Proto>,
    /// Inclusive port ranges, sorted; `[(0, 65535)]` when `ports` is omitted. ICMP ignores them.
    pub ports: Vec<(u16, u16)>,
}

/// One `listen` entry: ports the rule's users may bind and accept on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub span: Span,
    /// `tcp` and/or `udp`; `tcp` when omitted.
    pub protos: Vec<Proto>,
    pub ports: Vec<(u16, u16)>,
    /// Empty means every local address.
    pub addresses: Vec<IpNet>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub fn from_weekday(w: jiff::civil::Weekday) -> Day {
        Day::ALL[w.to_monday_zero_offset() as usize]
    }
}

/// `schedule`: active from `start` to `end` (minutes after local midnight) on each of `days`,
/// in `tz`. `end <= start` means the interval runs past midnight into the next day; `days`
/// names the day it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub days: Vec<Day>,
    pub start: u16,
    /// Up to 24 * 60.
    pub end: u16,
    pub tz_name: String,
    pub tz: jiff::tz::TimeZone,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    /// `users: ["*"]`: every uid on the host.
    pub everyone: bool,
    pub users: Vec<(UserRef, Span)>,
    pub groups: Vec<(String, Span)>,
    pub allow: Vec<Entry>,
    pub deny: Vec<Entry>,
    pub listen: Vec<Listen>,
    pub mode: Mode,
    pub expires: Option<Timestamp>,
    pub schedule: Option<Schedule>,
    /// `via`: the interfaces the rule's decisions hold on; empty means every interface.
    pub via: Vec<(String, Span)>,
}

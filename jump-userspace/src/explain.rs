//! Explaining a decision (`jumpctl check`, live and offline): parse the destination asked about,
//! take the compiled image's answer (what the kernel decides), explain it with the reference
//! evaluator (`eval`) and build the report. The two must agree, or the answer is refused as an
//! internal error. Both jumpd (`daemon`) and `jumpctl` (`ctl`) use it; it imports neither.

use std::net::{IpAddr, SocketAddr};

use jump_common::action;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    compile::{time, Compiled},
    eval::{self, Kind},
    policy::{self, Proto},
    verdict::Verdict,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// `listen:PORT[/PROTO]`: may the user bind and accept on this local port (`addr` unused)?
    pub listen: bool,
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = Proto::from_number(self.proto)
            .map(Proto::name)
            .unwrap_or("?");
        if self.listen {
            return write!(f, "listen:{}/{proto}", self.port);
        }
        match (self.addr, proto) {
            (a, "icmp") => write!(f, "{a}/icmp"),
            (IpAddr::V6(a), p) => write!(f, "[{a}]:{}/{p}", self.port),
            (a, p) => write!(f, "{a}:{}/{p}", self.port),
        }
    }
}

/// `198.51.100.7:22/tcp`, `[2001:db8:1::7]:443`, `198.51.100.7/icmp`; tcp when no protocol.
pub fn parse_dest(s: &str) -> Result<Dest, String> {
    let bad = |why: &str| format!("invalid destination `{s}`: {why}");
    if let Some(rest) = s.strip_prefix("listen:") {
        let (port, proto) = match rest.split_once('/') {
            Some((p, "tcp")) => (p, Proto::Tcp),
            Some((p, "udp")) => (p, Proto::Udp),
            Some(_) => return Err(bad("a listen check takes `/tcp` or `/udp`")),
            None => (rest, Proto::Tcp),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("expected `listen:PORT[/tcp|/udp]`"))?;
        let addr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        return Ok(Dest {
            addr,
            port,
            proto: proto.number(),
            listen: true,
        });
    }
    let (hostport, proto) = match s.rsplit_once('/') {
        Some((h, p)) => {
            let proto = match p {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "icmp" => Proto::Icmp,
                _ => return Err(bad("the protocol must be `tcp`, `udp` or `icmp`")),
            };
            (h, proto)
        }
        None => (s, Proto::Tcp),
    };
    if let Ok(sa) = hostport.parse::<SocketAddr>() {
        return Ok(Dest {
            addr: sa.ip(),
            port: sa.port(),
            proto: proto.number(),
            listen: false,
        });
    }
    let bare = hostport.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(addr) if proto == Proto::Icmp => Ok(Dest {
            addr,
            port: 0,
            proto: proto.number(),
            listen: false,
        }),
        Ok(_) => Err(bad(
            "a port is needed, like `198.51.100.7:22` or `[2001:db8::7]:443`",
        )),
        Err(_) => Err(bad(
            "expected `ADDR:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]` or `ADDR/icmp`",
        )),
    }
}

/// `--at` and `at:` in test cases: an RFC 3339 time with an offset.
/// The same parser and range as `expires`, so every time a policy can name can be asked about.
pub fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    policy::moment::parse(s).map_err(|(why, help)| match why {
        Some(why) => format!("invalid time `{s}`: {why}; {help}"),
        None => format!("invalid time `{s}`: {help}"),
    })
}

/// `jumpctl check --json`, live and offline alike (README, "check --json"): the report, with
/// the policy generation and jumpd's mode when the running jumpd answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub allowed: bool,
    /// The generation of jumpd's policy in force (live only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// jumpd's mode, `enforce` or `audit` (live only): in audit mode a denial is only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub report: CheckReport,
}

impl CheckAnswer {
    /// An answer from a policy compiled here.
    pub fn offline(report: CheckReport) -> Self {
        Self {
            allowed: report.allowed,
            generation: None,
            mode: None,
            report,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: u32,
    pub name: String,
    /// `file:line:col` of the rule; empty for the default and the loopback rule.
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatchRef {
    pub rule: RuleRef,
    pub kind: Kind,
    pub audit: bool,
    /// `file:line:col` of the matching entry.
    pub entry: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// `allow`, `deny` or `audit` (allowed, logged as "would deny").
    #[serde(
        serialize_with = "Verdict::serialize_check_word",
        deserialize_with = "verdict"
    )]
    pub verdict: Verdict,
    pub allowed: bool,
    pub user: String,
    pub uid: u32,
    /// The owner a subordinate uid (`/etc/subuid`) is decided as, when `uid` is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_as: Option<u32>,
    /// The audit login uid asked about (`--login`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<Login>,
    /// `uid`, or `login` when the login uid's decision stands (`defaults.identity: person`).
    #[serde(deserialize_with = "decided_by")]
    pub decided_by: Word,
    pub dest: String,
    pub at: String,
    /// The rule that decided (id 0: the default).
    pub rule: RuleRef,
    /// Every entry that applies at that moment.
    pub matches: Vec<MatchRef>,
}

/// A word of a closed vocabulary. (An alias, so serde does not take `&'static str` for a string
/// borrowed from the input.)
pub type Word = &'static str;

/// A report read back (the live `check`'s reply) keeps the closed vocabularies' static spellings.
fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    known: &[&'static str],
) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| serde::de::Error::unknown_variant(&s, &[]))
}

fn verdict<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|()| serde::de::Error::unknown_variant(&s, &Verdict::ACCEPTED))
}

fn decided_by<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, &["uid", "login"])
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    pub uid: u32,
}

fn rule_ref(c: &Compiled, id: u32) -> RuleRef {
    let info = c.image.rules.get(id as usize);
    let rule = c.rules.rule(id);
    RuleRef {
        id,
        name: info.map(|i| i.name.clone()).unwrap_or_default(),
        location: info.map(|i| i.location.clone()).unwrap_or_default(),
        expires: rule.and_then(|r| r.expires).map(|e| e.to_string()),
        schedule: rule.and_then(|r| r.schedule.as_ref()).map(|s| {
            let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            let days: Vec<&str> = s
                .days
                .iter()
                .map(|d| ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][*d as usize])
                .collect();
            format!(
                "{} {}-{} {}",
                days.join(","),
                hm(s.start),
                hm(s.end),
                s.tz_name
            )
        }),
    }
}

/// The verdict for one connection. Errors if the compiled lookup and the reference disagree.
pub fn check(
    c: &Compiled,
    user: &str,
    uid: u32,
    dest: Dest,
    at: jiff::Timestamp,
) -> Result<CheckReport, String> {
    check_person(c, user, uid, None, dest, at)
}

/// `check` for a task whose audit login uid is `login` (`jumpctl check --login USER`: a
/// `sudo`'d process), as `defaults.identity: person` decides it.
pub fn check_person(
    c: &Compiled,
    user: &str,
    uid: u32,
    login: Option<(String, u32)>,
    dest: Dest,
    at: jiff::Timestamp,
) -> Result<CheckReport, String> {
    let login_uid = login.as_ref().map_or(jump_common::LOGIN_UNSET, |l| l.1);
    let unset = jump_common::LOGIN_UNSET;
    let ((kernel, by_login), (reference, ref_login)) = if dest.listen {
        let k = c
            .image
            .listen_person(uid, login_uid, dest.proto, dest.port, time::ns(at));
        (
            (k.ruling, k.by_login),
            eval::evaluate_listen_person(&c.rules, uid, login_uid, dest.proto, dest.port, at),
        )
    } else {
        let k = c.image.lookup_person(
            uid,
            login_uid,
            unset,
            dest.addr,
            dest.proto,
            dest.port,
            time::ns(at),
        );
        (
            (k.ruling, k.by_login),
            eval::evaluate_person(
                &c.rules, uid, login_uid, unset, dest.addr, dest.proto, dest.port, at,
            ),
        )
    };
    if (kernel.action, kernel.rule_id, by_login) != (reference.action, reference.rule_id, ref_login)
    {
        return Err(format!(
            "internal error: the compiled policy decides action {} by rule {} but the reference decides action {} by rule {}; please report this",
            kernel.action, kernel.rule_id, reference.action, reference.rule_id
        ));
    }
    let matches = reference
        .matches
        .iter()
        .map(|m| {
            let entry = c
                .rules
                .rule(m.rule_id)
                .and_then(|r| match m.kind {
                    _ if dest.listen => r.listen.get(m.entry).map(|l| &l.span),
                    Kind::Allow => r.allow.get(m.entry).map(|e| &e.span),
                    Kind::Deny => r.deny.get(m.entry).map(|e| &e.span),
                })
                .map(|span| {
                    if span.line == 0 {
                        String::new()
                    } else {
                        span.to_string()
                    }
                })
                .unwrap_or_default();
            MatchRef {
                rule: rule_ref(c, m.rule_id),
                kind: m.kind,
                audit: m.audit,
                entry,
            }
        })
        .collect();
    Ok(CheckReport {
        verdict: Verdict::from_action(kernel.action),
        allowed: kernel.action != action::DENY,
        user: user.to_string(),
        uid,
        decided_as: Some(eval::decided_as(&c.rules, uid)).filter(|&o| o != uid),
        login: login.map(|(name, uid)| Login { user: name, uid }),
        decided_by: if by_login { "login" } else { "uid" },
        dest: dest.to_string(),
        at: at.to_string(),
        rule: rule_ref(c, kernel.rule_id),
        matches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let d = parse_dest("198.51.100.7:22/tcp").unwrap();
        assert_eq!(
            (d.addr.to_string(), d.port, d.proto),
            ("198.51.100.7".into(), 22, 6)
        );
        let d = parse_dest("[2001:db8:1::7]:443").unwrap();
        assert_eq!(
            (d.addr.to_string(), d.port, d.proto),
            ("2001:db8:1::7".into(), 443, 6)
        );
        let d = parse_dest("198.51.100.53:53/udp").unwrap();
        assert_eq!(d.proto, 17);
        let d = parse_dest("169.254.169.254/icmp").unwrap();
        assert_eq!((d.port, d.proto), (0, 1));
        assert_eq!(
            parse_dest("198.51.100.7").unwrap_err(),
            "invalid destination `198.51.100.7`: a port is needed, like `198.51.100.7:22` or `[2001:db8::7]:443`"
        );
        assert_eq!(
            parse_dest("198.51.100.7:22/sctp").unwrap_err(),
            "invalid destination `198.51.100.7:22/sctp`: the protocol must be `tcp`, `udp` or `icmp`"
        );
    }
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    #[test]
    fn listen_checks_parse() {
        let d = parse_dest("listen:8080").unwrap();
        assert_eq!((d.port, d.proto, d.listen), (8080, 6, true));
        assert_eq!(d.to_string(), "listen:8080/tcp");
        assert_eq!(parse_dest("listen:53/udp").unwrap().proto, 17);
        assert_eq!(
            parse_dest("listen:53/icmp").unwrap_err(),
            "invalid destination `listen:53/icmp`: a listen check takes `/tcp` or `/udp`"
        );
    }
}

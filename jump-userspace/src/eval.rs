//! The reference evaluator: a deliberately naive reading of the policy semantics, with no
//! compilation, no tries and no windows. The compiler is tested against it (the differential
//! property test), and `jumpctl check` uses it to explain the kernel's answer.
//!
//! The semantics, in order:
//! 0. A subordinate uid (`/etc/subuid`) is its owner: a uid in the ranges of exactly one
//!    owner, that no account has, that no rule names and that is not `ANY_UID`, is decided as
//!    that owner (`decided_as`); every other uid as itself.
//! 1. An entry *applies* to a connection when its rule names the uid (or everyone), the rule is
//!    active at that time (`expires`, `schedule`), the destination is in one of its networks (an
//!    IPv4-mapped IPv6 address is the IPv4 address; IPv6 networks never hold IPv4 addresses), the
//!    protocol is one of its protocols, and the port is in its ranges (ICMP has no port).
//!    Joining a multicast group is asked as protocol `JOIN` with the group as destination: an
//!    entry applies when the group is in its networks and `udp` is one of its protocols, whatever
//!    its ports.
//! 2. An applying enforce-mode `deny` → denied.
//! 3. An applying audit-mode `deny`, where the connection would otherwise be allowed (by an
//!    applying allow of any mode, or by `defaults.egress: allow`) → audit (allowed, logged
//!    "would deny").
//! 4. An applying enforce-mode `allow` → allowed.
//! 5. An applying audit-mode `allow`, when `defaults.egress` is `deny` → audit.
//! 6. Otherwise `defaults.egress`, attributed to rule 0.
//! 7. With `defaults.identity: person` and a task whose audit login uid is set, steps 0–6 are
//!    asked for the uid and for the login uid, and the less permissive answer stands (deny, then
//!    audit, then allow; the uid's on a tie), reported as decided by `login` when it is the
//!    login uid's (`evaluate_person`). A login uid can only narrow.
//! 8. A just-in-time grant scoped to an audit session applies (step 1) only to a task of that
//!    session; a task (or socket) with no known session is in none.
//! 9. At egress, where the interface is known: if the deciding rule has `via` and the packet
//!    leaves on an interface it does not name, denied (`on_interface`).
//!
//! Within one step the first rule in file order is reported (the synthetic `loopback` rule comes
//! before every file rule).
//!
//! The steps read the resolved rule set (`crate::resolve`); who each rule names, the loopback
//! rule and the rule ids also have a reading of their own here (`rule_order`, `names_uid`,
//! `loopback_kind`), which the differential test holds the resolved set to.

use std::net::IpAddr;

use jiff::Timestamp;
use jump_common::action;

use crate::{
    compile::time,
    policy::{self, Entry, Loopback, Mode, Policy, Proto, UserRef},
    resolve::{Directory, EffRule, RuleSet},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Allow,
    Deny,
}

/// One applying entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub rule_id: u32,
    pub kind: Kind,
    pub audit: bool,
    /// Index into the rule's `allow` or `deny` list.
    pub entry: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `jump_common::action`.
    pub action: u8,
    /// 0 for the default.
    pub rule_id: u32,
    /// Every applying entry, in rule order.
    pub matches: Vec<Match>,
}

/// The destination as the semantics sees it: IPv4-mapped IPv6 is IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        a => a,
    }
}

pub fn rule_active(rule: &EffRule, t: Timestamp) -> bool {
    rule.expires.is_none_or(|e| t < e)
        && rule
            .schedule
            .as_ref()
            .is_none_or(|s| time::schedule_open(s, t))
}

pub fn entry_applies(e: &Entry, addr: IpAddr, proto: Proto, port: u16) -> bool {
    let addr = canonical(addr);
    e.nets.iter().any(|n| n.contains(&addr))
        && e.protos.contains(&proto)
        && (proto == Proto::Icmp || e.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi))
}

/// (0) The uid a decision for `uid` is made as.
pub fn decided_as(rules: &RuleSet, uid: u32) -> u32 {
    let own = uid == jump_common::ANY_UID
        || rules.accounts.contains(&uid)
        || rules.rules.iter().any(|r| r.uids.contains(&uid));
    if own {
        return uid;
    }
    let owners: std::collections::BTreeSet<u32> = rules
        .subordinates
        .iter()
        .filter(|s| s.first <= uid && uid <= s.last)
        .map(|s| s.owner)
        .collect();
    match owners.first() {
        Some(&owner) if owners.len() == 1 => owner,
        _ => uid,
    }
}

/// The protocol number a multicast join is asked under (IGMP).
pub const JOIN: u8 = jump_common::proto::IGMP;

/// Whether `e` applies to joining `group` (step 1).
pub fn entry_applies_to_join(e: &Entry, group: IpAddr) -> bool {
    let group = canonical(group);
    e.nets.iter().any(|n| n.contains(&group)) && e.protos.contains(&Proto::Udp)
}

pub fn evaluate(
    rules: &RuleSet,
    uid: u32,
    addr: IpAddr,
    proto: u8,
    port: u16,
    at: Timestamp,
) -> Decision {
    evaluate_in(rules, uid, jump_common::LOGIN_UNSET, addr, proto, port, at)
}

/// Whether rule `r` holds for a task in audit session `session` (step 8).
fn in_session(r: &EffRule, session: u32) -> bool {
    r.session
        .is_none_or(|s| session != jump_common::LOGIN_UNSET && s == session)
}

/// How permissive an action is (step 7): the lower one of two decisions wins.
fn permissiveness(a: u8) -> u8 {
    match a {
        action::DENY => 0,
        action::AUDIT => 1,
        _ => 2,
    }
}

/// Step 7: the decision for a task with uid `uid`, audit login uid `login` (`LOGIN_UNSET`: none)
/// in audit session `session`, and whether the login uid's decision is the one that stands.
#[expect(clippy::too_many_arguments, reason = "the question, field by field")]
pub fn evaluate_person(
    rules: &RuleSet,
    uid: u32,
    login: u32,
    session: u32,
    addr: IpAddr,
    proto: u8,
    port: u16,
    at: Timestamp,
) -> (Decision, bool) {
    let by_uid = evaluate_in(rules, uid, session, addr, proto, port, at);
    if rules.identity != jump_common::identity::PERSON || login == jump_common::LOGIN_UNSET {
        return (by_uid, false);
    }
    let by_login = evaluate_in(rules, login, session, addr, proto, port, at);
    if permissiveness(by_login.action) < permissiveness(by_uid.action) {
        (by_login, true)
    } else {
        (by_uid, false)
    }
}

/// `evaluate_listen` under step 7.
pub fn evaluate_listen_person(
    rules: &RuleSet,
    uid: u32,
    login: u32,
    proto: u8,
    port: u16,
    at: Timestamp,
) -> (Decision, bool) {
    let by_uid = evaluate_listen(rules, uid, proto, port, at);
    if rules.identity != jump_common::identity::PERSON || login == jump_common::LOGIN_UNSET {
        return (by_uid, false);
    }
    let by_login = evaluate_listen(rules, login, proto, port, at);
    if permissiveness(by_login.action) < permissiveness(by_uid.action) {
        (by_login, true)
    } else {
        (by_uid, false)
    }
}

/// `evaluate` for a task in audit session `session` (`LOGIN_UNSET`: none).
pub fn evaluate_in(
    rules: &RuleSet,
    uid: u32,
    session: u32,
    addr: IpAddr,
    proto: u8,
    port: u16,
    at: Timestamp,
) -> Decision {
    let uid = decided_as(rules, uid);
    let mut matches = Vec::new();
    let applies = |e: &Entry| match Proto::from_number(proto) {
        Some(p) => entry_applies(e, addr, p, port),
        None => proto == JOIN && entry_applies_to_join(e, addr),
    };
    {
        for r in &rules.rules {
            if !r.applies_to(uid) || !rule_active(r, at) || !in_session(r, session) {
                continue;
            }
            for (kind, entries) in [(Kind::Deny, &r.deny), (Kind::Allow, &r.allow)] {
                for (i, e) in entries.iter().enumerate() {
                    if applies(e) {
                        matches.push(Match {
                            rule_id: r.id,
                            kind,
                            audit: r.mode == Mode::Audit,
                            entry: i,
                        });
                    }
                }
            }
        }
    }
    let first = |kind: Kind, audit: bool| {
        matches
            .iter()
            .find(|m| m.kind == kind && m.audit == audit)
            .map(|m| m.rule_id)
    };
    let default_allows = rules.default_action != action::DENY;
    let decide = |action: u8, rule_id: u32| (action, rule_id);
    let (action, rule_id) = if let Some(id) = first(Kind::Deny, false) {
        // (2)
        decide(action::DENY, id)
    } else if let Some(id) = first(Kind::Deny, true)
        .filter(|_| default_allows || matches.iter().any(|m| m.kind == Kind::Allow))
    {
        // (3)
        decide(action::AUDIT, id)
    } else if let Some(id) = first(Kind::Allow, false) {
        // (4)
        decide(action::ALLOW, id)
    } else if let Some(id) = first(Kind::Allow, true).filter(|_| !default_allows) {
        // (5)
        decide(action::AUDIT, id)
    } else {
        // (6)
        decide(rules.default_action, 0)
    };
    Decision {
        action,
        rule_id,
        matches,
    }
}

/// Step 9, at egress only, where the interface is known: a decision by a rule with `via`
/// holds only on the interfaces it names (those that exist); a packet leaving on another
/// interface is denied, attributed to that rule.
pub fn on_interface(rules: &RuleSet, d: Decision, ifindex: u32) -> Decision {
    let Some(rule) = rules.rule(d.rule_id) else {
        return d;
    };
    let holds = rule.via.is_empty() || rule.via.iter().any(|(_, _, i)| *i == Some(ifindex));
    if holds {
        d
    } else {
        Decision {
            action: action::DENY,
            ..d
        }
    }
}

/// The reference's own reading of resolution, from the policy model and the accounts alone,
/// sharing no code with `crate::resolve`: the evaluation above works on the resolved rule set,
/// and the differential test checks that set against these, so a mistake in resolving users,
/// groups, the loopback rule or rule ids cannot pass because both sides made it.
///
/// Rule ids, in order: 0 is the default; with `defaults.loopback` other than `policy` the
/// synthetic `loopback` rule is 1 (`None` here); the file rules follow in file order.
pub fn rule_order(policy: &Policy) -> Vec<(u32, Option<&policy::Rule>)> {
    let synthetic = (policy.defaults.loopback != Loopback::Policy).then_some(None);
    synthetic
        .into_iter()
        .chain(policy.rules.iter().map(Some))
        .zip(1..)
        .map(|(r, id)| (id, r))
        .collect()
}

/// Whether rule `r` (`None`: the loopback rule, which is everyone's) names `uid`: `users: ["*"]`,
/// the uid by number, a user name whose uid it is, or a group with it as a member. `ANY_UID`
/// (`(uid_t)-1`) is never named.
pub fn names_uid(r: Option<&policy::Rule>, dir: &dyn Directory, uid: u32) -> bool {
    let Some(r) = r else { return true };
    if r.everyone {
        return true;
    }
    if uid == jump_common::ANY_UID {
        return false;
    }
    let by_user = r.users.iter().any(|(u, _)| match u {
        UserRef::Uid(n) => *n == uid,
        UserRef::Name(name) => dir.uid_of(name) == Some(uid),
    });
    by_user
        || r.groups
            .iter()
            .any(|(g, _)| dir.group_members(g).is_some_and(|m| m.contains(&uid)))
}

/// What the loopback rule (`None` in `rule_order`) does: allow or deny 127.0.0.0/8 and ::1,
/// every protocol and port, by `defaults.loopback`.
pub fn loopback_kind(policy: &Policy) -> Option<Kind> {
    match policy.defaults.loopback {
        Loopback::Allow => Some(Kind::Allow),
        Loopback::Deny => Some(Kind::Deny),
        Loopback::Policy => None,
    }
}

/// May `uid` bind and accept on (`proto`, `port`)? Listening needs a grant: an applying enforced
/// `listen` entry → allowed; else an applying audit-mode one → audit; else refused (rule 0),
/// whatever `defaults.egress` says. The first rule in file order is reported.
pub fn evaluate_listen(rules: &RuleSet, uid: u32, proto: u8, port: u16, at: Timestamp) -> Decision {
    let uid = decided_as(rules, uid);
    let mut matches = Vec::new();
    // "Port 0 (an ephemeral port) always works" (policies/README.md, `listen`).
    if port == 0 {
        return Decision {
            action: action::ALLOW,
            rule_id: 0,
            matches,
        };
    }
    if let Some(proto) = Proto::from_number(proto).filter(|&p| p != Proto::Icmp) {
        for r in &rules.rules {
            if !r.applies_to(uid) || !rule_active(r, at) {
                continue;
            }
            for (i, l) in r.listen.iter().enumerate() {
                if l.protos.contains(&proto)
                    && l.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi)
                {
                    matches.push(Match {
                        rule_id: r.id,
                        kind: Kind::Allow,
                        audit: r.mode == Mode::Audit,
                        entry: i,
                    });
                }
            }
        }
    }
    let first = |audit: bool| matches.iter().find(|m| m.audit == audit).map(|m| m.rule_id);
    let (action, rule_id) = match (first(false), first(true)) {
        (Some(id), _) => (action::ALLOW, id),
        (None, Some(id)) => (action::AUDIT, id),
        (None, None) => (action::DENY, 0),
    };
    Decision {
        action,
        rule_id,
        matches,
    }
}

/// One connection to try against the kernel, with the reference's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub uid: u32,
    pub addr: IpAddr,
    /// IP protocol number (`jump_common::proto`).
    pub proto: u8,
    pub port: u16,
    /// `jump_common::action` the reference (and the compiled image) decide.
    pub action: u8,
    pub rule_id: u32,
}

/// Up to `count` probes chosen deterministically (by `seed`) from the edges of a compiled policy:
/// every listed uid plus one unlisted, the first and last address of every destination network
/// and the address just past it, the first and last port of every port block and the ports just
/// outside it, over tcp, udp and icmp. For checking the kernel's own verdicts against the
/// reference in privileged tests; each probe's verdict is computed by the reference and checked
/// against the compiled image here.
pub fn sample_probes(
    c: &crate::compile::Compiled,
    at: Timestamp,
    count: usize,
    seed: u64,
) -> Vec<Probe> {
    use std::collections::BTreeSet;
    let mut uids: BTreeSet<u32> = c
        .image
        .users
        .keys()
        .copied()
        .filter(|&u| u != jump_common::ANY_UID)
        .collect();
    uids.insert(3_999_999_999);
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    for d in &c.image.dests {
        let (first, last) = (d.net.network(), d.net.broadcast());
        addrs.insert(first);
        addrs.insert(last);
        let next = match last {
            IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
            IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
        };
        addrs.extend(next);
    }
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    for p in &c.image.ports {
        let last = p.port | (u16::MAX.checked_shr(u32::from(p.bits)).unwrap_or(0));
        ports.extend([
            p.port.max(1),
            last,
            last.saturating_add(1),
            p.port.saturating_sub(1).max(1),
        ]);
    }
    let (uids, addrs, ports): (Vec<u32>, Vec<IpAddr>, Vec<u16>) = (
        uids.into_iter().collect(),
        addrs.into_iter().collect(),
        ports.into_iter().collect(),
    );
    if addrs.is_empty() || ports.is_empty() {
        return Vec::new();
    }
    let mut state = seed;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    let mut out = Vec::with_capacity(count);
    let now_ns = crate::compile::time::ns(at);
    for _ in 0..count {
        let uid = uids[next(uids.len())];
        let addr = addrs[next(addrs.len())];
        let proto = [
            jump_common::proto::TCP,
            jump_common::proto::UDP,
            jump_common::proto::ICMP,
        ][next(3)];
        let port = if proto == jump_common::proto::ICMP {
            0
        } else {
            ports[next(ports.len())]
        };
        let r = evaluate(&c.rules, uid, addr, proto, port, at);
        let k = c.image.lookup(uid, addr, proto, port, now_ns);
        debug_assert_eq!(
            (k.action, k.rule_id),
            (r.action, r.rule_id),
            "compiled and reference disagree"
        );
        out.push(Probe {
            uid,
            addr,
            proto,
            port,
            action: r.action,
            rule_id: r.rule_id,
        });
    }
    out
}

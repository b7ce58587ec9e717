//! Model → rule set: users and groups resolved to uids, the synthetic loopback rule added, rule
//! ids assigned. Both the compiler and the reference evaluator work from this one list, so they
//! number rules alike.

use std::collections::BTreeSet;

use ipnet::IpNet;
use jump_common::{action, log_mode};

use super::Directory;
use crate::policy::{
    Diagnostic, Egress, Entry, Listen, LogMode, Loopback, Mode, Policy, PolicyErrors, Proto,
    Schedule, Span, UserRef,
};

/// A rule with its principals resolved. Rule ids: 0 is the policy default, then `rules[i]` has
/// id `i + 1`.
#[derive(Clone, Debug)]
pub struct EffRule {
    pub id: u32,
    pub name: String,
    /// `None` for the synthetic loopback rule.
    pub span: Option<Span>,
    pub everyone: bool,
    pub uids: BTreeSet<u32>,
    pub mode: Mode,
    pub expires: Option<jiff::Timestamp>,
    pub schedule: Option<Schedule>,
    pub allow: Vec<Entry>,
    pub deny: Vec<Entry>,
    pub listen: Vec<Listen>,
    /// `via` resolved: interface name and its index (`None`: no such interface now).
    pub via: Vec<(String, Span, Option<u32>)>,
}

impl EffRule {
    pub fn location(&self) -> String {
        self.span
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    pub fn applies_to(&self, uid: u32) -> bool {
        self.everyone || self.uids.contains(&uid)
    }
}

#[derive(Clone, Debug)]
pub struct RuleSet {
    pub default_action: u8,
    pub log_mode: u8,
    pub rules: Vec<EffRule>,
}

impl RuleSet {
    pub fn rule(&self, id: u32) -> Option<&EffRule> {
        id.checked_sub(1).and_then(|i| self.rules.get(i as usize))
    }
}

pub const LOOPBACK_RULE: &str = "loopback";

fn loopback_entry() -> Entry {
    let nets: Vec<IpNet> = vec![
        "127.0.0.0/8".parse().unwrap_or_else(|_| IpNet::default()),
        "::1/128".parse().unwrap_or_else(|_| IpNet::default()),
    ];
    Entry {
        span: Span::default(),
        to: vec!["127.0.0.0/8".into(), "::1".into()],
        nets,
        protos: Proto::ALL.to_vec(),
        ports: vec![(0, u16::MAX)],
    }
}

/// Resolves every user and group name; unknown ones are errors at their position.
pub fn resolve(policy: &Policy, dir: &dyn Directory) -> Result<RuleSet, PolicyErrors> {
    let snapshot = dir.snapshot();
    let dir: &dyn Directory = match &snapshot {
        Some(s) => s,
        None => dir,
    };
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut next_id = 1;
    if policy.defaults.loopback != Loopback::Policy {
        let entry = loopback_entry();
        let (allow, deny) = match policy.defaults.loopback {
            Loopback::Deny => (vec![], vec![entry]),
            _ => (vec![entry], vec![]),
        };
        rules.push(EffRule {
            id: next_id,
            name: LOOPBACK_RULE.into(),
            span: None,
            everyone: true,
            uids: BTreeSet::new(),
            mode: Mode::Enforce,
            expires: None,
            schedule: None,
            allow,
            deny,
            listen: Vec::new(),
            via: Vec::new(),
        });
        next_id += 1;
    }
    for r in &policy.rules {
        let mut uids = BTreeSet::new();
        for (u, span) in &r.users {
            match u {
                UserRef::Uid(uid) => {
                    uids.insert(*uid);
                }
                UserRef::Name(name) => match dir.uid_of(name) {
                    Some(uid) => {
                        uids.insert(uid);
                    }
                    None => errors.push(
                        Diagnostic::error(span.clone(), format!("unknown user `{name}`"))
                            .with_help("users come from /etc/passwd; give users known only to a directory service (LDAP) by numeric uid"),
                    ),
                },
            }
        }
        for (g, span) in &r.groups {
            match dir.group_members(g) {
                Some(members) => uids.extend(members),
                None => errors.push(
                    Diagnostic::error(span.clone(), format!("unknown group `{g}`"))
                        .with_help("groups come from /etc/group"),
                ),
            }
        }
        rules.push(EffRule {
            id: next_id,
            name: r.name.clone(),
            span: Some(r.span.clone()),
            everyone: r.everyone,
            uids,
            mode: r.mode,
            expires: r.expires,
            schedule: r.schedule.clone(),
            allow: r.allow.clone(),
            deny: r.deny.clone(),
            listen: r.listen.clone(),
            via: r
                .via
                .iter()
                .map(|(name, span)| (name.clone(), span.clone(), dir.ifindex(name)))
                .collect(),
        });
        next_id += 1;
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    Ok(RuleSet {
        default_action: match policy.defaults.egress {
            Egress::Deny => action::DENY,
            Egress::Allow => action::ALLOW,
        },
        log_mode: match policy.defaults.log {
            LogMode::All => log_mode::ALL,
            LogMode::Deny => log_mode::DENY,
            LogMode::None => log_mode::NONE,
        },
        rules,
    })
}

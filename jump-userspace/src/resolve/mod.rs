//! Stage 2: validated policy model → resolved rule set. Users and groups become uids (from the
//! accounts a policy is checked against: `Directory`, `accounts`), `via` interfaces become
//! indexes, the synthetic loopback rule is added and rule ids are assigned. Both the compiler
//! and the reference evaluator work from this one list, so they number rules alike; this module
//! alone asks the system (or the given account files) who a name is.

pub mod accounts;
pub mod directory;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use jump_common::{action, log_mode};

pub use accounts::{AccountFiles, Accounts};
pub use directory::{Directory, FakeDirectory, SubuidRange, SystemDirectory};

use crate::policy::{
    Diagnostic, Egress, Entry, Identity, Listen, LogMode, Loopback, Mode, Policy, PolicyErrors,
    Proto, Schedule, Span, UserRef,
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
    /// A just-in-time grant scoped to one audit session (`jumpctl grant --session`): it
    /// applies only to tasks (and sockets connected by tasks) of that session.
    pub session: Option<u32>,
    /// A just-in-time grant's reason, named in its events.
    pub reason: Option<String>,
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

/// Names a policy resolved (`user alice`, `group ops`) and the uids each resolved to.
pub type Principals = BTreeMap<String, BTreeSet<u32>>;

/// A subordinate uid range with its owner resolved: `first..=last` belong to `owner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subordinate {
    pub owner: u32,
    pub first: u32,
    pub last: u32,
}

#[derive(Clone, Debug)]
pub struct RuleSet {
    pub default_action: u8,
    pub log_mode: u8,
    /// `jump_common::identity` (`defaults.identity`).
    pub identity: u8,
    pub rules: Vec<EffRule>,
    /// The names that resolved (`user alice`, `group ops`), with the uids they resolved to: a
    /// later compile may let exactly these vanish (`Vanished::Warn`), and a rule that denies
    /// keeps denying their uids.
    pub principals: Principals,
    /// `/etc/subuid`, owners resolved (lines naming an unknown user are left out).
    pub subordinates: Vec<Subordinate>,
    /// Every uid with an account: never taken for a subordinate uid.
    pub accounts: BTreeSet<u32>,
}

/// What resolving does with a user or group name the system no longer has.
#[derive(Clone, Copy, Debug)]
pub enum Vanished<'a> {
    /// An error (`jumpctl validate`, and jumpd for names it never resolved).
    Error,
    /// jumpd at runtime: a name in this set (the active policy's `principals`) was deleted, or
    /// its directory service fails; its grants go in the next generation with a warning, so a
    /// recycled uid inherits nothing and reloads do not freeze on a deleted account. A rule
    /// that denies keeps denying the uids the name had, with a warning: a deny never shrinks
    /// because a name cannot be resolved.
    Warn(&'a Principals),
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
    resolve_with(policy, dir, Vanished::Error).map(|(r, _)| r)
}

/// A uid no rule may name: the kernel's `(uid_t)-1`, which the maps use for "any other uid".
fn reserved_uid(uid: u32) -> bool {
    uid == jump_common::ANY_UID
}

/// `resolve`, with the warnings of names allowed to vanish.
pub fn resolve_with(
    policy: &Policy,
    dir: &dyn Directory,
    vanished: Vanished,
) -> Result<(RuleSet, Vec<Diagnostic>), PolicyErrors> {
    let snapshot = dir.snapshot();
    let dir: &dyn Directory = match &snapshot {
        Some(s) => s,
        None => dir,
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut principals = BTreeMap::new();
    // (principal, its error, what a warning says instead, whether its rule denies, the rule's
    // index in `rules`).
    let mut missing: Vec<(String, Diagnostic, String, bool, usize)> = Vec::new();
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
            session: None,
            reason: None,
        });
        next_id += 1;
    }
    for r in &policy.rules {
        let denies = !r.deny.is_empty();
        let mut uids = BTreeSet::new();
        for (u, span) in &r.users {
            match u {
                UserRef::Uid(uid) => {
                    uids.insert(*uid);
                }
                UserRef::Name(name) => match dir.uid_of(name) {
                    // Named or numeric, the same checks: a name must not reach a uid the
                    // numeric form refuses.
                    Some(uid) if reserved_uid(uid) => errors.push(
                        Diagnostic::error(
                            span.clone(),
                            format!("user `{name}` has uid {uid}, which no rule may name"),
                        )
                        .with_help("4294967295 is `(uid_t)-1`, which stands for no uid"),
                    ),
                    Some(uid) => {
                        principals.insert(format!("user {name}"), BTreeSet::from([uid]));
                        uids.insert(uid);
                    }
                    None => missing.push((
                        format!("user {name}"),
                        Diagnostic::error(span.clone(), format!("unknown user `{name}`"))
                            .with_help("users come from /etc/passwd and NSS (LDAP, SSSD), or the file given with `--passwd`"),
                        format!("user `{name}` no longer exists"),
                        denies,
                        rules.len(),
                    )),
                },
            }
        }
        for (g, span) in &r.groups {
            match dir.group_members(g) {
                Some(members) => {
                    principals.insert(
                        format!("group {g}"),
                        members
                            .iter()
                            .copied()
                            .filter(|&u| !reserved_uid(u))
                            .collect(),
                    );
                    if members.iter().any(|&u| reserved_uid(u)) {
                        errors.push(
                            Diagnostic::error(
                                span.clone(),
                                format!(
                                    "group `{g}` has a member with uid {}, which no rule may name",
                                    jump_common::ANY_UID
                                ),
                            )
                            .with_help("4294967295 is `(uid_t)-1`, which stands for no uid"),
                        );
                    }
                    uids.extend(members.into_iter().filter(|&u| !reserved_uid(u)));
                }
                None => missing.push((
                    format!("group {g}"),
                    Diagnostic::error(span.clone(), format!("unknown group `{g}`")).with_help(
                        "groups come from /etc/group and NSS, or the file given with `--group`",
                    ),
                    format!("group `{g}` no longer exists"),
                    denies,
                    rules.len(),
                )),
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
            session: None,
            reason: None,
        });
        next_id += 1;
    }
    for (key, error, what, denies, at) in missing {
        match vanished {
            // A rule that denies must not lose whom it denies because a name cannot be resolved
            // now (deleted, or its directory service failing): it keeps the uids the name had.
            Vanished::Warn(known) if denies && known.contains_key(&key) => {
                let before = known[&key].clone();
                let list: Vec<String> = before.iter().map(u32::to_string).collect();
                warnings.push(Diagnostic::warning(
                    error.span,
                    format!(
                        "{what}: rule `{}` keeps denying the uids it had ({})",
                        rules[at].name,
                        list.join(", ")
                    ),
                ));
                rules[at].uids.extend(&before);
                principals.insert(key, before);
            }
            Vanished::Warn(known) if known.contains_key(&key) => {
                warnings.push(Diagnostic::warning(
                    error.span,
                    format!("{what}: its grants are dropped from this generation"),
                ));
                // Still known as vanished: the next reload warns again rather than freezing.
                principals.insert(key, BTreeSet::new());
            }
            _ => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    let accounts = dir.account_uids();
    let named: BTreeSet<u32> = rules.iter().flat_map(|r| r.uids.iter().copied()).collect();
    let mut subordinates = Vec::new();
    for r in dir.subuid_ranges().into_iter().filter(|r| r.count > 0) {
        let Some(owner) = r.owner.parse().ok().or_else(|| dir.uid_of(&r.owner)) else {
            continue;
        };
        let last = u32::try_from(u64::from(r.first) + u64::from(r.count) - 1).unwrap_or(u32::MAX);
        warnings.extend(covered_uids(&r, owner, last, &accounts, &named));
        subordinates.push(Subordinate {
            owner,
            first: r.first,
            last,
        });
    }
    let set = RuleSet {
        subordinates,
        accounts,
        default_action: match policy.defaults.egress {
            Egress::Deny => action::DENY,
            Egress::Allow => action::ALLOW,
        },
        identity: match policy.defaults.identity {
            Identity::Uid => jump_common::identity::UID,
            Identity::Person => jump_common::identity::PERSON,
        },
        log_mode: match policy.defaults.log {
            LogMode::All => log_mode::ALL,
            LogMode::Deny => log_mode::DENY,
            LogMode::None => log_mode::NONE,
        },
        rules,
        principals,
    };
    Ok((set, warnings))
}

/// A warning when a subordinate uid range holds uids of their own (an account's, or one a rule
/// names by number). The range's owner may map them into a user namespace (newuidmap checks
/// only `/etc/subuid`) and act as them there, connections included: jump decides those uids as
/// themselves, so the owner gets their grants. Only the host's files can close that.
fn covered_uids(
    r: &SubuidRange,
    owner: u32,
    last: u32,
    accounts: &BTreeSet<u32>,
    named: &BTreeSet<u32>,
) -> Option<Diagnostic> {
    const SHOWN: usize = 3;
    let mut covered: Vec<String> = Vec::new();
    let mut more = 0;
    let mut uids: BTreeSet<u32> = accounts.range(r.first..=last).copied().collect();
    uids.extend(named.range(r.first..=last));
    for uid in uids.into_iter().filter(|&u| u != owner) {
        if covered.len() == SHOWN {
            more += 1;
            continue;
        }
        let what = if accounts.contains(&uid) {
            "an account"
        } else {
            "named by a rule"
        };
        covered.push(format!("uid {uid} ({what})"));
    }
    if covered.is_empty() {
        return None;
    }
    let n = covered.len() + more;
    let mut list = covered.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    let (them, their) = if n == 1 {
        ("it", "its")
    } else {
        ("them", "their")
    };
    Some(
        Diagnostic::warning(
            r.span.clone(),
            format!(
                "the subordinate uids of `{}` ({}-{last}) include {list}: `{}` can become \
                 {them} in a user namespace and connect with {their} grants",
                r.owner, r.first, r.owner
            ),
        )
        .with_help(format!(
            "give `{}` a range that no account or rule uses (usermod --del-subuids, \
             --add-subuids); jump decides these uids as themselves, not as `{}`",
            r.owner, r.owner
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn policy(src: &str) -> Policy {
        crate::policy::load_str("p.yaml", src).unwrap().policy
    }

    #[test]
    fn a_name_resolving_to_the_reserved_uid_is_refused_like_the_number() {
        let d = FakeDirectory::default()
            .user("nobody2", u32::MAX, 100)
            .group("g", 100, &[]);
        let p = policy("rules:\n  - name: r\n    users: [nobody2]\n    groups: [g]\n    allow: [{to: 10.0.0.0/8}]\n");
        assert_eq!(
            resolve(&p, &d).unwrap_err().to_string(),
            "p.yaml:3:13: user `nobody2` has uid 4294967295, which no rule may name\n  help: 4294967295 is `(uid_t)-1`, which stands for no uid\n\
             p.yaml:4:14: group `g` has a member with uid 4294967295, which no rule may name\n  help: 4294967295 is `(uid_t)-1`, which stands for no uid"
        );
    }

    #[test]
    fn a_subordinate_range_over_uids_of_their_own_is_warned_about() {
        let p = policy(
            "rules:\n  - name: r\n    users: [alice, 100005]\n    allow: [{to: 10.0.0.0/8}]\n",
        );
        let d = FakeDirectory::default()
            .user("alice", 1001, 1001)
            .user("bob", 1002, 1002)
            .user("carol", 1003, 1003)
            .subuid("alice", 100_000, 65_536)
            .subuid("carol", 1000, 10)
            .subuid("bob", 200_000, 65_536);
        let (_, warnings) = resolve_with(&p, &d, Vanished::Error).unwrap();
        let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            [
                "subuid:1:1: warning: the subordinate uids of `alice` (100000-165535) include uid \
                 100005 (named by a rule): `alice` can become it in a user namespace and connect \
                 with its grants\n  help: give `alice` a range that no account or rule uses \
                 (usermod --del-subuids, --add-subuids); jump decides these uids as themselves, \
                 not as `alice`",
                "subuid:2:1: warning: the subordinate uids of `carol` (1000-1009) include uid 1001 \
                 (an account), uid 1002 (an account): `carol` can become them in a user \
                 namespace and connect with their grants\n  help: give `carol` a range that no \
                 account or rule uses (usermod --del-subuids, --add-subuids); jump decides these \
                 uids as themselves, not as `carol`",
            ],
            "carol's own uid is no warning; bob's range covers nobody"
        );
        let many = FakeDirectory::default()
            .user("a", 10, 10)
            .user("b", 11, 11)
            .user("c", 12, 12)
            .user("d", 13, 13)
            .user("e", 14, 14)
            .subuid("0", 10, 5);
        let (_, warnings) = resolve_with(&policy("{}"), &many, Vanished::Error).unwrap();
        assert!(
            warnings[0]
                .message
                .contains("include uid 10 (an account), uid 11 (an account), uid 12 (an account) and 2 more: `0` can become them"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_vanished_principal_loses_its_grants_with_a_warning_only_at_runtime() {
        let p = policy("rules:\n  - name: r\n    users: [alice, bob]\n    groups: [ops]\n    allow: [{to: 10.0.0.0/8}]\n");
        let before = FakeDirectory::default()
            .user("alice", 1001, 1001)
            .user("bob", 1002, 1002)
            .group("ops", 2000, &["bob"]);
        let (first, _) = resolve_with(&p, &before, Vanished::Error).unwrap();
        assert_eq!(first.rules[1].uids, BTreeSet::from([1001, 1002]));
        let after = FakeDirectory::default().user("bob", 1002, 1002);
        assert_eq!(
            resolve(&p, &after).unwrap_err().to_string(),
            "p.yaml:3:13: unknown user `alice`\n  help: users come from /etc/passwd and NSS (LDAP, SSSD), or the file given with `--passwd`\n\
             p.yaml:4:14: unknown group `ops`\n  help: groups come from /etc/group and NSS, or the file given with `--group`",
            "validate still calls it an error"
        );
        let (next, warnings) = resolve_with(&p, &after, Vanished::Warn(&first.principals)).unwrap();
        assert_eq!(
            next.rules[1].uids,
            BTreeSet::from([1002]),
            "alice's grant is gone"
        );
        let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            [
                "p.yaml:3:13: warning: user `alice` no longer exists: its grants are dropped from this generation",
                "p.yaml:4:14: warning: group `ops` no longer exists: its grants are dropped from this generation"
            ]
        );
        let (_, again) = resolve_with(&p, &after, Vanished::Warn(&next.principals)).unwrap();
        assert_eq!(
            again.len(),
            2,
            "the next reload warns again instead of freezing"
        );
        let never =
            policy("rules:\n  - name: r\n    users: [carol]\n    allow: [{to: 10.0.0.0/8}]\n");
        assert!(
            resolve_with(&never, &after, Vanished::Warn(&first.principals)).is_err(),
            "a name that never resolved is still an error"
        );
    }

    /// A group whose members cannot be listed right now (deleted, or LDAP down during a
    /// reload) must not turn a deny into nothing under an allow for everyone; nor may it stop
    /// the reload, which other changes of the policy or the accounts need.
    #[test]
    fn a_deny_keeps_whom_it_named_when_a_name_stops_resolving() {
        let p = policy(
            "rules:\n  - name: dmz\n    users: [\"*\"]\n    allow: [{to: 198.51.100.0/24}]\n  - name: no-contractors\n    groups: [contractors]\n    deny: [{to: 198.51.100.0/24}]\n  - name: web\n    users: [gone]\n    allow: [{to: 203.0.113.0/24}]\n",
        );
        let before = FakeDirectory::default()
            .user("mallory", 1005, 1005)
            .user("gone", 1006, 1006)
            .group("contractors", 3000, &["mallory"]);
        let (first, _) = resolve_with(&p, &before, Vanished::Error).unwrap();
        let after = FakeDirectory::default().user("mallory", 1005, 1005);
        let (next, warnings) = resolve_with(&p, &after, Vanished::Warn(&first.principals)).unwrap();
        let rule = |name: &str| next.rules.iter().find(|r| r.name == name).unwrap();
        assert_eq!(
            rule("no-contractors").uids,
            BTreeSet::from([1005]),
            "still denied"
        );
        assert!(rule("web").uids.is_empty(), "an allow loses its grant");
        let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            [
                "p.yaml:6:14: warning: group `contractors` no longer exists: rule `no-contractors` keeps denying the uids it had (1005)",
                "p.yaml:9:13: warning: user `gone` no longer exists: its grants are dropped from this generation",
            ]
        );
        let (again, _) = resolve_with(&p, &after, Vanished::Warn(&next.principals)).unwrap();
        assert_eq!(
            again
                .rules
                .iter()
                .find(|r| r.name == "no-contractors")
                .unwrap()
                .uids,
            BTreeSet::from([1005]),
            "and at every reload after"
        );
    }
}

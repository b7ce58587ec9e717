//! The compiler proper: a resolved rule set → map image, as a plan (`compile_rules`) and its
//! steps. The numbered lookup precedence it meets is documented in `compile/mod.rs`.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use jump_common::{action, ANY_UID, MAX_WINDOWS, WINDOW_ALWAYS};

use super::{
    image::{Intervals, MapImage, RuleInfo},
    subuid, time,
};
use crate::{
    policy::{Diagnostic, Mode, PolicyErrors, Proto},
    resolve::RuleSet,
};

mod profile;

/// Precedence levels, in the order the kernel tries candidates.
const ENFORCE_DENY: u8 = 0;
const AUDIT_DENY: u8 = 1;
const ENFORCE_ALLOW: u8 = 2;
const AUDIT_ALLOW: u8 = 3;

fn level_action(level: u8) -> u8 {
    match level {
        ENFORCE_DENY => action::DENY,
        ENFORCE_ALLOW => action::ALLOW,
        _ => action::AUDIT,
    }
}

/// One `allow`/`deny` entry of one active rule.
struct Atom {
    rule: usize,
    level: u8,
    /// Bit per `Proto` (icmp 1, tcp 2, udp 4).
    protos: u8,
    ports: Vec<(u16, u16)>,
    window: u32,
}

fn proto_bit(p: Proto) -> u8 {
    match p {
        Proto::Icmp => 1,
        Proto::Tcp => 2,
        Proto::Udp => 4,
    }
}

struct Builder<'a> {
    rules: &'a RuleSet,
    default_action: u8,
    atoms: Vec<Atom>,
    windows: Vec<Intervals>,
    /// Per window id: the audit session it is open for (0: every session).
    sessions: Vec<u32>,
    window_ids: HashMap<(Intervals, u32), u32>,
    /// Candidate lists by the atoms that apply (sorted atom ids).
    classes: HashMap<Vec<u32>, u32>,
    image: MapImage,
    /// Per rule index: appears in some final candidate list.
    used: Vec<bool>,
    /// Per rule index: a rule whose always-open candidate cut this one off.
    cut_by: Vec<Option<usize>>,
    errors: Vec<Diagnostic>,
    overflow_seen: std::collections::HashSet<Vec<usize>>,
}

/// The compiler proper, over an already resolved rule set: a plan of steps, each a method
/// of `Builder` below.
pub fn compile_rules(
    rules: &RuleSet,
    now: jiff::Timestamp,
) -> Result<(MapImage, Vec<Diagnostic>), PolicyErrors> {
    let mut b = Builder::new(rules);
    let mut warnings = Vec::new();
    // Per map, the first rule (index) at which it overflowed: capacity errors point at it.
    let mut overflow_at: BTreeMap<&'static str, usize> = BTreeMap::new();
    b.rule_table();
    let atoms = b.atoms(now, &mut overflow_at, &mut warnings);
    b.profiles(&atoms, &mut overflow_at);
    b.image.subuids = subuid::blocks(rules);
    b.check_capacity(&overflow_at);
    b.vias(&mut warnings);
    if !b.errors.is_empty() {
        return Err(PolicyErrors::new(b.errors));
    }
    b.shadow_warnings(&atoms.active, &mut warnings);
    warnings.sort_by(|a, b| a.span.cmp(&b.span));
    Ok((b.finish(), warnings))
}

/// The atoms of the active rules (step 1 of `compile_rules`).
struct RuleAtoms {
    /// Per rule: (atom id, network) pairs; inactive rules get none.
    rule_atoms: Vec<Vec<(u32, IpNet)>>,
    /// Per rule: its `listen` grants' atom ids.
    listen_atoms: Vec<Vec<u32>>,
    /// Per rule: active at some time in the coming week.
    active: Vec<bool>,
}

impl<'a> Builder<'a> {
    fn new(rules: &'a RuleSet) -> Self {
        Builder {
            rules,
            default_action: rules.default_action,
            atoms: Vec::new(),
            windows: vec![Vec::new()],
            sessions: vec![0],
            window_ids: HashMap::new(),
            classes: HashMap::new(),
            image: MapImage {
                default_action: rules.default_action,
                log_mode: rules.log_mode,
                identity: rules.identity,
                ..MapImage::default()
            },
            used: vec![false; rules.rules.len()],
            cut_by: vec![None; rules.rules.len()],
            errors: Vec::new(),
            overflow_seen: Default::default(),
        }
    }

    /// The rule table events and counters name rules by: `default` first, then by rule id.
    fn rule_table(&mut self) {
        self.image.rules.push(RuleInfo {
            name: "default".into(),
            location: String::new(),
            reason: None,
        });
        for r in &self.rules.rules {
            self.image.rules.push(RuleInfo {
                name: r.name.clone(),
                location: r.location(),
                reason: r.reason.clone(),
            });
        }
    }

    /// One atom per `allow`/`deny`/`listen` entry of every rule active in the coming week,
    /// with its time window; warnings for rules that can never match.
    fn atoms(
        &mut self,
        now: jiff::Timestamp,
        overflow_at: &mut BTreeMap<&'static str, usize>,
        warnings: &mut Vec<Diagnostic>,
    ) -> RuleAtoms {
        // Atoms, per rule: (atom id, network) pairs; inactive rules get none.
        let mut rule_atoms: Vec<Vec<(u32, IpNet)>> = Vec::with_capacity(self.rules.rules.len());
        if self.rules.rules.len() + 1 > jump_common::MAX_RULES as usize {
            overflow_at.insert("rule", jump_common::MAX_RULES as usize - 1);
        }
        let mut listen_atoms: Vec<Vec<u32>> = vec![Vec::new(); self.rules.rules.len()];
        let mut active = vec![false; self.rules.rules.len()];
        for (i, r) in self.rules.rules.iter().enumerate() {
            let mut list = Vec::new();
            let window = match time::rule_window(r.expires, r.schedule.as_ref(), now) {
                // A session-scoped rule needs a window to carry its session.
                None if r.session.is_some() => {
                    Some(self.window_id_in(vec![(0, u64::MAX)], r.session.unwrap_or(0)))
                }
                None => Some(WINDOW_ALWAYS),
                Some(iv) if iv.is_empty() => None,
                Some(iv) => {
                    let id = self.window_id_in(iv, r.session.unwrap_or(0));
                    if id as usize >= MAX_WINDOWS as usize {
                        overflow_at.entry("time window").or_insert(i);
                    }
                    Some(id)
                }
            };
            let Some(window) = window else {
                if let Some(span) = &r.span {
                    let msg = match r.expires {
                        Some(e) if e <= now => {
                            format!("rule `{}` expired at {e}: it can never match", r.name)
                        }
                        _ => format!(
                            "rule `{}` is never active in the coming week: it can never match",
                            r.name
                        ),
                    };
                    warnings.push(Diagnostic::warning(span.clone(), msg));
                }
                rule_atoms.push(list);
                continue;
            };
            if !r.everyone && r.uids.is_empty() {
                if let Some(span) = &r.span {
                    warnings.push(Diagnostic::warning(
                        span.clone(),
                        format!(
                            "rule `{}` applies to no user: its groups have no members",
                            r.name
                        ),
                    ));
                }
            }
            active[i] = true;
            let audit = r.mode == Mode::Audit;
            for (entries, level) in [
                (&r.deny, if audit { AUDIT_DENY } else { ENFORCE_DENY }),
                (&r.allow, if audit { AUDIT_ALLOW } else { ENFORCE_ALLOW }),
            ] {
                for e in entries {
                    let id = self.atoms.len() as u32;
                    self.atoms.push(Atom {
                        rule: i,
                        level,
                        protos: e.protos.iter().fold(0, |m, &p| m | proto_bit(p)),
                        ports: e.ports.clone(),
                        window,
                    });
                    list.extend(e.nets.iter().map(|&n| (id, n)));
                }
            }
            for l in &r.listen {
                listen_atoms[i].push(self.atoms.len() as u32);
                self.atoms.push(Atom {
                    rule: i,
                    level: if audit { AUDIT_ALLOW } else { ENFORCE_ALLOW },
                    protos: l.protos.iter().fold(0, |m, &p| m | proto_bit(p)),
                    ports: l.ports.clone(),
                    window,
                });
                if !l.addresses.is_empty() {
                    warnings.push(Diagnostic::warning(
                        l.span.clone(),
                        "`addresses` is not enforced yet: this grant applies to every local address",
                    ));
                }
            }
            rule_atoms.push(list);
        }
        RuleAtoms {
            rule_atoms,
            listen_atoms,
            active,
        }
    }

    /// Profiles: uids grouped by their exact rule set, each set built once (precedence 1).
    fn profiles(&mut self, atoms: &RuleAtoms, overflow_at: &mut BTreeMap<&'static str, usize>) {
        // Profiles: group uids by their exact rule set.
        let everyone: Vec<usize> = (0..self.rules.rules.len())
            .filter(|&i| atoms.active[i] && self.rules.rules[i].everyone)
            .collect();
        let mut per_uid: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in self.rules.rules.iter().enumerate() {
            if atoms.active[i] && !r.everyone {
                for &uid in &r.uids {
                    per_uid.entry(uid).or_default().push(i);
                }
            }
        }
        let mut profiles: HashMap<Vec<usize>, u32> = HashMap::new();
        let mut next_profile = 0u32;
        let mut build = |b: &mut Builder, set: &[usize]| -> u32 {
            if let Some(&p) = profiles.get(set) {
                return p;
            }
            let p = next_profile;
            next_profile += 1;
            profiles.insert(set.to_vec(), p);
            let lists: Vec<&[(u32, IpNet)]> = set
                .iter()
                .map(|&i| atoms.rule_atoms[i].as_slice())
                .collect();
            let listen: Vec<u32> = set
                .iter()
                .flat_map(|&i| atoms.listen_atoms[i].iter().copied())
                .collect();
            b.profile(p, &lists, &listen);
            p
        };
        let note = |b: &Builder, overflow_at: &mut BTreeMap<&'static str, usize>, rule: usize| {
            for (what, need, limit) in [
                ("user", b.image.users.len(), jump_common::MAX_USERS as usize),
                (
                    "destination",
                    b.image.dests.len(),
                    jump_common::MAX_DESTS as usize,
                ),
                ("port", b.image.ports.len(), jump_common::MAX_PORTS as usize),
            ] {
                if need > limit {
                    overflow_at.entry(what).or_insert(rule);
                }
            }
        };
        if !everyone.is_empty() {
            let p = build(self, &everyone);
            self.image.users.insert(ANY_UID, p);
            note(self, overflow_at, everyone[everyone.len() - 1]);
        }
        for (uid, own) in per_uid {
            let first_own = own[0];
            let mut set = everyone.clone();
            set.extend(own);
            set.sort_unstable();
            let p = build(self, &set);
            self.image.users.insert(uid, p);
            note(self, overflow_at, first_own);
        }
    }

    /// An image that does not fit the kernel maps is an error pointing at the overflowing rule.
    fn check_capacity(&mut self, overflow_at: &BTreeMap<&'static str, usize>) {
        // The kernel maps are sized per slot; an image that does not fit is refused here, where
        // `jumpctl validate` reports it, rather than half-written by the daemon.
        for (what, need, limit) in [
            (
                "user",
                self.image.users.len(),
                jump_common::MAX_USERS as usize,
            ),
            (
                "destination",
                self.image.dests.len(),
                jump_common::MAX_DESTS as usize,
            ),
            (
                "port",
                self.image.ports.len(),
                jump_common::MAX_PORTS as usize,
            ),
            ("time window", self.windows.len(), MAX_WINDOWS as usize),
            (
                "rule",
                self.image.rules.len(),
                jump_common::MAX_RULES as usize,
            ),
            (
                "subordinate uid",
                self.image.subuids.len(),
                jump_common::MAX_SUBUID_BLOCKS as usize,
            ),
        ] {
            if need > limit {
                // The rule at which the map overflowed (or the first with a position after it:
                // the synthetic loopback rule has none).
                let span = overflow_at
                    .get(what)
                    .and_then(|&i| self.rules.rules[i..].iter().find_map(|r| r.span.clone()))
                    .unwrap_or_default();
                self.errors.push(
                    Diagnostic::error(
                        span,
                        format!("the compiled policy needs {need} {what} entries, more than the kernel map holds ({limit}); it overflows at this rule"),
                    )
                    .with_help("users with identical rules share entries: grant to groups rather than to many individual users"),
                );
            }
        }
    }

    fn vias(&mut self, warnings: &mut Vec<Diagnostic>) {
        // `via`: the interfaces each such rule holds on, by index; unknown names hold nowhere.
        for r in &self.rules.rules {
            if r.via.is_empty() {
                continue;
            }
            let mut set: Vec<u32> = Vec::new();
            for (name, span, index) in &r.via {
                match index {
                    Some(i) => set.push(*i),
                    None => warnings.push(
                        Diagnostic::warning(
                            span.clone(),
                            format!("no interface `{name}` on this host: rule `{}` holds on no packet through it", r.name),
                        )
                        .with_help("the policy is compiled again when interfaces change"),
                    ),
                }
            }
            set.sort_unstable();
            set.dedup();
            if set.len() > jump_common::MAX_VIA_INTERFACES {
                self.errors.push(Diagnostic::error(
                    r.via[0].1.clone(),
                    format!(
                        "rule `{}` names {} interfaces in `via`, more than {}",
                        r.name,
                        set.len(),
                        jump_common::MAX_VIA_INTERFACES
                    ),
                ));
            }
            self.image.vias.insert(r.id, set);
        }
        if self.image.vias.len() > jump_common::MAX_VIA_RULES as usize {
            self.errors.push(Diagnostic::error(
                crate::policy::Span::default(),
                format!(
                    "{} rules have `via`, more than the kernel map holds ({})",
                    self.image.vias.len(),
                    jump_common::MAX_VIA_RULES
                ),
            ));
        }
    }

    /// Warnings for active rules that never decide a connection (shadowed or cut off).
    fn shadow_warnings(&self, active: &[bool], warnings: &mut Vec<Diagnostic>) {
        for (i, r) in self.rules.rules.iter().enumerate() {
            let Some(span) = &r.span else { continue };
            if !active[i] || self.used[i] || (!r.everyone && r.uids.is_empty()) {
                continue;
            }
            let msg = match self.cut_by[i] {
                Some(by) => {
                    let by = &self.rules.rules[by];
                    let at = by
                        .span
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default();
                    format!(
                        "rule `{}` is fully shadowed by `{}`{at}: it never decides a connection",
                        r.name, by.name
                    )
                }
                None => format!("rule `{}` never decides a connection", r.name),
            };
            let mut d = Diagnostic::warning(span.clone(), msg);
            if r.mode == Mode::Audit
                && r.deny.is_empty()
                && self.rules.default_action != action::DENY
            {
                d = d.with_help(
                    "an audit-mode allow has no effect when `defaults.egress` is `allow`",
                );
            }
            warnings.push(d);
        }
    }

    /// The image in the order the kernel maps are written.
    fn finish(mut self) -> MapImage {
        self.image.dests.sort();
        self.image
            .ports
            .sort_by_key(|p| (p.class, p.proto, p.port, p.bits));
        self.image.windows = self.windows;
        self.image.window_sessions = self
            .sessions
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s != 0)
            .map(|(id, &s)| (id as u32, s))
            .collect();
        self.image
    }
}

//! Stage 2: validated policy model → map image, the exact entries the kernel maps will hold.
//! Pure (no kernel, no aya): everything here runs without root, which is what lets `jumpctl
//! check` give the kernel's answer and the property test compare it with the reference.
//!
//! How the lookup precedence (see `image.rs` and `jump-ebpf/src/lookup.rs`) is met:
//! 1. Users with the same effective rule set share one profile; uids whose rules are exactly the
//!    `users: ["*"]` rules are left out of the users map and fall to the `ANY_UID` profile.
//! 2. Destinations: every network a profile names gets one entry whose class is the set of rule
//!    entries of that network *and every network containing it*, so the longest prefix alone
//!    holds every entry that applies (INVARIANT longest-prefix-complete).
//! 3. Ports: per class and protocol, the port line is cut into the intervals on which the set of
//!    applying entries is constant; each interval becomes aligned prefix blocks, which never
//!    overlap, so the longest match is the only match.
//! 4. Multicast joins: every class with udp entries gets an IGMP (`proto::IGMP`) entry for
//!    port 0 whose candidates are those udp entries regardless of their ports.
//! 5. Candidates are ordered enforce-deny, audit-deny, enforce-allow, audit-allow (rule id order
//!    within a level), and cut after the first that is always open.

pub mod accounts;
// A test fixture (a large synthetic policy), not part of the library.
#[cfg(test)]
mod bench;
pub mod directory;
pub mod dump;
pub mod image;
pub mod prefix;
pub mod resolve;
pub mod show;
pub mod subuid;
pub mod time;

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use jump_common::{
    action, Candidate, ANY_UID, LISTEN_CLASS, MAX_CANDIDATES, MAX_WINDOWS, WINDOW_ALWAYS,
};

pub use accounts::{AccountFiles, Accounts};
pub use directory::{Directory, FakeDirectory, SystemDirectory};
use image::{DestEntry, Intervals, MapImage, PortEntry, RuleInfo};
pub use prefix::port_blocks;
use prefix::{contains, V4_MAPPED};
pub use resolve::{resolve, EffRule, RuleSet, Subordinate, Vanished};

use crate::policy::{Diagnostic, Mode, Policy, PolicyErrors, Proto};

/// A compiled policy and what the compiler noticed on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub image: MapImage,
    pub rules: RuleSet,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles `policy` for the moment `now` (schedules are expanded around it).
pub fn compile(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
) -> Result<MapImage, PolicyErrors> {
    compile_full(policy, dir, now).map(|c| c.image)
}

/// `compile`, keeping the resolved rule set (for the reference evaluator and explanations) and
/// the warnings (rules that can never match or are fully shadowed).
pub fn compile_full(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
) -> Result<Compiled, PolicyErrors> {
    compile_with(policy, dir, now, Vanished::Error)
}

/// `compile_full`, letting the principals in `vanished` be gone (jumpd at runtime).
pub fn compile_with(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
    vanished: Vanished,
) -> Result<Compiled, PolicyErrors> {
    let (rules, mut warnings) = resolve::resolve_with(policy, dir, vanished)?;
    let (image, more) = compile_rules(&rules, now)?;
    warnings.extend(more);
    Ok(Compiled {
        image,
        rules,
        warnings,
    })
}

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

impl Builder<'_> {
    /// The window for `iv`, open only for audit session `session` unless it is 0: a
    /// session-scoped grant never shares a window with anything else.
    fn window_id_in(&mut self, iv: Intervals, session: u32) -> u32 {
        if let Some(&id) = self.window_ids.get(&(iv.clone(), session)) {
            return id;
        }
        let id = self.windows.len() as u32;
        self.windows.push(iv.clone());
        self.sessions.push(session);
        self.window_ids.insert((iv, session), id);
        id
    }

    fn intervals(&self, window: u32) -> Option<&Intervals> {
        (window != WINDOW_ALWAYS).then(|| &self.windows[window as usize])
    }

    /// The candidate list for a set of atoms (sorted ids) that apply together.
    fn candidates(&mut self, atoms: &[u32], default_action: u8) -> Vec<Candidate> {
        let mut list: Vec<(u8, usize, u32)> = atoms
            .iter()
            .map(|&a| {
                let a = &self.atoms[a as usize];
                (a.level, a.rule, a.window)
            })
            .filter(|&(level, _, _)| !(level == AUDIT_ALLOW && default_action != action::DENY))
            .collect();
        list.sort();
        list.dedup_by_key(|&mut (level, rule, _)| (level, rule));
        // An audit deny only matters where the connection would otherwise be allowed: narrow
        // its window to the times some later allow is open (unless the default allows).
        let mut out: Vec<(u8, usize, u32)> = Vec::with_capacity(list.len());
        for (i, &(level, rule, window)) in list.iter().enumerate() {
            if level == AUDIT_DENY && default_action == action::DENY {
                let allows: Vec<u32> = list[i + 1..]
                    .iter()
                    .filter(|c| c.0 >= ENFORCE_ALLOW)
                    .map(|c| c.2)
                    .collect();
                if allows.is_empty() {
                    continue;
                }
                if !allows.contains(&WINDOW_ALWAYS) {
                    // Session-scoped allows (grants) hold in their session only: when they all
                    // share one session the audit deny is scoped to it too; otherwise they are
                    // left out of the union, so the audit deny never lets another session in.
                    let scoped: Vec<u32> =
                        allows.iter().map(|&w| self.sessions[w as usize]).collect();
                    let session = match scoped.first() {
                        Some(&s) if s != 0 && scoped.iter().all(|&x| x == s) => s,
                        _ => 0,
                    };
                    let union = time::normalize(
                        allows
                            .iter()
                            .filter(|&&w| session != 0 || self.sessions[w as usize] == 0)
                            .flat_map(|&w| self.windows[w as usize].iter().copied())
                            .collect(),
                    );
                    let mut narrowed = match self.intervals(window) {
                        None => union,
                        Some(own) => time::intersect(own, &union),
                    };
                    narrowed.truncate(jump_common::MAX_INTERVALS);
                    if narrowed.is_empty() {
                        continue;
                    }
                    let session = match self.intervals(window) {
                        Some(_) if self.sessions[window as usize] != 0 => {
                            self.sessions[window as usize]
                        }
                        _ => session,
                    };
                    let w = self.window_id_in(narrowed, session);
                    out.push((level, rule, w));
                    continue;
                }
            }
            out.push((level, rule, window));
        }
        if let Some(cut) = out.iter().position(|c| c.2 == WINDOW_ALWAYS) {
            for c in &out[cut + 1..] {
                if self.cut_by[c.1].is_none() {
                    self.cut_by[c.1] = Some(out[cut].1);
                }
            }
            out.truncate(cut + 1);
        }
        if out.len() > MAX_CANDIDATES {
            let rules: Vec<usize> = out.iter().map(|c| c.1).collect();
            if self.overflow_seen.insert(rules.clone()) {
                let names: Vec<String> = rules
                    .iter()
                    .map(|&r| format!("`{}`", self.rules.rules[r].name))
                    .collect();
                let span = rules
                    .iter()
                    .find_map(|&r| self.rules.rules[r].span.clone())
                    .unwrap_or_default();
                self.errors.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "{} time-limited rules overlap on the same destinations and ports, more than {MAX_CANDIDATES}: {}",
                            rules.len(),
                            names.join(", ")
                        ),
                    )
                    .with_help("merge rules that share a schedule, or narrow their destinations"),
                );
            }
            out.truncate(MAX_CANDIDATES);
        }
        for c in &out {
            self.used[c.1] = true;
        }
        out.iter()
            .map(|&(level, rule, window)| Candidate {
                rule_id: self.rules.rules[rule].id,
                window,
                action: level_action(level),
                _pad: [0; 3],
            })
            .collect()
    }

    /// Interns a class (the atoms applying to a destination prefix) and compiles its port
    /// entries the first time it is seen.
    fn class(&mut self, atoms: &[u32]) -> u32 {
        if let Some(&c) = self.classes.get(atoms) {
            return c;
        }
        let class = self.classes.len() as u32;
        self.classes.insert(atoms.to_vec(), class);
        self.port_entries(class, atoms, self.default_action);
        class
    }

    /// The `JUMP_PORTS` entries of `class` for these atoms, every protocol; `default_action` is
    /// what the kernel does when no entry applies.
    fn port_entries(&mut self, class: u32, atoms: &[u32], default_action: u8) {
        for proto in Proto::ALL {
            let bit = proto_bit(proto);
            let here: Vec<u32> = atoms
                .iter()
                .copied()
                .filter(|&a| self.atoms[a as usize].protos & bit != 0)
                .collect();
            if here.is_empty() {
                continue;
            }
            // A multicast join is decided as IGMP to the group: the udp entries of the class,
            // whatever their ports (INVARIANT join-is-udp, `eval::JOIN`).
            if proto == Proto::Udp && class & LISTEN_CLASS == 0 {
                let candidates = self.candidates(&here, default_action);
                if !candidates.is_empty() {
                    self.image.ports.push(PortEntry {
                        class,
                        proto: jump_common::proto::IGMP,
                        port: 0,
                        bits: 0,
                        candidates,
                    });
                }
            }
            if proto == Proto::Icmp {
                let candidates = self.candidates(&here, default_action);
                if !candidates.is_empty() {
                    self.image.ports.push(PortEntry {
                        class,
                        proto: proto.number(),
                        port: 0,
                        bits: 0,
                        candidates,
                    });
                }
                continue;
            }
            // Cut points: every range start and every range end + 1.
            let mut cuts: Vec<u32> = vec![0, 1 << 16];
            for &a in &here {
                for &(s, e) in &self.atoms[a as usize].ports {
                    cuts.push(u32::from(s));
                    cuts.push(u32::from(e) + 1);
                }
            }
            cuts.sort_unstable();
            cuts.dedup();
            let mut segments: Vec<(u32, u32, Vec<u32>)> = Vec::new();
            for w in cuts.windows(2) {
                let (lo, hi) = (w[0], w[1] - 1);
                let covering: Vec<u32> = here
                    .iter()
                    .copied()
                    .filter(|&a| {
                        self.atoms[a as usize]
                            .ports
                            .iter()
                            .any(|&(s, e)| u32::from(s) <= lo && hi <= u32::from(e))
                    })
                    .collect();
                match segments.last_mut() {
                    Some(last) if last.2 == covering => last.1 = hi,
                    _ => segments.push((lo, hi, covering)),
                }
            }
            for (lo, hi, covering) in segments {
                if covering.is_empty() {
                    continue;
                }
                let candidates = self.candidates(&covering, default_action);
                if candidates.is_empty() {
                    continue;
                }
                for (port, bits) in port_blocks(lo, hi) {
                    self.image.ports.push(PortEntry {
                        class,
                        proto: proto.number(),
                        port,
                        bits,
                        candidates: candidates.clone(),
                    });
                }
            }
        }
    }

    /// Destination entries of one profile, from the atoms of its rules, and its listen grants
    /// under class `LISTEN_CLASS | profile`.
    fn profile(&mut self, profile: u32, rule_atoms: &[&[(u32, IpNet)]], listen_atoms: &[u32]) {
        if !listen_atoms.is_empty() {
            // A bind with no applying grant is refused, whatever `defaults.egress` says.
            self.port_entries(LISTEN_CLASS | profile, listen_atoms, action::DENY);
        }
        // (mapped address, mapped prefix length, is IPv4) → atoms naming exactly that network.
        let mut nets: BTreeMap<(u128, u8, bool), (IpNet, Vec<u32>)> = BTreeMap::new();
        let mut v6_covers_v4 = false;
        for list in rule_atoms {
            for &(atom, net) in list.iter() {
                let (addr, len) = prefix::mapped(&net);
                let addr = u128::from(addr);
                if net.addr().is_ipv6() && contains(addr, len, V4_MAPPED, 96) {
                    v6_covers_v4 = true;
                }
                nets.entry((addr, len, net.addr().is_ipv4()))
                    .or_insert_with(|| (net, Vec::new()))
                    .1
                    .push(atom);
            }
        }
        // An IPv6 network like `::/0` contains the IPv4-mapped range in the trie, but IPv6
        // entries do not apply to IPv4 destinations: an empty IPv4 `0.0.0.0/0` entry hides it.
        if v6_covers_v4 {
            let any_v4: IpNet = IpNet::V4(ipnet::Ipv4Net::default());
            nets.entry((V4_MAPPED, 96, true))
                .or_insert_with(|| (any_v4, Vec::new()));
        }
        // Sorted by address then length, a network comes after every network containing it; the
        // stack holds the chain of containing networks with their classes' atoms.
        let mut stack: Vec<(u128, u8, bool, Vec<u32>)> = Vec::new();
        for ((addr, len, v4), (net, mut own)) in nets {
            while stack
                .last()
                .is_some_and(|&(a, l, _, _)| !contains(a, l, addr, len))
            {
                stack.pop();
            }
            // INVARIANT (longest-prefix-complete): a class holds its own atoms and those of every
            // containing network of the same family.
            if let Some(parent) = stack.iter().rev().find(|s| s.2 == v4) {
                own.extend_from_slice(&parent.3);
            }
            own.sort_unstable();
            own.dedup();
            let class = self.class(&own);
            self.image.dests.push(DestEntry {
                profile,
                net,
                class,
            });
            stack.push((addr, len, v4, own));
        }
    }
}

/// The compiler proper, over an already resolved rule set.
pub fn compile_rules(
    rules: &RuleSet,
    now: jiff::Timestamp,
) -> Result<(MapImage, Vec<Diagnostic>), PolicyErrors> {
    let mut b = Builder {
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
    };
    let mut warnings = Vec::new();
    b.image.rules.push(RuleInfo {
        name: "default".into(),
        location: String::new(),
        reason: None,
    });
    for r in &rules.rules {
        b.image.rules.push(RuleInfo {
            name: r.name.clone(),
            location: r.location(),
            reason: r.reason.clone(),
        });
    }

    // Atoms, per rule: (atom id, network) pairs; inactive rules get none.
    let mut rule_atoms: Vec<Vec<(u32, IpNet)>> = Vec::with_capacity(rules.rules.len());
    // Per map, the first rule (index) at which it overflowed: capacity errors point at it.
    let mut overflow_at: BTreeMap<&'static str, usize> = BTreeMap::new();
    if rules.rules.len() + 1 > jump_common::MAX_RULES as usize {
        overflow_at.insert("rule", jump_common::MAX_RULES as usize - 1);
    }
    let mut listen_atoms: Vec<Vec<u32>> = vec![Vec::new(); rules.rules.len()];
    let mut active = vec![false; rules.rules.len()];
    for (i, r) in rules.rules.iter().enumerate() {
        let mut list = Vec::new();
        let window = match time::rule_window(r.expires, r.schedule.as_ref(), now) {
            // A session-scoped rule needs a window to carry its session.
            None if r.session.is_some() => {
                Some(b.window_id_in(vec![(0, u64::MAX)], r.session.unwrap_or(0)))
            }
            None => Some(WINDOW_ALWAYS),
            Some(iv) if iv.is_empty() => None,
            Some(iv) => {
                let id = b.window_id_in(iv, r.session.unwrap_or(0));
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
                let id = b.atoms.len() as u32;
                b.atoms.push(Atom {
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
            listen_atoms[i].push(b.atoms.len() as u32);
            b.atoms.push(Atom {
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

    // Profiles: group uids by their exact rule set.
    let everyone: Vec<usize> = (0..rules.rules.len())
        .filter(|&i| active[i] && rules.rules[i].everyone)
        .collect();
    let mut per_uid: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, r) in rules.rules.iter().enumerate() {
        if active[i] && !r.everyone {
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
        let lists: Vec<&[(u32, IpNet)]> = set.iter().map(|&i| rule_atoms[i].as_slice()).collect();
        let listen: Vec<u32> = set
            .iter()
            .flat_map(|&i| listen_atoms[i].iter().copied())
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
        let p = build(&mut b, &everyone);
        b.image.users.insert(ANY_UID, p);
        note(&b, &mut overflow_at, everyone[everyone.len() - 1]);
    }
    for (uid, own) in per_uid {
        let first_own = own[0];
        let mut set = everyone.clone();
        set.extend(own);
        set.sort_unstable();
        let p = build(&mut b, &set);
        b.image.users.insert(uid, p);
        note(&b, &mut overflow_at, first_own);
    }

    b.image.subuids = subuid::blocks(rules);

    // The kernel maps are sized per slot; an image that does not fit is refused here, where
    // `jumpctl validate` reports it, rather than half-written by the daemon.
    for (what, need, limit) in [
        ("user", b.image.users.len(), jump_common::MAX_USERS as usize),
        (
            "destination",
            b.image.dests.len(),
            jump_common::MAX_DESTS as usize,
        ),
        ("port", b.image.ports.len(), jump_common::MAX_PORTS as usize),
        ("time window", b.windows.len(), MAX_WINDOWS as usize),
        ("rule", b.image.rules.len(), jump_common::MAX_RULES as usize),
        (
            "subordinate uid",
            b.image.subuids.len(),
            jump_common::MAX_SUBUID_BLOCKS as usize,
        ),
    ] {
        if need > limit {
            // The rule at which the map overflowed (or the first with a position after it:
            // the synthetic loopback rule has none).
            let span = overflow_at
                .get(what)
                .and_then(|&i| rules.rules[i..].iter().find_map(|r| r.span.clone()))
                .unwrap_or_default();
            b.errors.push(
                Diagnostic::error(
                    span,
                    format!("the compiled policy needs {need} {what} entries, more than the kernel map holds ({limit}); it overflows at this rule"),
                )
                .with_help("users with identical rules share entries: grant to groups rather than to many individual users"),
            );
        }
    }
    // `via`: the interfaces each such rule holds on, by index; unknown names hold nowhere.
    for r in &rules.rules {
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
            b.errors.push(Diagnostic::error(
                r.via[0].1.clone(),
                format!(
                    "rule `{}` names {} interfaces in `via`, more than {}",
                    r.name,
                    set.len(),
                    jump_common::MAX_VIA_INTERFACES
                ),
            ));
        }
        b.image.vias.insert(r.id, set);
    }
    if b.image.vias.len() > jump_common::MAX_VIA_RULES as usize {
        b.errors.push(Diagnostic::error(
            crate::policy::Span::default(),
            format!(
                "{} rules have `via`, more than the kernel map holds ({})",
                b.image.vias.len(),
                jump_common::MAX_VIA_RULES
            ),
        ));
    }
    if !b.errors.is_empty() {
        return Err(PolicyErrors::new(b.errors));
    }

    for (i, r) in rules.rules.iter().enumerate() {
        let Some(span) = &r.span else { continue };
        if !active[i] || b.used[i] || (!r.everyone && r.uids.is_empty()) {
            continue;
        }
        let msg = match b.cut_by[i] {
            Some(by) => {
                let by = &rules.rules[by];
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
        if r.mode == Mode::Audit && r.deny.is_empty() && rules.default_action != action::DENY {
            d = d.with_help("an audit-mode allow has no effect when `defaults.egress` is `allow`");
        }
        warnings.push(d);
    }
    warnings.sort_by(|a, b| a.span.cmp(&b.span));

    b.image.dests.sort();
    b.image
        .ports
        .sort_by_key(|p| (p.class, p.proto, p.port, p.bits));
    b.image.windows = b.windows;
    b.image.window_sessions = b
        .sessions
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s != 0)
        .map(|(id, &s)| (id as u32, s))
        .collect();
    Ok((b.image, warnings))
}

#[cfg(test)]
mod tests_examples;
#[cfg(test)]
mod tests_person;
#[cfg(test)]
mod tests_prop;

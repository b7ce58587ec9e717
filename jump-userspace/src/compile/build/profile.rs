//! Candidate lists, classes and port entries of one profile (precedence steps 2–5 in
//! `compile/mod.rs`): the `Builder` methods the plan in `build.rs` calls per profile.

use std::collections::BTreeMap;

use ipnet::IpNet;
use jump_common::{action, Candidate, LISTEN_CLASS, MAX_CANDIDATES, WINDOW_ALWAYS};

use super::{level_action, proto_bit, Builder, AUDIT_ALLOW, AUDIT_DENY, ENFORCE_ALLOW};
use crate::{
    compile::{
        image::{DestEntry, Intervals, PortEntry},
        prefix::{self, contains, port_blocks, V4_MAPPED},
        time,
    },
    policy::{Diagnostic, Proto},
};

impl Builder<'_> {
    /// The window for `iv`, open only for audit session `session` unless it is 0: a
    /// session-scoped grant never shares a window with anything else.
    pub(super) fn window_id_in(&mut self, iv: Intervals, session: u32) -> u32 {
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
    pub(super) fn profile(
        &mut self,
        profile: u32,
        rule_atoms: &[&[(u32, IpNet)]],
        listen_atoms: &[u32],
    ) {
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

//! The compiled map image: exactly the entries the kernel maps will hold for one policy
//! generation, before a slot number is attached. The datapath writes it as is; `lookup` here
//! emulates the kernel's lookups over it (the same precedence as `jump-ebpf/src/lookup.rs`), so
//! the compiler can be checked against the reference evaluator without root.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use jump_common::{action, Candidate, ANY_UID, MAX_CANDIDATES, MAX_EXACT, WINDOW_ALWAYS};

use super::prefix::{same_prefix_128, same_prefix_16, same_prefix_32};

/// What a rule id stands for, so an event can name `policies/20-access.yaml:14:5`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleInfo {
    pub name: String,
    /// `file:line:col` of the rule in its policy file, empty for the default.
    pub location: String,
    /// A just-in-time grant's reason (`jumpctl grant --reason`), for its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One `JUMP_DESTS` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DestEntry {
    pub profile: u32,
    /// IPv4 networks are written as their IPv4-mapped IPv6 form by the datapath.
    pub net: IpNet,
    pub class: u32,
}

/// One `JUMP_PORTS` entry: the ports `port ..= port | (0xffff >> bits)` of (class, proto).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    pub class: u32,
    pub proto: u8,
    pub port: u16,
    /// Port prefix length, 0..=16.
    pub bits: u8,
    /// In precedence order, at most `MAX_CANDIDATES`.
    pub candidates: Vec<Candidate>,
}

/// The largest port block (a power of two) whose ports get exact entries one by one.
pub const EXACT_BLOCK_PORTS: u16 = 16;

/// One `JUMP_EXACT` entry (lookup step 3a): what both tries answer for a host destination and a
/// single port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactEntry {
    pub profile: u32,
    /// As the destination trie stores it (IPv4 mapped into IPv6).
    pub addr: std::net::Ipv6Addr,
    pub proto: u8,
    pub port: u16,
    pub ruling: Ruling,
}

/// One `JUMP_SUBUIDS` entry: the uids `first ..= first | (u32::MAX >> bits)` are `owner`'s
/// subordinate uids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubuidBlock {
    pub first: u32,
    /// Uid prefix length, 0..=32.
    pub bits: u8,
    pub owner: u32,
}

/// Half-open `[start, end)` intervals in Unix-time (UTC) nanoseconds; the datapath shifts them
/// to CLOCK_TAI, the clock the kernel compares against.
pub type Intervals = Vec<(u64, u64)>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapImage {
    /// `jump_common::action` used when no candidate applies.
    pub default_action: u8,
    /// `jump_common::log_mode`.
    pub log_mode: u8,
    /// `jump_common::identity` (`defaults.identity`).
    pub identity: u8,
    /// Audit mode (`daemon::audit::audit_only`): the kernel refuses nothing, not even what no
    /// rule grants (`SlotConfig::audit`).
    pub audit: bool,
    /// uid → profile; `ANY_UID` holds the profile of every uid not listed.
    pub users: BTreeMap<u32, u32>,
    pub dests: Vec<DestEntry>,
    pub ports: Vec<PortEntry>,
    /// Indexed by window id; index 0 (`WINDOW_ALWAYS`) is unused.
    pub windows: Vec<Intervals>,
    /// Window id → the audit session it is open for (session-scoped grants); other windows
    /// are open for every session.
    pub window_sessions: BTreeMap<u32, u32>,
    /// Indexed by rule id; index 0 is the policy default.
    pub rules: Vec<RuleInfo>,
    /// Rule id → the interfaces (ifindex) its decisions hold on, for rules with `via`.
    pub vias: BTreeMap<u32, Vec<u32>>,
    /// Subordinate uids decided as their owner, disjoint, by first uid.
    pub subuids: Vec<SubuidBlock>,
}

/// A ruling and whose it is (`defaults.identity: person`): `by_login` when the login uid's
/// decision stood (`JUMP_DECIDED_BY=login`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decided {
    pub ruling: Ruling,
    pub by_login: bool,
}

/// What the kernel's lookup answers: the action (`jump_common::action`) and the deciding rule.
/// Not a `crate::verdict::Verdict`, which is how that action is named to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ruling {
    pub action: u8,
    pub rule_id: u32,
}

fn to_v6(addr: IpAddr) -> std::net::Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

impl DestEntry {
    /// The address and prefix length as the kernel trie stores them (IPv4 mapped into IPv6).
    pub fn v6(&self) -> (std::net::Ipv6Addr, u8) {
        super::prefix::mapped(&self.net)
    }
}

impl MapImage {
    /// Step (2) of the kernel's lookup: the uid decided as (the owner of a subordinate uid,
    /// else the uid itself) and its profile (else `ANY_UID`'s).
    pub fn user(&self, uid: u32) -> (u32, Option<u32>) {
        if let Some(&p) = self.users.get(&uid) {
            return (uid, Some(p));
        }
        let uid = self
            .subuids
            .iter()
            .find(|b| same_prefix_32(b.first, uid, b.bits))
            .map_or(uid, |b| b.owner);
        (
            uid,
            self.users
                .get(&uid)
                .or_else(|| self.users.get(&ANY_UID))
                .copied(),
        )
    }

    /// The kernel's decision, emulated over this image (see `jump-ebpf/src/lookup.rs` for the
    /// numbered precedence this follows), for a task outside any audit session.
    pub fn lookup(&self, uid: u32, addr: IpAddr, proto: u8, port: u16, now_ns: u64) -> Ruling {
        self.lookup_in(uid, jump_common::LOGIN_UNSET, addr, proto, port, now_ns)
    }

    /// The connect hooks' decision for a task with audit login uid `login` (`LOGIN_UNSET`:
    /// none) in audit session `session`: `lookup_in` for the uid, narrowed by the login uid's
    /// under `identity: person` (`jump-ebpf/src/person.rs`).
    #[expect(clippy::too_many_arguments, reason = "the kernel's inputs, one by one")]
    pub fn lookup_person(
        &self,
        uid: u32,
        login: u32,
        session: u32,
        addr: IpAddr,
        proto: u8,
        port: u16,
        now_ns: u64,
    ) -> Decided {
        let d = self.lookup_in(uid, session, addr, proto, port, now_ns);
        self.narrow(uid, login, d, |l| {
            self.lookup_in(l, session, addr, proto, port, now_ns)
        })
    }

    /// `listen` narrowed by the login uid's, as `lookup_person`.
    pub fn listen_person(
        &self,
        uid: u32,
        login: u32,
        proto: u8,
        port: u16,
        now_ns: u64,
    ) -> Decided {
        let d = self.listen(uid, proto, port, now_ns);
        self.narrow(uid, login, d, |l| self.listen(l, proto, port, now_ns))
    }

    /// `person::narrow` in the kernel: with `identity: person` and a login uid, the less
    /// permissive of the two verdicts, the uid's on a tie.
    fn narrow(
        &self,
        uid: u32,
        login: u32,
        d: Ruling,
        by_login: impl FnOnce(u32) -> Ruling,
    ) -> Decided {
        let as_uid = Decided {
            ruling: d,
            by_login: false,
        };
        if self.identity != jump_common::identity::PERSON
            || d.action == action::DENY
            || login == jump_common::LOGIN_UNSET
            || login == self.user(uid).0
        {
            return as_uid;
        }
        let rank = |a: u8| match a {
            action::DENY => 0,
            action::AUDIT => 1,
            _ => 2,
        };
        let l = by_login(login);
        if rank(l.action) < rank(d.action) {
            Decided {
                ruling: l,
                by_login: true,
            }
        } else {
            as_uid
        }
    }

    /// Step (3a)'s entries, derived from the tries' own: for every full-length destination
    /// entry (a /128, IPv4 mapped), each port of a small port block of its class (at most
    /// `EXACT_BLOCK_PORTS`: a single port, or e.g. `7000-7001`) that no longer block of the
    /// same class and protocol contains, where the block's list starts with an always-open
    /// candidate.
    ///
    /// INVARIANT (exact-is-trie): at such a key the destination trie's longest match is that
    /// full-length entry (nothing is longer) and the port trie's is that block (no longer one
    /// contains the port), and the first candidate decides, untimed; so the entry is the
    /// tries' answer, at any time and in any session. The key is the tries' own input
    /// (profile, normalised address, protocol, port): no address form reaches an entry without
    /// reaching the same trie entries. Checked on random policies by `tests_prop`. At most
    /// `MAX_EXACT`, in destination order: any subset is correct, since a miss goes on to the
    /// tries.
    pub fn exact_entries(&self) -> Vec<ExactEntry> {
        let blocks: BTreeSet<(u32, u8, u16, u8)> = self
            .ports
            .iter()
            .map(|p| (p.class, p.proto, p.port, p.bits))
            .collect();
        let mut by_class: BTreeMap<u32, Vec<&PortEntry>> = BTreeMap::new();
        for p in &self.ports {
            if p.bits >= 16 - EXACT_BLOCK_PORTS.trailing_zeros() as u8
                && p.candidates
                    .first()
                    .is_some_and(|c| c.window == WINDOW_ALWAYS)
            {
                by_class.entry(p.class).or_default().push(p);
            }
        }
        // Whether a block longer than `bits` of (class, proto) contains `port`.
        let shadowed = |class: u32, proto: u8, port: u16, bits: u8| {
            (bits + 1..=16).any(|b| {
                let mask = !(u16::MAX.checked_shr(u32::from(b)).unwrap_or(0));
                blocks.contains(&(class, proto, port & mask, b))
            })
        };
        let mut out = Vec::new();
        for d in &self.dests {
            let (addr, len) = d.v6();
            if len != 128 {
                continue;
            }
            for p in by_class.get(&d.class).into_iter().flatten() {
                let c = p.candidates[0];
                let last = p.port | u16::MAX.checked_shr(u32::from(p.bits)).unwrap_or(0);
                for port in p.port..=last {
                    if shadowed(p.class, p.proto, port, p.bits) {
                        continue;
                    }
                    if out.len() == MAX_EXACT as usize {
                        return out;
                    }
                    out.push(ExactEntry {
                        profile: d.profile,
                        addr,
                        proto: p.proto,
                        port,
                        ruling: Ruling {
                            action: c.action,
                            rule_id: c.rule_id,
                        },
                    });
                }
            }
        }
        out
    }

    /// Steps (3)–(6) for a profile, through the tries alone (no exact entry): what an exact
    /// entry must agree with.
    pub fn by_tries(
        &self,
        profile: u32,
        addr: IpAddr,
        proto: u8,
        port: u16,
        now_ns: u64,
        session: u32,
    ) -> Ruling {
        let default = Ruling {
            action: self.default_action,
            rule_id: 0,
        };
        // (3)
        let addr = u128::from(to_v6(addr));
        let class = self
            .dests
            .iter()
            .filter(|d| d.profile == profile)
            .filter_map(|d| {
                let (net, len) = d.v6();
                same_prefix_128(u128::from(net), addr, len).then_some((len, d.class))
            })
            .max_by_key(|&(len, _)| len);
        let Some((_, class)) = class else {
            return default;
        };
        // (4) and (5)
        if let Some(v) = self.ports_decision(class, proto, port, now_ns, session) {
            return v;
        }
        // (6)
        default
    }

    /// `lookup` for a task in audit session `session` (`LOGIN_UNSET`: none).
    pub fn lookup_in(
        &self,
        uid: u32,
        session: u32,
        addr: IpAddr,
        proto: u8,
        port: u16,
        now_ns: u64,
    ) -> Ruling {
        let default = Ruling {
            action: self.default_action,
            rule_id: 0,
        };
        // (2)
        let Some(profile) = self.user(uid).1 else {
            return default;
        };
        // (3a) is not emulated: by INVARIANT (exact-is-trie) its answer is the tries'.
        self.by_tries(profile, addr, proto, port, now_ns, session)
    }

    /// May `uid` bind and accept on (`proto`, `port`)? Emulates `lookup::listen` in
    /// `jump-ebpf/src/lookup.rs`: the uid's profile (else `ANY_UID`'s), then the longest port
    /// prefix under class `LISTEN_CLASS | profile`, then the first open candidate; refused (rule
    /// 0) when nothing applies, whatever the default egress action.
    pub fn listen(&self, uid: u32, proto: u8, port: u16, now_ns: u64) -> Ruling {
        // As the bind hook: port 0 asks for an ephemeral port and passes before any lookup.
        if port == 0 {
            return Ruling {
                action: action::ALLOW,
                rule_id: 0,
            };
        }
        let deny = Ruling {
            action: action::DENY,
            rule_id: 0,
        };
        let Some(profile) = self.user(uid).1 else {
            return deny;
        };
        self.ports_decision(
            jump_common::LISTEN_CLASS | profile,
            proto,
            port,
            now_ns,
            jump_common::LOGIN_UNSET,
        )
        .unwrap_or(deny)
    }

    /// Steps (4) and (5): the longest port prefix of (class, proto), then its first candidate
    /// whose window is open at `now_ns`.
    fn ports_decision(
        &self,
        class: u32,
        proto: u8,
        port: u16,
        now_ns: u64,
        session: u32,
    ) -> Option<Ruling> {
        let entry = self
            .ports
            .iter()
            .filter(|p| p.class == class && p.proto == proto)
            .filter(|p| same_prefix_16(p.port, port, p.bits))
            .max_by_key(|p| p.bits)?;
        entry.candidates.iter().take(MAX_CANDIDATES).find_map(|c| {
            let in_session = self
                .window_sessions
                .get(&c.window)
                .is_none_or(|&s| session != jump_common::LOGIN_UNSET && s == session);
            let open = c.window == jump_common::WINDOW_ALWAYS
                || in_session
                    && self
                        .windows
                        .get(c.window as usize)
                        .is_some_and(|iv| iv.iter().any(|&(s, e)| s <= now_ns && now_ns < e));
            open.then_some(Ruling {
                action: c.action,
                rule_id: c.rule_id,
            })
        })
    }

    /// The egress backstop's interface check (`jump-ebpf/src/path.rs`, `via_holds`): a verdict
    /// by a rule with `via` holds only on its interfaces; elsewhere the packet is denied,
    /// attributed to that rule.
    pub fn on_interface(&self, v: Ruling, ifindex: u32) -> Ruling {
        match self.vias.get(&v.rule_id) {
            Some(set) if !set.contains(&ifindex) => Ruling {
                action: action::DENY,
                rule_id: v.rule_id,
            },
            _ => v,
        }
    }

    pub fn allows(v: Ruling) -> bool {
        v.action != action::DENY
    }
}

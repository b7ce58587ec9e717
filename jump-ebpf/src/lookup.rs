//! The decision: which candidate applies to (uid, destination) in the active policy image.
//!
//! Precedence, in the order the code below tags it:
//! 1. No policy image is active (generation 0): deny. The daemon fills a slot before it attaches,
//!    so this only guards against a half-initialised pin directory.
//! 2. The uid's own profile (below `UID_DIRECT` from `JUMP_UID_INDEX`, else `JUMP_USERS`);
//!    else, for a subordinate uid (`/etc/subuid`, `subuid.rs`), its owner's profile, and the
//!    decision is made and logged as the owner; else the profile for every uid (`ANY_UID`).
//! 3. The longest destination prefix of that profile gives the destination class. Before it
//!    (3a), the exact entry for (profile, address, protocol, port), if the compiled image has
//!    one: the answer of steps 3–5 for a host destination and a port of a small block, written
//!    by the datapath only where the destination entry is full-length (/128), no longer port
//!    block contains the port, and the list starts with an always-open candidate (which
//!    decides, untimed). Its key is the tries' own input, so whatever reaches it reaches the
//!    same trie entries (INVARIANT exact-is-trie, `MapImage::exact_entries`, checked on random
//!    policies by `compile/tests_prop.rs`).
//! 4. The longest port prefix of (class, protocol) gives the candidate list.
//! 5. The first candidate whose time window is open (and, for a session-scoped grant's window,
//!    whose audit session is the task's: `person::session_holds`) decides; the compiler orders candidates
//!    enforce-deny, audit-deny, enforce-allow, audit-allow, so an explicit deny wins.
//! 6. Otherwise the image's default action, attributed to rule 0.
//!
//! With `defaults.identity: person` the hooks ask twice, for the uid and for the login uid, and
//! the less permissive answer stands (`person::narrow`).
//!
//! Listening (`bind` with a port, and the replies of accepted connections in egress) is decided
//! by the profile's listen class (`LISTEN_CLASS | profile`) through steps 4–5, with deny as the
//! default: a listener needs a grant whatever `defaults.egress` says.

use aya_ebpf::{helpers::generated::bpf_ktime_get_tai_ns, maps::lpm_trie::Key};
use jump_common::{
    action, profile_flags, uid_index, DestKey, ExactKey, PortKey, SlotConfig, UserKey, UserValue,
    Window, ANY_UID, DEST_FIXED_BITS, LISTEN_CLASS, MAX_CANDIDATES, MAX_INTERVALS, MAX_WINDOWS,
    PORT_FIXED_BITS, WINDOW_ALWAYS,
};

use crate::{
    ctx::Dest,
    maps::{
        self, JUMP_ACTIVE, JUMP_DESTS, JUMP_PORTS, JUMP_SLOTS, JUMP_UID_INDEX, JUMP_USERS,
        JUMP_WINDOWS,
    },
    person::{session_holds, SESSION_CURRENT},
    subuid,
};

pub struct Decision {
    pub slot: u32,
    /// The uid decided as: the owner of a subordinate uid, else the uid asked about.
    pub uid: u32,
    pub action: u8,
    pub rule_id: u32,
    pub generation: u64,
    pub log_mode: u8,
    /// A time window took part (the chosen candidate's, or an earlier one's that was closed):
    /// the same question may get another answer later.
    pub timed: bool,
    /// The image's `identity` (`jump_common::identity`), for `person::narrow`.
    pub identity: u8,
    /// `jump_common::decided_by`: set by `person::narrow` when the login uid decided.
    pub decided_by: u8,
}

/// The active slot and its settings, read once per decision.
struct Active {
    slot: u32,
    cfg: SlotConfig,
    /// Who the decision is for; `user` replaces a subordinate uid by its owner.
    uid: u32,
    /// The audit session session-scoped windows are matched against (`person::session_holds`).
    session: u32,
}

impl Active {
    fn get(uid: u32) -> Option<Self> {
        Self::get_in(uid, SESSION_CURRENT)
    }

    fn get_in(uid: u32, session: u32) -> Option<Self> {
        let slot = JUMP_ACTIVE.get(0).copied().unwrap_or(0);
        let cfg = JUMP_SLOTS.get(slot).copied()?;
        // (1)
        (cfg.generation != 0).then_some(Self {
            slot,
            cfg,
            uid,
            session,
        })
    }

    fn decision(&self, action: u8, rule_id: u32) -> Decision {
        Decision {
            slot: self.slot,
            uid: self.uid,
            action,
            rule_id,
            generation: self.cfg.generation,
            log_mode: self.cfg.log_mode,
            timed: false,
            identity: self.cfg.identity,
            decided_by: 0,
        }
    }

    fn default(&self) -> Decision {
        self.decision(self.cfg.default_action, 0)
    }

    /// What no rule grants: refused, or in audit mode an audit (`SlotConfig::audit`).
    fn refusal(&self) -> Decision {
        self.decision(refusal_action(&self.cfg), 0)
    }

    // (2)
    fn user(&mut self) -> Option<UserValue> {
        if let Some(v) = profile_of(self.slot, self.uid) {
            return Some(v);
        }
        if let Some(owner) = subuid::owner(self.slot, self.uid) {
            self.uid = owner;
            if let Some(v) = profile_of(self.slot, owner) {
                return Some(v);
            }
        }
        let p = JUMP_USERS.get_ptr(UserKey {
            slot: self.slot,
            uid: ANY_UID,
        })?;
        // SAFETY: a non-null pointer into a map value, valid for the rest of this program run.
        Some(unsafe { *p })
    }

    // (4) and (5)
    // Inlined: as a BTF function, its `Option<(u8, u32, bool)>` return type becomes a union
    // with a member at a non-zero offset, and the kernel rejects the whole object's BTF
    // ("Invalid member bits_offset").
    #[inline(always)]
    fn ports(&self, class: u32, proto: u8, port: u16) -> Option<(u8, u32, bool)> {
        let key = Key::new(
            PORT_FIXED_BITS + 16,
            PortKey {
                slot_be: self.slot.to_be(),
                class_be: class.to_be(),
                proto,
                _pad: 0,
                port_be: port.to_be(),
            },
        );
        let value = JUMP_PORTS.get(&key)?;
        // The clock is read only for a candidate with a time window (most lists have none).
        let mut now = 0;
        for i in 0..MAX_CANDIDATES {
            if i as u32 >= value.len {
                break;
            }
            let c = &value.candidates[i];
            if c.window == WINDOW_ALWAYS {
                return Some((c.action, c.rule_id, i > 0));
            }
            if now == 0 {
                now = now_tai();
            }
            if window_open(self.slot, c.window, now, self.session) {
                return Some((c.action, c.rule_id, true));
            }
        }
        None
    }
}

/// The profile `uid` is listed with in `slot`: below `UID_DIRECT` from the index array (an
/// inlined address computation), else from the hash.
#[inline(always)]
fn profile_of(slot: u32, uid: u32) -> Option<UserValue> {
    match uid_index(slot, uid) {
        // `LISTED` only marks the entry: the value returned is the uid's `JUMP_USERS` value.
        Some(i) => JUMP_UID_INDEX
            .get(i)
            .filter(|v| v.flags & profile_flags::LISTED != 0)
            .map(|v| UserValue {
                profile: v.profile,
                flags: v.flags & !profile_flags::LISTED,
            }),
        // SAFETY: a non-null pointer into a map value, read at once.
        None => JUMP_USERS
            .get_ptr(UserKey { slot, uid })
            .map(|p| unsafe { *p }),
    }
}

/// Fail closed when no policy is active.
fn unloaded(uid: u32) -> Decision {
    Decision {
        slot: 0,
        uid,
        action: action::DENY,
        rule_id: 0,
        generation: 0,
        log_mode: jump_common::log_mode::ALL,
        timed: false,
        identity: 0,
        decided_by: 0,
    }
}

/// May `uid` send to `dest`? (A task's own connect or send: its session is read if needed.)
#[inline(always)]
pub fn decide(uid: u32, dest: &Dest) -> Decision {
    decide_in(uid, SESSION_CURRENT, dest)
}

/// `decide`, with session-scoped windows matched against `session` (egress: the socket's).
#[inline(always)]
pub fn decide_in(uid: u32, session: u32, dest: &Dest) -> Decision {
    let mut d = unloaded(uid);
    // The result is used, so the compiler keeps it (and r0 set) rather than drop it.
    let action = decide_into(uid, session, dest, &mut d);
    Decision { action, ..d }
}

/// `decide_in` as one subprogram, which writes the decision to `out` and returns its action.
/// Returning the decision itself left the caller's stack pointer (the hidden result pointer)
/// in r0 at exit on some paths, and the verifier refuses a subprogram that returns a stack
/// pointer; a scalar result sets r0 on every path.
#[inline(never)]
fn decide_into(uid: u32, session: u32, dest: &Dest, out: &mut Decision) -> u8 {
    *out = decision(uid, session, dest);
    out.action
}

#[inline(always)]
fn decision(uid: u32, session: u32, dest: &Dest) -> Decision {
    let Some(mut a) = Active::get_in(uid, session) else {
        return unloaded(uid);
    };
    let Some(user) = a.user() else {
        return a.default();
    };
    // (3a)
    let ekey = ExactKey {
        slot: a.slot,
        profile: user.profile,
        addr: dest.addr,
        proto: dest.proto,
        _pad: 0,
        port: dest.port,
    };
    if let Some((action, rule_id)) = maps::exact(&ekey) {
        return a.decision(action, rule_id);
    }
    // (3)
    let dkey = Key::new(
        DEST_FIXED_BITS + 128,
        DestKey {
            slot_be: a.slot.to_be(),
            profile_be: user.profile.to_be(),
            addr: dest.addr,
        },
    );
    let Some(class) = JUMP_DESTS.get(&dkey) else {
        return a.default();
    };
    match a.ports(class.class, dest.proto, dest.port) {
        Some((action, rule, timed)) => Decision {
            timed,
            ..a.decision(action, rule)
        },
        // (6)
        None => a.default(),
    }
}

/// May `uid` listen on (`proto`, `port`)?
pub fn listen(uid: u32, proto: u8, port: u16) -> Decision {
    let Some(mut a) = Active::get(uid) else {
        return unloaded(uid);
    };
    let user = a.user();
    let deny = a.refusal();
    let Some(user) = user else { return deny };
    match a.ports(LISTEN_CLASS | user.profile, proto, port) {
        Some((action, rule, timed)) => Decision {
            timed,
            ..a.decision(action, rule)
        },
        None => deny,
    }
}

/// The profile flags of `uid` (`jump_common::profile_flags`), and the decision to report when
/// they do not allow a socket.
pub fn flags(uid: u32) -> (u32, Decision) {
    let Some(mut a) = Active::get(uid) else {
        return (0, unloaded(uid));
    };
    let flags = a.user().map_or(0, |u| u.flags);
    (flags, a.refusal())
}

fn refusal_action(cfg: &SlotConfig) -> u8 {
    if cfg.audit != 0 {
        action::AUDIT
    } else {
        action::DENY
    }
}

/// `d` refused, or an audit where its slot is in audit mode: a check after the decision (a
/// rule's `via`) that it fails.
pub fn refused(d: &Decision) -> Decision {
    let audit = JUMP_SLOTS.get(d.slot).is_some_and(|c| c.audit != 0);
    Decision {
        action: if audit { action::AUDIT } else { action::DENY },
        ..*d
    }
}

/// The active slot and its generation (0: none), for checking a socket's record.
pub fn active_slot() -> (u32, u64) {
    Active::get(0).map_or((0, 0), |a| (a.slot, a.cfg.generation))
}

/// The active generation (0: none): two array reads, which the verifier inlines.
#[inline(always)]
pub fn active_generation() -> u64 {
    let slot = JUMP_ACTIVE.get(0).copied().unwrap_or(0);
    JUMP_SLOTS.get(slot).map_or(0, |c| c.generation)
}

pub fn now_tai() -> u64 {
    // SAFETY: a helper call without arguments; available to every program type since 6.1.
    unsafe { bpf_ktime_get_tai_ns() }
}

fn window_open(slot: u32, window: u32, now: u64, session: u32) -> bool {
    let Some(w): Option<&Window> = JUMP_WINDOWS.get(slot * MAX_WINDOWS + window) else {
        // A missing window is a closed one: fail closed.
        return false;
    };
    if !session_holds(w.session, session) {
        return false;
    }
    for i in 0..MAX_INTERVALS {
        if i as u32 >= w.len {
            break;
        }
        let [start, end] = w.intervals[i];
        if start <= now && now < end {
            return true;
        }
    }
    false
}

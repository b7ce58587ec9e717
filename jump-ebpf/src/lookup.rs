//! The decision: which candidate applies to (uid, destination) in the active policy image.
//!
//! Precedence, in the order the code below tags it:
//! 1. No policy image is active (generation 0): deny. The daemon fills a slot before it attaches,
//!    so this only guards against a half-initialised pin directory.
//! 2. The uid's own profile, else the profile for every uid (`ANY_UID`).
//! 3. The longest destination prefix of that profile gives the destination class.
//! 4. The longest port prefix of (class, protocol) gives the candidate list.
//! 5. The first candidate whose time window is open decides; the compiler orders candidates
//!    enforce-deny, audit-deny, enforce-allow, audit-allow, so an explicit deny wins.
//! 6. Otherwise the image's default action, attributed to rule 0.

use aya_ebpf::{helpers::generated::bpf_ktime_get_tai_ns, maps::lpm_trie::Key};
use jump_common::{
    action, DestKey, PortKey, SlotConfig, UserKey, Window, ANY_UID, DEST_FIXED_BITS,
    MAX_CANDIDATES, MAX_INTERVALS, MAX_WINDOWS, PORT_FIXED_BITS, WINDOW_ALWAYS,
};

use crate::{
    ctx::Dest,
    maps::{JUMP_ACTIVE, JUMP_DESTS, JUMP_PORTS, JUMP_SLOTS, JUMP_USERS, JUMP_WINDOWS},
};

pub struct Decision {
    pub slot: u32,
    pub action: u8,
    pub rule_id: u32,
    pub generation: u64,
    pub log_mode: u8,
}

pub fn decide(uid: u32, dest: &Dest) -> Decision {
    let slot = JUMP_ACTIVE.get(0).copied().unwrap_or(0);
    let Some(cfg) = JUMP_SLOTS.get(slot).copied() else {
        return Decision { slot, action: action::DENY, rule_id: 0, generation: 0, log_mode: jump_common::log_mode::ALL };
    };
    // (1)
    if cfg.generation == 0 {
        return default(slot, &cfg);
    }
    // (2)
    let profile = match JUMP_USERS.get_ptr(UserKey { slot, uid }) {
        Some(p) => p,
        None => match JUMP_USERS.get_ptr(UserKey { slot, uid: ANY_UID }) {
            Some(p) => p,
            None => return default(slot, &cfg),
        },
    };
    // SAFETY: a non-null pointer into a map value, valid for the rest of this program run.
    let profile = unsafe { (*profile).profile };
    // (3)
    let dkey = Key::new(
        DEST_FIXED_BITS + 128,
        DestKey { slot_be: slot.to_be(), profile_be: profile.to_be(), addr: dest.addr },
    );
    let Some(class) = JUMP_DESTS.get(&dkey) else {
        return default(slot, &cfg);
    };
    // (4)
    let pkey = Key::new(
        PORT_FIXED_BITS + 16,
        PortKey {
            slot_be: slot.to_be(),
            class_be: class.class.to_be(),
            proto: dest.proto,
            _pad: 0,
            port_be: dest.port.to_be(),
        },
    );
    let Some(value) = JUMP_PORTS.get(&pkey) else {
        return default(slot, &cfg);
    };
    // (5)
    let now = now_tai();
    for i in 0..MAX_CANDIDATES {
        if i as u32 >= value.len {
            break;
        }
        let c = &value.candidates[i];
        if c.window == WINDOW_ALWAYS || window_open(slot, c.window, now) {
            return Decision {
                slot,
                action: c.action,
                rule_id: c.rule_id,
                generation: cfg.generation,
                log_mode: cfg.log_mode,
            };
        }
    }
    // (6)
    default(slot, &cfg)
}

fn default(slot: u32, cfg: &SlotConfig) -> Decision {
    Decision {
        slot,
        action: cfg.default_action,
        rule_id: 0,
        generation: cfg.generation,
        log_mode: cfg.log_mode,
    }
}

pub fn now_tai() -> u64 {
    // SAFETY: a helper call without arguments; available to every program type since 6.1.
    unsafe { bpf_ktime_get_tai_ns() }
}

fn window_open(slot: u32, window: u32, now: u64) -> bool {
    let Some(w): Option<&Window> = JUMP_WINDOWS.get(slot * MAX_WINDOWS + window) else {
        // A missing window is a closed one: fail closed.
        return false;
    };
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

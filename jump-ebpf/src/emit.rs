//! Decision events into the `JUMP_EVENTS` ring buffer, behind a per-key rate limit, and the
//! counters that make every wanted event accounted for: each one is exactly one of sent,
//! suppressed (rate limit) or dropped (ring buffer full).

use jump_common::{action, counter, log_mode, rule_hit_index, Event, RateKey, RateState, MAX_RULES};

use crate::{
    ctx::Dest,
    lookup::{now_tai, Decision},
    maps::{JUMP_COUNTERS, JUMP_EVENTS, JUMP_LIMITS, JUMP_RATE, JUMP_RULE_HITS},
};

pub fn count(index: u32) {
    if let Some(p) = JUMP_COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot of this map; no other program run touches it concurrently.
        unsafe { *p += 1 };
    }
}

/// Counts the decision against its rule, for `jumpctl stats`.
pub fn count_hit(d: &Decision) {
    if d.rule_id >= MAX_RULES || d.action > action::AUDIT {
        return;
    }
    if let Some(p) = JUMP_RULE_HITS.get_ptr_mut(rule_hit_index(d.slot, d.rule_id, d.action)) {
        // SAFETY: as in `count`.
        unsafe { *p += 1 };
    }
}

pub fn wanted(d: &Decision) -> bool {
    match d.log_mode {
        log_mode::ALL => true,
        log_mode::DENY => d.action != action::ALLOW,
        _ => false,
    }
}

/// Who caused the decision, as far as the hook can tell.
#[derive(Clone, Copy)]
pub struct Origin {
    pub uid: u32,
    /// The task's own uid when `uid` is its owner (a subordinate uid), else `NO_NS_UID`.
    pub ns_uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub login_uid: u32,
    pub session_id: u32,
    pub comm: [u8; 16],
}

/// The rate limit: `Some(n)` to send, carrying `n` similar events suppressed before it.
fn admit(key: &RateKey, now: u64) -> Option<u32> {
    let limits = JUMP_LIMITS.get(0).copied().unwrap_or_default();
    if limits.window_ns == 0 {
        return Some(0);
    }
    let Some(st) = JUMP_RATE.get_ptr_mut(key) else {
        let fresh = RateState { window_start: now, sent: 1, suppressed: 0 };
        // An insert that fails (a racing CPU inserted first) only costs one unlimited event.
        let _ = JUMP_RATE.insert(key, &fresh, 0);
        return Some(0);
    };
    // SAFETY: a pointer into this LRU map's value, valid during this run. Two CPUs may update
    // the same key at once; a lost update changes a per-key count, never the global counters.
    let st = unsafe { &mut *st };
    if now.wrapping_sub(st.window_start) >= limits.window_ns {
        st.window_start = now;
        st.sent = 0;
    }
    if st.sent >= limits.burst {
        st.suppressed += 1;
        return None;
    }
    st.sent += 1;
    let n = st.suppressed;
    st.suppressed = 0;
    Some(n)
}

pub fn emit(hook: u8, who: &Origin, dest: &Dest, src_port: u16, d: &Decision) {
    let now = now_tai();
    let key = RateKey {
        uid: who.uid,
        dst_port: dest.port,
        hook,
        action: d.action,
        proto: dest.proto,
        _pad: [0; 3],
        dst_addr: dest.addr,
    };
    let Some(suppressed) = admit(&key, now) else {
        count(counter::EVENTS_SUPPRESSED);
        return;
    };
    let Some(mut entry) = JUMP_EVENTS.reserve::<Event>(0) else {
        count(counter::EVENTS_DROPPED);
        return;
    };
    entry.write(Event {
        ts_ns: now,
        generation: d.generation,
        cookie: 0,
        uid: who.uid,
        gid: who.gid,
        pid: who.pid,
        rule_id: d.rule_id,
        login_uid: who.login_uid,
        session_id: who.session_id,
        suppressed,
        ns_uid: who.ns_uid,
        dst_addr: dest.addr,
        src_addr: [0; 16],
        dst_port: dest.port,
        src_port,
        family: dest.family,
        proto: dest.proto,
        hook,
        action: d.action,
        _pad1: [0; 7],
        comm: who.comm,
    });
    entry.submit(0);
    count(counter::EVENTS_SENT);
}

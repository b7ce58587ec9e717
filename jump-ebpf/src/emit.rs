//! Decision events into the `JUMP_EVENTS` ring buffer, and the counters that make a lost event
//! visible instead of silent.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use jump_common::{action, counter, log_mode, rule_hit_index, Event, MAX_RULES};

use crate::{
    ctx::Dest,
    lookup::{now_tai, Decision},
    maps::{JUMP_COUNTERS, JUMP_EVENTS, JUMP_RULE_HITS},
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

pub fn emit(hook: u8, uid_gid: u64, dest: &Dest, d: &Decision) {
    let Some(mut entry) = JUMP_EVENTS.reserve::<Event>(0) else {
        count(counter::EVENTS_DROPPED);
        return;
    };
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    entry.write(Event {
        ts_ns: now_tai(),
        generation: d.generation,
        cookie: 0,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        rule_id: d.rule_id,
        login_uid: u32::MAX,
        session_id: u32::MAX,
        suppressed: 0,
        _pad0: 0,
        dst_addr: dest.addr,
        src_addr: [0; 16],
        dst_port: dest.port,
        src_port: 0,
        family: dest.family,
        proto: dest.proto,
        hook,
        action: d.action,
        _pad1: [0; 7],
        comm,
    });
    entry.submit(0);
    count(counter::EVENTS_SENT);
}

//! Decision events into the `JUMP_EVENTS` ring buffer, behind two limits, and the counts that
//! make every wanted event accounted for *per uid*: each one is exactly one of sent, or held
//! back and counted in its uid's `UidHeld` — as similar (the per-destination rate limit), over
//! budget (the uid's own token bucket, so one uid cannot fill the ring buffer and push other
//! users' events out), or lost (ring buffer full anyway).

// Map keys and values go to aya's `impl Borrow` arguments by reference, as clippy would not
// have them: by value each is copied into the frame first (measured: 8 more bytes of `emit`'s
// stack, which counts toward egress's 512-byte combined limit; 5 more instructions in
// sock_create).
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value, map keys and values are copied onto the nearly full stack"
)]

use jump_common::{
    action, counter, dest_hash, log_mode, rule_hit_index, sketch_slot, Event, Limits, RateKey,
    RateState, UidHeld, UidSketch, EVENTS_BYTES, HIT_COUNTED_RULES, NO_NS_UID, SKETCH_REGISTERS,
};

use crate::{
    ctx::Dest,
    lookup::{now_tai, Decision},
    maps::{
        JUMP_COUNTERS, JUMP_EVENTS, JUMP_LIMITS, JUMP_RATE, JUMP_RULE_HITS, JUMP_UID_HELD,
        JUMP_UID_SKETCH,
    },
};

/// `BPF_NOEXIST`: insert only if absent, so a racing CPU's fresh entry is never overwritten.
const BPF_NOEXIST: u64 = 1;
/// `bpf_ringbuf_submit` flags and the `bpf_ringbuf_query` question (`linux/bpf.h`).
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// Unread bytes at which an event wakes jumpd: an eighth of the ring (~4,000 events), so a
/// storm wakes it long before the ring fills, and a trickle waits for its periodic drain.
const WAKE_BYTES: u64 = EVENTS_BYTES as u64 / 8;

// Fresh entries are inserted from read-only data rather than built on the stack: the hooks'
// stack is nearly full ("combined stack size of 2 calls is 544. Too large" with them there).
static ZERO_HELD: UidHeld = UidHeld {
    tat_ns: 0,
    over_budget: 0,
    similar: 0,
    lost: 0,
    allow: 0,
    deny: 0,
    audit: 0,
};
static ZERO_SKETCH: UidSketch = UidSketch {
    first_ns: 0,
    last_ns: 0,
    registers: [0; SKETCH_REGISTERS],
};

#[inline(always)]
pub fn count(index: u32) {
    if let Some(p) = JUMP_COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot of this map; no other program run touches it concurrently.
        unsafe { *p += 1 };
    }
}

/// Counts the decision against its rule, for `jumpctl stats`.
pub fn count_hit(d: &Decision) {
    if d.rule_id >= HIT_COUNTED_RULES || d.action > action::AUDIT {
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
pub struct Origin {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub login_uid: u32,
    pub session_id: u32,
    pub comm: [u8; 16],
    /// `jump_common::Event::start_ticks`.
    pub start_ticks: u32,
}

/// The rate limit: `Some(n)` to send, carrying `n` similar events suppressed before it.
#[inline(always)]
fn admit(key: &RateKey, limits: &Limits, now: u64) -> Option<u32> {
    if limits.window_ns == 0 {
        return Some(0);
    }
    let Some(st) = JUMP_RATE.get_ptr_mut(key) else {
        let fresh = RateState {
            window_start: now,
            sent: 1,
            suppressed: 0,
        };
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

/// The uid's entry of `JUMP_UID_HELD`, created on first use; `None` only when the map is full.
#[inline(always)]
fn held_entry(uid: u32) -> Option<*mut UidHeld> {
    if let Some(p) = JUMP_UID_HELD.get_ptr_mut(&uid) {
        return Some(p);
    }
    // A racing CPU may insert first; either way the entry then exists.
    let _ = JUMP_UID_HELD.insert(&uid, &ZERO_HELD, BPF_NOEXIST);
    JUMP_UID_HELD.get_ptr_mut(&uid)
}

/// The uid's budget (GCRA, the token bucket as one timestamp): takes a token if there is one.
/// Two CPUs racing on one uid may both take the same token: that costs one event of budget,
/// never a count.
#[inline(always)]
fn within_budget(h: *mut UidHeld, limits: &Limits, now: u64) -> bool {
    if limits.uid_interval_ns == 0 {
        return true;
    }
    // SAFETY: a pointer into this map's value, valid during this run.
    let tat = unsafe { (*h).tat_ns }.max(now);
    let next = tat + limits.uid_interval_ns;
    if next - now > limits.uid_interval_ns * limits.uid_burst as u64 {
        return false;
    }
    // SAFETY: as above.
    unsafe { (*h).tat_ns = next };
    true
}

/// Why an event was held back instead of sent.
#[derive(Clone, Copy)]
enum Held {
    Similar,
    OverBudget,
    Lost,
}

/// An atomic add (BPF_XADD), so counts stay exact when CPUs, or a softirq and a task, race.
/// The intrinsic, since `bpfel-unknown-none` declares no atomic read-modify-write and so has no
/// `AtomicU64::fetch_add`; LLVM's BPF backend emits the add (its result unused: no BPF_FETCH).
#[inline(always)]
fn add(p: *mut u64) {
    // SAFETY: `p` points at an aligned u64 inside a map value, valid during this run.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            p, 1,
        )
    };
}

/// Counts a held-back event against its uid: the reason, the verdict, and (approximately) when
/// and where to.
#[inline(always)]
fn hold(h: Option<*mut UidHeld>, why: Held, uid: u32, action: u8, dest: &Dest, now: u64) {
    let Some(h) = h else {
        count(counter::EVENTS_UNTRACKED);
        return;
    };
    // SAFETY (each of these): a field address inside the map value `h` points at.
    let reason = match why {
        Held::Similar => unsafe { core::ptr::addr_of_mut!((*h).similar) },
        Held::OverBudget => unsafe { core::ptr::addr_of_mut!((*h).over_budget) },
        Held::Lost => unsafe { core::ptr::addr_of_mut!((*h).lost) },
    };
    add(reason);
    let verdict = match action {
        action::ALLOW => unsafe { core::ptr::addr_of_mut!((*h).allow) },
        action::AUDIT => unsafe { core::ptr::addr_of_mut!((*h).audit) },
        _ => unsafe { core::ptr::addr_of_mut!((*h).deny) },
    };
    add(verdict);
    sketch(uid, dest, now);
}

/// Updates the uid's `UidSketch`. Plain (racy) writes: a lost update blurs a time or the
/// destination estimate a little, never a count.
#[inline(always)]
fn sketch(uid: u32, dest: &Dest, now: u64) {
    let p = match JUMP_UID_SKETCH.get_ptr_mut(&uid) {
        Some(p) => p,
        None => {
            let _ = JUMP_UID_SKETCH.insert(&uid, &ZERO_SKETCH, BPF_NOEXIST);
            let Some(p) = JUMP_UID_SKETCH.get_ptr_mut(&uid) else {
                return;
            };
            p
        }
    };
    // SAFETY: a pointer into this map's value, valid during this run.
    let s = unsafe { &mut *p };
    if s.first_ns == 0 {
        s.first_ns = now;
    }
    s.last_ns = now;
    let (i, n) = sketch_slot(dest_hash(&dest.addr, dest.port, dest.proto));
    if i < SKETCH_REGISTERS && s.registers[i] < n {
        s.registers[i] = n;
    }
}

pub fn emit(hook: u8, who: &Origin, dest: &Dest, src_port: u16, d: &Decision) {
    let now = now_tai();
    // By reference: the hooks' stack is nearly full.
    let Some(limits) = JUMP_LIMITS.get(0) else {
        return;
    };
    // Decided as the owner of a subordinate uid: the event (and the rate limit and budget, so a
    // user's 65,536 subordinate uids share one) names the owner, and `ns_uid` the task's own.
    let (uid, ns_uid) = if d.uid != who.uid {
        (d.uid, who.uid)
    } else {
        (who.uid, NO_NS_UID)
    };
    let held = held_entry(uid);
    let key = RateKey {
        uid,
        dst_port: dest.port,
        hook,
        action: d.action,
        proto: dest.proto,
        _pad: [0; 3],
        dst_addr: dest.addr,
    };
    let Some(suppressed) = admit(&key, limits, now) else {
        count(counter::EVENTS_SUPPRESSED);
        hold(held, Held::Similar, uid, d.action, dest, now);
        return;
    };
    // Without an entry (the map is full: more uids with events than it holds) the event goes
    // without a budget rather than unlogged.
    if let Some(h) = held {
        if !within_budget(h, limits, now) {
            count(counter::EVENTS_OVER_BUDGET);
            hold(held, Held::OverBudget, uid, d.action, dest, now);
            return;
        }
    }
    let Some(mut entry) = JUMP_EVENTS.reserve::<Event>(0) else {
        count(counter::EVENTS_DROPPED);
        hold(held, Held::Lost, uid, d.action, dest, now);
        return;
    };
    entry.write(Event {
        ts_ns: now,
        generation: d.generation,
        cookie: 0,
        uid,
        gid: who.gid,
        pid: who.pid,
        rule_id: d.rule_id,
        login_uid: who.login_uid,
        session_id: who.session_id,
        suppressed,
        ns_uid,
        dst_addr: dest.addr,
        src_addr: [0; 16],
        dst_port: dest.port,
        src_port,
        family: dest.family,
        proto: dest.proto,
        hook,
        action: d.action,
        decided_by: d.decided_by,
        _pad1: [0; 2],
        start_ticks: who.start_ticks,
        comm: who.comm,
    });
    // Waking jumpd per event cost ~6 µs of the hook's run time here (the wake-up is a
    // self-IPI, an exit on a VM), most of an emitting connect. jumpd drains the ring every
    // `EVENTS_TICK` anyway (daemon), so an event wakes it only when events pile up. Then
    // every event does, on purpose: the IPI slows whoever floods (waking only every 128th,
    // a storm ran 3x faster and jumpd logged a third as much of it).
    let flags = if JUMP_EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKE_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags);
    count(counter::EVENTS_SENT);
}

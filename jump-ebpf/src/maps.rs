//! The map definitions, and the helpers that read them where a read needs `unsafe`. Names,
//! sizes and layouts come from `jump-common`, which the daemon reads too; this file only
//! instantiates them.

// Per-CPU LRU lists: an insert into a full map evicts from its own CPU's list instead of
// scanning a shared one under a lock (measured: microseconds per connect with the common LRU).
const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
// Entries allocated as written rather than all up front: `JUMP_EXACT` is sized for the largest
// policy, and most use a fraction of it. Lookups cost the same.
const BPF_F_NO_PREALLOC: u32 = 1;
// An array jumpd maps into its memory (`jump_common::sys::MappedArray`): it reads all of it
// back every few seconds to find rewrites.
const BPF_F_MMAPABLE: u32 = 1 << 10;

use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use jump_common::{
    counter, DestKey, DestValue, Event, ExactKey, ExactValue, Limits, PortKey, PortValue, RateKey,
    RateState, RuleTableChunk, SlotConfig, SockRecord, SubuidKey, SubuidValue, UidHeld, UidSketch,
    UserKey, UserValue, ViaKey, ViaSet, Window, EVENTS_BYTES, HIT_COUNTED_RULES, MAX_DESTS,
    MAX_EXACT, MAX_LOCAL_ADDRS, MAX_PORTS, MAX_SUBUID_BLOCKS, MAX_USERS, MAX_VIA_RULES,
    MAX_WINDOWS, RATE_KEYS, RULE_TABLE_CHUNKS, SLOT_COUNT, UID_DIRECT, UID_HELD_ENTRIES,
};

// Every map is pinned by name (under the daemon's pin directory) so that enforcement, policy and
// pending events outlive the daemon, and a restarted daemon adopts them. Map names are the static names below; `jump_common::maps` spells the same strings for the
// daemon.

#[map]
pub static JUMP_ACTIVE: Array<u32> = Array::pinned(1, 0);

#[map]
pub static JUMP_SLOTS: Array<SlotConfig> = Array::pinned(SLOT_COUNT, 0);

#[map]
pub static JUMP_USERS: HashMap<UserKey, UserValue> = HashMap::pinned(MAX_USERS * SLOT_COUNT, 0);

/// The profiles of uids below `UID_DIRECT`, by `uid_index` (INVARIANT uid index).
#[map]
pub static JUMP_UID_INDEX: Array<UserValue> =
    Array::pinned(UID_DIRECT * SLOT_COUNT, BPF_F_MMAPABLE);

#[map]
pub static JUMP_DESTS: LpmTrie<DestKey, DestValue> = LpmTrie::pinned(MAX_DESTS * SLOT_COUNT, 0);

#[map]
pub static JUMP_PORTS: LpmTrie<PortKey, PortValue> = LpmTrie::pinned(MAX_PORTS * SLOT_COUNT, 0);

#[map]
pub static JUMP_EXACT: HashMap<ExactKey, ExactValue> =
    HashMap::pinned(MAX_EXACT * SLOT_COUNT, BPF_F_NO_PREALLOC);

/// The exact entry for `key` (lookup step 3a): (action, rule id).
#[inline(always)]
pub fn exact(key: &ExactKey) -> Option<(u8, u32)> {
    // SAFETY: a pointer into this map's value, read at once.
    JUMP_EXACT
        .get_ptr(key)
        .map(|e| unsafe { ((*e).action, (*e).rule_id) })
}

#[map]
pub static JUMP_WINDOWS: Array<Window> = Array::pinned(MAX_WINDOWS * SLOT_COUNT, 0);

#[map]
pub static JUMP_EVENTS: RingBuf = RingBuf::pinned(EVENTS_BYTES, 0);

#[map]
pub static JUMP_COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(counter::LEN, 0);

#[map]
pub static JUMP_RULE_HITS: PerCpuArray<u64> =
    PerCpuArray::pinned(SLOT_COUNT * HIT_COUNTED_RULES * 3, 0);

#[map]
pub static JUMP_LIMITS: Array<Limits> = Array::pinned(1, 0);

#[map]
pub static JUMP_RATE: LruHashMap<RateKey, RateState> =
    LruHashMap::pinned(RATE_KEYS, BPF_F_NO_COMMON_LRU);

// Socket-local storage needs BTF for its key and value, which only a BTF map definition
// (`.maps` section) carries. Such a definition has no pinning field here: the daemon pins it
// by name itself (`EbpfLoader::map_pin_path`), so it is shared and adopted like the others.
#[btf_map]
pub static JUMP_SOCKS: SkStorage<SockRecord> = SkStorage::new();

/// The uid that created a raw or ping socket, so its packets are judged as their creator, not
/// as whoever the socket is `fchown`ed to. In the socket's own storage, which the kernel frees
/// with the socket: no program runs at close, and no shared map can fill up and forget one.
/// Pinned by name like `JUMP_SOCKS`.
#[btf_map]
pub static JUMP_CREATORS: SkStorage<u32> = SkStorage::new();

// Plain hash maps, not LRU: an evicted entry would lose a uid's counts.
#[map]
pub static JUMP_UID_HELD: HashMap<u32, UidHeld> = HashMap::pinned(UID_HELD_ENTRIES, 0);

#[map]
pub static JUMP_UID_SKETCH: HashMap<u32, UidSketch> = HashMap::pinned(UID_HELD_ENTRIES, 0);

// Written by the daemon only: the counts of `JUMP_UID_HELD` it has reported, pinned so that a
// restarted daemon reports exactly what the previous one had not (including what was held
// while no daemon ran).
#[map]
pub static JUMP_UID_REPORTED: HashMap<u32, UidHeld> = HashMap::pinned(UID_HELD_ENTRIES, 0);
#[map]
pub static JUMP_SUBUIDS: LpmTrie<SubuidKey, SubuidValue> =
    LpmTrie::pinned(MAX_SUBUID_BLOCKS * SLOT_COUNT, 0);

// Written by the daemon only: each slot's rule table, for a restarted daemon. A hash without
// preallocation: sized for a million-rule policy, it holds only the chunks a policy needs.
#[map]
pub static JUMP_RULE_TABLES: HashMap<u32, RuleTableChunk> =
    HashMap::pinned(RULE_TABLE_CHUNKS * SLOT_COUNT, BPF_F_NO_PREALLOC);

#[map]
pub static JUMP_LOCAL_ADDRS: HashMap<[u8; 16], u32> = HashMap::pinned(MAX_LOCAL_ADDRS, 0);

/// `[0]`: the cookie of the network namespace jumpd runs in and whose addresses
/// `JUMP_LOCAL_ADDRS` holds; 0 until jumpd measured it.
#[map]
pub static JUMP_HOST_NETNS: Array<u64> = Array::pinned(1, 0);

#[map]
pub static JUMP_VIAS: HashMap<ViaKey, ViaSet> = HashMap::pinned(MAX_VIA_RULES * SLOT_COUNT, 0);

// Keeps `Event` referenced so its BTF is emitted for `bpftool` users.
#[expect(dead_code, reason = "never read: it exists for the BTF of `Event`")]
pub static EVENT_LAYOUT: Option<Event> = None;

//! The map definitions. Names, sizes and layouts come from `jump-common`, which the daemon reads
//! too; this file only instantiates them.

// Per-CPU LRU lists: an insert into a full map evicts from its own CPU's list instead of
// scanning a shared one under a lock (measured: microseconds per connect with the common LRU).
const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;

use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use jump_common::{
    counter, DestKey, DestValue, Event, Limits, PortKey, PortValue, RateKey, RateState,
    SlotConfig, SockRecord, UserKey, UserValue, RATE_KEYS,
    Window, EVENTS_BYTES, MAX_DESTS, MAX_PORTS, MAX_RULES, MAX_USERS, MAX_WINDOWS, SLOT_COUNT,
};

// Every map is pinned by name (under the daemon's pin directory) so that enforcement, policy and
// pending events outlive the daemon, and a restarted daemon adopts them. Map names are the static names below; `jump_common::maps` spells the same strings for the
// daemon.

#[map]
pub static JUMP_ACTIVE: Array<u32> = Array::pinned(1, 0);

#[map]
pub static JUMP_SLOTS: Array<SlotConfig> = Array::pinned(SLOT_COUNT, 0);

#[map]
pub static JUMP_USERS: HashMap<UserKey, UserValue> =
    HashMap::pinned(MAX_USERS * SLOT_COUNT, 0);

#[map]
pub static JUMP_DESTS: LpmTrie<DestKey, DestValue> =
    LpmTrie::pinned(MAX_DESTS * SLOT_COUNT, 0);

#[map]
pub static JUMP_PORTS: LpmTrie<PortKey, PortValue> =
    LpmTrie::pinned(MAX_PORTS * SLOT_COUNT, 0);

#[map]
pub static JUMP_WINDOWS: Array<Window> = Array::pinned(MAX_WINDOWS * SLOT_COUNT, 0);

#[map]
pub static JUMP_EVENTS: RingBuf = RingBuf::pinned(EVENTS_BYTES, 0);

#[map]
pub static JUMP_COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(counter::LEN, 0);

#[map]
pub static JUMP_RULE_HITS: PerCpuArray<u64> = PerCpuArray::pinned(SLOT_COUNT * MAX_RULES * 3, 0);

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

// Keeps `Event` referenced so its BTF is emitted for `bpftool` users.
#[allow(dead_code)]
pub static EVENT_LAYOUT: Option<Event> = None;

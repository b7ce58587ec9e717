//! The one source of truth for what crosses the kernel/userspace boundary: map names and sizes,
//! key and value layouts, and the decision event. `jump-ebpf` reads these layouts, the daemon's
//! `datapath` writes them, and the compiler produces them. Everything is `#[repr(C)]`, padding is
//! spelled out as named fields, and every field's offset and every type's size is asserted at
//! compile time (`layout!`), so a layout change on one side cannot go unnoticed on the other.
//!
//! Why one file of ~800 lines, most of them doc comments: it is the whole kernel/userspace
//! contract, read and reviewed as one when either side changes, with the map names, the
//! capacities and the `layout!` checks of every shared type in one place.
#![no_std]

#[cfg(feature = "user")]
extern crate std;

/// The `bpf(2)` calls aya does not expose (userspace only): with the `Pod` impls below, the
/// only `unsafe` outside the kernel programs.
#[cfg(feature = "user")]
pub mod sys;

/// Names of the maps in the eBPF object, so both sides agree on them.
pub mod maps {
    pub const ACTIVE: &str = "JUMP_ACTIVE";
    pub const SLOTS: &str = "JUMP_SLOTS";
    pub const USERS: &str = "JUMP_USERS";
    pub const UID_INDEX: &str = "JUMP_UID_INDEX";
    pub const DESTS: &str = "JUMP_DESTS";
    pub const PORTS: &str = "JUMP_PORTS";
    pub const WINDOWS: &str = "JUMP_WINDOWS";
    pub const EVENTS: &str = "JUMP_EVENTS";
    pub const COUNTERS: &str = "JUMP_COUNTERS";
    pub const RULE_HITS: &str = "JUMP_RULE_HITS";
    pub const LIMITS: &str = "JUMP_LIMITS";
    pub const RATE: &str = "JUMP_RATE";
    pub const SOCKS: &str = "JUMP_SOCKS";
    pub const CREATORS: &str = "JUMP_CREATORS";
    pub const UID_HELD: &str = "JUMP_UID_HELD";
    pub const UID_SKETCH: &str = "JUMP_UID_SKETCH";
    pub const UID_REPORTED: &str = "JUMP_UID_REPORTED";
    pub const RULE_TABLES: &str = "JUMP_RULE_TABLES";
    pub const SUBUIDS: &str = "JUMP_SUBUIDS";
    pub const LOCAL_ADDRS: &str = "JUMP_LOCAL_ADDRS";
    pub const HOST_NETNS: &str = "JUMP_HOST_NETNS";
    pub const VIAS: &str = "JUMP_VIAS";
    pub const EXACT: &str = "JUMP_EXACT";
}

/// Capacities. The daemon refuses a policy whose compiled image does not fit, so a lookup never
/// depends on a failed insert.
pub const MAX_USERS: u32 = 65_536;
pub const MAX_DESTS: u32 = 262_144;
pub const MAX_PORTS: u32 = 262_144;
pub const MAX_WINDOWS: u32 = 4_096;
pub const EVENTS_BYTES: u32 = 1 << 22;
/// Rules per policy image. A rule id is a `u32` everywhere (candidates, `via`, events, the
/// socket record), so this only bounds what the compiler accepts; no map is sized by it.
pub const MAX_RULES: u32 = 1 << 20;
/// Rule ids per slot that `JUMP_RULE_HITS` counts (`jumpctl stats`); hits of higher ids are
/// not counted. Apart from `MAX_RULES`: a per-CPU counter per rule and action costs 48 bytes
/// per rule and CPU, and the daemon zeroes a slot's counters before each reload.
pub const HIT_COUNTED_RULES: u32 = 16_384;

/// Two complete policy images live side by side in every map, told apart by `slot`. A reload
/// fills the inactive slot, then flips `JUMP_ACTIVE[0]` with one array write; a program reads the
/// active slot once per decision, so no decision ever mixes two generations.
pub const SLOT_COUNT: u32 = 2;

/// Key of `JUMP_USERS` (hash): which compiled profile a uid uses in a slot. `uid ==
/// ANY_UID` holds the profile of every uid not listed (the `users: ["*"]` rules alone).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub slot: u32,
    pub uid: u32,
}
pub const ANY_UID: u32 = u32::MAX;

/// Uids below this are looked up in `JUMP_UID_INDEX`, an array indexed by
/// `slot * UID_DIRECT + uid` (`uid_index`), instead of hashing into `JUMP_USERS`: the
/// decision's first lookup becomes an address computation the verifier inlines. Most hosts'
/// users (local accounts) are below it; a directory's larger uids, subordinate uids and
/// `ANY_UID` stay in the hash.
///
/// INVARIANT (uid index): for a uid below `UID_DIRECT`, `JUMP_UID_INDEX` alone decides which
/// profile it has: its entry is the uid's `JUMP_USERS` value with `profile_flags::LISTED`
/// added, and a zeroed entry (no `LISTED`) means not listed. `JUMP_USERS` keeps every listed
/// uid all the same (what `jumpctl` and the tests read); jumpd writes both from one image and
/// verifies both (`datapath::integrity`).
pub const UID_DIRECT: u32 = 65_536;

/// The entry of `uid` in `JUMP_UID_INDEX` for `slot`, if the uid is below `UID_DIRECT`.
#[inline(always)]
pub fn uid_index(slot: u32, uid: u32) -> Option<u32> {
    (uid < UID_DIRECT).then_some(slot * UID_DIRECT + uid)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserValue {
    pub profile: u32,
    /// `profile_flags` of the profile, so `sock_create` decides with one lookup.
    pub flags: u32,
}

/// What a profile may create at `sock_create`, beyond TCP and UDP sockets (which every profile
/// may create: their connects and sends are decided per destination).
pub mod profile_flags {
    /// The profile has an `icmp` grant somewhere: ping sockets and raw sockets may be created
    /// (the egress backstop then decides each packet).
    pub const ICMP: u32 = 1;
    /// Set on every entry of `JUMP_UID_INDEX` that holds a listed uid (INVARIANT uid index);
    /// never in `JUMP_USERS`.
    pub const LISTED: u32 = 1 << 31;
}

/// The class bit of listen grants in `JUMP_PORTS`: `LISTEN_CLASS | profile` holds the ports a
/// profile may bind and accept on. Destination classes never set it.
pub const LISTEN_CLASS: u32 = 1 << 31;

/// Key data of `JUMP_DESTS` (LPM trie, behind aya's `Key { prefix_len, data }`): which
/// destination class an address falls into for a profile.
///
/// Field order is match order: the slot and the profile are always matched in full (they are
/// the first 64 bits of every prefix), then the address. IPv4 addresses are stored as
/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) so one trie serves both families and a mapped
/// destination gets the IPv4 verdict by construction. All fields after `prefixlen` are
/// big-endian, because the trie compares bytes in memory order. The prefix length is
/// `DEST_FIXED_BITS` + the address prefix length.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub slot_be: u32,
    pub profile_be: u32,
    pub addr: [u8; 16],
}
pub const DEST_FIXED_BITS: u32 = 64;

/// The compiler splits overlapping networks so that the longest match alone holds the answer:
/// `class` names the set of rule entries that apply to every address of that prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestValue {
    pub class: u32,
}

/// Key data of `JUMP_PORTS` (LPM trie): the candidates for a (class, protocol, port).
///
/// Field order is match order: slot, class and protocol always match in full, the port by
/// prefix, so a port range compiles to the few aligned blocks that cover it. `_pad` sits inside
/// the fixed part and is always zero, which keeps `port_be` naturally aligned. The prefix length
/// is `PORT_FIXED_BITS` (slot, class, proto, pad) + the port prefix length (0..=16).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub slot_be: u32,
    pub class_be: u32,
    pub proto: u8,
    pub _pad: u8,
    pub port_be: u16,
}
pub const PORT_FIXED_BITS: u32 = 80;

/// Key of `JUMP_EXACT` (hash): the answer of both tries for one host destination and one port,
/// looked up before them (lookup step 3a), so the common grant — a host and a port — costs one
/// hash lookup instead of two trie walks.
///
/// The fields are the tries' own inputs, in the same form: `addr` is the normalised
/// destination (IPv4-mapped) that `JUMP_DESTS` is searched with, so an address form reaches
/// this map exactly when it reaches the same full-length trie entry. Host byte order for the
/// rest (a hash compares whole keys; no field is matched by prefix); `_pad` is always zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey {
    pub slot: u32,
    pub profile: u32,
    pub addr: [u8; 16],
    pub proto: u8,
    pub _pad: u8,
    pub port: u16,
}

/// The one candidate that decides at an `ExactKey`: the datapath writes an entry only where the
/// trie's candidate list starts with an always-open candidate (which then decides, untimed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExactValue {
    pub rule_id: u32,
    pub action: u8,
    pub _pad: [u8; 3],
}

/// `JUMP_EXACT` entries per slot. A policy with more host-and-port pairs gets this many (any
/// subset is correct: a miss falls through to the tries).
pub const MAX_EXACT: u32 = 131_072;

/// IP protocol numbers as the kernel programs see them.
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMP: u8 = 1;
    pub const ICMPV6: u8 = 58;
    /// Joining a multicast group is decided as IGMP to the group (port 0): the compiler gives
    /// every `udp` entry an IGMP twin for its networks, whatever its ports, so a join needs a
    /// udp grant whose `to:` holds the group. MLD joins use the same number.
    pub const IGMP: u8 = 2;
}

/// What one candidate decides when it applies.
pub mod action {
    pub const DENY: u8 = 0;
    pub const ALLOW: u8 = 1;
    /// Allowed, but logged as "would deny": the connection passes only because an audit-mode
    /// rule applies.
    pub const AUDIT: u8 = 2;
}

/// How many candidates a port entry carries. Candidates are in precedence order and the first
/// whose time window is open decides; the compiler stops a list at the first candidate without a
/// window, so only time-limited rules make a list long, and it rejects a policy that overflows.
pub const MAX_CANDIDATES: usize = 8;

/// Window id meaning "always open".
pub const WINDOW_ALWAYS: u32 = 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Candidate {
    /// Index into the daemon's rule table (0 is the policy default).
    pub rule_id: u32,
    /// Index into `JUMP_WINDOWS`, or `WINDOW_ALWAYS`.
    pub window: u32,
    pub action: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortValue {
    pub len: u32,
    pub candidates: [Candidate; MAX_CANDIDATES],
}

/// How many open intervals a time window holds. Schedules are expanded by the daemon into their
/// next intervals (and refreshed); past the last interval the window is closed, so a stopped
/// daemon fails closed rather than open.
pub const MAX_INTERVALS: usize = 32;

/// Value of `JUMP_WINDOWS` (array, indexed by window id, per slot: `slot * MAX_WINDOWS + id`):
/// half-open intervals `[start, end)` in nanoseconds of CLOCK_TAI, which the kernel reads with
/// `bpf_ktime_get_tai_ns` so expiry holds while the daemon is down.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub len: u32,
    /// 0, or the one audit session (`/proc/PID/sessionid`) the window is open for: a
    /// session-scoped grant (`jumpctl grant --session`) gets a window of its own, and the kernel
    /// reads the task's session id only for such a window.
    pub session: u32,
    pub intervals: [[u64; 2]; MAX_INTERVALS],
}

/// Which decisions become events (`defaults.log`).
pub mod log_mode {
    pub const NONE: u8 = 0;
    pub const DENY: u8 = 1;
    pub const ALL: u8 = 2;
}

/// Value of `JUMP_SLOTS` (array of `SLOT_COUNT`): per-image settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotConfig {
    pub generation: u64,
    /// Action when no candidate applies (`defaults.egress`).
    pub default_action: u8,
    pub log_mode: u8,
    /// `identity::UID` or `identity::PERSON` (`defaults.identity`).
    pub identity: u8,
    /// 1 in audit mode: what no rule grants (a port to listen on, an `icmp` grant for a raw
    /// socket, a judged socket option, a packet's path) is an audit, not a refusal, as every
    /// deny of the image is. In the padding of older layouts, where it reads as 0: enforce.
    pub audit: u8,
    pub _pad: [u8; 4],
}

/// `SlotConfig::identity`: whom a decision is for.
pub mod identity {
    /// The uid alone.
    pub const UID: u8 = 0;
    /// The uid and, when the task has one, its audit login uid: both must allow.
    pub const PERSON: u8 = 1;
}

/// `Event::decided_by`: which identity's decision an event reports.
pub mod decided_by {
    pub const UID: u8 = 0;
    /// The login uid refused (or narrowed to audit) what the uid alone would have allowed.
    pub const LOGIN: u8 = 1;
}

/// The audit login uid (and session id) of a task that has none: `(uid_t)-1`.
pub const LOGIN_UNSET: u32 = u32::MAX;

/// Value of `JUMP_LIMITS[0]`: the in-kernel event limits. Events with the same
/// `RateKey` beyond `burst` within `window_ns` are counted, not sent (`window_ns == 0` disables
/// this). Then each uid has its own budget (`UidHeld`): a token bucket of `uid_burst` events
/// refilled one per `uid_interval_ns` (`uid_interval_ns == 0` disables it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Limits {
    pub window_ns: u64,
    pub burst: u32,
    pub uid_burst: u32,
    pub uid_interval_ns: u64,
}

/// Key of `JUMP_RATE` (LRU hash): what makes two events "similar".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RateKey {
    pub uid: u32,
    pub dst_port: u16,
    pub hook: u8,
    pub action: u8,
    pub proto: u8,
    pub _pad: [u8; 3],
    pub dst_addr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RateState {
    pub window_start: u64,
    pub sent: u32,
    pub suppressed: u32,
}

pub const RATE_KEYS: u32 = 16_384;

/// Which hook made a decision.
pub mod hook {
    pub const CONNECT4: u8 = 1;
    pub const CONNECT6: u8 = 2;
    pub const SENDMSG4: u8 = 3;
    pub const SENDMSG6: u8 = 4;
    pub const BIND4: u8 = 5;
    pub const BIND6: u8 = 6;
    pub const SOCK_CREATE: u8 = 7;
    pub const EGRESS: u8 = 8;
    /// `setsockopt` refusals, by what the option would have let the user choose. Their events
    /// carry the option's level in `src_port` and its name in `dst_port` (`sockopt_name`), and
    /// for joins the group in `dst_addr`.
    pub const SOCKOPT_INTERFACE: u8 = 9;
    pub const SOCKOPT_SOURCE: u8 = 10;
    pub const SOCKOPT_MULTICAST: u8 = 11;
    pub const SOCKOPT_SOURCE_ROUTE: u8 = 12;
    /// Egress packets dropped for their path rather than their destination.
    pub const EGRESS_LOOPBACK: u8 = 13;
    pub const EGRESS_SOURCE: u8 = 14;
    pub const EGRESS_SOURCE_ROUTE: u8 = 15;
    /// The deciding rule has `via` and the packet leaves on another interface.
    pub const EGRESS_INTERFACE: u8 = 16;

    pub fn is_sockopt(hook: u8) -> bool {
        (SOCKOPT_INTERFACE..=SOCKOPT_SOURCE_ROUTE).contains(&hook)
    }

    pub fn name(hook: u8) -> &'static str {
        match hook {
            CONNECT4 => "connect4",
            CONNECT6 => "connect6",
            SENDMSG4 => "sendmsg4",
            SENDMSG6 => "sendmsg6",
            BIND4 => "bind4",
            BIND6 => "bind6",
            SOCK_CREATE => "sock_create",
            EGRESS => "egress",
            SOCKOPT_INTERFACE => "setsockopt-interface",
            SOCKOPT_SOURCE => "setsockopt-source",
            SOCKOPT_MULTICAST => "setsockopt-multicast",
            SOCKOPT_SOURCE_ROUTE => "setsockopt-source-route",
            EGRESS_LOOPBACK => "egress-loopback-off-lo",
            EGRESS_SOURCE => "egress-non-local-source",
            EGRESS_SOURCE_ROUTE => "egress-source-route",
            EGRESS_INTERFACE => "egress-interface",
            _ => "unknown",
        }
    }
}

pub const COMM_LEN: usize = 16;

/// One decision, as written to the `JUMP_EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_TAI nanoseconds, the same clock windows use.
    pub ts_ns: u64,
    pub generation: u64,
    /// The socket's cookie (`bpf_get_socket_cookie`), 0 where unknown.
    pub cookie: u64,
    pub uid: u32,
    pub gid: u32,
    /// Thread-group id (what userspace calls the pid).
    pub pid: u32,
    pub rule_id: u32,
    /// The audit login uid of the task (`u32::MAX` = unset), and its audit session.
    pub login_uid: u32,
    pub session_id: u32,
    /// Similar events the kernel suppressed (rate limit) since the last one it sent for the
    /// same (uid, action, destination).
    pub suppressed: u32,
    /// The uid the task really had when `uid` is the owner of that subordinate uid (a user
    /// namespace's uid, `/etc/subuid`); `NO_NS_UID` otherwise.
    pub ns_uid: u32,
    /// Destination (for bind: the local address) as IPv4-mapped IPv6 for IPv4.
    pub dst_addr: [u8; 16],
    /// Source address where the hook knows it (egress), else zero.
    pub src_addr: [u8; 16],
    pub dst_port: u16,
    pub src_port: u16,
    /// `AF_INET` or `AF_INET6`, as the socket was created.
    pub family: u16,
    pub proto: u8,
    pub hook: u8,
    pub action: u8,
    /// `decided_by::UID` or `decided_by::LOGIN`.
    pub decided_by: u8,
    pub _pad1: [u8; 2],
    /// When the deciding process started, as `/proc/PID/stat` gives it (clock ticks of 10 ms
    /// since boot, modulo 2^32); 0 where unknown. For an egress drop, the connector's: tells
    /// jumpd whether the pid still belongs to that process.
    pub start_ticks: u32,
    pub comm: [u8; COMM_LEN],
}

/// Capacity of `JUMP_LOCAL_ADDRS` (hash, address as IPv4-mapped IPv6 → ifindex): the
/// addresses of the host's network namespace, kept by jumpd from rtnetlink. The egress backstop
/// drops a packet from that namespace whose source is not one of them.
pub const MAX_LOCAL_ADDRS: u32 = 4_096;

/// Key of `JUMP_VIAS` (hash): a rule with `via` in a slot. Only such rules have an entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViaKey {
    pub slot: u32,
    pub rule_id: u32,
}

/// How many interfaces one rule's `via` may name.
pub const MAX_VIA_INTERFACES: usize = 7;
/// Rules with `via` per slot.
pub const MAX_VIA_RULES: u32 = 4_096;

/// Value of `JUMP_VIAS`: the interfaces (ifindex) a rule's decisions hold on at egress. An
/// interface that did not exist when the policy was compiled is left out, so a rule naming only
/// such interfaces holds nowhere.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ViaSet {
    pub len: u32,
    pub ifindex: [u32; MAX_VIA_INTERFACES],
}

/// The socket options the `setsockopt` program judges, by (level, name) as in the kernel's
/// uapi headers.
pub mod sockopt {
    pub const SOL_IP: i32 = 0;
    pub const SOL_SOCKET: i32 = 1;
    pub const SOL_IPV6: i32 = 41;

    pub const SO_BINDTODEVICE: i32 = 25;
    pub const SO_BINDTOIFINDEX: i32 = 62;

    pub const IP_OPTIONS: i32 = 4;
    pub const IP_FREEBIND: i32 = 15;
    pub const IP_TRANSPARENT: i32 = 19;
    pub const IP_MULTICAST_IF: i32 = 32;
    pub const IP_ADD_MEMBERSHIP: i32 = 35;
    pub const IP_UNBLOCK_SOURCE: i32 = 37;
    pub const IP_BLOCK_SOURCE: i32 = 38;
    pub const IP_ADD_SOURCE_MEMBERSHIP: i32 = 39;
    pub const IP_MSFILTER: i32 = 41;
    pub const IP_UNICAST_IF: i32 = 50;
    /// Level-independent (SOL_IP and SOL_IPV6) protocol-independent multicast API.
    pub const MCAST_JOIN_GROUP: i32 = 42;
    pub const MCAST_BLOCK_SOURCE: i32 = 43;
    pub const MCAST_UNBLOCK_SOURCE: i32 = 44;
    pub const MCAST_JOIN_SOURCE_GROUP: i32 = 46;
    pub const MCAST_MSFILTER: i32 = 48;

    pub const IPV6_2292RTHDR: i32 = 5;
    pub const IPV6_MULTICAST_IF: i32 = 17;
    pub const IPV6_ADD_MEMBERSHIP: i32 = 20;
    pub const IPV6_JOIN_ANYCAST: i32 = 27;
    pub const IPV6_RTHDR: i32 = 57;
    pub const IPV6_TRANSPARENT: i32 = 75;
    pub const IPV6_UNICAST_IF: i32 = 76;
    pub const IPV6_FREEBIND: i32 = 78;

    /// The option's name for the log, `?` for one this module does not list.
    pub fn name(level: i32, name: i32) -> &'static str {
        match (level, name) {
            (SOL_SOCKET, SO_BINDTODEVICE) => "SO_BINDTODEVICE",
            (SOL_SOCKET, SO_BINDTOIFINDEX) => "SO_BINDTOIFINDEX",
            (SOL_IP, IP_OPTIONS) => "IP_OPTIONS",
            (SOL_IP, IP_FREEBIND) => "IP_FREEBIND",
            (SOL_IP, IP_TRANSPARENT) => "IP_TRANSPARENT",
            (SOL_IP, IP_MULTICAST_IF) => "IP_MULTICAST_IF",
            (SOL_IP, IP_ADD_MEMBERSHIP) => "IP_ADD_MEMBERSHIP",
            (SOL_IP, IP_UNBLOCK_SOURCE) => "IP_UNBLOCK_SOURCE",
            (SOL_IP, IP_BLOCK_SOURCE) => "IP_BLOCK_SOURCE",
            (SOL_IP, IP_ADD_SOURCE_MEMBERSHIP) => "IP_ADD_SOURCE_MEMBERSHIP",
            (SOL_IP, IP_MSFILTER) => "IP_MSFILTER",
            (SOL_IP, IP_UNICAST_IF) => "IP_UNICAST_IF",
            (SOL_IP | SOL_IPV6, MCAST_JOIN_GROUP) => "MCAST_JOIN_GROUP",
            (SOL_IP | SOL_IPV6, MCAST_BLOCK_SOURCE) => "MCAST_BLOCK_SOURCE",
            (SOL_IP | SOL_IPV6, MCAST_UNBLOCK_SOURCE) => "MCAST_UNBLOCK_SOURCE",
            (SOL_IP | SOL_IPV6, MCAST_JOIN_SOURCE_GROUP) => "MCAST_JOIN_SOURCE_GROUP",
            (SOL_IP | SOL_IPV6, MCAST_MSFILTER) => "MCAST_MSFILTER",
            (SOL_IPV6, IPV6_2292RTHDR) => "IPV6_2292RTHDR",
            (SOL_IPV6, IPV6_MULTICAST_IF) => "IPV6_MULTICAST_IF",
            (SOL_IPV6, IPV6_ADD_MEMBERSHIP) => "IPV6_ADD_MEMBERSHIP",
            (SOL_IPV6, IPV6_JOIN_ANYCAST) => "IPV6_JOIN_ANYCAST",
            (SOL_IPV6, IPV6_RTHDR) => "IPV6_RTHDR",
            (SOL_IPV6, IPV6_TRANSPARENT) => "IPV6_TRANSPARENT",
            (SOL_IPV6, IPV6_UNICAST_IF) => "IPV6_UNICAST_IF",
            (SOL_IPV6, IPV6_FREEBIND) => "IPV6_FREEBIND",
            _ => "?",
        }
    }
}

/// Indexes of `JUMP_COUNTERS` (per-CPU array of u64).
pub mod counter {
    /// Every decision made.
    pub const DECISIONS: u32 = 0;
    /// Events lost because the ring buffer was full.
    pub const EVENTS_DROPPED: u32 = 1;
    /// Events not sent because of the rate limit (each is also counted in the next sent event's
    /// `suppressed`).
    pub const EVENTS_SUPPRESSED: u32 = 2;
    /// Events written to the ring buffer.
    pub const EVENTS_SENT: u32 = 3;
    /// Events held back by their uid's budget (each also counted in the uid's `UidHeld`).
    pub const EVENTS_OVER_BUDGET: u32 = 4;
    /// Events held back of uids `JUMP_UID_HELD` had no room for (more than `UID_HELD_ENTRIES`
    /// uids with held events): the only count that cannot name its uid.
    pub const EVENTS_UNTRACKED: u32 = 5;
    pub const LEN: u32 = 6;
}

/// Index of `JUMP_RULE_HITS` (per-CPU array of u64): hits of a rule with an action in a slot.
/// The daemon zeroes a slot's hits before it fills the slot.
pub const fn rule_hit_index(slot: u32, rule_id: u32, action: u8) -> u32 {
    (slot * HIT_COUNTED_RULES + rule_id) * 3 + action as u32
}

/// Value of `JUMP_SOCKS` (`BPF_MAP_TYPE_SK_STORAGE`, socket-local storage): who connected a
/// socket and under which grant, written when a connect (or a socket's first unconnected send)
/// is allowed. The kernel frees it with the socket, so it covers the socket's whole life,
/// `close()` included (FIN and retransmissions), and nothing else ever has to forget it.
///
/// The egress backstop decides a socket's packets by this record, revocation judges the
/// socket by it (read through `INET_DIAG_REQ_SK_BPF_STORAGES`), and events name its task.
/// Field order keeps every field naturally aligned with no implicit padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SockRecord {
    /// The policy generation that allowed it; the backstop decides again when it is not the
    /// active one.
    pub generation: u64,
    /// The connecting task: uid, gid, thread-group id, audit login uid and session.
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub login_uid: u32,
    pub session_id: u32,
    /// The rule of `generation` that allowed it.
    pub rule_id: u32,
    /// `action::ALLOW` or `action::AUDIT`.
    pub action: u8,
    /// The hook that wrote it (`hook::CONNECT4` …).
    pub hook: u8,
    /// `record_flags`.
    pub flags: u8,
    pub proto: u8,
    /// The destination as decided, host byte order; IPv4 as IPv4-mapped IPv6.
    pub dst_port: u16,
    pub family: u16,
    pub dst_addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    /// The interface the socket's packets were last seen to leave on with their path checked
    /// (`path.rs`) and the deciding rule's `via` holding, under `generation`; 0 = not checked.
    /// Set by the egress backstop for TCP sockets only; while a packet leaves on this interface
    /// and `generation` is active, the backstop passes it on the record alone, without reading
    /// the packet beyond its first header bytes (docs/enforcement.md, "The egress fast path").
    pub path_ifindex: u32,
    /// When the connecting process started (`Event::start_ticks`); 0 where unknown.
    pub start_ticks: u32,
}

impl SockRecord {
    /// INVARIANT (blank record): `sock_create` allocates every TCP and UDP socket's record
    /// zeroed, and a connect or first send fills it, writing the generation last. A record
    /// with generation 0 therefore says nothing (no uid, no grant) and every reader treats it
    /// as no record.
    pub const fn is_blank(&self) -> bool {
        self.generation == 0
    }
}

pub mod record_flags {
    /// The grant depends on time (a window decided it, or one could change the answer): the
    /// backstop decides every packet again instead of trusting the record.
    pub const TIMED: u8 = 1;
}

/// `Event::ns_uid` when the decision was made for the task's own uid.
pub const NO_NS_UID: u32 = u32::MAX;

/// Capacity of `JUMP_SUBUIDS` per slot: aligned uid blocks. A range of 65,536 subordinate uids
/// splits into at most 32 blocks, so this holds the ranges of thousands of users.
pub const MAX_SUBUID_BLOCKS: u32 = 65_536;

/// Key data of `JUMP_SUBUIDS` (LPM trie): which user owns a subordinate uid (`/etc/subuid`).
///
/// Field order is match order: the slot always matches in full, then the uid by prefix, so a
/// range compiles to the few aligned blocks that cover it. Both fields are big-endian because
/// the trie compares bytes in memory order. The prefix length is `SUBUID_FIXED_BITS` + the uid
/// prefix length (0..=32). Looked up only when `JUMP_USERS` has no entry for a uid, so the
/// common path (a listed uid) costs nothing more.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubuidKey {
    pub slot_be: u32,
    pub uid_be: u32,
}
pub const SUBUID_FIXED_BITS: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubuidValue {
    /// The uid whose profile decides, and whom events name.
    pub owner: u32,
}

// Compile-time layout checks: both sides compile these, so a drifting layout fails the build.
/// Pins a shared type's layout: the offset of every field, in declaration order, and its size.
/// The size must equal the sum of the field sizes, which proves there is no implicit padding
/// (all padding is a named field); the offsets then catch a reordering that keeps the size.
macro_rules! layout {
    ($t:ty, size $size:expr; $($field:ident @ $off:expr),+ $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$t>() == $size);
            $(assert!(core::mem::offset_of!($t, $field) == $off);)+
            // The size of a field without naming its type: an unevaluated projection.
            const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
                core::mem::size_of::<F>()
            }
            let fields = 0 $(+ field_size(|v: &$t| &v.$field))+;
            assert!(fields == $size, "implicit padding");
        };
    };
}

layout!(UserKey, size 8; slot @ 0, uid @ 4);
layout!(UserValue, size 8; profile @ 0, flags @ 4);
layout!(DestKey, size 24; slot_be @ 0, profile_be @ 4, addr @ 8);
layout!(DestValue, size 4; class @ 0);
layout!(PortKey, size 12; slot_be @ 0, class_be @ 4, proto @ 8, _pad @ 9, port_be @ 10);
layout!(ExactKey, size 28;
    slot @ 0, profile @ 4, addr @ 8, proto @ 24, _pad @ 25, port @ 26);
layout!(ExactValue, size 8; rule_id @ 0, action @ 4, _pad @ 5);
layout!(Candidate, size 12; rule_id @ 0, window @ 4, action @ 8, _pad @ 9);
layout!(PortValue, size 4 + 12 * MAX_CANDIDATES; len @ 0, candidates @ 4);
layout!(Window, size 8 + 16 * MAX_INTERVALS; len @ 0, session @ 4, intervals @ 8);
layout!(SlotConfig, size 16;
    generation @ 0, default_action @ 8, log_mode @ 9, identity @ 10, audit @ 11, _pad @ 12);
layout!(Limits, size 24; window_ns @ 0, burst @ 8, uid_burst @ 12, uid_interval_ns @ 16);
layout!(RateKey, size 28;
    uid @ 0, dst_port @ 4, hook @ 6, action @ 7, proto @ 8, _pad @ 9, dst_addr @ 12);
layout!(RateState, size 16; window_start @ 0, sent @ 8, suppressed @ 12);
layout!(Event, size 120;
    ts_ns @ 0, generation @ 8, cookie @ 16, uid @ 24, gid @ 28, pid @ 32, rule_id @ 36,
    login_uid @ 40, session_id @ 44, suppressed @ 48, ns_uid @ 52, dst_addr @ 56,
    src_addr @ 72, dst_port @ 88, src_port @ 90, family @ 92, proto @ 94, hook @ 95,
    action @ 96, decided_by @ 97, _pad1 @ 98, start_ticks @ 100, comm @ 104);
layout!(ViaKey, size 8; slot @ 0, rule_id @ 4);
layout!(ViaSet, size 32; len @ 0, ifindex @ 4);
layout!(SockRecord, size 80;
    generation @ 0, uid @ 8, gid @ 12, pid @ 16, login_uid @ 20, session_id @ 24,
    rule_id @ 28, action @ 32, hook @ 33, flags @ 34, proto @ 35, dst_port @ 36,
    family @ 38, dst_addr @ 40, comm @ 56, path_ifindex @ 72, start_ticks @ 76);
layout!(SubuidKey, size 8; slot_be @ 0, uid_be @ 4);
layout!(SubuidValue, size 4; owner @ 0);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: every type is `#[repr(C)]`, `Copy`, made only of integers and integer arrays, with
    // all padding spelled out as fields (see the `layout!` asserts above), so any bit pattern is valid.
    unsafe impl aya::Pod for UserKey {}
    unsafe impl aya::Pod for UserValue {}
    unsafe impl aya::Pod for DestKey {}
    unsafe impl aya::Pod for DestValue {}
    unsafe impl aya::Pod for PortKey {}
    unsafe impl aya::Pod for PortValue {}
    unsafe impl aya::Pod for ExactKey {}
    unsafe impl aya::Pod for ExactValue {}
    unsafe impl aya::Pod for Window {}
    unsafe impl aya::Pod for SlotConfig {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for Limits {}
    unsafe impl aya::Pod for RateKey {}
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for SockRecord {}
    unsafe impl aya::Pod for ViaKey {}
    unsafe impl aya::Pod for ViaSet {}
    unsafe impl aya::Pod for UidHeld {}
    unsafe impl aya::Pod for UidSketch {}
    unsafe impl aya::Pod for RuleTableChunk {}
    unsafe impl aya::Pod for SubuidKey {}
    unsafe impl aya::Pod for SubuidValue {}
}

/// How many uids `JUMP_UID_HELD` and `JUMP_UID_SKETCH` track (hash maps, never evicting: an
/// evicted entry would lose counts). A host has far fewer users with events.
pub const UID_HELD_ENTRIES: u32 = 65_536;

/// Value of `JUMP_UID_HELD` (hash, uid → this): a uid's event budget and what the kernel held
/// back of its events instead of sending them. Every wanted decision is exactly one of: sent,
/// or counted here once (`over_budget`, `similar` or `lost`) with its verdict. The counts only
/// grow (the kernel adds with atomic instructions; the daemon never writes them), so the daemon
/// reports differences and nothing is counted twice or lost between reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct UidHeld {
    /// The budget's theoretical arrival time (GCRA): the bucket is full when `tat_ns <= now`,
    /// empty when `tat_ns >= now + uid_burst * uid_interval_ns`.
    pub tat_ns: u64,
    /// Held back by the uid's budget.
    pub over_budget: u64,
    /// Held back by the per-destination limit (`RateKey`): repeats of an event just sent.
    pub similar: u64,
    /// Lost to a full ring buffer.
    pub lost: u64,
    /// The verdicts of everything held back (`over_budget + similar + lost`).
    pub allow: u64,
    pub deny: u64,
    pub audit: u64,
}

/// HyperLogLog registers per uid for the distinct-destination estimate: 64 registers give a
/// standard error of about 13%, in 64 bytes.
pub const SKETCH_REGISTERS: usize = 64;

/// Value of `JUMP_UID_SKETCH` (hash, uid → this): when and where to the uid's held events went
/// since the daemon last reported them (the daemon zeroes it after each report; a race with the
/// kernel only blurs an estimate, never a count).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UidSketch {
    /// CLOCK_TAI of the first and the last held event (0: none yet).
    pub first_ns: u64,
    pub last_ns: u64,
    /// HyperLogLog registers over (address, port, protocol).
    pub registers: [u8; SKETCH_REGISTERS],
}

impl Default for UidSketch {
    fn default() -> Self {
        Self {
            first_ns: 0,
            last_ns: 0,
            registers: [0; SKETCH_REGISTERS],
        }
    }
}

/// The destination hash both sides use: the kernel to fill `UidSketch`, tests to predict it.
/// A 64-bit finaliser (MurmurHash3's fmix64) over the address, port and protocol.
pub fn dest_hash(addr: &[u8; 16], port: u16, proto: u8) -> u64 {
    let a = u64::from_le_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let b = u64::from_le_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    fmix64(a ^ fmix64(b ^ ((port as u64) << 8 | proto as u64)))
}

const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The register a hash updates and the value it offers (1 + the trailing zeros of the rest,
/// at most 59). Branch-free and without `trailing_zeros` (BPF has no such instruction): every
/// branch here would double the paths the verifier walks in each hook.
pub fn sketch_slot(h: u64) -> (usize, u8) {
    let index = (h & (SKETCH_REGISTERS as u64 - 1)) as usize;
    let v = (h >> 6) | 1 << 58;
    // The bits below the lowest set bit, counted (SWAR popcount).
    let mut x = (v & v.wrapping_neg()) - 1;
    x -= (x >> 1) & 0x5555_5555_5555_5555;
    x = (x & 0x3333_3333_3333_3333) + ((x >> 2) & 0x3333_3333_3333_3333);
    x = (x + (x >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    let zeros = x.wrapping_mul(0x0101_0101_0101_0101) >> 56;
    (index, zeros as u8 + 1)
}

layout!(UidHeld, size 56;
    tat_ns @ 0, over_budget @ 8, similar @ 16, lost @ 24, allow @ 32, deny @ 40, audit @ 48);
layout!(UidSketch, size 16 + SKETCH_REGISTERS; first_ns @ 0, last_ns @ 8, registers @ 16);

/// `JUMP_RULE_TABLES` (hash by chunk index, written and read by the daemon only): each slot's
/// rule table (names and places, with the generation and policy hash) in up to
/// `RULE_TABLE_CHUNKS` chunks at keys `slot * RULE_TABLE_CHUNKS + i`, so a restarted daemon
/// names the rules of events decided while no daemon ran. bpffs holds no plain files; a pinned
/// map is what survives beside the pins.
pub const RULE_TABLE_CHUNK: usize = 4096;
/// At most 32 MiB per slot, allocated only as written (the map is not preallocated): 100,000
/// rules of about 100 bytes of name and place each take ~10 MB.
pub const RULE_TABLE_CHUNKS: u32 = 8192;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleTableChunk {
    pub bytes: [u8; RULE_TABLE_CHUNK],
}

layout!(RuleTableChunk, size RULE_TABLE_CHUNK; bytes @ 0);

//! Raw reads from the program contexts and the current task, and nothing else: each returns
//! plain values so the decision code above it stays safe.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task, bpf_get_current_task_btf},
    },
    programs::{SkBuffContext, SockAddrContext, SockContext},
    Global,
};
use jump_common::proto;

/// The destination of a `sock_addr` hook, normalised for lookup. `repr(C)`: the address
/// first, at the alignment of the struct holding it (see `Packet`).
#[repr(C)]
pub struct Dest {
    /// IPv4 as IPv4-mapped IPv6, network byte order.
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub proto: u8,
    pub family: u16,
}

// Kernel ABI numbers the contexts carry: address families (include/linux/socket.h), socket
// types (include/linux/net.h) and protocols as the socket hooks give them, 32 bits wide
// (include/uapi/linux/in.h; packet headers carry the one-byte forms in `jump_common::proto`).
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_RAW: u32 = 3;
/// `socket(…, 0)`: the socket type's default protocol (TCP for streams, UDP for datagrams).
pub const IPPROTO_DEFAULT: u32 = 0;
pub const IPPROTO_ICMP: u32 = proto::ICMP as u32;
pub const IPPROTO_TCP: u32 = proto::TCP as u32;
pub const IPPROTO_UDP: u32 = proto::UDP as u32;
pub const IPPROTO_ICMPV6: u32 = proto::ICMPV6 as u32;
/// The protocol of what is not a TCP, UDP or ICMP header, or does not fit a byte: 255, which
/// IANA reserves and no grant names, so it fails closed.
pub const PROTO_NONE: u8 = u8::MAX;

/// The IPv4-mapped form of an IPv4 address given in network byte order as the kernel stores it.
fn mapped_v4(ip4_be: u32) -> [u8; 16] {
    // Built as two words, not byte by byte: a byte array literal costs a `memset` call and
    // sixteen single-byte stores on the connect path.
    from_halves(0, u64::from(ip4_be) << 32 | 0xffff_0000)
}

/// 16 address bytes from the two halves as they lie in memory (native byte order).
#[inline(always)]
fn from_halves(lo: u64, hi: u64) -> [u8; 16] {
    let (l, h) = (lo.to_ne_bytes(), hi.to_ne_bytes());
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&l);
    a[8..].copy_from_slice(&h);
    a
}

/// 16 zero bytes, stored as two words. LLVM merges stores of constant zeros into a `memset`,
/// which the BPF backend calls out of line (a byte loop): the zero is read through a volatile
/// load so LLVM cannot see it (the verifier still does).
#[inline(always)]
fn zero_addr() -> [u8; 16] {
    // SAFETY: a read through a reference to a constant: valid and aligned.
    let z = unsafe { core::ptr::read_volatile(&0u64) };
    from_halves(z, z)
}

/// The two halves of an address, as `from_halves` takes them.
#[inline(always)]
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let mut l = [0u8; 8];
    let mut h = [0u8; 8];
    l.copy_from_slice(&a[..8]);
    h.copy_from_slice(&a[8..]);
    (u64::from_ne_bytes(l), u64::from_ne_bytes(h))
}

fn proto_of(protocol: u32) -> u8 {
    // Policy `icmp` covers both ICMP and ICMPv6 echo; one protocol number keeps one entry.
    if protocol == IPPROTO_ICMPV6 {
        jump_common::proto::ICMP
    } else {
        protocol as u8
    }
}

fn port_of(user_port: u32) -> u16 {
    // `user_port` holds the port in network byte order in its low 16 bits.
    u16::from_be(user_port as u16)
}

pub fn dest4(ctx: &SockAddrContext) -> Dest {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the context pointer the kernel handed this program; the verifier checks
    // each field access against `struct bpf_sock_addr`.
    let (ip4, port, protocol) = unsafe { ((*sa).user_ip4, (*sa).user_port, (*sa).protocol) };
    Dest {
        addr: mapped_v4(ip4),
        port: port_of(port),
        proto: proto_of(protocol),
        family: AF_INET,
    }
}

pub fn dest6(ctx: &SockAddrContext) -> Dest {
    let sa = ctx.sock_addr;
    // The verifier only allows `user_ip6` to be read one u32 at a time ("invalid bpf_context
    // access" for a wider load), so each word is its own read.
    // SAFETY: as in `dest4`.
    let w = unsafe {
        [
            (*sa).user_ip6[0],
            (*sa).user_ip6[1],
            (*sa).user_ip6[2],
            (*sa).user_ip6[3],
        ]
    };
    // SAFETY: as in `dest4`.
    let (port, protocol) = unsafe { ((*sa).user_port, (*sa).protocol) };
    // The words are in memory order already: two halves, no per-byte shuffling.
    let addr = from_halves(
        u64::from(w[0]) | u64::from(w[1]) << 32,
        u64::from(w[2]) | u64::from(w[3]) << 32,
    );
    Dest {
        addr,
        port: port_of(port),
        proto: proto_of(protocol),
        family: AF_INET6,
    }
}

/// Connecting to `0.0.0.0` or `::` reaches this host, as 127.0.0.1 or ::1 would (Linux
/// rewrites the address): decide it as loopback.
pub fn unspecified_as_loopback(mut d: Dest) -> Dest {
    // On the halves: the IPv4-mapped prefix (bytes 10 and 11 are 0xff) does not count.
    const MAPPED: u64 = 0xffff_0000;
    let (lo, hi) = halves(&d.addr);
    if lo == 0 && (hi == 0 || hi == MAPPED) {
        let loopback = if hi == 0 {
            1 << 56
        } else {
            MAPPED | 127 << 32 | 1 << 56
        };
        d.addr = from_halves(0, loopback);
    }
    d
}

/// The local address of a `bind` call, in the same form as a destination.
pub fn bind4(ctx: &SockAddrContext) -> Dest {
    dest4(ctx)
}

pub fn bind6(ctx: &SockAddrContext) -> Dest {
    dest6(ctx)
}

/// Byte offsets of `task_struct` members in the running kernel, set by the daemon from the
/// kernel's BTF before load (`datapath::btf`); 0 = unknown. Constants to the verifier (the
/// loader freezes `.rodata`), so the reads below are plain loads through the BTF-typed task
/// pointer, checked at load: `bpf_get_current_comm` took ~70 ns per connect, two such loads
/// ~0 (measured side by side in the bench's reference object).
#[unsafe(no_mangle)]
static LOGINUID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static SESSIONID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static COMM_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static TGID_OFFSET: Global<u32> = Global::new(0);
/// `task_struct.group_leader` and `task_struct.start_boottime` (u64 ns since boot, suspend
/// included: what `/proc/PID/stat` reports in clock ticks): both or none.
#[unsafe(no_mangle)]
static GROUP_LEADER_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static START_BOOTTIME_OFFSET: Global<u32> = Global::new(0);
/// `task_struct.cred`, and `cred.uid` and `cred.gid` in it: all three or none.
#[unsafe(no_mangle)]
static CRED_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CRED_UID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CRED_GID_OFFSET: Global<u32> = Global::new(0);
/// `struct sock.sk_uid`: who owns a socket, as the initial user namespace sees it (0 = unknown).
#[unsafe(no_mangle)]
static SOCK_UID_OFFSET: Global<u32> = Global::new(0);

/// The current task, as the BTF-typed pointer the verifier checks loads through; null when
/// jumpd found none of the offsets read through it (the readers then use helpers, and the
/// helper call here is dead code the verifier drops: the offsets are constants).
#[derive(Clone, Copy)]
pub struct Task(*const u8);

impl Task {
    #[inline(always)]
    pub fn current() -> Self {
        if CRED_OFFSET.load() == 0 && TGID_OFFSET.load() == 0 && LOGINUID_OFFSET.load() == 0 {
            return Self(core::ptr::null());
        }
        // SAFETY: a helper call without arguments; the pointer is only read through below.
        Self(unsafe { bpf_get_current_task_btf() as *const u8 })
    }

    /// The task's real uid and gid as `bpf_get_current_uid_gid` returns them (gid << 32 |
    /// uid), read from its `cred`: the kernel's ids are those of the initial user namespace,
    /// to which the helper maps them (an identity), so two loads give the same answer without
    /// the helper call and its two id-map walks (~15 % of an allowed connect4 in `perf`).
    #[inline(always)]
    pub fn uid_gid(self) -> u64 {
        let (c, u, g) = (
            CRED_OFFSET.load(),
            CRED_UID_OFFSET.load(),
            CRED_GID_OFFSET.load(),
        );
        if c == 0 || u == 0 || g == 0 {
            return bpf_get_current_uid_gid();
        }
        // SAFETY: the offsets are members' offsets from the kernel's BTF (`const struct cred
        // *cred` in the task, `kuid_t uid` and `kgid_t gid` in the cred); the verifier types
        // the first load as a pointer to `struct cred` and checks each load against that BTF.
        // The current task's `cred` is never null and does not change under it.
        let (uid, gid) = unsafe {
            let cred =
                core::ptr::read_volatile(self.0.wrapping_add(c as usize).cast::<*const u8>());
            (
                core::ptr::read_volatile(cred.wrapping_add(u as usize).cast::<u32>()),
                core::ptr::read_volatile(cred.wrapping_add(g as usize).cast::<u32>()),
            )
        };
        u64::from(gid) << 32 | u64::from(uid)
    }

    /// The audit login uid and session, as `audit_ids` gives them, by two loads instead of
    /// two `probe_read`s and a helper call for the task: for an event about the current task.
    #[inline(always)]
    pub fn audit_ids(self) -> (u32, u32) {
        let (lo, so) = (LOGINUID_OFFSET.load(), SESSIONID_OFFSET.load());
        if lo == 0 || so == 0 {
            return (u32::MAX, u32::MAX);
        }
        // SAFETY: members' offsets from the kernel's BTF (`kuid_t loginuid`, `unsigned int
        // sessionid`), checked by the verifier against that BTF like the loads below.
        unsafe {
            (
                core::ptr::read_volatile(self.0.wrapping_add(lo as usize).cast::<u32>()),
                core::ptr::read_volatile(self.0.wrapping_add(so as usize).cast::<u32>()),
            )
        }
    }

    /// When the task's process (its thread-group leader) started, in `/proc/PID/stat`'s clock
    /// ticks (10 ms: `USER_HZ` is 100), modulo 2^32 (16 months); 0 if unknown.
    #[inline(always)]
    pub fn start_ticks(self) -> u32 {
        let (leader, start) = (GROUP_LEADER_OFFSET.load(), START_BOOTTIME_OFFSET.load());
        if leader == 0 || start == 0 {
            return 0;
        }
        // SAFETY: members' offsets from the kernel's BTF (`struct task_struct *group_leader`,
        // `u64 start_boottime`); the verifier types the first load as a task pointer and checks
        // the second against that BTF, as for `cred` above. A task's leader is never null.
        let ns = unsafe {
            let l =
                core::ptr::read_volatile(self.0.wrapping_add(leader as usize).cast::<*const u8>());
            core::ptr::read_volatile(l.wrapping_add(start as usize).cast::<u64>())
        };
        (ns / 10_000_000) as u32
    }

    /// The task's thread-group id (what userspace calls its pid) and command name, NUL-padded
    /// (the kernel pads `comm` when it sets it).
    #[inline(always)]
    pub fn tgid_comm(self) -> (u32, [u8; 16]) {
        let (tgid_off, comm_off) = (TGID_OFFSET.load(), COMM_OFFSET.load());
        if tgid_off == 0 || comm_off == 0 {
            // jumpd sets both from the kernel's BTF; without them, the helpers.
            let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            return (tgid, bpf_get_current_comm().unwrap_or([0; 16]));
        }
        let task = self.0;
        let c = task.wrapping_add(comm_off as usize).cast::<u64>();
        // SAFETY: the offsets are members' offsets from the kernel's BTF (`pid_t tgid`, the two
        // halves of `char comm[16]`); the verifier checks each load against that BTF and
        // refuses the program if it is not inside a member of that size.
        let (tgid, a, b) = unsafe {
            (
                core::ptr::read_volatile(task.wrapping_add(tgid_off as usize).cast::<u32>()),
                core::ptr::read_volatile(c),
                core::ptr::read_volatile(c.wrapping_add(1)),
            )
        };
        let mut comm = [0; 16];
        comm[..8].copy_from_slice(&a.to_ne_bytes());
        comm[8..].copy_from_slice(&b.to_ne_bytes());
        (tgid, comm)
    }
}

/// The audit login uid and session of the current task: the person behind `sudo`/`su`. Two
/// `probe_read`s: called only where an event is built, or where a decision needs the person.
/// (Not loads through the task pointer as in `tgid_comm`: inlined into the time-window loop,
/// those made egress too complex for the verifier.)
pub fn audit_ids() -> (u32, u32) {
    let (lo, so) = (LOGINUID_OFFSET.load(), SESSIONID_OFFSET.load());
    if lo == 0 || so == 0 {
        return (u32::MAX, u32::MAX);
    }
    // SAFETY: a helper call; the pointer is only ever passed to bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: bpf_probe_read_kernel checks the address; a fault yields an error, not a crash.
    let login = unsafe { bpf_probe_read_kernel(task.wrapping_add(lo as usize) as *const u32) };
    // SAFETY: as above.
    let session = unsafe { bpf_probe_read_kernel(task.wrapping_add(so as usize) as *const u32) };
    (login.unwrap_or(u32::MAX), session.unwrap_or(u32::MAX))
}

/// What `sock_create` sees of a new socket.
pub struct NewSocket {
    pub family: u32,
    pub kind: u32,
    pub protocol: u32,
}

pub fn new_socket(ctx: &SockContext) -> NewSocket {
    let sk = ctx.sock;
    // SAFETY: the context pointer of this program; the verifier checks each field access.
    let (family, kind, protocol) = unsafe { ((*sk).family, (*sk).type_, (*sk).protocol) };
    NewSocket {
        family,
        kind,
        protocol,
    }
}

/// An outgoing IP packet as the egress hook reads it (`skb` data starts at the IP header).
///
/// Laid out so both addresses start 8-aligned: zeroing one (`zero_addr`) is two stores.
#[repr(C, align(8))]
pub struct Packet {
    /// Source address, IPv4 as IPv4-mapped IPv6.
    pub src: [u8; 16],
    pub dst: Dest,
    /// 0 with `dst.port` when unknown: a non-first IPv4 fragment or a TCP/UDP header cut
    /// short is decided on port 0, which only an all-ports grant covers.
    pub src_port: u16,
    /// The IPv4 header carries a loose or strict source route option, or an IPv6 routing
    /// header follows the IPv6 header (after hop-by-hop or destination options, if any).
    pub source_route: bool,
    /// The device the packet leaves on (`skb->dev`).
    pub ifindex: u32,
}

const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
const IPOPT_SSRR: u8 = 137;

/// Whether the IPv4 options between byte 20 and `ihl` hold LSRR or SSRR. An option list the
/// walk cannot finish (a bad length) counts as routed: the kernel would not build one.
#[inline(never)]
fn source_routed(skb: &SkBuffContext, ihl: usize) -> bool {
    let mut off = 20usize;
    // Every step costs verifier time on each load: a list that does not end within 12 options
    // (no stack builds one) counts as routed, so it fails closed.
    for _ in 0..12 {
        if off >= ihl {
            return false;
        }
        let Ok(kind) = skb.load::<u8>(off) else {
            return true;
        };
        match kind {
            IPOPT_END => return false,
            IPOPT_NOOP => off += 1,
            IPOPT_LSRR | IPOPT_SSRR => return true,
            _ => {
                let Ok(len) = skb.load::<u8>(off + 1) else {
                    return true;
                };
                if len < 2 {
                    return true;
                }
                off += usize::from(len);
            }
        }
    }
    off < ihl
}

/// IPv6 next-header values (RFC 8200) of the headers that may come before a routing header.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DSTOPTS: u8 = 60;

/// Whether an IPv6 packet whose first next header is `next` carries a routing header before
/// its first header that is neither hop-by-hop nor destination options. Its destination is
/// then only the next segment: the connect or send was decided on the final one. A chain the
/// walk cannot finish counts as routed.
#[inline(never)]
fn ipv6_routed(skb: &SkBuffContext, next: u8) -> bool {
    let mut next = next;
    let mut off = 40usize;
    // Options headers are privileged and the kernel puts at most two before a routing header.
    for _ in 0..3 {
        match next {
            IPV6_ROUTING => return true,
            IPV6_HOPOPTS | IPV6_DSTOPTS => {
                let (Ok(n), Ok(len)) = (skb.load::<u8>(off), skb.load::<u8>(off + 1)) else {
                    return true;
                };
                next = n;
                off += (usize::from(len) + 1) * 8;
            }
            _ => return false,
        }
    }
    matches!(next, IPV6_ROUTING | IPV6_HOPOPTS | IPV6_DSTOPTS)
}

/// The packet as far as its headers can be read. Data that is not an IPv4 or IPv6 header at
/// all reads as protocol 255 (which no grant names) to address 0.
pub fn packet(skb: &SkBuffContext) -> Packet {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let ifindex = unsafe { (*skb.skb.skb).ifindex };
    let mut p = Packet {
        dst: Dest {
            addr: zero_addr(),
            port: 0,
            proto: PROTO_NONE,
            family: 0,
        },
        src: zero_addr(),
        src_port: 0,
        source_route: false,
        ifindex,
    };
    headers(skb, &mut p);
    p
}

/// Fills `p` from the headers, field by field in place: built as a returned value, its
/// temporaries took 472 bytes of stack. Not inlined, so its reads do not share egress's frame.
#[inline(never)]
fn headers(skb: &SkBuffContext, p: &mut Packet) {
    if headers_in_place(skb, p) {
        return;
    }
    let Ok(first) = skb.load::<u8>(0) else { return };
    let (proto, l4, fragment) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let Ok(frag) = skb.load::<u16>(6) else { return };
            let Ok(proto) = skb.load::<u8>(9) else { return };
            let Ok(s) = skb.load::<[u8; 4]>(12) else {
                return;
            };
            let Ok(d) = skb.load::<[u8; 4]>(16) else {
                return;
            };
            p.src[10] = 0xff;
            p.src[11] = 0xff;
            p.src[12..].copy_from_slice(&s);
            p.dst.addr[10] = 0xff;
            p.dst.addr[11] = 0xff;
            p.dst.addr[12..].copy_from_slice(&d);
            p.dst.family = AF_INET;
            p.source_route = ihl > 20 && source_routed(skb, ihl);
            (proto, ihl, u16::from_be(frag) & 0x1fff != 0)
        }
        6 => {
            // Extension headers are not walked for the decision: a packet whose next header is
            // not TCP, UDP or ICMPv6 is decided under that protocol number, which no grant
            // names, so it fails closed. A routing header among them is a source route.
            let Ok(proto) = skb.load::<u8>(6) else { return };
            let Ok(s) = skb.load::<[u8; 16]>(8) else {
                return;
            };
            p.src = s;
            let Ok(d) = skb.load::<[u8; 16]>(24) else {
                return;
            };
            p.dst.addr = d;
            p.dst.family = AF_INET6;
            p.source_route = matches!(proto, IPV6_ROUTING | IPV6_HOPOPTS | IPV6_DSTOPTS)
                && ipv6_routed(skb, proto);
            (proto, 40, false)
        }
        _ => return,
    };
    p.dst.proto = proto_of(u32::from(proto));
    if !fragment && (proto == jump_common::proto::TCP || proto == jump_common::proto::UDP) {
        if let (Ok(s), Ok(d)) = (skb.load::<u16>(l4), skb.load::<u16>(l4 + 2)) {
            p.src_port = u16::from_be(s);
            p.dst.port = u16::from_be(d);
        }
    }
}

/// The usual shapes, read where they lie (direct packet access: one bounds check, no helper
/// call per field): an IPv4 header without options or an IPv6 header, and the four bytes after
/// it. `false` leaves `p` as it was, for the `load`s of `headers` (options, a short or
/// non-linear packet), which read the same fields with the same meaning.
#[inline(always)]
fn headers_in_place(skb: &SkBuffContext, p: &mut Packet) -> bool {
    // SAFETY: context field reads; the verifier types them as packet pointers.
    let (start, end) = unsafe {
        (
            (*skb.skb.skb).data as usize,
            (*skb.skb.skb).data_end as usize,
        )
    };
    // The shorter of the two shapes; an IPv6 header is checked for its own length below.
    if start + 24 > end {
        return false;
    }
    // SAFETY: within [data, data_end), checked just above.
    let first = unsafe { *(start as *const u8) };
    let (proto, l4, fragment) = if first == IPV4_NO_OPTIONS {
        // SAFETY: bytes 0..24 are within [data, data_end), checked above.
        let at = |i: usize| unsafe { *((start + i) as *const u8) };
        for i in 0..4 {
            p.src[12 + i] = at(12 + i);
            p.dst.addr[12 + i] = at(16 + i);
        }
        p.src[10] = 0xff;
        p.src[11] = 0xff;
        p.dst.addr[10] = 0xff;
        p.dst.addr[11] = 0xff;
        p.dst.family = AF_INET;
        let fragment = u16::from_be_bytes([at(6), at(7)]) & 0x1fff != 0;
        (at(9), 20, fragment)
    } else if first >> 4 == IPV6_VERSION {
        if start + 44 > end {
            return false;
        }
        // SAFETY: bytes 0..44 are within [data, data_end), checked just above.
        let at = |i: usize| unsafe { *((start + i) as *const u8) };
        // Extension headers that may precede a routing header: read by `headers`.
        if matches!(at(6), IPV6_ROUTING | IPV6_HOPOPTS | IPV6_DSTOPTS) {
            return false;
        }
        for i in 0..16 {
            p.src[i] = at(8 + i);
            p.dst.addr[i] = at(24 + i);
        }
        p.dst.family = AF_INET6;
        (at(6), 40, false)
    } else {
        return false;
    };
    p.dst.proto = proto_of(u32::from(proto));
    if !fragment && (proto == jump_common::proto::TCP || proto == jump_common::proto::UDP) {
        // SAFETY: `l4 + 4` is 24 or 44, within [data, data_end) as checked above.
        let at = |i: usize| unsafe { *((start + l4 + i) as *const u8) };
        p.src_port = u16::from_be_bytes([at(0), at(1)]);
        p.dst.port = u16::from_be_bytes([at(2), at(3)]);
    }
    true
}

/// The device an egress packet leaves on (`skb->dev`), from the context alone.
#[inline(always)]
pub fn ifindex(skb: &SkBuffContext) -> u32 {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    unsafe { (*skb.skb.skb).ifindex }
}

const IPV4_NO_OPTIONS: u8 = 0x45;
const IPV6_VERSION: u8 = 6;

/// Whether the packet starts with an IPv4 header without options, or an IPv6 header followed
/// directly by TCP: the only shapes the egress fast path passes unread. Anything else (a source
/// route set while no `setsockopt` program judged the socket, an extension header) goes the
/// slow path, which reads the packet. Direct packet access: a bounds check and two loads, no
/// helper call.
#[inline(always)]
pub fn plain_tcp_header(skb: &SkBuffContext) -> bool {
    // SAFETY: context field reads; the verifier types them as packet pointers.
    let (start, end) = unsafe {
        (
            (*skb.skb.skb).data as usize,
            (*skb.skb.skb).data_end as usize,
        )
    };
    if start + 8 > end {
        return false;
    }
    // SAFETY: within [data, data_end), checked just above.
    let (first, next) = unsafe { (*(start as *const u8), *((start + 6) as *const u8)) };
    first == IPV4_NO_OPTIONS || (first >> 4 == IPV6_VERSION && next == proto::TCP)
}

/// What the listen shortcut needs of an egress packet's socket: `ANY_PORT` for a listener's
/// SYN-ACK (sent from a `TCP_NEW_SYN_RECV` request socket), the local port of a full TCP stream
/// socket, else 0 (no socket, raw and UDP sockets, time-wait).
pub const ANY_PORT: u32 = u32::MAX;

const TCP_NEW_SYN_RECV: u32 = 12;
const TCP_LISTEN: u32 = 10;

/// Whether the egress packet's socket is a listener: the kernel runs egress programs on a
/// full socket, so a SYN-ACK shows its listener rather than the request socket.
#[inline(always)]
pub fn from_listener(skb: &SkBuffContext) -> bool {
    // SAFETY: the context pointer of this program; `sk` is checked for null before use, and
    // `state` is a `sock_common` field, readable on every socket kind.
    unsafe {
        let sk = (*skb.skb.skb).__bindgen_anon_2.sk;
        !sk.is_null() && (*sk).state == TCP_LISTEN
    }
}

// A plain integer result: returning a struct from a non-inlined function left r0 unset on one
// path ("R0 !read_ok").
#[inline(never)]
pub fn tcp_socket_port(skb: &SkBuffContext) -> u32 {
    // SAFETY: the context pointer of this program; `sk` is checked for null before use.
    let sk = unsafe { (*skb.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return 0;
    }
    // SAFETY: `state` is a `sock_common` field, readable on every socket kind.
    let state = unsafe { (*sk).state };
    if state == TCP_NEW_SYN_RECV {
        return ANY_PORT;
    }
    // SAFETY: a helper call on the non-null socket pointer the verifier tracks.
    let full = unsafe { aya_ebpf::helpers::generated::bpf_sk_fullsock(sk) };
    if full.is_null() {
        return 0;
    }
    // SAFETY: full-socket fields of the pointer `bpf_sk_fullsock` returned non-null.
    let (kind, protocol, port) = unsafe { ((*full).type_, (*full).protocol, (*full).src_port) };
    if kind == SOCK_STREAM && protocol == IPPROTO_TCP {
        port
    } else {
        0
    }
}

/// The uid owning the packet's TCP socket (a SYN-ACK's: its listener's), as the initial user
/// namespace sees it: `sk_uid`, read through the BTF-typed socket. `bpf_get_socket_uid` maps it
/// into the user namespace owning the socket's network namespace, and a user who made both
/// chooses that mapping: any uid, root's or another user's, for their own listener. Other
/// sockets (and kernels without the offset) get the helper's answer. Not inlined: the compiler
/// would merge its load through the socket with the caller's load of a map value, and the
/// verifier refuses one instruction that reads through two kinds of pointer.
#[inline(never)]
pub fn socket_uid(skb: &SkBuffContext) -> u32 {
    let off = SOCK_UID_OFFSET.load();
    // SAFETY: the context pointer of this program; `sk` is checked for null before use.
    let sk = unsafe { (*skb.skb.skb).__bindgen_anon_2.sk };
    if off == 0 || sk.is_null() {
        return skb.get_socket_uid();
    }
    // SAFETY: `state` is a `sock_common` field, readable on every socket kind; the helpers take
    // the non-null socket pointer the verifier tracks (a request socket's listener, which needs
    // no release, or the full socket itself).
    let tcp = unsafe {
        let full = if (*sk).state == TCP_NEW_SYN_RECV {
            aya_ebpf::helpers::generated::bpf_get_listener_sock(sk)
        } else {
            sk
        };
        if full.is_null() {
            return skb.get_socket_uid();
        }
        aya_ebpf::helpers::generated::bpf_skc_to_tcp_sock(full.cast()) as *const u8
    };
    if tcp.is_null() {
        return skb.get_socket_uid();
    }
    // SAFETY: the member's offset from the kernel's BTF (`kuid_t sk_uid` of the `struct sock`
    // that starts every `tcp_sock`); the verifier checks the load against that BTF.
    unsafe { core::ptr::read_volatile(tcp.wrapping_add(off as usize).cast::<u32>()) }
}

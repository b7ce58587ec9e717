//! The path an egress packet takes, checked apart from its destination (issue 11): a decision
//! on the destination holds only if the packet really goes where that address means what the
//! policy says, and comes from this host.
//!
//! Checks, in the order `refusal` makes them:
//! 1. A loopback destination (127/8, ::1, IPv4-mapped 127/8) leaves only on the loopback
//!    device. `SO_BINDTODEVICE`, `IP_UNICAST_IF` or an `IP_PKTINFO` ifindex otherwise send it
//!    out of an uplink, where whoever answers ARP/ND for 127.0.0.1 gets it.
//! 2. No source route (IPv4 LSRR/SSRR, an IPv6 routing header): the header's destination is
//!    only the next hop. `setsockopt` refuses setting one, but 32-bit callers' `setsockopt`
//!    runs no cgroup program, and a routed packet of a connected socket would otherwise pass on
//!    its record.
//! 3. A loopback source leaves only on the loopback device.
//! 4. In jumpd's network namespace, the source is one of the host's addresses
//!    (`JUMP_LOCAL_ADDRS`, kept by jumpd from rtnetlink): freebind, transparent and raw
//!    sockets cannot speak from a spoofed address.
//!
//! After the destination decision, `via_holds`: a decision by a rule with `via` holds only
//! on the interfaces it names (`JUMP_VIAS`).

use aya_ebpf::{helpers::generated::bpf_get_netns_cookie, programs::SkBuffContext};
use jump_common::hook;

use jump_common::{ViaKey, MAX_VIA_INTERFACES};

use crate::{
    ctx::Packet,
    maps::{JUMP_HOST_NETNS, JUMP_LOCAL_ADDRS, JUMP_VIAS},
};

/// `LOOPBACK_IFINDEX` (include/net/net_namespace.h): `lo` is ifindex 1 in every namespace.
const LOOPBACK_IFINDEX: u32 = 1;

fn is_loopback(a: &[u8; 16]) -> bool {
    let mut head_zero = true;
    let mut i = 0;
    while i < 10 {
        head_zero &= a[i] == 0;
        i += 1;
    }
    let v4 = head_zero && a[10] == 0xff && a[11] == 0xff && a[12] == 127;
    let v6 = head_zero
        && a[10] == 0
        && a[11] == 0
        && a[12] == 0
        && a[13] == 0
        && a[14] == 0
        && a[15] == 1;
    v4 || v6
}

/// The hook code (`jump_common::hook::EGRESS_*`) naming why the packet must not leave, or
/// `None` when its path is sound. Not inlined: egress's own frame is nearly full.
#[inline(never)]
pub fn refusal(ctx: &SkBuffContext, p: &Packet) -> Option<u8> {
    let on_lo = p.ifindex == LOOPBACK_IFINDEX;
    // (1)
    if !on_lo && is_loopback(&p.dst.addr) {
        return Some(hook::EGRESS_LOOPBACK);
    }
    // (2)
    if p.source_route {
        return Some(hook::EGRESS_SOURCE_ROUTE);
    }
    // (3)
    if is_loopback(&p.src) {
        return (!on_lo).then_some(hook::EGRESS_SOURCE);
    }
    // (4)
    if !source_is_local(ctx, &p.src) {
        return Some(hook::EGRESS_SOURCE);
    }
    None
}

fn source_is_local(ctx: &SkBuffContext, src: &[u8; 16]) -> bool {
    let host = JUMP_HOST_NETNS.get(0).copied().unwrap_or(0);
    // jumpd measures its namespace before it attaches; an unmeasured one has no address list.
    if host == 0 {
        return true;
    }
    // SAFETY: a helper call on this program's own context.
    let netns = unsafe { bpf_get_netns_cookie(ctx.skb.skb.cast()) };
    // Another namespace's addresses are not known here (see docs/enforcement.md).
    if netns != host {
        return true;
    }
    // SAFETY: only the presence of the key is used.
    unsafe { JUMP_LOCAL_ADDRS.get(src) }.is_some()
}

/// Whether a decision by `rule_id` in `slot` holds on interface `ifindex`: always, unless the
/// rule has `via` and does not name the interface. Scalars in, scalar out: a non-inlined
/// function's struct arguments left registers unset on some paths for the verifier.
#[inline(never)]
pub fn via_holds(slot: u32, rule_id: u32, ifindex: u32) -> bool {
    let Some(set) = JUMP_VIAS.get_ptr(ViaKey { slot, rule_id }) else {
        return true;
    };
    // SAFETY: a pointer into this map's value, read at once.
    let set = unsafe { *set };
    for i in 0..MAX_VIA_INTERFACES {
        if i as u32 >= set.len {
            break;
        }
        if set.ifindex[i] == ifindex {
            return true;
        }
    }
    false
}

/// `netns_probe`'s work: records the namespace it runs in. jumpd runs the program once with
/// `BPF_PROG_TEST_RUN`, whose packet belongs to the caller's namespace.
pub fn measure_netns(ctx: &SkBuffContext) {
    // SAFETY: a helper call on this program's own context.
    let netns = unsafe { bpf_get_netns_cookie(ctx.skb.skb.cast()) };
    if let Some(p) = JUMP_HOST_NETNS.get_ptr_mut(0) {
        // SAFETY: a pointer into this array's only element.
        unsafe { *p = netns };
    }
}

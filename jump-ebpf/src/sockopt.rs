//! `setsockopt` judged before the kernel applies it (issue 11): the options that let a user
//! choose the egress interface, speak from a source address that is not the host's, join a
//! multicast group (the kernel then sends IGMP/MLD reports carrying the group, which no other
//! hook sees) or source-route. Everything else passes untouched.
//!
//! Decisions, by the option's class:
//! 1. Interface (`SO_BINDTODEVICE`, `SO_BINDTOIFINDEX`, `IP_UNICAST_IF`, `IPV6_UNICAST_IF`,
//!    `IP_MULTICAST_IF`, `IPV6_MULTICAST_IF`): unbinding (empty name, index 0, any address)
//!    and choosing the loopback device pass; any other interface is refused.
//! 2. Source (`IP_FREEBIND`, `IP_TRANSPARENT`, `IPV6_FREEBIND`, `IPV6_TRANSPARENT`):
//!    switching them off passes, on is refused.
//! 3. Source route (`IP_OPTIONS`, `IPV6_RTHDR`, `IPV6_2292RTHDR`): clearing passes, setting is
//!    refused.
//! 4. Multicast joins and source filters: decided as IGMP to the group (`proto::IGMP`), which
//!    a udp grant whose `to:` holds the group allows. An option whose group cannot be read is
//!    refused.
//!
//! A judged option whose value is longer than what the program was given (a page) is refused
//! whatever it holds: the kernel would then read the value from the caller again, after the
//! check, and another thread can change it in between.
//!
//! Refusals are `EPERM` with an event naming the option (level in `src_port`, name in
//! `dst_port`). Root is judged like everyone: there is no uid exception.
//!
//! 32-bit system calls (`int 0x80`, on kernels with ia32 emulation) run no cgroup `setsockopt`
//! program at all: egress still refuses the interfaces, sources and source routes they set
//! (`path`), but a multicast join is not seen (docs/enforcement.md, "32-bit callers").

use aya_ebpf::programs::SockoptContext;
use jump_common::{hook, proto, sockopt::*};

use crate::{
    ctx::{Dest, AF_INET, AF_INET6},
    lookup, PASS, REFUSE,
};

/// The option value: `optval` up to `optval_end`, at most one page of what the user passed.
struct Optval {
    start: usize,
    end: usize,
    len: i32,
}

impl Optval {
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        // The verifier accepts a read only after this comparison of the packet-like pointers.
        if self.start + off + core::mem::size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: within [optval, optval_end), checked just above.
        Some(unsafe { core::ptr::read_unaligned((self.start + off) as *const T) })
    }

    /// The first `int` (or, for shorter values, byte) is zero.
    fn is_off(&self) -> bool {
        if self.len <= 0 {
            return true;
        }
        if self.len >= 4 {
            return self.read::<u32>(0) == Some(0);
        }
        self.read::<u8>(0) == Some(0)
    }

    /// An interface index `int` that names no interface (0) or the loopback device (1).
    fn index_is_loopback_or_none(&self, be: bool) -> bool {
        match self.read::<u32>(0) {
            Some(i) => {
                let i = if be { u32::from_be(i) } else { i };
                i <= 1
            }
            None => self.len <= 0,
        }
    }

    /// `SO_BINDTODEVICE`: an empty name unbinds; `lo` is the loopback device.
    fn device_is_loopback_or_none(&self) -> bool {
        if self.len <= 0 {
            return true;
        }
        match self.read::<u8>(0) {
            Some(0) => return true,
            Some(b'l') => {}
            _ => return false,
        }
        if self.read::<u8>(1) != Some(b'o') {
            return false;
        }
        self.len == 2 || self.read::<u8>(2) == Some(0)
    }

    /// `IP_MULTICAST_IF`: an `in_addr` (interface address at 0), `ip_mreq` (at 4) or
    /// `ip_mreqn` (address at 4, index at 8) that chooses no interface.
    fn multicast_if_is_none(&self) -> bool {
        if self.len < 4 {
            return true;
        }
        if self.len < 8 {
            return self.read::<u32>(0) == Some(0);
        }
        if self.read::<u32>(4) != Some(0) {
            return false;
        }
        self.len < 12 || self.read::<u32>(8) == Some(0)
    }

    /// The group of an option whose value starts with it (`ip_mreq`, `ip_mreqn`,
    /// `ip_mreq_source`, `ip_msfilter`: an IPv4 group; `ipv6_mreq`: an IPv6 one).
    fn group_at_start(&self, v6: bool) -> Option<[u8; 16]> {
        if v6 {
            self.read::<[u8; 16]>(0)
        } else {
            let g = self.read::<[u8; 4]>(0)?;
            Some(mapped(g))
        }
    }

    /// The group of a `group_req`, `group_source_req` or `group_filter`: a `sockaddr_storage`
    /// at offset 8 (after `u32` interface and padding on 64-bit). A 32-bit caller's layout has
    /// it at 4; read at 8 its family bytes are the group's first two bytes, which for a
    /// multicast group (224/4, ff00::/8) are never `AF_INET`/`AF_INET6`, so it is refused.
    fn group_sockaddr(&self) -> Option<[u8; 16]> {
        match self.read::<u16>(8)? {
            AF_INET => Some(mapped(self.read::<[u8; 4]>(12)?)),
            AF_INET6 => self.read::<[u8; 16]>(16),
            _ => None,
        }
    }
}

fn mapped(g: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, g[0], g[1], g[2], g[3],
    ]
}

enum Class {
    Interface,
    Source,
    SourceRoute,
    Join(Option<[u8; 16]>),
}

pub fn judge(ctx: &SockoptContext) -> i32 {
    let so = ctx.sockopt;
    // SAFETY: the context pointer the kernel handed this program; the verifier checks each
    // field access against `struct bpf_sockopt`.
    let (level, name, len, start, end) = unsafe {
        (
            (*so).level,
            (*so).optname,
            (*so).optlen,
            (*so).__bindgen_anon_2.optval as usize,
            (*so).__bindgen_anon_3.optval_end as usize,
        )
    };
    let v = Optval { start, end, len };
    // The value as the kernel will apply it: all of it was given to this program.
    let whole = len <= 0 || len as usize <= end - start;
    let class = match (level, name) {
        // (1)
        (SOL_SOCKET, SO_BINDTODEVICE) if whole && v.device_is_loopback_or_none() => return PASS,
        (SOL_SOCKET, SO_BINDTOIFINDEX) | (SOL_IPV6, IPV6_UNICAST_IF | IPV6_MULTICAST_IF)
            if whole && v.index_is_loopback_or_none(false) =>
        {
            return PASS
        }
        // The kernel reads IP_UNICAST_IF's index in network byte order.
        (SOL_IP, IP_UNICAST_IF) if whole && v.index_is_loopback_or_none(true) => return PASS,
        (SOL_IP, IP_MULTICAST_IF) if whole && v.multicast_if_is_none() => return PASS,
        (SOL_SOCKET, SO_BINDTODEVICE | SO_BINDTOIFINDEX)
        | (SOL_IP, IP_UNICAST_IF | IP_MULTICAST_IF)
        | (SOL_IPV6, IPV6_UNICAST_IF | IPV6_MULTICAST_IF) => Class::Interface,
        // (2)
        (SOL_IP, IP_FREEBIND | IP_TRANSPARENT) | (SOL_IPV6, IPV6_FREEBIND | IPV6_TRANSPARENT) => {
            if whole && v.is_off() {
                return PASS;
            }
            Class::Source
        }
        // (3)
        (SOL_IP, IP_OPTIONS) | (SOL_IPV6, IPV6_RTHDR | IPV6_2292RTHDR) => {
            if len <= 0 {
                return PASS;
            }
            Class::SourceRoute
        }
        // (4)
        (
            SOL_IP,
            IP_ADD_MEMBERSHIP
            | IP_ADD_SOURCE_MEMBERSHIP
            | IP_BLOCK_SOURCE
            | IP_UNBLOCK_SOURCE
            | IP_MSFILTER,
        ) => Class::Join(v.group_at_start(false)),
        (SOL_IPV6, IPV6_ADD_MEMBERSHIP | IPV6_JOIN_ANYCAST) => Class::Join(v.group_at_start(true)),
        (
            SOL_IP | SOL_IPV6,
            MCAST_JOIN_GROUP
            | MCAST_JOIN_SOURCE_GROUP
            | MCAST_BLOCK_SOURCE
            | MCAST_UNBLOCK_SOURCE
            | MCAST_MSFILTER,
        ) => Class::Join(v.group_sockaddr()),
        _ => return PASS,
    };
    // A group the program saw only part of is no group: refused (see the module doc).
    let class = match class {
        Class::Join(_) if !whole => Class::Join(None),
        c => c,
    };
    let who = crate::current();
    let g = match class {
        Class::Join(Some(g)) => g,
        _ => [0; 16],
    };
    let family = if level == SOL_IPV6 { AF_INET6 } else { AF_INET };
    let (hook, d) = match class {
        Class::Join(group) => {
            let d = match group {
                Some(addr) => {
                    let family = if addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                        AF_INET
                    } else {
                        AF_INET6
                    };
                    lookup::decide(
                        who.uid,
                        &Dest {
                            addr,
                            port: 0,
                            proto: proto::IGMP,
                            family,
                        },
                    )
                }
                None => lookup::flags(who.uid).1,
            };
            (hook::SOCKOPT_MULTICAST, d)
        }
        Class::Interface => (hook::SOCKOPT_INTERFACE, lookup::flags(who.uid).1),
        Class::Source => (hook::SOCKOPT_SOURCE, lookup::flags(who.uid).1),
        Class::SourceRoute => (hook::SOCKOPT_SOURCE_ROUTE, lookup::flags(who.uid).1),
    };
    // The event names the option: its name where a destination port would be, its level
    // where a source port would be.
    let shown = Dest {
        addr: g,
        port: name as u16,
        proto: proto::IGMP,
        family,
    };
    crate::record(hook, &who, &shown, level as u16, &d);
    if d.action == jump_common::action::DENY {
        REFUSE
    } else {
        PASS
    }
}

//! Raw reads from the program contexts, and nothing else: each returns plain values so the
//! decision code above it stays safe.

use aya_ebpf::programs::{SkBuffContext, SockAddrContext, SockContext};

/// The destination of a `sock_addr` hook, normalised for lookup.
pub struct Dest {
    /// IPv4 as IPv4-mapped IPv6, network byte order.
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub proto: u8,
    pub family: u16,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_ICMPV6: u32 = 58;

/// The IPv4-mapped form of an IPv4 address given in network byte order as the kernel stores it.
fn mapped_v4(ip4_be: u32) -> [u8; 16] {
    let b = ip4_be.to_ne_bytes();
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3]]
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
    let mut addr = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = w[i].to_ne_bytes();
        addr[i * 4] = b[0];
        addr[i * 4 + 1] = b[1];
        addr[i * 4 + 2] = b[2];
        addr[i * 4 + 3] = b[3];
        i += 1;
    }
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
    let mut zero = true;
    for (i, b) in d.addr.iter().enumerate() {
        // The IPv4-mapped prefix (bytes 10 and 11 are 0xff) does not count.
        if *b != 0 && !((i == 10 || i == 11) && *b == 0xff) {
            zero = false;
        }
    }
    if zero {
        if d.addr[10] == 0xff {
            d.addr[12] = 127;
            d.addr[15] = 1;
        } else {
            d.addr[15] = 1;
        }
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
    NewSocket { family, kind, protocol }
}

/// An outgoing IP packet as the egress hook reads it (`skb` data starts at the IP header).
pub struct Packet {
    pub dst: Dest,
    pub src_port: u16,
    /// A non-first IPv4 fragment carries no ports.
    pub fragment: bool,
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

pub fn packet(skb: &SkBuffContext) -> Option<Packet> {
    let version = skb.load::<u8>(0).ok()? >> 4;
    let (proto, l4, addr, family, fragment) = if version == 4 {
        let ihl = usize::from(skb.load::<u8>(0).ok()? & 0x0f) * 4;
        let frag = u16::from_be(skb.load::<u16>(6).ok()?) & 0x1fff;
        let proto = skb.load::<u8>(9).ok()?;
        let d: [u8; 4] = skb.load(16).ok()?;
        let addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, d[0], d[1], d[2], d[3]];
        (proto, ihl, addr, AF_INET, frag != 0)
    } else if version == 6 {
        // Extension headers are not walked: a packet whose next header is not TCP, UDP or
        // ICMPv6 is decided under that protocol number, which no grant names, so it fails closed.
        let proto = skb.load::<u8>(6).ok()?;
        let addr: [u8; 16] = skb.load(24).ok()?;
        (proto, 40, addr, AF_INET6, false)
    } else {
        return None;
    };
    let (src_port, dst_port) = if !fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
        (u16::from_be(skb.load::<u16>(l4).ok()?), u16::from_be(skb.load::<u16>(l4 + 2).ok()?))
    } else {
        (0, 0)
    };
    Some(Packet {
        dst: Dest { addr, port: dst_port, proto: proto_of(u32::from(proto)), family },
        src_port,
        fragment,
    })
}

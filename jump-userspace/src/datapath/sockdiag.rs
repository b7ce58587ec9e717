//! Netlink `NETLINK_SOCK_DIAG` for revocation: lists the connected TCP and UDP sockets of the
//! calling thread's network namespace together with their `JUMP_SOCKS` record, and destroys one
//! (`SOCK_DESTROY`, the application sees `ECONNABORTED`). Requests are built and replies parsed
//! here by hand: the netlink crates cover neither `SOCK_DESTROY` nor the socket-storage request
//! attribute (`INET_DIAG_REQ_SK_BPF_STORAGES`), and the layouts are a few fixed structs
//! (`linux/inet_diag.h`, `linux/sock_diag.h`).
//!
//! Reading socket storage through inet_diag needs `CAP_BPF` (`bpf_sk_storage_diag_alloc`
//! checks `bpf_capable()`, net/core/bpf_sk_storage.c since 5.7); destroying needs
//! `CAP_NET_ADMIN` over the socket's namespace (`sock_diag_destroy`, since 4.5).
//!
//! (Over 500 lines, 140 of them tests: one hand-written netlink protocol, requests and replies
//! together, checked against the kernel's layouts.)

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, OwnedFd},
};

use jump_common::{SockRecord, COMM_LEN};
use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const INET_DIAG_REQ_SK_BPF_STORAGES: u16 = 2;
const SK_DIAG_BPF_STORAGE_REQ_MAP_FD: u16 = 1;
const INET_DIAG_SK_BPF_STORAGES: u16 = 20;
const SK_DIAG_BPF_STORAGE: u16 = 1;
const SK_DIAG_BPF_STORAGE_MAP_VALUE: u16 = 3;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Size of `struct nlmsghdr`, `struct inet_diag_req_v2` and `struct inet_diag_msg`.
const NLMSG_HDR: usize = 16;
const REQ_LEN: usize = 56;
const MSG_LEN: usize = 72;

/// TCP states (`include/net/tcp_states.h`) that hold a connection worth revoking: everything
/// from SYN_SENT to closing, but not LISTEN, TIME_WAIT (no full socket) or CLOSE.
const TCP_STATES: u32 = (1 << 1) // ESTABLISHED
    | (1 << 2) // SYN_SENT
    | (1 << 3) // SYN_RECV
    | (1 << 4) // FIN_WAIT1
    | (1 << 5) // FIN_WAIT2
    | (1 << 8) // CLOSE_WAIT
    | (1 << 9) // LAST_ACK
    | (1 << 11); // CLOSING
/// A connected UDP socket is in TCP_ESTABLISHED; an unconnected one in TCP_CLOSE.
const UDP_STATES: u32 = 1 << 1;

/// One socket as the kernel listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sock {
    pub family: u8,
    pub proto: u8,
    pub state: u8,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `struct inet_diag_sockid` as the kernel sent it (ports, addresses, interface, cookie):
    /// sent back verbatim to destroy exactly this socket.
    id: [u8; 48],
    /// The socket's inode (`socket:[N]` in `/proc/PID/fd`), 0 when it has no file.
    pub inode: u32,
    /// Its `JUMP_SOCKS` record, when the kernel reported one. It does so for TCP only:
    /// `inet_sk_diag_fill` adds socket storage after its connection-socket part, which UDP
    /// sockets skip (net/ipv4/inet_diag.c, 5.7 to 6.18).
    pub record: Option<SockRecord>,
}

impl Sock {
    #[cfg(test)]
    pub fn for_test(proto: u8, local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            family: if local.is_ipv4() { AF_INET } else { AF_INET6 },
            proto,
            state: 1,
            local,
            peer,
            id: [0; 48],
            inode: 0,
            record: None,
        }
    }

    pub fn cookie(&self) -> u64 {
        let lo = u32::from_ne_bytes(self.id[40..44].try_into().unwrap());
        let hi = u32::from_ne_bytes(self.id[44..48].try_into().unwrap());
        u64::from(hi) << 32 | u64::from(lo)
    }
}

/// A `NETLINK_SOCK_DIAG` socket in the network namespace of the thread that opened it.
pub struct Diag {
    fd: OwnedFd,
    seq: u32,
}

/// The netlink header's message type, flags and sequence number.
type Header = (u16, u16, u32);

/// A `struct inet_diag_req_v2` request, optionally asking for the records of map `map_fd`.
fn req(
    (kind, flags, seq): Header,
    family: u8,
    proto: u8,
    states: u32,
    id: &[u8; 48],
    map_fd: Option<i32>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(NLMSG_HDR + REQ_LEN + 12);
    b.extend_from_slice(&[0; 4]); // length, set below
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    b.extend_from_slice(&[family, proto, 0, 0]);
    b.extend_from_slice(&states.to_ne_bytes());
    b.extend_from_slice(id);
    if let Some(fd) = map_fd {
        // Nested: INET_DIAG_REQ_SK_BPF_STORAGES { SK_DIAG_BPF_STORAGE_REQ_MAP_FD: u32 }.
        b.extend_from_slice(&12u16.to_ne_bytes());
        b.extend_from_slice(&(INET_DIAG_REQ_SK_BPF_STORAGES | NLA_F_NESTED).to_ne_bytes());
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&SK_DIAG_BPF_STORAGE_REQ_MAP_FD.to_ne_bytes());
        b.extend_from_slice(&(fd as u32).to_ne_bytes());
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink attributes of `b`: (type without flags, payload).
fn attrs(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u16_at(b, at), u16_at(b, at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &b[at + 4..at + len]));
        at += align4(len);
    }
    out
}

/// A `SockRecord` from the bytes of its map value (the kernel copies the value as stored);
/// `None` for a blank one (allocated at `sock_create`, never filled: `SockRecord::is_blank`).
pub fn decode_record(v: &[u8]) -> Option<SockRecord> {
    if v.len() < core::mem::size_of::<SockRecord>() {
        return None;
    }
    let u8_at = |at: usize| v[at];
    let r = SockRecord {
        generation: u64::from_ne_bytes(v[0..8].try_into().ok()?),
        uid: u32_at(v, 8)?,
        gid: u32_at(v, 12)?,
        pid: u32_at(v, 16)?,
        login_uid: u32_at(v, 20)?,
        session_id: u32_at(v, 24)?,
        rule_id: u32_at(v, 28)?,
        action: u8_at(32),
        hook: u8_at(33),
        flags: u8_at(34),
        proto: u8_at(35),
        dst_port: u16_at(v, 36)?,
        family: u16_at(v, 38)?,
        dst_addr: v[40..56].try_into().ok()?,
        comm: v[56..56 + COMM_LEN].try_into().ok()?,
        path_ifindex: u32_at(v, 72)?,
        start_ticks: 0,
    };
    (!r.is_blank()).then_some(r)
}

fn addr(family: u8, b: &[u8]) -> Option<IpAddr> {
    Some(match family {
        AF_INET => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(0..4)?).ok()?)),
        _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(0..16)?).ok()?)),
    })
}

/// One `struct inet_diag_msg` and its attributes.
fn parse_msg(proto: u8, b: &[u8]) -> Option<Sock> {
    let family = *b.first()?;
    let state = *b.get(1)?;
    let id: [u8; 48] = b.get(4..52)?.try_into().ok()?;
    let sport = u16::from_be_bytes(id[0..2].try_into().ok()?);
    let dport = u16::from_be_bytes(id[2..4].try_into().ok()?);
    let local = SocketAddr::new(addr(family, &id[4..20])?, sport);
    let peer = SocketAddr::new(addr(family, &id[20..36])?, dport);
    let inode = u32_at(b, 68)?;
    let mut record = None;
    for (kind, payload) in attrs(b.get(MSG_LEN..).unwrap_or_default()) {
        if kind != INET_DIAG_SK_BPF_STORAGES {
            continue;
        }
        // Only one map is asked for, so the first value is ours.
        for (kind, storage) in attrs(payload) {
            if kind != SK_DIAG_BPF_STORAGE {
                continue;
            }
            for (kind, value) in attrs(storage) {
                if kind == SK_DIAG_BPF_STORAGE_MAP_VALUE {
                    record = decode_record(value);
                }
            }
        }
    }
    Some(Sock {
        family,
        proto,
        state,
        local,
        peer,
        id,
        inode,
        record,
    })
}

/// What one reply buffer holds: sockets, the end of the dump, or an error.
enum Reply {
    Socks(Vec<Sock>),
    Done,
    Error(i32),
}

fn parse_reply(proto: u8, buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut socks = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR || at + len > buf.len() {
            break;
        }
        let body = &buf[at + NLMSG_HDR..at + len];
        match kind {
            NLMSG_DONE => out.push(Reply::Done),
            NLMSG_ERROR => out.push(Reply::Error(u32_at(body, 0).map_or(-1, |e| e as i32))),
            SOCK_DIAG_BY_FAMILY => socks.extend(parse_msg(proto, body)),
            _ => {}
        }
        at += align4(len);
    }
    if !socks.is_empty() {
        out.insert(0, Reply::Socks(socks));
    }
    out
}

impl Diag {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        // A kernel that never answers must not hang the daemon's revocation thread.
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(5, 0),
        )?;
        Ok(Self { fd, seq: 0 })
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        sendto(
            self.fd.as_raw_fd(),
            msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        Ok(())
    }

    /// The connected sockets of `proto` (TCP or UDP) and `family`, each with its record from
    /// the socket-storage map `map_fd`.
    pub fn dump(&mut self, family: u8, proto: u8, map_fd: i32) -> io::Result<Vec<Sock>> {
        self.seq = self.seq.wrapping_add(1);
        let states = if proto == IPPROTO_TCP {
            TCP_STATES
        } else {
            UDP_STATES
        };
        self.send(&req(
            (SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self.seq),
            family,
            proto,
            states,
            &[0; 48],
            Some(map_fd),
        ))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            for r in parse_reply(proto, &buf[..n]) {
                match r {
                    Reply::Socks(s) => out.extend(s),
                    Reply::Done => return Ok(out),
                    Reply::Error(e) => return Err(io::Error::from_raw_os_error(-e)),
                }
            }
            if n == 0 {
                return Ok(out);
            }
        }
    }

    /// Destroys exactly `s` (matched by addresses, ports, interface and cookie).
    pub fn destroy(&mut self, s: &Sock) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        self.send(&req(
            (SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, self.seq),
            s.family,
            s.proto,
            u32::MAX,
            &s.id,
            None,
        ))?;
        let mut buf = vec![0u8; 4096];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        for r in parse_reply(s.proto, &buf[..n]) {
            if let Reply::Error(e) = r {
                return if e == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-e))
                };
            }
        }
        Err(io::Error::other("no acknowledgement from the kernel"))
    }
}

pub const FAMILIES: [u8; 2] = [AF_INET, AF_INET6];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_request_asks_for_the_map_in_a_nested_attribute() {
        let b = req(
            (SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 7),
            AF_INET6,
            IPPROTO_TCP,
            TCP_STATES,
            &[0; 48],
            Some(9),
        );
        assert_eq!(b.len(), 16 + 56 + 12);
        assert_eq!(
            u32_at(&b, 0),
            Some(84),
            "the header carries the whole length"
        );
        assert_eq!(u16_at(&b, 4), Some(20));
        assert_eq!(u16_at(&b, 6), Some(0x301));
        assert_eq!(u32_at(&b, 8), Some(7));
        assert_eq!(&b[16..20], &[10, 6, 0, 0]);
        assert_eq!(u32_at(&b, 20), Some(TCP_STATES));
        assert_eq!(u16_at(&b, 72), Some(12));
        assert_eq!(u16_at(&b, 74), Some(2 | 0x8000));
        assert_eq!(u16_at(&b, 76), Some(8));
        assert_eq!(u16_at(&b, 78), Some(1));
        assert_eq!(u32_at(&b, 80), Some(9));
    }

    /// A reply as the kernel lays it out: one inet_diag_msg of an IPv6 socket with a record,
    /// then NLMSG_DONE. Built field by field at the offsets of `linux/inet_diag.h`.
    fn reply() -> (Vec<u8>, SockRecord) {
        let rec = SockRecord {
            generation: 3,
            uid: 64001,
            pid: 42,
            rule_id: 5,
            action: 1,
            dst_port: 7000,
            comm: *b"probe\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        let mut value = vec![0u8; 80];
        value[0..8].copy_from_slice(&3u64.to_ne_bytes());
        value[8..12].copy_from_slice(&64001u32.to_ne_bytes());
        value[16..20].copy_from_slice(&42u32.to_ne_bytes());
        value[28..32].copy_from_slice(&5u32.to_ne_bytes());
        value[32] = 1;
        value[36..38].copy_from_slice(&7000u16.to_ne_bytes());
        value[56..61].copy_from_slice(b"probe");
        let mut msg = vec![0u8; MSG_LEN];
        msg[0] = AF_INET6;
        msg[1] = 1;
        msg[4..6].copy_from_slice(&45678u16.to_be_bytes());
        msg[6..8].copy_from_slice(&7000u16.to_be_bytes());
        msg[8..24].copy_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        msg[24..40].copy_from_slice(&"2001:db8:1::10".parse::<Ipv6Addr>().unwrap().octets());
        // idiag_cookie[0] (low half) and [1] at 40 and 44 of the 48-byte id, itself at 4.
        msg[44..48].copy_from_slice(&0x1234u32.to_ne_bytes());
        msg[48..52].copy_from_slice(&0x1u32.to_ne_bytes());
        // idiag_inode, last field of inet_diag_msg.
        msg[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        // An unrelated attribute first (INET_DIAG_CGROUP_ID), then the storages.
        let nla = |kind: u16, payload: &[u8]| {
            let mut a = Vec::new();
            a.extend(((payload.len() + 4) as u16).to_ne_bytes());
            a.extend(kind.to_ne_bytes());
            a.extend(payload);
            a.resize(align4(a.len()), 0);
            a
        };
        let cg = nla(21, &99u64.to_ne_bytes());
        let mut inner = nla(2, &17u32.to_ne_bytes());
        inner.extend(nla(3, &value));
        let storage = nla(SK_DIAG_BPF_STORAGE | NLA_F_NESTED, &inner);
        let storages = nla(INET_DIAG_SK_BPF_STORAGES | NLA_F_NESTED, &storage);
        msg.extend(cg);
        msg.extend(storages);
        let mut buf = Vec::new();
        for (kind, body) in [(SOCK_DIAG_BY_FAMILY, msg), (NLMSG_DONE, vec![0; 4])] {
            buf.extend(((body.len() + 16) as u32).to_ne_bytes());
            buf.extend(kind.to_ne_bytes());
            buf.extend([0u8; 10]);
            buf.extend(&body);
        }
        (buf, rec)
    }

    #[test]
    fn a_reply_gives_the_socket_its_cookie_and_its_record() {
        let (buf, rec) = reply();
        let replies = parse_reply(IPPROTO_TCP, &buf);
        assert_eq!(replies.len(), 2);
        let Reply::Socks(socks) = &replies[0] else {
            panic!("sockets first")
        };
        assert!(matches!(replies[1], Reply::Done));
        let s = &socks[0];
        assert_eq!(s.local, "[2001:db8:1::1]:45678".parse().unwrap());
        assert_eq!(s.peer, "[2001:db8:1::10]:7000".parse().unwrap());
        assert_eq!(s.cookie(), 0x1_0000_1234);
        assert_eq!(s.inode, 4242);
        assert_eq!(
            s.record,
            Some(rec),
            "the record decodes from the nested map value"
        );
    }

    #[test]
    fn a_blank_record_is_no_record() {
        // A record `sock_create` allocated and no connect filled: all zero but for bytes a
        // connect would also set, with generation 0.
        let mut value = vec![0u8; 80];
        value[36..38].copy_from_slice(&7000u16.to_ne_bytes());
        assert_eq!(
            decode_record(&value),
            None,
            "a blank record must not be judged as uid 0's"
        );
        value[0..8].copy_from_slice(&1u64.to_ne_bytes());
        assert!(decode_record(&value).is_some(), "a filled record decodes");
    }

    #[test]
    fn an_error_reply_carries_the_errno() {
        let mut buf = Vec::new();
        buf.extend(36u32.to_ne_bytes());
        buf.extend(NLMSG_ERROR.to_ne_bytes());
        buf.extend([0u8; 10]);
        buf.extend((-2i32).to_ne_bytes());
        buf.extend([0u8; 16]);
        assert!(matches!(
            parse_reply(IPPROTO_TCP, &buf)[..],
            [Reply::Error(-2)]
        ));
    }
}

//! The host's own addresses, for the egress backstop's source check (`JUMP_LOCAL_ADDRS`): read
//! with getifaddrs(3), and read again whenever rtnetlink announces that an address came or
//! went. Link announcements tell the daemon that interface indexes (`via`) may have changed. The announcements are only a wake-up: the list itself always comes from a full read,
//! so a lost or unparsed notification cannot leave the map wrong for long.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
    os::fd::{AsRawFd, OwnedFd},
};

use anyhow::Context;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// rtnetlink multicast groups (linux/rtnetlink.h): links, IPv4 and IPv6 address changes.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// Every address of this network namespace, IPv4 as IPv4-mapped IPv6, with its ifindex.
pub fn local() -> anyhow::Result<BTreeMap<Ipv6Addr, u32>> {
    let mut out = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs().context("failed to list the host's addresses")? {
        let Some(addr) = ifa.address else { continue };
        let ip = if let Some(a) = addr.as_sockaddr_in() {
            IpAddr::V4(a.ip())
        } else if let Some(a) = addr.as_sockaddr_in6() {
            IpAddr::V6(a.ip())
        } else {
            continue;
        };
        let ifindex = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0);
        out.insert(mapped(ip), ifindex);
    }
    Ok(out)
}

pub fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// A non-blocking rtnetlink socket subscribed to address changes.
pub fn watch() -> anyhow::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkRoute,
    )
    .context("failed to open an rtnetlink socket")?;
    bind(
        fd.as_raw_fd(),
        &NetlinkAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR),
    )
    .context("failed to subscribe to address changes")?;
    Ok(fd)
}

/// What pending notifications announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Addresses (or an overflow: anything may have changed).
    pub addresses: bool,
    /// Links: interfaces appeared, went or were renamed.
    pub links: bool,
}

/// `RTM_NEWLINK`, `RTM_DELLINK` (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;

/// Reads every pending notification. Only each datagram's first message type is looked at
/// (the kernel sends one event per datagram to these groups).
pub fn drain(fd: &OwnedFd) -> Changes {
    let mut buf = [0u8; 8192];
    let mut c = Changes::default();
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return c,
            Ok(n) if n >= 6 => match u16::from_ne_bytes([buf[4], buf[5]]) {
                RTM_NEWLINK | RTM_DELLINK => c.links = true,
                _ => c.addresses = true,
            },
            Ok(_) => c.addresses = true,
            Err(nix::errno::Errno::ENOBUFS) => {
                c.addresses = true;
                c.links = true;
            }
            Err(_) => return c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_are_mapped_and_loopback_is_listed() {
        assert_eq!(
            mapped("192.0.2.1".parse().unwrap()),
            "::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap()
        );
        let all = local().expect("getifaddrs");
        assert!(
            all.contains_key(&mapped("127.0.0.1".parse().unwrap())),
            "the loopback address should be one of the host's: {all:?}"
        );
    }
}

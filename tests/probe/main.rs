//! `jump-probe`: the harness's client and server. It first places itself where the test says —
//! `--cgroup` (joined before any socket exists, since hooks follow the cgroup a socket was
//! created in), `--netns`, then `--uid/--gid` — and then performs one operation, printing one
//! JSON line: `{"ok":true}` or `{"ok":false,"errno":1,"error":"…"}`.
//!
//! `--comm NAME` sets the process's command name (`/proc/self/comm`, as `prctl(PR_SET_NAME)`
//! does), which the kernel puts in every event: user input, escape sequences and all.
//!
//! `--loginuid N` first sets the audit login uid (and so a new audit session), as `pam_loginuid`
//! does at login, so a later `--uid` is a user acting for another (`su`, `sudo`).
//! `--forge-loginuid N` sets it only after `--uid` took effect: an unprivileged process whose
//! login uid is unset claiming to be someone (the kernel allows that once). `--linger`
//! keeps the process alive after its verdict until stdin closes, so the daemon can still read
//! its `/proc` entry.
//!
//! Operations (ADDR is `ip:port` or `[ip6]:port`; ICMP ignores the port):
//! - `tcp ADDR`: connect, echo 4 bytes. `tcp-presock ADDR`: the same, but the socket is created
//!   before `--uid` takes effect (a socket handed over by another user).
//! - `udp ADDR` (connect + send), `udp-sendto ADDR`, `udp-sendmsg ADDR`, `udp-sendmmsg ADDR`:
//!   send and wait for the echo.
//! - `ping ADDR` / `ping-connect ADDR`: an echo request from an unprivileged ping socket,
//!   unconnected or connected; `raw-ping ADDR`: the same from a raw socket.
//! - `socket KIND`: only create a socket (`raw`, `mptcp`, `sctp`, `ping4`, `ping6`).
//! - `listen PORT`: bind a TCP listener on every address. `accept PORT SECS`: bind and listen on
//!   PORT, print `{"port":N}`, then wait SECS for one connection; `autolisten SECS`: the same
//!   without bind (the kernel picks the port). `connect ADDR`: a TCP connect alone;
//!   `connect-from PORT ADDR`: the same from local port PORT.
//!   `self-connect SRC`: a listener without bind, then a connect to it on 127.0.0.1 from a
//!   socket bound to SRC (an address on the loopback device); prints `{"port":N}` first.
//! - `tfo ADDR` (`sendto` with `MSG_FASTOPEN`), `tfo-connect ADDR` (`TCP_FASTOPEN_CONNECT`).
//! - `uring-connect ADDR`, `uring-sendto ADDR`: a TCP connect and an unconnected UDP send
//!   submitted through io_uring (`IORING_OP_CONNECT`, `IORING_OP_SENDMSG`).
//! - `hold ADDR SECS`: connect, print `{"connected":true}`, then echo every 100 ms for SECS and
//!   report how the connection ended (for revocation). With `--creator U`, the socket is created
//!   as uid U (effective uid only) before `--uid` takes effect: created by one user, connected by
//!   another. `hold-thread ADDR SECS`: the same from a second thread named `probe-worker`
//!   (the process's pid is not that thread's id, and its name is not the process's).
//! - `udp-twins ADDR SECS PORT`: two pairs of UDP sockets, each pair bound to one port (PORT
//!   and PORT+1, so a listen grant is needed) with `SO_REUSEADDR` and connected to ADDR (the pairs in opposite orders); prints
//!   `{"connected":true}` and keeps them SECS. The kernel's lookup by address finds only one
//!   socket of a pair, so destroying the other by its cookie fails (`ENOENT`) in one pair.
//! - `fin-serve ADDR SECS`: accept one TCP connection, echo until the peer's FIN and print
//!   `{"fin":true}`, or `{"fin":false,…}` when it does not come within SECS.
//! - `serve tcp:ADDR|udp:ADDR…`: echo servers until killed; prints `ready` once listening.
//! - `opt OPTION ADDR`: a UDP socket sets OPTION, then connects to ADDR, sends and waits for the
//!   echo. OPTION is `bindtodevice=IF`, `bindtoifindex=N`, `multicast-if=ADDR`, `freebind`,
//!   `transparent`, `lsrr=HOP` (an `IP_OPTIONS` loose source route through HOP) or `srh=HOP6`
//!   (an `IPV6_RTHDR` segment routing header whose next segment is HOP6).
//!   `opt32 OPTION ADDR`: the same with OPTION (`bindtodevice`, `lsrr` or `srh`) set through the
//!   32-bit system call, for which the kernel runs no cgroup `setsockopt` program.
//! - `pktinfo IFINDEX ADDR`: an unconnected UDP send whose `IP_PKTINFO`/`IPV6_PKTINFO` control
//!   message names the outgoing interface, then waits for the echo. `pktinfo-relogin LOGIN
//!   IFINDEX ADDR`: the same from a socket connected to ADDR first, after which the process
//!   (root) sets its login uid to LOGIN.
//! - `join GROUP IFINDEX`: joins a multicast group on an interface and stays a member 300 ms.
//!   `join-long GROUP IFINDEX`: the same for an IPv4 group, with an option value longer than a
//!   page (`ip_mreqn` and padding).
//! - `raw-send HEX ADDR`: sends the bytes HEX (a whole IPv4 packet, header included) from an
//!   `IPPROTO_RAW` socket towards ADDR.
//! - `raw-ping-chown UID ADDR`: `raw-ping` from a raw socket first `fchown`ed to UID.
//!   `raw-ping-chown-later UID ADDR`: the same, but after creating and handing over the socket
//!   it prints `{"created":true}` and sends only once a line arrives on stdin.
//! - `ping-flood N`, `tcp-flood N`: opens N IPv4 ping (or TCP) sockets and holds them (with
//!   `--linger`, until stdin closes).
//!
//! `--cpu N` pins the probe to CPU N (before `--uid` takes effect).
// Denied, not forbidden: `compat` makes the 32-bit system call, which needs inline assembly.
#![deny(unsafe_code)]

mod compat;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use std::{io::IoSlice, mem::MaybeUninit, os::fd::AsRawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use jump_tests::place::{join, take_flag};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Placement, split in two so a socket can be created between joining and dropping privileges.
struct Who {
    uid: Option<String>,
    gid: Option<String>,
    forge_loginuid: Option<String>,
}

/// `--linger`: wait for stdin to close after reporting.
static LINGER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn place(args: &mut Vec<String>) -> Result<Who, String> {
    if let Some(i) = args.iter().position(|a| a == "--linger") {
        args.remove(i);
        LINGER.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let cgroup = take_flag(args, "--cgroup");
    let netns = take_flag(args, "--netns");
    let uid = take_flag(args, "--uid");
    let gid = take_flag(args, "--gid");
    let loginuid = take_flag(args, "--loginuid");
    let forge_loginuid = take_flag(args, "--forge-loginuid");
    let comm = take_flag(args, "--comm");
    let cpu = take_flag(args, "--cpu");
    join(cgroup.as_deref(), netns.as_deref())?;
    if let Some(c) = cpu {
        let c: usize = c.parse().map_err(|_| format!("bad cpu `{c}`"))?;
        let mut set = nix::sched::CpuSet::new();
        set.set(c).map_err(|e| format!("cpu {c}: {e}"))?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .map_err(|e| format!("pin to cpu {c}: {e}"))?;
    }
    if let Some(c) = comm {
        std::fs::write("/proc/self/comm", &c).map_err(|e| format!("set comm {c:?}: {e}"))?;
    }
    if let Some(l) = loginuid {
        // Needs CAP_AUDIT_CONTROL, so before the uid changes.
        std::fs::write("/proc/self/loginuid", &l).map_err(|e| format!("set loginuid {l}: {e}"))?;
    }
    Ok(Who {
        uid,
        gid,
        forge_loginuid,
    })
}

fn become_user(who: Who) -> Result<(), String> {
    jump_tests::place::become_user(who.uid.as_deref(), who.gid.as_deref())?;
    if let Some(l) = who.forge_loginuid {
        // A uid change makes a process non-dumpable, and then its /proc files belong to root;
        // a user's ordinary process (what the attacker has) is dumpable.
        nix::sys::prctl::set_dumpable(true).map_err(|e| format!("set dumpable: {e}"))?;
        std::fs::write("/proc/self/loginuid", &l)
            .map_err(|e| format!("forge loginuid {l}: {e}"))?;
    }
    Ok(())
}

fn report(r: std::io::Result<()>) -> ! {
    match r {
        Ok(()) => println!("{}", serde_json::json!({"ok": true})),
        Err(e) => println!(
            "{}",
            serde_json::json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()})
        ),
    }
    if LINGER.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    }
    std::process::exit(0)
}

fn addr(s: &str) -> std::io::Result<SocketAddr> {
    s.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad address `{s}`"),
        )
    })
}

fn tcp(target: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr(target)?, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"ping")?;
    let mut buf = [0; 4];
    s.read_exact(&mut buf)?;
    Ok(())
}

fn udp(target: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(local)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.connect(to)?;
    s.send(b"ping")?;
    let mut buf = [0; 16];
    s.recv(&mut buf)?;
    Ok(())
}

fn domain(a: &SocketAddr) -> Domain {
    if a.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

fn udp_socket(to: &SocketAddr) -> std::io::Result<Socket> {
    let s = Socket::new(domain(to), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    Ok(s)
}

fn recv_some(s: &Socket) -> std::io::Result<()> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 256];
    s.recv(&mut buf)?;
    Ok(())
}

fn udp_send(target: &str, how: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let s = udp_socket(&to)?;
    let dst = SockAddr::from(to);
    match how {
        "sendto" => {
            s.send_to(b"ping", &dst)?;
        }
        "sendmsg" => {
            let bufs = [IoSlice::new(b"pi"), IoSlice::new(b"ng")];
            s.sendmsg(
                &socket2::MsgHdr::new().with_addr(&dst).with_buffers(&bufs),
                0,
            )?;
        }
        _ => {
            let std_sock: UdpSocket = s.try_clone()?.into();
            let ss = nix::sys::socket::SockaddrStorage::from(to);
            let iov = [IoSlice::new(b"ping")];
            let mut data =
                nix::sys::socket::MultiHeaders::<nix::sys::socket::SockaddrStorage>::preallocate(
                    1, None,
                );
            let addrs = [Some(ss)];
            let msgs = [&iov[..]];
            let sent = nix::sys::socket::sendmmsg(
                std_sock.as_raw_fd(),
                &mut data,
                msgs.iter(),
                addrs,
                [],
                nix::sys::socket::MsgFlags::empty(),
            )?;
            sent.count();
        }
    }
    recv_some(&s)
}

/// An ICMP echo request (type 8, or 128 for IPv6); ping sockets fill in id and checksum.
fn echo_request(v4: bool) -> [u8; 8] {
    [if v4 { 8 } else { 128 }, 0, 0, 0, 0, 0, 0, 1]
}

fn ping(target: &str, kind: Type, connect: bool) -> std::io::Result<()> {
    let to = addr(target)?;
    let proto = if to.is_ipv4() {
        Protocol::ICMPV4
    } else {
        Protocol::ICMPV6
    };
    let s = Socket::new(domain(&to), kind, Some(proto))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let mut req = echo_request(to.is_ipv4());
    if kind == Type::RAW && to.is_ipv4() {
        // Raw ICMPv4 needs its own checksum (the kernel computes ICMPv6's).
        let sum = !(u16::from_be_bytes([req[0], req[1]]).wrapping_add(1));
        req[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let dst = SockAddr::from(SocketAddr::new(to.ip(), 0));
    if connect {
        s.connect(&dst)?;
        s.send(&req)?;
    } else {
        s.send_to(&req, &dst)?;
    }
    recv_some(&s)
}

fn socket_only(kind: &str) -> std::io::Result<()> {
    let (d, t, p) = match kind {
        "raw" => (Domain::IPV4, Type::RAW, Protocol::ICMPV4),
        "mptcp" => (Domain::IPV4, Type::STREAM, Protocol::from(262)),
        "sctp" => (Domain::IPV4, Type::STREAM, Protocol::from(132)),
        "ping4" => (Domain::IPV4, Type::DGRAM, Protocol::ICMPV4),
        "ping6" => (Domain::IPV6, Type::DGRAM, Protocol::ICMPV6),
        _ => {
            return Err(std::io::Error::other(format!(
                "unknown socket kind `{kind}`"
            )))
        }
    };
    Socket::new(d, t, Some(p)).map(drop)
}

fn listen(port: &str) -> std::io::Result<()> {
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("bad port"))?;
    TcpListener::bind(SocketAddr::from(([0u16; 8], port))).map(drop)
}

/// Listens (on `port`, or without bind when `None`), prints the port, waits for one connection.
fn accept(port: Option<&str>, secs: &str) -> std::io::Result<()> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(port) = port {
        let port: u16 = port
            .parse()
            .map_err(|_| std::io::Error::other("bad port"))?;
        s.bind(&SockAddr::from(SocketAddr::from(([0, 0, 0, 0], port))))?;
    }
    s.listen(1)?;
    let port = s.local_addr()?.as_socket().map_or(0, |a| a.port());
    println!("{}", serde_json::json!({ "port": port }));
    std::io::stdout().flush()?;
    let l: TcpListener = s.into();
    l.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs.parse().unwrap_or(3));
    while std::time::Instant::now() < deadline {
        if l.accept().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// A TCP connect to ADDR from local port PORT (any address).
fn connect_from(port: &str, target: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("bad port"))?;
    let s = Socket::new(domain(&to), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    let any: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], port).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    };
    s.bind(&SockAddr::from(any))?;
    s.connect_timeout(&SockAddr::from(to), TIMEOUT)
}

/// A listener that never binds (the kernel picks its port), and a connect to it on 127.0.0.1
/// from a socket bound to SRC: its SYN-ACK goes from the listener, which no connect decided, to
/// SRC. Prints `{"port":N}` first.
fn self_connect(src: &str) -> std::io::Result<()> {
    let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    l.listen(1)?;
    let port = l.local_addr()?.as_socket().map_or(0, |a| a.port());
    println!("{}", serde_json::json!({ "port": port }));
    std::io::stdout().flush()?;
    let src: std::net::Ipv4Addr = src
        .parse()
        .map_err(|_| std::io::Error::other("bad address"))?;
    let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    c.bind(&SockAddr::from(SocketAddr::from((src, 0))))?;
    c.connect_timeout(
        &SockAddr::from(SocketAddr::from(([127, 0, 0, 1], port))),
        Duration::from_secs(2),
    )
}

fn tfo(target: &str, sockopt: bool) -> std::io::Result<()> {
    let to = addr(target)?;
    let s = Socket::new(domain(&to), Type::STREAM, Some(Protocol::TCP))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    if sockopt {
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::TcpFastOpenConnect, &true)?;
        s.connect_timeout(&SockAddr::from(to), TIMEOUT)?;
        s.send(b"ping")?;
    } else {
        const MSG_FASTOPEN: i32 = 0x2000_0000;
        s.send_to_with_flags(b"ping", &SockAddr::from(to), MSG_FASTOPEN)?;
    }
    recv_some(&s)
}

/// io_uring submissions, through tokio-uring's safe API.
fn uring(target: &str, udp: bool) -> std::io::Result<()> {
    let to = addr(target)?;
    tokio_uring::start(async move {
        if udp {
            let local: SocketAddr = if to.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let s = tokio_uring::net::UdpSocket::bind(local).await?;
            let (sent, _) = s.send_to(b"ping".to_vec(), to).await;
            sent.map(drop)
        } else {
            tokio_uring::net::TcpStream::connect(to).await.map(drop)
        }
    })
}

/// Holds a connection open, echoing every 100 ms: reports how (and how fast) it ended. The
/// connection is closed (FIN) when the time is up.
fn hold(target: &str, secs: &str, presock: Option<Socket>) -> std::io::Result<()> {
    let to = addr(target)?;
    let mut s: TcpStream = match presock {
        Some(sock) => {
            sock.connect_timeout(&SockAddr::from(to), TIMEOUT)?;
            sock.into()
        }
        None => TcpStream::connect_timeout(&to, TIMEOUT)?,
    };
    // Long enough that a stall under load still ends in the revocation's error, whose timing
    // the tests assert themselves; a read timeout (EAGAIN) means nothing closed the session.
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    println!("{}", serde_json::json!({ "connected": true }));
    std::io::stdout().flush()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs.parse().unwrap_or(5));
    let mut buf = [0; 4];
    while std::time::Instant::now() < deadline {
        s.write_all(b"ping")?;
        s.read_exact(&mut buf)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Two pairs of connected UDP sockets sharing a local port per pair (see the module docs).
fn udp_twins(target: &str, secs: &str, port: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("bad port"))?;
    let mut keep = Vec::new();
    for (i, reverse) in [false, true].into_iter().enumerate() {
        let a = udp_socket(&to)?;
        let b = udp_socket(&to)?;
        a.set_reuse_address(true)?;
        b.set_reuse_address(true)?;
        let local = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], port + i as u16)));
        a.bind(&local)?;
        b.bind(&local)?;
        let (first, second) = if reverse { (&b, &a) } else { (&a, &b) };
        first.connect(&SockAddr::from(to))?;
        second.connect(&SockAddr::from(to))?;
        keep.push(a);
        keep.push(b);
    }
    println!("{}", serde_json::json!({ "connected": true }));
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(5)));
    Ok(())
}

/// Accepts one connection and echoes until the peer closes: reports whether its FIN came.
fn fin_serve(at: &str, secs: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr(at)?)?;
    println!("ready");
    std::io::stdout().flush()?;
    let (mut c, _) = l.accept()?;
    c.set_read_timeout(Some(Duration::from_secs(secs.parse().unwrap_or(5))))?;
    let mut buf = [0; 4096];
    let fin = loop {
        match c.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => c.write_all(&buf[..n])?,
            Err(e) => break Err(e),
        }
    };
    match fin {
        Ok(()) => println!("{}", serde_json::json!({ "fin": true })),
        Err(e) => println!(
            "{}",
            serde_json::json!({ "fin": false, "errno": e.raw_os_error(), "error": e.to_string() })
        ),
    }
    Ok(())
}

// `IP_OPTIONS` is not in socket2 or nix; nix's macro defines it without unsafe code here.
#[derive(Clone, Copy, Debug)]
struct IpOptions;
nix::setsockopt_impl!(
    IpOptions,
    libc::IPPROTO_IP,
    libc::IP_OPTIONS,
    [u8; 8],
    nix::sys::socket::sockopt::SetStruct<[u8; 8]>
);

// `IPV6_RTHDR` with a segment routing header of two segments, likewise.
#[derive(Clone, Copy, Debug)]
struct Ipv6Rthdr;
nix::setsockopt_impl!(
    Ipv6Rthdr,
    libc::IPPROTO_IPV6,
    libc::IPV6_RTHDR,
    [u8; 40],
    nix::sys::socket::sockopt::SetStruct<[u8; 40]>
);

/// An `IP_OPTIONS` value: NOP, then LSRR (131) of length 7 with pointer 4 and one hop.
fn lsrr(hop: &str) -> std::io::Result<[u8; 8]> {
    let hop: std::net::Ipv4Addr = hop.parse().map_err(|_| bad("hop"))?;
    let h = hop.octets();
    Ok([1, 131, 7, 4, h[0], h[1], h[2], h[3]])
}

/// An `IPV6_RTHDR` value: a segment routing header (type 4, RFC 8754) of two segments, one
/// left, whose next segment is `hop`: the packet goes to `hop` first. The kernel fills in the
/// final segment (the destination the socket sends to) and the next header.
fn srh(hop: &str) -> std::io::Result<[u8; 40]> {
    let hop: std::net::Ipv6Addr = hop.parse().map_err(|_| bad("hop"))?;
    let mut h = [0u8; 40];
    // next header, length in 8-byte units after the first 8, type, segments left, last entry.
    h[..5].copy_from_slice(&[0, 4, 4, 1, 1]);
    h[24..].copy_from_slice(&hop.octets());
    Ok(h)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad {what}"))
}

/// Sets one path-choosing option (see the module docs) on `s`.
fn set_option(s: &Socket, option: &str) -> std::io::Result<()> {
    let (name, value) = option.split_once('=').unwrap_or((option, ""));
    match name {
        "bindtodevice" => s.bind_device(Some(value.as_bytes())),
        "bindtoifindex" => {
            let i = value
                .parse()
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .ok_or_else(|| bad("index"))?;
            s.bind_device_by_index_v4(Some(i))
        }
        "multicast-if" => {
            let a: std::net::Ipv4Addr = value.parse().map_err(|_| bad("address"))?;
            s.set_multicast_if_v4(&a)
        }
        "freebind" if s.domain()? == Domain::IPV4 => s.set_freebind_v4(true),
        "freebind" => s.set_freebind_v6(true),
        "transparent" => s.set_ip_transparent_v4(true),
        "lsrr" => {
            nix::sys::socket::setsockopt(s, IpOptions, &lsrr(value)?).map_err(std::io::Error::from)
        }
        "srh" => {
            nix::sys::socket::setsockopt(s, Ipv6Rthdr, &srh(value)?).map_err(std::io::Error::from)
        }
        _ => Err(bad("option")),
    }
}

/// Sets `bindtodevice`, `lsrr` or `srh` on `s` through the 32-bit system call.
fn set_option32(s: &Socket, option: &str) -> std::io::Result<()> {
    let (name, value) = option.split_once('=').unwrap_or((option, ""));
    let (level, optname, bytes) = match name {
        "bindtodevice" => (
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            value.as_bytes().to_vec(),
        ),
        "lsrr" => (libc::IPPROTO_IP, libc::IP_OPTIONS, lsrr(value)?.to_vec()),
        "srh" => (libc::IPPROTO_IPV6, libc::IPV6_RTHDR, srh(value)?.to_vec()),
        _ => return Err(bad("option")),
    };
    compat::setsockopt(s.as_raw_fd(), level, optname, &bytes)
}

fn with_option(option: &str, target: &str, compat: bool) -> std::io::Result<()> {
    let to = addr(target)?;
    let s = udp_socket(&to)?;
    if compat {
        set_option32(&s, option)?;
    } else {
        set_option(&s, option)?;
    }
    s.connect(&SockAddr::from(to))?;
    s.send(b"ping")?;
    recv_some(&s)
}

/// `pktinfo`; with `relogin`, the socket is connected first and the process's login uid then
/// changed to `relogin` (root may), before the send.
fn pktinfo(ifindex: &str, target: &str, relogin: Option<&str>) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
    let to = addr(target)?;
    let ifindex: u32 = ifindex.parse().map_err(|_| bad("index"))?;
    let s = udp_socket(&to)?;
    if let Some(login) = relogin {
        s.connect(&SockAddr::from(to))?;
        std::fs::write("/proc/self/loginuid", login)?;
    }
    let iov = [IoSlice::new(b"ping")];
    let dst = SockaddrStorage::from(to);
    let v4 = libc::in_pktinfo {
        ipi_ifindex: ifindex as i32,
        ipi_spec_dst: libc::in_addr { s_addr: 0 },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let v6 = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr { s6_addr: [0; 16] },
        ipi6_ifindex: ifindex,
    };
    let cmsg = if to.is_ipv4() {
        ControlMessage::Ipv4PacketInfo(&v4)
    } else {
        ControlMessage::Ipv6PacketInfo(&v6)
    };
    sendmsg(s.as_raw_fd(), &iov, &[cmsg], MsgFlags::empty(), Some(&dst))?;
    recv_some(&s)
}

fn join_group(group: &str, ifindex: &str) -> std::io::Result<()> {
    let group: std::net::IpAddr = group.parse().map_err(|_| bad("group"))?;
    let ifindex: u32 = ifindex.parse().map_err(|_| bad("index"))?;
    match group {
        std::net::IpAddr::V4(g) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
            std::thread::sleep(Duration::from_millis(300));
        }
        std::net::IpAddr::V6(g) => {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.join_multicast_v6(&g, ifindex)?;
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    Ok(())
}

/// More than a page: the cgroup program sees only the first page, and the kernel then reads the
/// caller's whole value again.
const LONG: usize = 4608;

// `IP_ADD_MEMBERSHIP` with an `ip_mreqn` padded to `LONG` bytes (the kernel reads the first
// 12 and accepts any longer length).
#[derive(Clone, Copy, Debug)]
struct LongMembership;
nix::setsockopt_impl!(
    LongMembership,
    libc::IPPROTO_IP,
    libc::IP_ADD_MEMBERSHIP,
    [u8; LONG],
    nix::sys::socket::sockopt::SetStruct<[u8; LONG]>
);

/// `join-long GROUP IFINDEX`: an IPv4 join whose option value is longer than a page.
fn join_long(group: &str, ifindex: &str) -> std::io::Result<()> {
    let group: std::net::Ipv4Addr = group.parse().map_err(|_| bad("group"))?;
    let ifindex: u32 = ifindex.parse().map_err(|_| bad("index"))?;
    let mut v = [0u8; LONG];
    v[..4].copy_from_slice(&group.octets());
    v[8..12].copy_from_slice(&ifindex.to_ne_bytes());
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    nix::sys::socket::setsockopt(&s, LongMembership, &v)?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

fn raw_send(hex: &str, target: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("hex"))?;
    // IPPROTO_RAW: the header is the caller's (IP_HDRINCL).
    let s = Socket::new(domain(&to), Type::RAW, Some(Protocol::from(255)))?;
    s.send_to(&bytes, &SockAddr::from(SocketAddr::new(to.ip(), 0)))
        .map(drop)
}

/// `raw-ping-chown`, and with `later` split at the hand-over: the socket is made and
/// `fchown`ed first, the echo sent once stdin has a line.
fn raw_ping_chown(uid: &str, target: &str, later: bool) -> std::io::Result<()> {
    let uid: u32 = uid.parse().map_err(|_| bad("uid"))?;
    let to = addr(target)?;
    let s = Socket::new(domain(&to), Type::RAW, Some(Protocol::ICMPV4))?;
    nix::unistd::fchown(&s, Some(nix::unistd::Uid::from_raw(uid)), None)?;
    if later {
        println!("{}", serde_json::json!({"created": true}));
        std::io::stdout().flush()?;
        std::io::stdin().read_line(&mut String::new())?;
    }
    s.set_read_timeout(Some(TIMEOUT))?;
    let mut req = echo_request(true);
    let sum = !(u16::from_be_bytes([req[0], req[1]]).wrapping_add(1));
    req[2..4].copy_from_slice(&sum.to_be_bytes());
    s.send_to(&req, &SockAddr::from(SocketAddr::new(to.ip(), 0)))?;
    recv_some(&s)
}

/// `N` new IPv4 sockets of one kind, held by the caller.
fn flood(n: &str, kind: Type, protocol: Protocol) -> std::io::Result<Vec<Socket>> {
    let n: usize = n.parse().map_err(|_| bad("count"))?;
    (0..n)
        .map(|_| Socket::new(Domain::IPV4, kind, Some(protocol)))
        .collect()
}

fn serve(specs: &[String]) -> std::io::Result<()> {
    let mut threads = Vec::new();
    for spec in specs {
        let (kind, a) = spec
            .split_once(':')
            .ok_or_else(|| std::io::Error::other(format!("bad spec `{spec}`")))?;
        let a = addr(a)?;
        match kind {
            "tcp" => {
                let l = TcpListener::bind(a)?;
                threads.push(std::thread::spawn(move || {
                    for mut c in l.incoming().flatten() {
                        std::thread::spawn(move || {
                            let mut buf = [0; 4096];
                            while let Ok(n @ 1..) = c.read(&mut buf) {
                                if c.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                }));
            }
            "udp" => {
                let s = UdpSocket::bind(a)?;
                threads.push(std::thread::spawn(move || {
                    let mut buf = [0; 65536];
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }));
            }
            _ => return Err(std::io::Error::other(format!("unknown kind `{kind}`"))),
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let who = place(&mut args).unwrap_or_else(|e| {
        eprintln!("jump-probe: {e}");
        std::process::exit(2);
    });
    // A socket made before the uid changes, for `tcp-presock`, and for `hold --creator U` as
    // uid U (effective, and so file-system, uid: what the socket's owner is taken from).
    let creator = take_flag(&mut args, "--creator");
    let op = args.first().map(String::as_str);
    let presock =
        (op == Some("tcp-presock") || (op == Some("hold") && creator.is_some())).then(|| {
            let to = args.get(1).and_then(|a| addr(a).ok());
            if let Some(c) = &creator {
                let uid = nix::unistd::Uid::from_raw(c.parse().expect("--creator takes a uid"));
                nix::unistd::seteuid(uid).expect("seteuid to the creator");
            }
            let s = to.map(|to| Socket::new(domain(&to), Type::STREAM, Some(Protocol::TCP)));
            if creator.is_some() {
                nix::unistd::seteuid(nix::unistd::Uid::from_raw(0)).expect("seteuid back to root");
            }
            s
        });
    if let Err(e) = become_user(who) {
        eprintln!("jump-probe: {e}");
        std::process::exit(2);
    }
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match args.first().map(String::as_str) {
        Some("tcp") => report(tcp(arg(1))),
        Some("tcp-presock") => report((|| {
            let s = presock
                .flatten()
                .ok_or_else(|| std::io::Error::other("bad address"))??;
            s.connect_timeout(&SockAddr::from(addr(arg(1))?), TIMEOUT)
        })()),
        Some("udp") => report(udp(arg(1))),
        Some(op @ ("udp-sendto" | "udp-sendmsg" | "udp-sendmmsg")) => {
            report(udp_send(arg(1), &op[4..]))
        }
        Some("ping") => report(ping(arg(1), Type::DGRAM, false)),
        Some("ping-connect") => report(ping(arg(1), Type::DGRAM, true)),
        Some("raw-ping") => report(ping(arg(1), Type::RAW, false)),
        Some("socket") => report(socket_only(arg(1))),
        Some("listen") => report(listen(arg(1))),
        Some("autolisten") => report(accept(None, arg(1))),
        Some("self-connect") => report(self_connect(arg(1))),
        Some("accept") => report(accept(Some(arg(1)), arg(2))),
        Some("connect") => report(
            TcpStream::connect_timeout(
                &addr(arg(1)).unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
                TIMEOUT,
            )
            .map(drop),
        ),
        Some("connect-from") => report(connect_from(arg(1), arg(2))),
        Some("tfo") => report(tfo(arg(1), false)),
        Some("tfo-connect") => report(tfo(arg(1), true)),
        Some("hold") => report((|| {
            let presock = match presock.flatten() {
                Some(s) => Some(s?),
                None => None,
            };
            hold(arg(1), arg(2), presock)
        })()),
        Some("hold-thread") => report({
            let (to, secs) = (arg(1).to_string(), arg(2).to_string());
            std::thread::Builder::new()
                .name("probe-worker".into())
                .spawn(move || hold(&to, &secs, None))
                .and_then(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
                })
        }),
        Some("udp-twins") => report(udp_twins(arg(1), arg(2), arg(3))),
        Some("fin-serve") => report(fin_serve(arg(1), arg(2))),
        Some("uring-connect") => report(uring(arg(1), false)),
        Some("uring-sendto") => report(uring(arg(1), true)),
        Some("opt") => report(with_option(arg(1), arg(2), false)),
        Some("opt32") => report(with_option(arg(1), arg(2), true)),
        Some("pktinfo") => report(pktinfo(arg(1), arg(2), None)),
        Some("pktinfo-relogin") => report(pktinfo(arg(2), arg(3), Some(arg(1)))),
        Some("join") => report(join_group(arg(1), arg(2))),
        Some("join-long") => report(join_long(arg(1), arg(2))),
        Some("raw-send") => report(raw_send(arg(1), arg(2))),
        Some("raw-ping-chown") => report(raw_ping_chown(arg(1), arg(2), false)),
        Some("raw-ping-chown-later") => report(raw_ping_chown(arg(1), arg(2), true)),
        Some(op @ ("ping-flood" | "tcp-flood")) => {
            let (kind, protocol) = if op == "tcp-flood" {
                (Type::STREAM, Protocol::TCP)
            } else {
                (Type::DGRAM, Protocol::ICMPV4)
            };
            match flood(arg(1), kind, protocol) {
                // Held until the process ends: `report` does not return.
                Ok(_held) => report(Ok(())),
                Err(e) => report(Err(e)),
            }
        }
        Some("storm") => {
            // `storm COUNT ADDR…`: COUNT rounds of a TCP connect to each ADDR; prints the
            // outcomes per address as {"ADDR": {"ok": n, "eperm": n, "other": n}}.
            let rounds: usize = arg(1).parse().unwrap_or(1);
            let targets: Vec<SocketAddr> = args[2..].iter().filter_map(|a| addr(a).ok()).collect();
            let mut counts = vec![[0u64; 3]; targets.len()];
            for _ in 0..rounds {
                for (t, c) in targets.iter().zip(counts.iter_mut()) {
                    match TcpStream::connect_timeout(t, TIMEOUT) {
                        Ok(_) => c[0] += 1,
                        Err(e) if e.raw_os_error() == Some(1) => c[1] += 1,
                        Err(_) => c[2] += 1,
                    }
                }
            }
            let out: serde_json::Map<String, serde_json::Value> = targets
                .iter()
                .zip(&counts)
                .map(|(t, c)| {
                    (
                        t.to_string(),
                        serde_json::json!({"ok": c[0], "eperm": c[1], "other": c[2]}),
                    )
                })
                .collect();
            println!("{}", serde_json::Value::Object(out));
        }
        Some("serve") => {
            if let Err(e) = serve(&args[1..]) {
                eprintln!("jump-probe: serve: {e}");
                std::process::exit(2);
            }
        }
        _ => {
            eprintln!("usage: jump-probe [--cgroup DIR] [--netns FILE] [--uid U] [--gid G] OP ARGS… (see the source's docs)");
            std::process::exit(2);
        }
    }
}

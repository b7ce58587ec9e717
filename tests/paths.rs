//! The path a packet takes, attacked for real (issue 11): the user choosing the interface, the
//! source address, multicast membership, and what raw sockets hand to the egress backstop.
//! Each attack runs with a sniffer in the far namespace proving nothing of it arrived, next to
//! its granted twin proving what still works, under `policies/tests/paths/policy.yaml`:
//! - uid 64001 (A): tcp+udp 7000 to the internal host, udp 5000 to the groups 239.1.2.3 and
//!   ff0e::1:3, icmp to the internet host; udp 7001 to the internal host `via: [host-int]`
//! - uid 64002 (B): nothing (loopback only)
//! - root: icmp and udp 7000 to the internal host; may listen on 8000

use std::{
    io::{BufRead, BufReader, Write},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::{ChildStdin, Command, Stdio},
    time::Duration,
};

use jump_tests::{
    netns::{NetNs, INTERNAL_V4, INTERNAL_V6, INTERNET_V4, INTERNET_V6},
    privileged,
    probe::{self, Held, Lingering, Outcome, Placement},
    sniff::{carries, mentions, Sniffer},
};

const A: u32 = 64001;
const B: u32 = 64002;
const ROOT: u32 = 0;
const HOST_INT_V4: &str = "198.51.100.1";
const SETTLE: Duration = Duration::from_millis(400);

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/paths")
}

/// The harness's world with echo servers in the internal and internet namespaces and on the
/// jump host's loopback, `policies/tests/paths/policy.yaml` (copied into its policy directory),
/// and jumpd in the jump host's namespace.
struct World {
    base: jump_tests::world::World,
}

impl std::ops::Deref for World {
    type Target = jump_tests::world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    fn new() -> Self {
        let policy =
            std::fs::read_to_string(policy_dir().join("policy.yaml")).expect("the paths policy");
        let mut base = jump_tests::world::World::bare(&[("policy.yaml", &policy)]);
        let specs = |a4: &str, a6: &str| -> Vec<String> {
            vec![
                format!("tcp:{a4}:7000"),
                format!("udp:{a4}:7000"),
                format!("udp:{a4}:7001"),
                format!("udp:[{a6}]:7000"),
            ]
        };
        base.serve(&base.topo.internal.path(), &specs(INTERNAL_V4, INTERNAL_V6));
        base.serve(&base.topo.internet.path(), &specs(INTERNET_V4, INTERNET_V6));
        base.serve(
            &base.topo.host.path(),
            &["udp:127.0.0.1:7200".into(), "udp:[::1]:7200".into()],
        );
        base.start_in_host(&[]);
        World { base }
    }

    fn run(&self, uid: u32, op: &str, args: &[&str]) -> Outcome {
        let mut at = Placement::user(uid, &self.cg.path, &self.topo.host.path());
        if uid == ROOT {
            at.uid = None;
            at.gid = None;
        }
        let [a, rest @ ..] = args else {
            panic!("no arguments")
        };
        probe::run_args(&self.bins, &at, op, a, rest)
    }

    /// `jump-probe --cpu 0 FLAGS… OP…` as `uid` (or root) in the cgroup and the jump host,
    /// stdin and stdout piped; returns once it printed its first line, which must hold `first`.
    fn spawn(&self, uid: u32, flags: &[&str], op: &[&str], first: &str) -> (Held, ChildStdin) {
        let mut cmd = Command::new(&self.bins.probe);
        cmd.arg("--cgroup")
            .arg(&self.cg.path)
            .arg("--netns")
            .arg(self.topo.host.path())
            // One CPU for every probe of a test: per-CPU kernel state is then shared.
            .args(["--cpu", "0"]);
        if uid != ROOT {
            cmd.args(["--uid", &uid.to_string(), "--gid", &uid.to_string()]);
        }
        let mut child = cmd
            .args(flags)
            .args(op)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("jump-probe");
        let stdin = child.stdin.take().expect("piped");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("a first line");
        assert!(line.contains(first), "`{}` printed `{line}`", op.join(" "));
        (Held::new(child, out), stdin)
    }

    fn ok(&self, uid: u32, op: &str, args: &[&str]) {
        assert_eq!(
            self.run(uid, op, args),
            Outcome::Ok,
            "uid {uid} should be able to `{op} {args:?}`"
        );
    }

    fn refused(&self, uid: u32, op: &str, args: &[&str]) {
        let got = self.run(uid, op, args);
        assert!(
            got.is_refused(),
            "uid {uid} should get EPERM from `{op} {args:?}`, got {got:?}"
        );
    }

    fn fails(&self, uid: u32, op: &str, args: &[&str]) {
        let got = self.run(uid, op, args);
        assert_ne!(
            got,
            Outcome::Ok,
            "uid {uid}'s `{op} {args:?}` should not get through"
        );
    }

    /// Asserts a deny event for `uid` from `hook` (and with `option`, for setsockopt).
    fn logged(&self, uid: u32, hook: &str, option: Option<&str>) {
        self.jumpd()
            .wait_event(&format!("deny uid {uid} at {hook} {option:?}"), |e| {
                e["jump_uid"] == uid
                    && e["jump_hook"] == hook
                    && e["jump_verdict"] == "deny"
                    && option.is_none_or(|o| e["jump_option"] == o)
            });
    }
}

fn ifindex(ns: &NetNs, name: &str) -> String {
    let out = ns.ip(&["-o", "link", "show", name]).expect("ip link show");
    out.split(':').next().unwrap_or_default().trim().to_string()
}

fn sniff(ns: &NetNs) -> Sniffer {
    Sniffer::start(ns.path()).expect("sniffer")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// A hand-made IPv4 packet as hex, for `raw-send` (the kernel fills in the total length and the
/// header checksum of an `IP_HDRINCL` packet). `frag` is the flags/fragment-offset field;
/// `options` are padded to whole words.
fn ipv4(src: &str, dst: &str, proto: u8, frag: u16, options: &[u8], payload: &[u8]) -> String {
    let (s, d): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let ihl = 5 + opts.len() / 4;
    let mut p = vec![0x40 | ihl as u8, 0, 0, 0, 0x12, 0x34];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(&opts);
    p.extend_from_slice(payload);
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hand-made IPv6 packet as hex (`IPPROTO_RAW` on an IPv6 socket includes the header too).
fn ipv6(src: &str, dst: &str, next: u8, payload: &[u8]) -> String {
    let (s, d): (std::net::Ipv6Addr, std::net::Ipv6Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(payload);
    p.iter().map(|b| format!("{b:02x}")).collect()
}

fn udp(src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
    let mut u = src_port.to_be_bytes().to_vec();
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn icmp_echo() -> Vec<u8> {
    // Type 8, code 0, checksum over the 8 bytes, id 0x4a50 ("JP"), sequence 1.
    let mut e = vec![8, 0, 0, 0, 0x4a, 0x50, 0, 1];
    let sum: u32 = e
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    e[2..4].copy_from_slice(&sum.to_be_bytes());
    e
}

/// An IPv4 packet on the wire from `src` to `dst` with protocol `proto`.
fn ipv4_seen(frames: &[Vec<u8>], src: &str, dst: &str, proto: u8) -> bool {
    let (s, d): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    frames.iter().any(|f| {
        f.len() >= 34
            && f[12..14] == [0x08, 0x00]
            && f[14 + 9] == proto
            && f[26..30] == s.octets()
            && f[30..34] == d.octets()
    })
}

/// An IPv6 packet on the wire to `dst` whose first next header is `next`.
fn ipv6_seen(frames: &[Vec<u8>], dst: &str, next: u8) -> bool {
    let d: std::net::Ipv6Addr = dst.parse().unwrap();
    frames.iter().any(|f| {
        f.len() >= 54 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == next && f[38..54] == d.octets()
    })
}

#[test]
fn interface_choice_cannot_take_loopback_or_grants_elsewhere() {
    if !privileged("interface_choice_cannot_take_loopback_or_grants_elsewhere") {
        return;
    }
    let w = World::new();
    let inet = ifindex(&w.topo.host, "host-inet");
    let int = ifindex(&w.topo.host, "host-int");
    let s = sniff(&w.topo.internet);
    // Choosing the uplink by option: refused before anything is sent.
    w.refused(B, "opt", &["bindtodevice=host-inet", "127.0.0.1:7200"]);
    w.refused(
        B,
        "opt",
        &[&format!("bindtoifindex={inet}"), "127.0.0.1:7200"],
    );
    w.refused(
        A,
        "opt",
        &["bindtodevice=host-inet", &format!("{INTERNAL_V4}:7000")],
    );
    w.refused(
        A,
        "opt",
        &["multicast-if=203.0.113.1", &format!("{INTERNAL_V4}:7000")],
    );
    w.refused(ROOT, "opt", &["bindtodevice=host-inet", "127.0.0.1:7200"]);
    // Choosing it per message (no option to refuse): the backstop drops loopback off `lo`.
    w.fails(B, "pktinfo", &[&inet, "127.0.0.1:7200"]);
    w.fails(B, "pktinfo", &[&inet, "[::1]:7200"]);
    w.fails(ROOT, "pktinfo", &[&inet, "127.0.0.1:7200"]);
    let frames = s.stop(SETTLE);
    for a in ["127.0.0.1", "::1"] {
        assert!(
            !frames.iter().any(|f| mentions(f, ip(a))),
            "nothing for {a} should reach the internet segment ({} frames seen)",
            frames.len()
        );
    }
    w.logged(B, "setsockopt-interface", Some("SO_BINDTODEVICE"));
    w.logged(B, "setsockopt-interface", Some("SO_BINDTOIFINDEX"));
    w.logged(A, "setsockopt-interface", Some("IP_MULTICAST_IF"));
    w.logged(ROOT, "setsockopt-interface", Some("SO_BINDTODEVICE"));
    w.logged(B, "egress-loopback-off-lo", None);
    w.logged(ROOT, "egress-loopback-off-lo", None);
    // The granted twins: loopback on `lo`, however chosen, and a grant on its own interface.
    w.ok(B, "udp", &["127.0.0.1:7200"]);
    w.ok(B, "opt", &["bindtodevice=lo", "127.0.0.1:7200"]);
    w.ok(B, "pktinfo", &["1", "127.0.0.1:7200"]);
    w.ok(B, "pktinfo", &["1", "[::1]:7200"]);
    w.ok(A, "pktinfo", &[&int, &format!("{INTERNAL_V4}:7000")]);
}

#[test]
fn a_grant_with_via_holds_only_on_its_interface() {
    if !privileged("a_grant_with_via_holds_only_on_its_interface") {
        return;
    }
    let mut w = World::new();
    let inet = ifindex(&w.topo.host, "host-inet");
    let int = ifindex(&w.topo.host, "host-int");
    // An impostor on the internet segment claims the internal host's address.
    w.topo
        .internet
        .ip(&["addr", "add", &format!("{INTERNAL_V4}/32"), "dev", "inet0"])
        .expect("impostor address");
    w.base.serve(
        &w.base.topo.internet.path(),
        &[format!("udp:{INTERNAL_V4}:7001")],
    );
    let target = format!("{INTERNAL_V4}:7001");
    let s = sniff(&w.topo.internet);
    w.fails(A, "pktinfo", &[&inet, &target]);
    let frames = s.stop(SETTLE);
    assert!(
        !frames.iter().any(|f| mentions(f, ip(INTERNAL_V4))),
        "nothing for the granted address should leave on the internet segment ({} frames)",
        frames.len()
    );
    w.logged(A, "egress-interface", None);
    // The granted twins: the same grant through the interface it names, chosen or routed.
    w.ok(A, "pktinfo", &[&int, &target]);
    w.ok(A, "udp", &[&target]);
}

#[test]
fn spoofed_sources_are_refused_and_dropped() {
    if !privileged("spoofed_sources_are_refused_and_dropped") {
        return;
    }
    let w = World::new();
    w.refused(A, "opt", &["freebind", &format!("{INTERNAL_V4}:7000")]);
    w.refused(A, "opt", &["freebind", &format!("[{INTERNAL_V6}]:7000")]);
    // Root has CAP_NET_ADMIN, so only jump stands in the way.
    w.refused(
        ROOT,
        "opt",
        &["transparent", &format!("{INTERNAL_V4}:7000")],
    );
    w.logged(A, "setsockopt-source", Some("IP_FREEBIND"));
    w.logged(A, "setsockopt-source", Some("IPV6_FREEBIND"));
    w.logged(ROOT, "setsockopt-source", Some("IP_TRANSPARENT"));
    // A raw socket writes any source it likes: the backstop drops what is not the host's.
    let s = sniff(&w.topo.internal);
    let spoofed = ipv4(
        "198.51.100.99",
        INTERNAL_V4,
        17,
        0,
        &[],
        &udp(40000, 7000, b"spoof"),
    );
    let honest = ipv4(
        HOST_INT_V4,
        INTERNAL_V4,
        17,
        0,
        &[],
        &udp(40001, 7000, b"honest"),
    );
    let target = format!("{INTERNAL_V4}:0");
    w.fails(ROOT, "raw-send", &[&spoofed, &target]);
    w.ok(ROOT, "raw-send", &[&honest, &target]);
    // The same over IPv6, which does not check a source on output at all.
    let target6 = format!("[{INTERNAL_V6}]:0");
    let spoofed6 = ipv6(
        "2001:db8:1::99",
        INTERNAL_V6,
        17,
        &udp(40000, 7000, b"spoof"),
    );
    let honest6 = ipv6(
        "2001:db8:1::1",
        INTERNAL_V6,
        17,
        &udp(40001, 7000, b"honest"),
    );
    w.fails(ROOT, "raw-send", &[&spoofed6, &target6]);
    w.ok(ROOT, "raw-send", &[&honest6, &target6]);
    let frames = s.stop(SETTLE);
    for a in ["198.51.100.99", "2001:db8:1::99"] {
        assert!(
            !frames.iter().any(|f| mentions(f, ip(a))),
            "a spoofed source {a} should never reach the internal segment"
        );
    }
    assert!(
        frames
            .iter()
            .any(|f| mentions(f, ip("2001:db8:1::1")) && f.len() > 54 && f[14 + 6] == 17),
        "the IPv6 packet from the host's own address should arrive ({} frames)",
        frames.len()
    );
    assert!(
        ipv4_seen(&frames, HOST_INT_V4, INTERNAL_V4, 17),
        "the same packet from the host's own address should arrive ({} frames)",
        frames.len()
    );
    w.logged(ROOT, "egress-non-local-source", None);
}

#[test]
fn multicast_joins_need_a_grant_for_the_group() {
    if !privileged("multicast_joins_need_a_grant_for_the_group") {
        return;
    }
    let w = World::new();
    let int = ifindex(&w.topo.host, "host-int");
    let s = sniff(&w.topo.internal);
    w.refused(B, "join", &["239.1.2.3", &int]);
    w.refused(A, "join", &["239.9.9.9", &int]);
    w.refused(B, "join", &["ff0e::1:3", &int]);
    w.refused(ROOT, "join", &["239.9.9.9", &int]);
    let frames = s.stop(SETTLE);
    for g in ["239.1.2.3", "239.9.9.9", "ff0e::1:3"] {
        assert!(
            !frames.iter().any(|f| carries(f, ip(g))),
            "no membership report for {g} should leave ({} frames seen)",
            frames.len()
        );
    }
    w.logged(B, "setsockopt-multicast", Some("IP_ADD_MEMBERSHIP"));
    w.logged(A, "setsockopt-multicast", Some("IP_ADD_MEMBERSHIP"));
    w.logged(B, "setsockopt-multicast", Some("IPV6_ADD_MEMBERSHIP"));
    // The granted twin: A's udp grant names the group, so A joins and the report leaves.
    let s = sniff(&w.topo.internal);
    w.ok(A, "join", &["239.1.2.3", &int]);
    w.ok(A, "join", &["ff0e::1:3", &int]);
    let frames = s.stop(SETTLE);
    for g in ["239.1.2.3", "ff0e::1:3"] {
        assert!(
            frames.iter().any(|f| carries(f, ip(g))),
            "A's granted join of {g} should be reported on the wire ({} frames seen)",
            frames.len()
        );
    }
}

#[test]
fn socket_options_stay_judged_while_jumpd_is_down() {
    if !privileged("socket_options_stay_judged_while_jumpd_is_down") {
        return;
    }
    let mut w = World::new();
    let int = ifindex(&w.topo.host, "host-int");
    // A crash: no cleanup runs. The pinned programs, `setsockopt` among them, keep judging.
    w.base.jumpd_mut().kill();
    let s = sniff(&w.topo.internal);
    w.refused(B, "join", &["239.1.2.3", &int]);
    w.refused(B, "join", &["ff0e::1:3", &int]);
    w.refused(
        A,
        "opt",
        &["lsrr=203.0.113.10", &format!("{INTERNAL_V4}:7000")],
    );
    w.refused(B, "opt", &["bindtodevice=host-inet", "127.0.0.1:7200"]);
    let frames = s.stop(SETTLE);
    for g in ["239.1.2.3", "ff0e::1:3"] {
        assert!(
            !frames.iter().any(|f| carries(f, ip(g))),
            "no membership report for {g} should leave while jumpd is down ({} frames seen)",
            frames.len()
        );
    }
    // The granted twin, still while jumpd is down: A's udp grant names the group.
    let s = sniff(&w.topo.internal);
    w.ok(A, "join", &["239.1.2.3", &int]);
    let frames = s.stop(SETTLE);
    assert!(
        frames.iter().any(|f| carries(f, ip("239.1.2.3"))),
        "A's granted join should be reported on the wire ({} frames seen)",
        frames.len()
    );
    // The restarted jumpd adopts the pinned link and logs what was refused meanwhile.
    w.base.jumpd_mut().restart().expect("restart jumpd");
    w.logged(B, "setsockopt-multicast", Some("IP_ADD_MEMBERSHIP"));
    w.logged(B, "setsockopt-multicast", Some("IPV6_ADD_MEMBERSHIP"));
    w.logged(A, "setsockopt-source-route", Some("IP_OPTIONS"));
    w.logged(B, "setsockopt-interface", Some("SO_BINDTODEVICE"));
}

#[test]
fn raw_packets_are_decided_on_what_they_show() {
    if !privileged("raw_packets_are_decided_on_what_they_show") {
        return;
    }
    let w = World::new();
    let internal = format!("{INTERNAL_V4}:0");
    let internet = format!("{INTERNET_V4}:0");
    let s_int = sniff(&w.topo.internal);
    let s_inet = sniff(&w.topo.internet);
    // Root may send udp to port 7000 only: a non-first fragment (offset 8 bytes) has no port
    // and is decided on port 0; so is a UDP header cut short.
    let fragment = ipv4(HOST_INT_V4, INTERNAL_V4, 17, 1, &[], b"fragment");
    let short = ipv4(HOST_INT_V4, INTERNAL_V4, 17, 0, &[], &[0x1b]);
    // A source port root may listen on does not open every destination.
    let syn: Vec<u8> = [
        &8000u16.to_be_bytes()[..],
        &7000u16.to_be_bytes(),
        &[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x40, 0, 0, 0, 0, 0],
    ]
    .concat();
    let listen_port_trick = ipv4("203.0.113.1", INTERNET_V4, 6, 0, &[], &syn);
    // A loose source route through the internet host, to a destination root may ping.
    let lsrr = [1, 131, 7, 4, 203, 0, 113, 10];
    let routed = ipv4(HOST_INT_V4, INTERNAL_V4, 1, 0, &lsrr, &icmp_echo());
    for p in [&fragment, &short, &routed] {
        w.fails(ROOT, "raw-send", &[p, &internal]);
    }
    w.fails(ROOT, "raw-send", &[&listen_port_trick, &internet]);
    w.refused(
        ROOT,
        "opt",
        &["lsrr=203.0.113.10", &format!("{INTERNAL_V4}:7000")],
    );
    // A raw socket handed to A (whose grants include pinging the internet host) is still
    // root's.
    w.fails(
        ROOT,
        "raw-ping-chown",
        &[&A.to_string(), &format!("{INTERNET_V4}:0")],
    );
    let (frames_int, frames_inet) = (s_int.stop(SETTLE), s_inet.stop(Duration::ZERO));
    for proto in [17, 1] {
        assert!(
            !ipv4_seen(&frames_int, HOST_INT_V4, INTERNAL_V4, proto),
            "no raw packet of protocol {proto} should reach the internal host ({} frames)",
            frames_int.len()
        );
    }
    for proto in [6, 1] {
        assert!(
            !ipv4_seen(&frames_inet, "203.0.113.1", INTERNET_V4, proto),
            "no raw packet of protocol {proto} should reach the internet host ({} frames)",
            frames_inet.len()
        );
    }
    w.logged(ROOT, "egress", None);
    w.logged(ROOT, "egress-source-route", None);
    w.logged(ROOT, "setsockopt-source-route", Some("IP_OPTIONS"));
    // The granted twins: a whole datagram to 7000, a plain echo, and the chowned socket
    // pinging what root itself may ping.
    let s_int = sniff(&w.topo.internal);
    let whole = ipv4(
        HOST_INT_V4,
        INTERNAL_V4,
        17,
        0,
        &[],
        &udp(40002, 7000, b"whole"),
    );
    let echo = ipv4(HOST_INT_V4, INTERNAL_V4, 1, 0, &[], &icmp_echo());
    w.ok(ROOT, "raw-send", &[&whole, &internal]);
    w.ok(ROOT, "raw-send", &[&echo, &internal]);
    w.ok(ROOT, "raw-ping-chown", &[&A.to_string(), &internal]);
    let frames = s_int.stop(SETTLE);
    assert!(
        ipv4_seen(&frames, HOST_INT_V4, INTERNAL_V4, 17),
        "the whole datagram should arrive"
    );
    assert!(
        ipv4_seen(&frames, HOST_INT_V4, INTERNAL_V4, 1),
        "the plain echo should arrive"
    );
}

/// The creator of a raw socket holds however many sockets the host makes: it is kept in the
/// socket's own storage. It used to be kept in a 65,536-entry LRU by socket cookie, split per
/// CPU, where A's 39,800 ping sockets on root's CPU evicted it: the socket root handed to A
/// then went out as A's, whose grants reach the internet host.
#[test]
fn a_flood_of_sockets_does_not_make_a_raw_socket_forget_its_creator() {
    if !privileged("a_flood_of_sockets_does_not_make_a_raw_socket_forget_its_creator") {
        return;
    }
    let w = World::new();
    w.topo
        .host
        .sysctl("net.ipv4.ping_group_range", "0 2147483647")
        .expect("sysctl");
    let a = A.to_string();
    let (internal, internet) = (format!("{INTERNAL_V4}:0"), format!("{INTERNET_V4}:0"));
    let handed = |to: &str| {
        w.spawn(
            ROOT,
            &[],
            &["raw-ping-chown-later", &a, to],
            "\"created\":true",
        )
    };
    let (mut to_inet, mut go_inet) = handed(&internet);
    let (mut to_int, mut go_int) = handed(&internal);
    // A's flood, on the same CPU, held while root's sockets send: two processes, each within
    // the descriptor limit (a hard 20,000 on the CI machines, whose root lacks the
    // CAP_SYS_RESOURCE to raise it).
    let floods: Vec<_> = (0..2)
        .map(|_| w.spawn(A, &["--linger"], &["ping-flood", "19900"], "\"ok\":true"))
        .collect();
    let (s_int, s_inet) = (sniff(&w.topo.internal), sniff(&w.topo.internet));
    for go in [&mut go_inet, &mut go_int] {
        go.write_all(b"send\n").expect("tell the probe to send");
    }
    let (inet, int) = (to_inet.verdict(), to_int.verdict());
    // Each flood ends when its stdin closes (before its guard reaps it).
    for (held, stdin) in floods {
        drop(stdin);
        drop(held);
    }
    assert_ne!(
        inet["ok"], true,
        "root's raw socket handed to A must not reach the internet host: {inet}"
    );
    assert!(
        !ipv4_seen(&s_inet.stop(SETTLE), "203.0.113.1", INTERNET_V4, 1),
        "no echo request should reach the internet host"
    );
    // The granted twin: the same hand-over to what root itself may ping.
    assert_eq!(int["ok"], true, "root's socket to the internal host: {int}");
    assert!(
        ipv4_seen(&s_int.stop(Duration::ZERO), HOST_INT_V4, INTERNAL_V4, 1),
        "the echo request to the internal host should arrive"
    );
    w.logged(ROOT, "egress", None);
}

/// A 64-bit process may make the 32-bit `setsockopt` (`int 0x80`, on kernels with ia32
/// emulation), for which the kernel runs no cgroup `setsockopt` program: the options jump
/// refuses are set all the same. A source route then sends a connected socket's packets to its
/// next hop, the internet host, while the connect was decided on the granted internal host;
/// for IPv6 a segment routing header does it (unprivileged, unlike IPv6 options headers).
/// Egress refuses routed packets whatever set the route.
#[test]
fn source_routes_set_by_32_bit_setsockopt_are_refused_in_egress() {
    if !privileged("source_routes_set_by_32_bit_setsockopt_are_refused_in_egress") {
        return;
    }
    let w = World::new();
    let (int4, int6) = (
        format!("{INTERNAL_V4}:7000"),
        format!("[{INTERNAL_V6}]:7000"),
    );
    let (lsrr, srh) = (format!("lsrr={INTERNET_V4}"), format!("srh={INTERNET_V6}"));
    // The 64-bit calls are judged.
    w.refused(A, "opt", &[&srh, &int6]);
    w.refused(A, "opt", &[&lsrr, &int4]);
    let s = sniff(&w.topo.internet);
    for (option, to) in [(&srh, &int6), (&lsrr, &int4)] {
        match w.run(A, "opt32", &[option, to]) {
            Outcome::Err(libc::ENOSYS, e) => {
                eprintln!("no ia32 emulation here: the 32-bit call does not exist ({e})");
                return;
            }
            got => assert_ne!(got, Outcome::Ok, "`opt32 {option}` to {to} got through"),
        }
    }
    let frames = s.stop(SETTLE);
    assert!(
        !ipv6_seen(&frames, INTERNET_V6, 43),
        "no segment-routed packet should reach the internet host ({} frames)",
        frames.len()
    );
    let inet: Ipv4Addr = INTERNET_V4.parse().unwrap();
    assert!(
        !frames.iter().any(|f| f.len() >= 34
            && f[12..14] == [0x08, 0x00]
            && f[14 + 9] == 17
            && f[30..34] == inet.octets()),
        "no source-routed packet should reach the internet host ({} frames)",
        frames.len()
    );
    w.logged(A, "egress-source-route", None);
    // The granted twin: the same sends without a route.
    w.ok(A, "udp", &[&int6]);
    w.ok(A, "udp", &[&int4]);
}

/// An option value longer than a page reaches the `setsockopt` program cut to its first page,
/// and the kernel then reads the caller's value again: another thread can change it between
/// the check and the join. Such values of the options jump judges are refused, whatever their
/// first page holds: here A's own granted group.
#[test]
fn a_judged_socket_option_longer_than_a_page_is_refused() {
    if !privileged("a_judged_socket_option_longer_than_a_page_is_refused") {
        return;
    }
    let w = World::new();
    let int = ifindex(&w.topo.host, "host-int");
    let s = sniff(&w.topo.internal);
    w.refused(A, "join-long", &["239.1.2.3", &int]);
    let frames = s.stop(SETTLE);
    assert!(
        !frames.iter().any(|f| carries(f, ip("239.1.2.3"))),
        "no membership report should leave for the long join ({} frames)",
        frames.len()
    );
    w.logged(A, "setsockopt-multicast", Some("IP_ADD_MEMBERSHIP"));
    // The granted twin: the same join with a value of its own size.
    let s = sniff(&w.topo.internal);
    w.ok(A, "join", &["239.1.2.3", &int]);
    assert!(
        s.stop(SETTLE).iter().any(|f| carries(f, ip("239.1.2.3"))),
        "A's granted join should be reported on the wire"
    );
}

/// An egress event names the person who connected the socket as the kernel saw them at the
/// connect, not whoever `/proc` shows under the connector's pid when jumpd reads the event: by
/// then the connector may have exited and its pid belong to another user's process, with
/// another login, session and SSH client. Here root changing its own login uid between the
/// connect and the send stands in for that new owner: the event keeps the connect's login.
#[test]
fn an_egress_event_names_the_login_of_the_connect_not_of_the_pid_now() {
    if !privileged("an_egress_event_names_the_login_of_the_connect_not_of_the_pid_now") {
        return;
    }
    let w = World::new();
    let inet = ifindex(&w.topo.host, "host-inet");
    // Kept alive until the event is read: its executable is then named, its start time being
    // the one the kernel recorded at the connect.
    let probe = Lingering::start({
        let mut c = Command::new(&w.bins.probe);
        c.arg("--cgroup")
            .arg(&w.cg.path)
            .arg("--netns")
            .arg(w.topo.host.path())
            .args([
                "--loginuid",
                "64050",
                "--linger",
                "pktinfo-relogin",
                "64051",
                &inet,
            ])
            .arg("127.0.0.1:7200");
        c
    });
    assert!(
        !probe.allowed(),
        "loopback out of the uplink must not get through: {}",
        probe.verdict
    );
    let e = w
        .jumpd()
        .wait_event("root's egress-loopback-off-lo drop", |e| {
            e["jump_uid"] == ROOT && e["jump_hook"] == "egress-loopback-off-lo"
        });
    drop(probe);
    assert_eq!(
        e["jump_login_uid"], 64050,
        "the login of the connect, not the one /proc shows now: {e}"
    );
    assert!(
        e["jump_exe"]
            .as_str()
            .is_some_and(|x| x.ends_with("/jump-probe")),
        "the connector still holds its pid: its executable is named: {e}"
    );
}

//! Every egress path a user on the jump host can take, decided by policy in the kernel: each
//! test runs an unprivileged uid (or root, where a capability is the point) inside the test
//! cgroup and proves both the refusal and its granted twin, under
//! `policies/tests/enforcement/policy.yaml`:
//! - uid 64001 (A): tcp+udp 7000 and icmp to the internal host; may listen on 8000
//! - uid 64002 (B): nothing
//! - root: icmp to 198.51.100.10 (so it may open raw sockets), nothing else

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use jump_tests::{
    netns::{INTERNAL_V4, INTERNAL_V6, INTERNET_V4, INTERNET_V6},
    privileged,
    probe::{self, Outcome, Placement},
};

const A: u32 = 64001;
const B: u32 = 64002;

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/enforcement")
}

/// One test's world: the harness's, with echo servers on 7000/7001 (tcp, udp) everywhere and on
/// loopback 7100 in the jump host, `policies/tests/enforcement/policy.yaml` copied into its
/// policy directory (which a test may edit), and jumpd in the jump host namespace once started.
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
        let policy = std::fs::read_to_string(policy_dir().join("policy.yaml"))
            .expect("the enforcement policy");
        let mut base = jump_tests::world::World::bare(&[("policy.yaml", &policy)]);
        // Unprivileged ping sockets for every gid, in the jump host namespace only.
        base.topo
            .host
            .sysctl("net.ipv4.ping_group_range", "0 2147483647")
            .expect("sysctl");
        let specs = |a4: &str, a6: &str| -> Vec<String> {
            [7000, 7001]
                .iter()
                .flat_map(|p| {
                    [
                        format!("tcp:{a4}:{p}"),
                        format!("tcp:[{a6}]:{p}"),
                        format!("udp:{a4}:{p}"),
                        format!("udp:[{a6}]:{p}"),
                    ]
                })
                .collect()
        };
        base.serve(&base.topo.internal.path(), &specs(INTERNAL_V4, INTERNAL_V6));
        base.serve(&base.topo.internet.path(), &specs(INTERNET_V4, INTERNET_V6));
        base.serve(
            &base.topo.host.path(),
            &["tcp:127.0.0.1:7100".into(), "tcp:[::1]:7100".into()],
        );
        World { base }
    }

    fn start(mut self) -> Self {
        self.base.start_in_host(&[]);
        self
    }

    /// `start` in audit mode.
    fn start_audit(mut self) -> Self {
        self.base.start_in_host(&["--mode", "audit"]);
        self
    }

    /// Replaces `from` with `to` in the world's copy of the policy (in place).
    fn edit(&self, from: &str, to: &str) {
        let p = self.policy_file("policy.yaml");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "the policy should contain `{from}`");
        std::fs::write(&p, text.replace(from, to)).unwrap();
    }

    fn at(&self, uid: Option<u32>) -> Placement {
        let mut p = Placement::user(0, &self.cg.path, &self.topo.host.path());
        p.uid = uid;
        p.gid = uid;
        p
    }

    fn run(&self, uid: Option<u32>, op: &str, target: &str) -> Outcome {
        probe::run(&self.bins, &self.at(uid), op, target)
    }

    /// Asserts an event for `uid` from `hook` with `verdict` was logged.
    fn logged(&self, uid: u32, hook: &str, verdict: &str) {
        self.jumpd()
            .wait_event(&format!("{verdict} uid {uid} at {hook}"), |e| {
                e["jump_uid"] == uid && e["jump_hook"] == hook && e["jump_verdict"] == verdict
            });
    }
}

fn ok(w: &World, uid: Option<u32>, op: &str, target: &str) {
    assert_eq!(
        w.run(uid, op, target),
        Outcome::Ok,
        "uid {uid:?} should be able to `{op} {target}`"
    );
}

fn refused(w: &World, uid: Option<u32>, op: &str, target: &str) {
    let got = w.run(uid, op, target);
    assert!(
        got.is_refused(),
        "uid {uid:?} should get EPERM from `{op} {target}`, got {got:?}"
    );
}

fn v6(a: &str, port: u16) -> String {
    format!("[{a}]:{port}")
}

#[test]
fn ipv4_mapped_unspecified_and_loopback_destinations() {
    if !privileged("ipv4_mapped_unspecified_and_loopback_destinations") {
        return;
    }
    let w = World::new().start();
    ok(&w, Some(A), "tcp", &format!("[::ffff:{INTERNAL_V4}]:7000"));
    refused(&w, Some(A), "tcp", &format!("[::ffff:{INTERNAL_V4}]:7001"));
    refused(&w, Some(B), "tcp", &format!("[::ffff:{INTERNAL_V4}]:7000"));
    refused(&w, Some(A), "tcp", &format!("[::ffff:{INTERNET_V4}]:7000"));
    w.logged(A, "connect6", "deny");
    // Loopback is allowed by `defaults.loopback`, however it is spelled.
    for target in [
        "127.0.0.1:7100",
        "[::1]:7100",
        "[::ffff:127.0.0.1]:7100",
        "0.0.0.0:7100",
        "[::]:7100",
    ] {
        ok(&w, Some(B), "connect", target);
    }
}

#[test]
fn udp_connected_and_unconnected_sends() {
    if !privileged("udp_connected_and_unconnected_sends") {
        return;
    }
    let w = World::new().start();
    for op in ["udp", "udp-sendto", "udp-sendmsg", "udp-sendmmsg"] {
        ok(&w, Some(A), op, &format!("{INTERNAL_V4}:7000"));
        ok(&w, Some(A), op, &v6(INTERNAL_V6, 7000));
        refused(&w, Some(A), op, &format!("{INTERNAL_V4}:7001"));
        refused(&w, Some(A), op, &v6(INTERNET_V6, 7000));
        refused(&w, Some(B), op, &format!("{INTERNAL_V4}:7000"));
    }
    w.logged(A, "sendmsg4", "allow");
    w.logged(A, "sendmsg6", "deny");
    w.logged(B, "connect4", "deny");
}

#[test]
fn tcp_fast_open_is_refused_not_stalled() {
    if !privileged("tcp_fast_open_is_refused_not_stalled") {
        return;
    }
    let w = World::new().start();
    for op in ["tfo", "tfo-connect"] {
        ok(&w, Some(A), op, &format!("{INTERNAL_V4}:7000"));
        refused(&w, Some(A), op, &format!("{INTERNAL_V4}:7001"));
        refused(&w, Some(B), op, &v6(INTERNET_V6, 7000));
    }
}

#[test]
fn io_uring_connect_and_sendmsg_are_decided_like_the_system_calls() {
    if !privileged("io_uring_connect_and_sendmsg_are_decided_like_the_system_calls") {
        return;
    }
    let w = World::new().start();
    ok(&w, Some(A), "uring-connect", &format!("{INTERNAL_V4}:7000"));
    refused(&w, Some(A), "uring-connect", &format!("{INTERNAL_V4}:7001"));
    refused(&w, Some(B), "uring-connect", &v6(INTERNET_V6, 7000));
    ok(&w, Some(A), "uring-sendto", &format!("{INTERNAL_V4}:7000"));
    refused(&w, Some(A), "uring-sendto", &format!("{INTERNET_V4}:7000"));
    refused(&w, Some(B), "uring-sendto", &format!("{INTERNAL_V4}:7000"));
}

#[test]
fn icmp_echo_needs_an_icmp_grant() {
    if !privileged("icmp_echo_needs_an_icmp_grant") {
        return;
    }
    let w = World::new().start();
    for op in ["ping", "ping-connect"] {
        ok(&w, Some(A), op, &format!("{INTERNAL_V4}:0"));
        ok(&w, Some(A), op, &v6(INTERNAL_V6, 0));
        refused(&w, Some(A), op, &format!("{INTERNET_V4}:0"));
    }
    // An unconnected echo is decided by egress alone (no sendmsg hook runs for ping sockets):
    // under `log: all` its allow is logged like any hook's.
    for addr in [INTERNAL_V4, INTERNAL_V6] {
        w.jumpd()
            .wait_event(&format!("the allowed echo to {addr}"), |e| {
                e["jump_uid"] == A
                    && e["jump_hook"] == "egress"
                    && e["jump_verdict"] == "allow"
                    && e["jump_dst_addr"] == addr
            });
    }
    // A connected IPv6 ping socket is refused at connect; an unconnected one is seen only by the
    // egress backstop, which drops the packet: on this kernel IPv6 ping sockets do not report
    // that drop to the caller (docs/enforcement.md), so the echo never comes back.
    refused(&w, Some(A), "ping-connect", &v6(INTERNET_V6, 0));
    let vanished = w.run(Some(A), "ping", &v6(INTERNET_V6, 0));
    assert_ne!(
        vanished,
        Outcome::Ok,
        "an ungranted IPv6 echo must not get through"
    );
    w.logged(A, "egress", "deny");
    // Without any icmp grant the ping socket itself is refused.
    refused(&w, Some(B), "socket", "ping4");
    refused(&w, Some(B), "socket", "ping6");
    w.logged(B, "sock_create", "deny");
}

#[test]
fn socket_kinds_without_a_grant_are_refused_at_creation() {
    if !privileged("socket_kinds_without_a_grant_are_refused_at_creation") {
        return;
    }
    let w = World::new();
    // Unenforced, the kernel itself lets B open these: every refusal below is jump's.
    assert_eq!(
        w.run(Some(B), "socket", "ping4"),
        Outcome::Ok,
        "ping sockets are open to all gids here"
    );
    assert_eq!(
        w.run(Some(B), "socket", "mptcp"),
        Outcome::Ok,
        "MPTCP is enabled in this kernel"
    );
    let w = w.start();
    refused(&w, Some(B), "socket", "mptcp");
    refused(&w, Some(A), "socket", "mptcp");
    refused(&w, Some(B), "socket", "ping4");
    ok(&w, Some(A), "socket", "ping4");
    // Root holds CAP_NET_RAW and an icmp grant to 198.51.100.10 only: its raw socket opens, and
    // the egress backstop decides each packet it writes.
    ok(&w, None, "raw-ping", &format!("{INTERNAL_V4}:0"));
    refused(&w, None, "raw-ping", &format!("{INTERNET_V4}:0"));
    w.logged(0, "egress", "deny");
}

/// Starts a long-running `jump-probe ARGS…` as `uid` in the cgroup and the jump host, and
/// returns it with its stdout and the first line it printed.
fn spawn_probe(
    w: &World,
    uid: u32,
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut cmd = Command::new(&w.bins.probe);
    cmd.arg("--cgroup")
        .arg(&w.cg.path)
        .arg("--netns")
        .arg(w.topo.host.path());
    cmd.args(["--uid", &uid.to_string(), "--gid", &uid.to_string()]);
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("jump-probe");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, out, line)
}

/// Runs `jump-probe accept|autolisten` as `uid`, and returns its port, the process and its
/// stdout (kept open: the probe reports there when it ends).
fn listener(
    w: &World,
    uid: u32,
    args: &[&str],
) -> (
    u16,
    std::process::Child,
    BufReader<std::process::ChildStdout>,
) {
    let (child, out, line) = spawn_probe(w, uid, args);
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("listener printed `{line}`"));
    let port = v["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("listener failed: {v}")) as u16;
    (port, child, out)
}

#[test]
fn listening_needs_a_listen_grant() {
    if !privileged("listening_needs_a_listen_grant") {
        return;
    }
    let w = World::new().start();
    ok(&w, Some(A), "listen", "8000");
    refused(&w, Some(A), "listen", "8001");
    refused(&w, Some(B), "listen", "8000");
    w.logged(B, "bind6", "deny");
    // A client socket binding an ephemeral port is untouched.
    ok(&w, Some(A), "tcp", &format!("{INTERNAL_V4}:7000"));

    // Granted: a client on the internal network reaches A's listener on 8000.
    let from_internal = Placement {
        netns: Some(w.topo.internal.path()),
        ..Default::default()
    };
    let (port, mut child, _out) = listener(&w, A, &["accept", "8000", "5"]);
    assert_eq!(
        probe::run(
            &w.bins,
            &from_internal,
            "connect",
            &format!("198.51.100.1:{port}")
        ),
        Outcome::Ok,
        "a granted listener answers"
    );
    assert!(child.wait().unwrap().success());

    // An autobound listener (listen without bind) fires no bind hook; its SYN-ACK is dropped.
    let (port, mut child, _out) = listener(&w, A, &["autolisten", "3"]);
    let got = probe::run(
        &w.bins,
        &from_internal,
        "connect",
        &format!("198.51.100.1:{port}"),
    );
    assert!(
        matches!(got, Outcome::Err(..)),
        "an ungranted autobound listener must not be reachable, got {got:?}"
    );
    let _ = child.wait();
    w.logged(A, "egress", "deny");
}

/// Audit mode refuses nothing, not even what no rule grants at all: a port to listen on, a raw
/// or ping socket without an `icmp` grant. Each is logged as `would-deny` (their enforce-mode
/// twins are refused in the tests above).
#[test]
fn audit_mode_refuses_nothing_that_no_rule_grants() {
    if !privileged("audit_mode_refuses_nothing_that_no_rule_grants") {
        return;
    }
    let w = World::new().start_audit();
    ok(&w, Some(B), "listen", "8000");
    w.logged(B, "bind6", "would-deny");
    ok(&w, Some(B), "socket", "ping4");
    w.logged(B, "sock_create", "would-deny");
    ok(&w, Some(B), "tcp", &format!("{INTERNAL_V4}:7000"));
    w.logged(B, "connect4", "would-deny");
}

/// A listener answers by its listen grant, never by where its peer is: an autobound one (no
/// bind, so no grant) must not answer a peer whose address and source port A's egress grants
/// hold either, which egress would otherwise have let its SYN-ACK out to, unlogged.
#[test]
fn an_autobound_listener_answers_no_peer_even_a_granted_one() {
    if !privileged("an_autobound_listener_answers_no_peer_even_a_granted_one") {
        return;
    }
    let w = World::new();
    // A port A may reach on the internal host that no echo server there holds, so the peer
    // can send from it.
    w.edit(
        "ports: [7000], proto: [tcp, udp]",
        "ports: [7000, 7005], proto: [tcp, udp]",
    );
    let w = w.start();
    let from_internal = Placement {
        netns: Some(w.topo.internal.path()),
        ..Default::default()
    };
    let (port, mut child, _out) = listener(&w, A, &["autolisten", "3"]);
    let got = probe::run_args(
        &w.bins,
        &from_internal,
        "connect-from",
        "7005",
        &[&format!("198.51.100.1:{port}")],
    );
    assert!(
        matches!(got, Outcome::Err(..)),
        "the SYN-ACK is dropped, so the peer's connect times out, got {got:?}"
    );
    let _ = child.wait();
    w.jumpd().wait_event("the dropped SYN-ACK", |e| {
        e["jump_uid"] == A
            && e["jump_hook"] == "egress"
            && e["jump_verdict"] == "deny"
            && e["jump_dst_port"] == 7005
    });
}

#[test]
fn a_socket_is_decided_by_the_uid_that_connects_it() {
    if !privileged("a_socket_is_decided_by_the_uid_that_connects_it") {
        return;
    }
    let w = World::new().start();
    // The socket is created by root, then connected after the process became A or B.
    ok(&w, Some(A), "tcp-presock", &format!("{INTERNAL_V4}:7000"));
    refused(&w, Some(B), "tcp-presock", &format!("{INTERNAL_V4}:7000"));
}

#[test]
fn revoking_a_grant_cuts_established_connections_promptly() {
    if !privileged("revoking_a_grant_cuts_established_connections_promptly") {
        return;
    }
    let w = World::new().start();
    let (mut child, mut out, line) =
        spawn_probe(&w, A, &["hold", &format!("{INTERNAL_V4}:7000"), "8"]);
    assert!(
        line.contains("connected"),
        "A should connect first, got `{line}`"
    );
    // A keeps its echo session while nothing changes: a window in which nothing may happen.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the session should still run"
    );

    w.edit("ports: [7000]", "ports: [7001]");
    let t0 = std::time::Instant::now();
    w.jumpd().signal(nix::sys::signal::Signal::SIGHUP);
    let status = child.wait().unwrap();
    let elapsed = t0.elapsed();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert!(
        status.success() && v["ok"] == false,
        "the session should end in an error, got {v}"
    );
    assert!(
        elapsed < std::time::Duration::from_millis(1200),
        "the error should come within a second, took {elapsed:?}"
    );
    assert_ne!(
        v["errno"], 11,
        "a read timeout means a stall, not a revocation: {v}"
    );
    eprintln!("session ended after {elapsed:?}: {v}");
    let revoked = w.jumpd().wait_line("the revocation", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("revoked"))
    });
    assert_eq!(revoked["jump_uid"], A);
    assert_eq!(revoked["jump_dst_port"], 7000);
}

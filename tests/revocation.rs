//! A connection's verdict lives with its socket: revocation after a reload and at the edges of
//! time windows, judged by the uid that connected the socket (its `JUMP_SOCKS` record), in
//! every network namespace the cgroup's processes use, and a clean close after `close()`.
//! Each test holds real connections to echo servers in the "internal" namespace and watches
//! how they end: `ECONNABORTED` (103) within a second is a revocation, anything slower a stall.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jump_tests::{
    netns::{INTERNAL_V4, INTERNAL_V6},
    privileged,
    probe::{closed_at_edge, unix_now, Held, ECONNABORTED},
};
use nix::sys::signal::Signal;

const A: u32 = 64001;
const B: u32 = 64002;

/// The policy: A may reach the internal host on `ports` (tcp and udp), with `extra` appended
/// to A's rule (an `expires:` or `schedule:` line), and `other` adds a rule for an unrelated
/// uid (a reload that changes nothing for A).
fn policy(ports: &str, extra: &str, other: bool) -> String {
    let mut p = format!(
        "defaults:\n  egress: deny\n  log: all\n  loopback: allow\n\
         zones:\n  internal: [{INTERNAL_V4}, \"{INTERNAL_V6}\"]\n\
         rules:\n  - name: a-internal\n    users: [{A}]\n{extra}\
         \x20   allow:\n      - {{to: internal, ports: [{ports}], proto: [tcp, udp]}}\n"
    );
    if other {
        p.push_str("  - name: someone-else\n    users: [64003]\n    allow:\n      - {to: internal, ports: [7001]}\n");
    }
    p
}

/// One test's world: the harness's (topology, echo servers on the internal host, a cgroup, a
/// policy directory of its own) with jumpd in the jump host namespace, and the generation it
/// has loaded.
struct World {
    base: jump_tests::world::World,
    generation: u64,
}

impl std::ops::Deref for World {
    type Target = jump_tests::world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    fn new(first: &str) -> Self {
        let mut base = jump_tests::world::World::bare(&[]);
        let specs: Vec<String> = [7000, 7001]
            .iter()
            .flat_map(|p| {
                [
                    format!("tcp:{INTERNAL_V4}:{p}"),
                    format!("tcp:[{INTERNAL_V6}]:{p}"),
                    format!("udp:{INTERNAL_V4}:{p}"),
                ]
            })
            .collect();
        base.serve(&base.topo.internal.path(), &specs);
        std::fs::write(base.policy_file("policy.yaml"), first).unwrap();
        base.start_in_host(&["--no-watch"]);
        World {
            base,
            generation: 1,
        }
    }

    /// Installs `text` as the next generation and returns when jumpd has loaded it.
    fn reload(&mut self, text: &str) -> Instant {
        std::fs::write(self.policy_file("policy.yaml"), text).unwrap();
        let t0 = Instant::now();
        self.jumpd().signal(Signal::SIGHUP);
        self.generation += 1;
        self.jumpd().wait_generation(self.generation);
        t0
    }

    /// `jump-probe [--creator C] ARGS…` as `uid` in the cgroup and `netns` (default: the jump
    /// host); returns it with its stdout after its first line, which must report a connection.
    fn spawn(&self, uid: u32, netns: Option<PathBuf>, creator: Option<u32>, args: &[&str]) -> Held {
        let mut cmd = Command::new(&self.bins.probe);
        cmd.arg("--cgroup")
            .arg(&self.cg.path)
            .arg("--netns")
            .arg(netns.unwrap_or_else(|| self.topo.host.path()))
            .args(["--uid", &uid.to_string(), "--gid", &uid.to_string()]);
        if let Some(c) = creator {
            cmd.args(["--creator", &c.to_string()]);
        }
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("jump-probe");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.contains("connected"),
            "`{}` should connect first, got `{line}`",
            args.join(" ")
        );
        Held::new(child, out)
    }

    /// The revocation record of a connection to `port` of uid `uid`.
    fn revoked(&self, uid: u32, proto: &str, port: u16) -> serde_json::Value {
        self.jumpd().wait_line(
            &format!("the revocation of {proto} port {port} of uid {uid}"),
            |l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("revoked"))
                    && l["jump_uid"] == uid
                    && l["jump_proto"] == proto
                    && l["jump_dst_port"] == port
            },
        )
    }
}

/// A running probe, killed (by pid) if the test ends before it does.
/// Asserts the held session ended with ECONNABORTED within a second of `since`.
fn aborted_promptly(h: &mut Held, since: Instant, what: &str) {
    let v = h.verdict();
    let took = since.elapsed();
    assert_eq!(
        v["errno"], ECONNABORTED,
        "{what}: the application should see ECONNABORTED, got {v}"
    );
    assert!(
        took < Duration::from_millis(1000),
        "{what}: the error should come within a second, took {took:?}"
    );
    eprintln!("{what}: ended after {took:?}: {v}");
}

fn v6(port: u16) -> String {
    format!("[{INTERNAL_V6}]:{port}")
}

fn v4(port: u16) -> String {
    format!("{INTERNAL_V4}:{port}")
}

#[test]
fn ipv6_tcp_is_revoked_on_reload() {
    if !privileged("ipv6_tcp_is_revoked_on_reload") {
        return;
    }
    let mut w = World::new(&policy("7000", "", false));
    let mut h = w.spawn(A, None, None, &["hold", &v6(7000), "10"]);
    // A window in which nothing may happen (no signal to wait on): the session must survive it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.running(), "the session runs while its grant stands");
    let t0 = w.reload(&policy("7001", "", false));
    aborted_promptly(&mut h, t0, "IPv6 TCP after the reload");
    let r = w.revoked(A, "tcp", 7000);
    assert_eq!(r["jump_dst_addr"], INTERNAL_V6);
    assert_eq!(
        r["jump_rule"], "a-internal",
        "the record names the rule that allowed it: {r}"
    );
    assert_eq!(r["jump_revoke_reason"], "reload to generation 2");
    assert_eq!(
        r["jump_comm"], "jump-probe",
        "the record names the connecting command: {r}"
    );
    assert_eq!(
        r["jump_pid"],
        h.child.pid(),
        "the record names the connecting process: {r}"
    );
}

/// The record names the process (its pid, not the connecting thread's id) and the thread that
/// connected (its name, as the kernel's own helper would).
#[test]
fn a_connect_from_a_thread_is_recorded_as_its_process_and_thread_name() {
    if !privileged("a_connect_from_a_thread_is_recorded_as_its_process_and_thread_name") {
        return;
    }
    let mut w = World::new(&policy("7000", "", false));
    let mut h = w.spawn(A, None, None, &["hold-thread", &v4(7000), "10"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.running(), "the session runs while its grant stands");
    let t0 = w.reload(&policy("7001", "", false));
    aborted_promptly(&mut h, t0, "a thread's TCP session after the reload");
    let r = w.revoked(A, "tcp", 7000);
    assert_eq!(r["jump_comm"], "probe-worker", "the connecting thread: {r}");
    assert_eq!(
        r["jump_pid"],
        h.child.pid(),
        "the process, not the thread: {r}"
    );
}

#[test]
fn a_failing_destroy_does_not_stop_the_pass() {
    if !privileged("a_failing_destroy_does_not_stop_the_pass") {
        return;
    }
    let listen = "    listen:\n      - {ports: [7100, 7101], proto: [udp]}\n";
    let mut w = World::new(&policy("7000", listen, false));
    // Two pairs of UDP sockets sharing a port: in one pair the kernel's lookup by address
    // finds the other socket, so destroying the first one by its cookie fails (ENOENT).
    let _twins = w.spawn(A, None, None, &["udp-twins", &v4(7000), "10", "7100"]);
    let mut tcp = w.spawn(A, None, None, &["hold", &v6(7000), "10"]);
    let t0 = w.reload(&policy("7001", listen, false));
    // UDP is handled before TCP in each namespace: the TCP revocation comes after the failure.
    aborted_promptly(&mut tcp, t0, "TCP after a failed UDP destroy");
    let failed = w.jumpd().wait_line("a failed destroy", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed to close udp"))
    });
    eprintln!("logged: {}", failed["message"]);
    w.revoked(A, "tcp", 7000);
    w.revoked(A, "udp", 7000);
}

#[test]
fn a_socket_created_by_b_and_connected_by_a_is_judged_as_a() {
    if !privileged("a_socket_created_by_b_and_connected_by_a_is_judged_as_a") {
        return;
    }
    let fin_port = 7005;
    let mut w = World::new(&policy("7000, 7005", "", false));
    let mut fin = Command::new(&w.bins.probe)
        .arg("--netns")
        .arg(w.topo.internal.path())
        .args(["fin-serve", &v4(fin_port), "8"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("fin server");
    let mut fin_out = BufReader::new(fin.stdout.take().unwrap());
    let mut line = String::new();
    fin_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    // 1. A reload that changes nothing for A leaves the connection alone (B has no grant).
    let mut h = w.spawn(A, None, Some(B), &["hold", &v4(fin_port), "3"]);
    w.reload(&policy("7000, 7005", "", true));
    // A window after the reload in which nothing may happen: a revocation pass would cut the
    // connection within it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        h.running(),
        "an unrelated reload must not cut A's connection made on B's socket"
    );
    // 2. After close() the FIN goes out as A's: the peer sees the close.
    let v = h.verdict();
    assert_eq!(v["ok"], true, "the session should run its full time: {v}");
    line.clear();
    fin_out.read_line(&mut line).unwrap();
    let _ = fin.kill();
    let _ = fin.wait();
    assert!(
        line.contains("\"fin\":true"),
        "the peer should see the FIN of the closed socket: `{line}`"
    );

    // 3. Revoking A's grant cuts it, and the record names A, not the creator B.
    let mut h = w.spawn(A, None, Some(B), &["hold", &v4(7000), "10"]);
    let t0 = w.reload(&policy("7005", "", true));
    aborted_promptly(&mut h, t0, "A's connection on B's socket");
    let r = w.revoked(A, "tcp", 7000);
    assert_ne!(r["jump_uid"], B);
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix time `secs`.
fn rfc3339(secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_rule_expiring_closes_its_connections_within_a_second() {
    if !privileged("a_rule_expiring_closes_its_connections_within_a_second") {
        return;
    }
    let mut w = World::new(&policy("7000", "", false));
    // A rule expiring in 3 to 4 s (whole seconds: the policy's precision), installed by a
    // reload once jumpd is up, so a slow start cannot eat the grant before A connects.
    let expiry = unix_now().as_secs() + 4;
    w.reload(&policy(
        "7000",
        &format!("    expires: {}\n", rfc3339(expiry)),
        false,
    ));
    let mut h = w.spawn(A, None, None, &["hold", &v4(7000), "15"]);
    closed_at_edge(&mut h, Duration::from_secs(expiry), "at expiry");
    let r = w.revoked(A, "tcp", 7000);
    assert_eq!(r["jump_revoke_reason"], "rule `a-internal` expired", "{r}");
}

#[test]
fn a_schedule_window_end_closes_its_connections_within_a_second() {
    if !privileged("a_schedule_window_end_closes_its_connections_within_a_second") {
        return;
    }
    let mut w = World::new(&policy("7000", "", false));
    // Schedules have minute precision: the window ends at the next minute at least 6 s away,
    // installed by a reload once jumpd is up.
    let mut end = (unix_now().as_secs() / 60 + 1) * 60;
    if end - unix_now().as_secs() < 6 {
        end += 60;
    }
    let hm = rfc3339(end);
    let hm = &hm[11..16];
    assert_ne!(
        hm, "00:00",
        "this test cannot run across midnight UTC; run it again"
    );
    let sched = format!(
        "    schedule: {{days: [mon, tue, wed, thu, fri, sat, sun], hours: \"00:00-{hm}\", tz: UTC}}\n"
    );
    w.reload(&policy("7000", &sched, false));
    let mut h = w.spawn(A, None, None, &["hold", &v4(7000), "75"]);
    closed_at_edge(&mut h, Duration::from_secs(end), "at the schedule's end");
    let r = w.revoked(A, "tcp", 7000);
    assert_eq!(
        r["jump_revoke_reason"], "schedule of `a-internal` ended",
        "{r}"
    );
}

#[test]
fn a_connection_in_another_network_namespace_is_revoked() {
    if !privileged("a_connection_in_another_network_namespace_is_revoked") {
        return;
    }
    let mut w = World::new(&policy("7000", "", false));
    // A process of the cgroup in the internal namespace (not jumpd's) connects there.
    let mut h = w.spawn(
        A,
        Some(w.topo.internal.path()),
        None,
        &["hold", &v4(7000), "10"],
    );
    let t0 = w.reload(&policy("7001", "", false));
    aborted_promptly(&mut h, t0, "a connection in another namespace");
    let r = w.revoked(A, "tcp", 7000);
    let own = std::fs::metadata(w.topo.host.path())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_ne!(
        r["jump_netns"], own,
        "it was found outside jumpd's namespace: {r}"
    );
}

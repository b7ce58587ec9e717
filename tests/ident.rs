//! Who a decision is about, under attack (issue 11, items 4, 6 and 7), on the real kernel with
//! `policies/tests/enforcement/policy.yaml`:
//! - uid 64001 (A): tcp+udp 7000 and icmp to the internal host; may listen on 8000
//! - uid 64002 (B): nothing
//!
//! Each test proves the refusal with a listener on the far side that sees nothing arrive, and
//! the granted twin with an echo that comes back.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use jump_tests::{
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4, INTERNAL_V6, INTERNET_V4},
    privileged,
    probe::{self, Outcome, Placement, Servers},
    Bins,
};

const A: u32 = 64001;

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/enforcement")
}

/// A directory of this test's own files (the subordinate uid file), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(jump_tests::unique("jump-ident-"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// Replaces `name` by rename, as `usermod` replaces /etc/subuid.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let tmp = self.0.join(format!("{name}+"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.0.join(name)).expect("rename");
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if !std::thread::panicking() {
                panic!("failed to remove `{}`: {e}", self.0.display());
            }
        }
    }
}

/// Topology, echo servers on the internal and internet hosts (tcp and udp 7000/7001), a
/// cgroup, and jumpd in the jump host's namespace.
struct World {
    bins: Bins,
    // Field order is drop order: jumpd first, then the cgroup, servers, namespaces.
    jumpd: Jumpd,
    cg: TestCgroup,
    _servers: Vec<Servers>,
    topo: Topology,
}

impl World {
    fn new(extra: &[&str]) -> Self {
        let bins = Bins::from_env();
        let topo = Topology::new().expect("topology");
        let specs = |a4: &str, a6: &str| -> Vec<String> {
            [7000, 7001]
                .iter()
                .flat_map(|p| {
                    [
                        format!("tcp:{a4}:{p}"),
                        format!("tcp:[{a6}]:{p}"),
                        format!("udp:{a4}:{p}"),
                    ]
                })
                .collect()
        };
        let servers = vec![
            Servers::start(
                &bins,
                &topo.internal.path(),
                &specs(INTERNAL_V4, INTERNAL_V6),
            )
            .expect("internal servers"),
            Servers::start(
                &bins,
                &topo.internet.path(),
                &specs(INTERNET_V4, "2001:db8:ff::10"),
            )
            .expect("internet servers"),
        ];
        let cg = TestCgroup::new().expect("cgroup");
        let jumpd = Jumpd::start_in(
            &bins,
            Some(&topo.host.path()),
            &policy_dir(),
            &cg.path,
            extra,
        )
        .expect("jumpd");
        World {
            bins,
            jumpd,
            cg,
            _servers: servers,
            topo,
        }
    }

    fn at(&self, uid: u32) -> Placement {
        Placement::user(uid, &self.cg.path, &self.topo.host.path())
    }

    fn run(&self, uid: u32, op: &str, target: &str) -> Outcome {
        probe::run(&self.bins, &self.at(uid), op, target)
    }

    fn ok(&self, uid: u32, op: &str, target: &str) {
        assert_eq!(
            self.run(uid, op, target),
            Outcome::Ok,
            "uid {uid} should be able to `{op} {target}`"
        );
    }

    fn refused(&self, uid: u32, op: &str, target: &str) {
        let got = self.run(uid, op, target);
        assert!(
            got.is_refused(),
            "uid {uid} should get EPERM from `{op} {target}`, got {got:?}"
        );
    }

    /// A TCP listener on `port` of the internal host, as root: the far side of a refused
    /// attempt. `FarSide::nothing_arrived` proves the attempt never reached it.
    fn far_side(&self, port: u16) -> FarSide {
        let mut child = Command::new(&self.bins.probe)
            .arg("--netns")
            .arg(self.topo.internal.path())
            .args(["accept", &port.to_string(), "3"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("jump-probe accept");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("listener line");
        assert!(
            line.contains("\"port\""),
            "the far-side listener failed: {line}"
        );
        FarSide { child, out }
    }
}

struct FarSide {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl FarSide {
    /// Waits out the listener's window and asserts no connection came.
    fn nothing_arrived(mut self, what: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("listener verdict");
        let _ = self.child.wait();
        assert!(
            line.contains("\"ok\":false") && line.contains("timed out"),
            "{what}: the far side should have seen no connection, it reported {line}"
        );
    }
}

impl Drop for FarSide {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Item 4: a uid from A's subordinate range — what `newuidmap` maps a user namespace's root to —
/// is decided and logged as A. The probe sets that uid directly as root, which gives the task
/// the same kernel uid a user namespace would.
#[test]
fn a_subordinate_uid_is_decided_and_logged_as_its_owner() {
    if !privileged("a_subordinate_uid_is_decided_and_logged_as_its_owner") {
        return;
    }
    let scratch = Scratch::new();
    // A range far from any account, at an odd start, as Debian's useradd gives (100000).
    const FIRST: u32 = 2_000_100_000;
    let sub = FIRST + 4242;
    let file = scratch.write("subuid", "# no ranges yet\n");
    let w = World::new(&["--subuid-file", file.to_str().expect("utf-8 path")]);

    // Without a range the uid is nobody in particular: the default refuses it.
    w.refused(sub, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.jumpd.wait_event("the bare uid's refusal", |e| {
        e["jump_uid"] == sub && e["jump_ns_uid"].is_null() && e["jump_verdict"] == "deny"
    });

    // The range appears (by rename, as usermod writes it): jumpd reloads on its own.
    scratch.write("subuid", &format!("{A}:{FIRST}:65536\n"));
    w.jumpd.wait_generation(2);

    // Granted twins: what A may do, the subordinate uid may do, and the echo comes back.
    w.ok(sub, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.ok(sub, "tcp", &format!("[{INTERNAL_V6}]:7000"));
    w.ok(sub, "udp", &format!("{INTERNAL_V4}:7000"));
    w.ok(sub, "listen", "8000");
    let allowed = w
        .jumpd
        .wait_event("the subordinate uid's grant, logged as A", |e| {
            e["jump_uid"] == A
                && e["jump_ns_uid"] == sub
                && e["jump_verdict"] == "allow"
                && e["jump_hook"] == "connect4"
        });
    let message = allowed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("({A}) as {sub} -> {INTERNAL_V4}:7000/tcp")),
        "the message names the owner and the namespaced uid: {message}"
    );

    // What A is refused, the subordinate uid is refused; nothing reaches the far side.
    let far = w.far_side(7002);
    w.refused(sub, "tcp", &format!("{INTERNAL_V4}:7002"));
    w.refused(sub, "tcp", &format!("{INTERNET_V4}:7000"));
    w.refused(sub, "udp", &format!("{INTERNAL_V4}:7001"));
    w.refused(sub, "listen", "8001");
    far.nothing_arrived("a subordinate uid connecting where its owner may not");
    for (hook, port) in [("connect4", 7002), ("bind6", 8001)] {
        w.jumpd
            .wait_event(&format!("the refusal at {hook}, logged as A"), |e| {
                e["jump_uid"] == A
                    && e["jump_ns_uid"] == sub
                    && e["jump_verdict"] == "deny"
                    && e["jump_hook"] == hook
                    && e["jump_dst_port"] == port
            });
    }

    // The range's edges: the uid after it is nobody's again.
    w.ok(FIRST + 65_535, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.refused(FIRST + 65_536, "tcp", &format!("{INTERNAL_V4}:7000"));
}

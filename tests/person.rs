//! `defaults.identity: person` on the real kernel: the audit login uid narrows what a process
//! may reach — `sudo` to root cannot widen what the person may reach, and a login uid an
//! unprivileged process forges for itself cannot widen what its uid may reach.

use std::process::Command;

use jump_tests::{
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4},
    privileged,
    probe::{FarSide, Lingering, Servers},
    Bins,
};
use nix::sys::signal::Signal;
use serde_json::Value;

/// alice: the person; bob: a user whose own grant is narrow.
const ALICE: u32 = 64401;
const BOB: u32 = 64402;

/// root may reach the internal host on 7000-7003 (7003: the far-side listener), alice only on
/// 7000, bob on 7000 and 7001.
fn policy(identity: &str) -> String {
    format!(
        r#"defaults:
  identity: {identity}
rules:
  - name: root-admin
    users: [0]
    allow: [{{to: {INTERNAL_V4}, ports: ["7000-7003"]}}]
  - name: alice-web
    users: [{ALICE}]
    allow: [{{to: {INTERNAL_V4}, ports: [7000]}}]
  - name: bob-two
    users: [{BOB}]
    allow: [{{to: {INTERNAL_V4}, ports: [7000, 7001]}}]
"#
    )
}

/// Fields drop in order: jumpd first (its guard detaches from the cgroup, which must still
/// exist), then what it enforced on.
struct World {
    jumpd: Jumpd,
    dir: tempfile::TempDir,
    _servers: Servers,
    cg: TestCgroup,
    topo: Topology,
    bins: Bins,
}

impl World {
    fn new(identity: &str) -> Self {
        let bins = Bins::from_env();
        let topo = Topology::new().expect("topology");
        let specs: Vec<String> = (7000..=7002)
            .map(|p| format!("tcp:{INTERNAL_V4}:{p}"))
            .collect();
        let servers = Servers::start(&bins, &topo.internal.path(), &specs).expect("servers");
        let cg = TestCgroup::new().expect("cgroup");
        let dir = tempfile::tempdir().expect("policy dir");
        std::fs::write(dir.path().join("p.yaml"), policy(identity)).expect("write policy");
        let jumpd = Jumpd::start(&bins, dir.path(), &cg.path, &[]).expect("jumpd");
        Self {
            bins,
            topo,
            cg,
            _servers: servers,
            jumpd,
            dir,
        }
    }

    /// Rewrites the policy with another `identity` and waits for generation `generation`.
    fn switch(&self, identity: &str, generation: u64) {
        std::fs::write(self.dir.path().join("p.yaml"), policy(identity)).expect("write policy");
        self.jumpd.signal(Signal::SIGHUP);
        self.jumpd.wait_generation(generation);
    }

    /// `jump-probe tcp INTERNAL:PORT` in the test cgroup: as root with login uid `login` set by
    /// a privileged process (`--loginuid`, as `pam_loginuid` does), or as `uid` forging
    /// `forge` for itself, kept alive until its event is read. Returns (pid, verdict).
    fn connect(&self, who: Who, port: u16) -> Lingering {
        let mut cmd = Command::new(&self.bins.probe);
        cmd.arg("--cgroup")
            .arg(&self.cg.path)
            .arg("--netns")
            .arg(self.topo.host.path())
            .arg("--linger");
        match who {
            Who::RootAs(login) => {
                cmd.args(["--loginuid", &login.to_string()]);
            }
            Who::Unset(uid) => {
                cmd.args(["--uid", &uid.to_string(), "--gid", &uid.to_string()]);
            }
            Who::Forging(uid, forged) => {
                cmd.args(["--uid", &uid.to_string(), "--gid", &uid.to_string()])
                    .args(["--forge-loginuid", &forged.to_string()]);
            }
        }
        cmd.args(["tcp", &format!("{INTERNAL_V4}:{port}")]);
        Lingering::start(cmd)
    }

    fn event(&self, pid: u32) -> Value {
        self.jumpd
            .wait_event(&format!("pid {pid}'s decision"), |e| e["jump_pid"] == pid)
    }

    /// A TCP listener as root on the internal host: proves a refused connect never arrived.
    fn far_side(&self, port: u16) -> FarSide {
        FarSide::start(&self.bins, &self.topo.internal.path(), port, 2)
    }
}

#[derive(Clone, Copy)]
enum Who {
    /// Root, in a session whose login uid a privileged process set (`sudo -i` after login).
    RootAs(u32),
    /// A uid with no login uid (a service started at boot).
    Unset(u32),
    /// A uid whose login uid was unset and which then claims one itself.
    Forging(u32, u32),
}

/// This test's own login uid must be unset, or its children could not have an unset one.
fn login_uid_unset() -> bool {
    let own = std::fs::read_to_string("/proc/self/loginuid").unwrap_or_default();
    own.trim() == "4294967295"
}

#[test]
fn with_identity_person_sudo_cannot_widen_what_the_person_may_reach() {
    if !privileged("with_identity_person_sudo_cannot_widen_what_the_person_may_reach") {
        return;
    }
    assert!(
        login_uid_unset(),
        "the test must run with an unset login uid (it did: {})",
        std::fs::read_to_string("/proc/self/loginuid").unwrap_or_default()
    );
    let w = World::new("uid");

    // `identity: uid` (today's behaviour): root with alice's login uid has root's grants.
    let p = w.connect(Who::RootAs(ALICE), 7001);
    assert!(
        p.allowed(),
        "with `uid`, root (login alice) reaches 7001: {}",
        p.verdict
    );
    let e = w.event(p.pid());
    assert_eq!(
        (
            &e["jump_verdict"],
            &e["jump_decided_by"],
            &e["jump_login_uid"]
        ),
        (&"allow".into(), &"uid".into(), &ALICE.into()),
        "{e}"
    );
    drop(p);

    w.switch("person", 2);
    // `identity: person`: root with alice's login uid reaches only what alice may.
    let far = w.far_side(7003);
    let p = w.connect(Who::RootAs(ALICE), 7003);
    assert!(
        p.refused(),
        "root (login alice) must not reach 7003: {}",
        p.verdict
    );
    far.nothing_arrived("root acting for alice");
    let e = w.event(p.pid());
    assert_eq!(
        (
            &e["jump_verdict"],
            &e["jump_decided_by"],
            &e["jump_uid"],
            &e["jump_login_uid"]
        ),
        (&"deny".into(), &"login".into(), &0.into(), &ALICE.into()),
        "the event names the uid and says the login uid refused: {e}"
    );
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("decided-by=login")),
        "{e}"
    );
    drop(p);
    let p = w.connect(Who::RootAs(ALICE), 7001);
    assert!(p.refused(), "nor 7001, which root may reach: {}", p.verdict);
    drop(p);
    let p = w.connect(Who::RootAs(ALICE), 7000);
    assert!(
        p.allowed(),
        "what alice may reach still works as root: {}",
        p.verdict
    );
    let e = w.event(p.pid());
    assert_eq!(
        (&e["jump_rule_name"], &e["jump_decided_by"]),
        (&"root-admin".into(), &"uid".into()),
        "{e}"
    );
    drop(p);

    // Root's own services (no login uid) are judged by their uid alone.
    let p = w.connect(Who::Unset(0), 7001);
    assert!(
        p.allowed(),
        "root without a login uid keeps its grants: {}",
        p.verdict
    );
    drop(p);

    // `jumpctl check --login` gives the same answers against the live policy.
    let check = |user: &str, login: &str, dest: &str| {
        let out = Command::new(&w.bins.jumpctl)
            .args(["check", user, dest, "--login", login, "--socket"])
            .arg(w.jumpd.socket())
            .output()
            .expect("jumpctl check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check("0", &ALICE.to_string(), &format!("{INTERNAL_V4}:7001"));
    assert_eq!(code, Some(1), "check --login says deny: {out}");
    assert!(out.contains("decided by the login uid"), "{out}");
    let (code, out) = check("0", &ALICE.to_string(), &format!("{INTERNAL_V4}:7000"));
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_forged_login_uid_cannot_widen_what_its_uid_may_reach() {
    if !privileged("a_forged_login_uid_cannot_widen_what_its_uid_may_reach") {
        return;
    }
    assert!(
        login_uid_unset(),
        "the test must run with an unset login uid"
    );
    let w = World::new("person");

    // bob, with no login uid, claims root (who may reach 7003): still only bob's grants.
    let far = w.far_side(7003);
    let p = w.connect(Who::Forging(BOB, 0), 7003);
    assert!(
        p.refused(),
        "bob claiming root must not reach 7003: {}",
        p.verdict
    );
    far.nothing_arrived("bob with a forged login uid 0");
    let e = w.event(p.pid());
    assert_eq!(
        (
            &e["jump_verdict"],
            &e["jump_decided_by"],
            &e["jump_login_uid"]
        ),
        (&"deny".into(), &"uid".into(), &0.into()),
        "bob's own uid refused: {e}"
    );
    drop(p);
    // Claiming alice can only narrow: 7001 (bob's, not alice's) is refused, 7000 works.
    let p = w.connect(Who::Forging(BOB, ALICE), 7001);
    assert!(p.refused(), "{}", p.verdict);
    drop(p);
    let p = w.connect(Who::Forging(BOB, ALICE), 7000);
    assert!(p.allowed(), "{}", p.verdict);
    drop(p);
    // The twin without a claim: bob's grants.
    let p = w.connect(Who::Unset(BOB), 7001);
    assert!(
        p.allowed(),
        "bob without a login uid reaches 7001: {}",
        p.verdict
    );
}

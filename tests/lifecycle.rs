//! The enforcement lifecycle: atomic reloads, a crash that leaves enforcement in force, a
//! restart that adopts it, and the deliberate detach that removes it.

use std::{path::PathBuf, process::Command};

use jump_tests::{
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4, INTERNET_V4},
    privileged,
    probe::{self, Outcome, Placement, Servers},
    Bins,
};

const A: u32 = 64001;

fn foundation() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/foundation")
}

fn servers(bins: &Bins, topo: &Topology) -> Vec<Servers> {
    let specs =
        |a: &str| -> Vec<String> { (7000..=7002).map(|p| format!("tcp:{a}:{p}")).collect() };
    vec![
        Servers::start(bins, &topo.internal.path(), &specs(INTERNAL_V4)).expect("internal servers"),
        Servers::start(bins, &topo.internet.path(), &specs(INTERNET_V4)).expect("internet servers"),
    ]
}

fn attached(cg: &TestCgroup) -> String {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(&cg.path)
        .output()
        .expect("bpftool");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_crash_leaves_enforcement_a_restart_adopts_it_and_only_detach_removes_it() {
    if !privileged("a_crash_leaves_enforcement_a_restart_adopts_it_and_only_detach_removes_it") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let _servers = servers(&bins, &topo);
    let cg = TestCgroup::new().expect("cgroup");
    let a = Placement::user(A, &cg.path, &topo.host.path());
    let granted = format!("{INTERNAL_V4}:7000");
    let internet = format!("{INTERNET_V4}:7000");

    let mut jumpd = Jumpd::start(&bins, &foundation(), &cg.path, &[]).expect("jumpd");
    assert!(probe::run(&bins, &a, "tcp", &internet).is_refused());

    jumpd.kill();
    assert!(
        attached(&cg).contains("egress"),
        "after kill -9 the programs stay attached:\n{}",
        attached(&cg)
    );
    assert!(
        probe::run(&bins, &a, "tcp", &internet).is_refused(),
        "a dead jumpd must not open the internet"
    );
    assert_eq!(
        probe::run(&bins, &a, "tcp", &granted),
        Outcome::Ok,
        "and grants keep working"
    );

    jumpd.restart().expect("restart");
    let ready = jumpd.wait_line("the adopting start", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("jumpd ready") && m.contains("(adopted)"))
    });
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("egress (adopted)"),
        "{ready}"
    );
    jumpd.wait_generation(2);
    assert!(probe::run(&bins, &a, "tcp", &internet).is_refused());
    assert_eq!(probe::run(&bins, &a, "tcp", &granted), Outcome::Ok);

    // A normal stop is not an opening either.
    jumpd.stop();
    assert!(
        probe::run(&bins, &a, "tcp", &internet).is_refused(),
        "a stopped jumpd keeps enforcing"
    );

    let log = jumpd.detach(&bins).expect("detach");
    assert!(log.contains("detached"), "{log}");
    assert!(
        !attached(&cg).contains("egress"),
        "detach removes every program:\n{}",
        attached(&cg)
    );
    assert_eq!(
        probe::run(&bins, &a, "tcp", &internet),
        Outcome::Ok,
        "after detach nothing is enforced"
    );
}

/// Two policies that differ for uid A: generation parity tells which one decided.
const P_ODD: &str = "rules:\n  - name: a-7000\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [7000]}]\n";
const P_EVEN: &str = "rules:\n  - name: a-7001\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [7001]}]\n";

#[test]
fn a_thousand_reloads_never_mix_generations_or_open_a_gap() {
    if !privileged("a_thousand_reloads_never_mix_generations_or_open_a_gap") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let _servers = servers(&bins, &topo);
    let cg = TestCgroup::new().expect("cgroup");
    let dir = std::env::temp_dir().join(jump_tests::unique("jump-storm-"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(&file, P_ODD).unwrap();
    // Every decision logged (no rate limit) and only SIGHUP reloads, so generation parity
    // tells which policy decided.
    let jumpd = Jumpd::start(
        &bins,
        &dir,
        &cg.path,
        &["--event-rate-window-ms", "0", "--no-watch"],
    )
    .expect("jumpd");

    // Clients connect in a loop to 7000 (odd generations), 7001 (even) and 7002 (never).
    let a = Placement::user(A, &cg.path, &topo.host.path());
    let targets: Vec<String> = (7000..=7002)
        .map(|p| format!("{INTERNAL_V4}:{p}"))
        .collect();
    let client = {
        let bins = bins.clone();
        let (a, targets) = (a.clone(), targets.clone());
        std::thread::spawn(move || {
            let mut cmd = Command::new(&bins.probe);
            cmd.args([
                "--cgroup",
                &a.cgroup.unwrap().display().to_string(),
                "--netns",
                &a.netns.unwrap().display().to_string(),
            ]);
            cmd.args([
                "--uid",
                &A.to_string(),
                "--gid",
                &A.to_string(),
                "storm",
                "8000",
            ])
            .args(&targets);
            let out = cmd.output().expect("storm");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("storm output")
        })
    };
    for generation in 2..=1001u64 {
        std::fs::write(&file, if generation % 2 == 1 { P_ODD } else { P_EVEN }).unwrap();
        jumpd.signal(nix::sys::signal::Signal::SIGHUP);
        jumpd.wait_generation(generation);
    }
    let counts = client.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let never = &counts[&targets[2]];
    assert_eq!(
        never["ok"], 0,
        "port 7002 is granted by neither policy: {counts}"
    );
    // Both policies decided part of the storm: it overlapped the reloads.
    assert!(
        counts[&targets[0]]["ok"].as_u64() > Some(0)
            && counts[&targets[1]]["ok"].as_u64() > Some(0),
        "the storm should span both policies: {counts}"
    );
    // Every logged decision matches the policy of the generation that made it.
    let mut checked = 0;
    for e in jumpd.events().iter().filter(|e| e["jump_uid"] == A) {
        let generation = e["jump_policy_generation"].as_u64().unwrap();
        let port = e["jump_dst_port"].as_u64().unwrap();
        let granted = if generation % 2 == 1 { 7000 } else { 7001 };
        let want = if port == granted { "allow" } else { "deny" };
        assert_eq!(
            e["jump_verdict"], want,
            "generation {generation} decided port {port} wrongly: {e}"
        );
        checked += 1;
    }
    assert!(
        checked > 100,
        "the storm should have produced many decisions, got {checked}"
    );
    eprintln!("1000 reloads, {counts}, {checked} logged decisions checked");
}

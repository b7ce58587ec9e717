//! The systemd unit (contrib/systemd/jumpd.service) against the real kernel: jumpd loads,
//! attaches, enforces and reloads with no capability beyond the unit's
//! `CapabilityBoundingSet=` (read from the unit file itself, so the test follows it), and ends
//! with only CAP_BPF, CAP_NET_ADMIN and CAP_SYS_PTRACE. No systemd here: `setpriv` applies
//! the bounding set the way the service manager would.

use std::process::Command;

use jump_tests::{cgroup::TestCgroup, daemon::Jumpd, privileged, Bins};

const UNIT: &str = include_str!("../contrib/systemd/jumpd.service");

/// `CAP_BPF CAP_NET_ADMIN …` of the unit's (last) `CapabilityBoundingSet=` line.
fn bounding_set() -> Vec<String> {
    UNIT.lines()
        .rev()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

#[test]
fn jumpd_enforces_and_reloads_within_the_units_capability_bounding_set() {
    if !privileged("jumpd_enforces_and_reloads_within_the_units_capability_bounding_set") {
        return;
    }
    let caps = bounding_set();
    assert!(
        !caps.iter().any(|c| c == "sys_admin" || c == "setpcap"),
        "the unit was tightened: {caps:?}"
    );
    let bounding = format!(
        "--bounding-set=-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let bins = Bins::from_env();
    let policy = tempfile::tempdir().expect("policy dir");
    std::fs::write(
        policy.path().join("10-a.yaml"),
        "defaults: {egress: deny}\nrules:\n  - name: a\n    users: [64504]\n    allow: [{to: [198.51.100.10], ports: [7000]}]\n",
    )
    .expect("policy");
    let cg = TestCgroup::new().expect("cgroup");
    let jumpd = Jumpd::start_prefixed(
        &bins,
        &["setpriv", &bounding, "--inh-caps=-all", "--"],
        policy.path(),
        &cg.path,
        &[],
    )
    .expect("jumpd within the unit's bounding set");
    jumpd.wait_generation(1);
    let status = |what: &str| {
        let out = Command::new(&bins.jumpctl)
            .args(["status", "--json", "--socket"])
            .arg(jumpd.socket())
            .output()
            .expect("jumpctl");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("status --json")
    };
    let s = status("after start");
    assert_eq!(
        s["capabilities"],
        serde_json::json!(["cap_bpf", "cap_net_admin", "cap_sys_ptrace"]),
        "{s:#}"
    );
    let hooks = s["hooks"].as_array().map(Vec::len).unwrap_or(0);
    assert!(hooks >= 9, "every program attached: {s:#}");
    // A reload writes the maps with what is left.
    std::fs::write(
        policy.path().join("10-a.yaml"),
        "defaults: {egress: deny}\nrules:\n  - name: a\n    users: [64504]\n    allow: [{to: [198.51.100.10], ports: [7001]}]\n",
    )
    .expect("policy");
    jumpd.wait_generation(2);
    let s = status("after a reload");
    assert_eq!(s["last_reload"]["ok"], true, "{s:#}");
}

//! The first enforced slice, end to end: one policy file from `policies/`, compiled by jumpd into
//! the kernel maps, decided by the connect4/connect6 programs on a test cgroup, and logged.

use std::path::PathBuf;

use jump_tests::{
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4, INTERNAL_V6, INTERNET_V4, INTERNET_V6},
    privileged,
    probe::{self, Outcome, Placement, Servers},
    Bins,
};

/// Granted tcp/7000 and udp/7000 on the internal hosts by `policies/tests/foundation`.
const A: u32 = 64001;
/// No grant at all.
const B: u32 = 64002;

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/foundation")
}

fn v6(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

#[test]
fn one_policy_file_is_enforced_per_uid_and_every_decision_is_logged() {
    if !privileged("one_policy_file_is_enforced_per_uid_and_every_decision_is_logged") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let specs = |a4: &str, a6: &str| -> Vec<String> {
        [7000, 7001]
            .iter()
            .flat_map(|p| {
                [
                    format!("tcp:{a4}:{p}"),
                    format!("tcp:{}", v6(a6, *p)),
                    format!("udp:{a4}:{p}"),
                ]
            })
            .collect()
    };
    let _internal = Servers::start(
        &bins,
        &topo.internal.path(),
        &specs(INTERNAL_V4, INTERNAL_V6),
    )
    .expect("internal servers");
    let _internet = Servers::start(
        &bins,
        &topo.internet.path(),
        &specs(INTERNET_V4, INTERNET_V6),
    )
    .expect("internet servers");
    let cg = TestCgroup::new().expect("cgroup");

    // Before jumpd runs, the network itself lets B reach everything: every refusal below is
    // the kernel program's doing, not a missing route.
    let unenforced = Placement::user(B, &cg.path, &topo.host.path());
    for target in [
        format!("{INTERNET_V4}:7000"),
        v6(INTERNET_V6, 7000),
        format!("{INTERNAL_V4}:7001"),
    ] {
        assert_eq!(
            probe::run(&bins, &unenforced, "tcp", &target),
            Outcome::Ok,
            "without jumpd, {target} should be reachable"
        );
    }

    let jumpd = Jumpd::start(&bins, &policy_dir(), &cg.path, &[]).expect("jumpd");
    let cases: &[(u32, &str, String, bool)] = &[
        (A, "tcp", format!("{INTERNAL_V4}:7000"), true),
        (A, "tcp", v6(INTERNAL_V6, 7000), true),
        (A, "udp", format!("{INTERNAL_V4}:7000"), true),
        (A, "tcp", format!("{INTERNAL_V4}:7001"), false),
        (A, "tcp", v6(INTERNAL_V6, 7001), false),
        (B, "tcp", format!("{INTERNAL_V4}:7000"), false),
        (B, "tcp", v6(INTERNAL_V6, 7000), false),
        (A, "tcp", format!("{INTERNET_V4}:7000"), false),
        (A, "tcp", v6(INTERNET_V6, 7000), false),
        (B, "tcp", format!("{INTERNET_V4}:7000"), false),
        (B, "tcp", v6(INTERNET_V6, 7000), false),
    ];
    for (uid, op, target, allowed) in cases {
        let at = Placement::user(*uid, &cg.path, &topo.host.path());
        let got = probe::run(&bins, &at, op, target);
        if *allowed {
            assert_eq!(got, Outcome::Ok, "uid {uid} should reach {target}/{op}");
        } else {
            assert!(
                got.is_refused(),
                "uid {uid} should be refused with EPERM on {target}/{op}, got {got:?}"
            );
        }
        let (addr, port) = target.rsplit_once(':').unwrap();
        let addr = addr.trim_matches(['[', ']']);
        let verdict = if *allowed { "allow" } else { "deny" };
        let e = jumpd.wait_event(&format!("uid {uid} -> {target}/{op}"), |e| {
            e["jump_uid"] == *uid
                && e["jump_dst_addr"] == addr
                && e["jump_dst_port"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .as_deref()
                    == Some(port)
                && e["jump_proto"] == *op
        });
        assert_eq!(
            e["jump_verdict"], verdict,
            "event for uid {uid} -> {target}/{op}: {e:#}"
        );
        let rule = e["jump_rule"].as_str().unwrap_or_default();
        if *allowed {
            assert!(
                rule.starts_with("a-internal ("),
                "an allow names its rule and location, got `{rule}`"
            );
        } else {
            assert_eq!(
                rule, "default",
                "a refusal with no matching rule names the default"
            );
        }
    }
}

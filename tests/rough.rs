//! Small things an admin meets first: `jumpd --version` names jumpd, and `jumpd --detach`
//! neither claims to be starting nor leaves empty pin directories behind.

use std::process::Command;

use jump_tests::{cgroup::TestCgroup, daemon::Jumpd, privileged, Bins};

#[test]
fn jumpd_version_names_jumpd() {
    let bins = Bins::from_env();
    let out = Command::new(&bins.jumpd)
        .arg("--version")
        .output()
        .expect("jumpd --version");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("jumpd {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn detach_says_what_it_did_and_leaves_no_empty_pin_directories() {
    if !privileged("detach_says_what_it_did_and_leaves_no_empty_pin_directories") {
        return;
    }
    let bins = Bins::from_env();
    let policy = tempfile::tempdir().expect("policy dir");
    std::fs::write(
        policy.path().join("p.yaml"),
        "defaults: {egress: deny}\nrules: []\n",
    )
    .unwrap();
    let cg = TestCgroup::new().expect("cgroup");
    let mut jumpd = Jumpd::start(&bins, policy.path(), &cg.path, &[]).expect("jumpd");
    jumpd.wait_generation(1);
    jumpd.stop();
    let root = jumpd.pin_root.clone();
    assert!(
        root.exists(),
        "a stopped jumpd leaves its enforcement pinned"
    );
    let line = jumpd.detach(&bins).expect("jumpd --detach");
    assert!(!line.contains("starting"), "detach is not a start: {line}");
    assert!(line.contains("detached "), "{line}");
    assert!(
        !root.exists(),
        "`{}` should be gone with the pins it held",
        root.display()
    );
    // Twice: nothing to detach, and still nothing created.
    let line = jumpd.detach(&bins).expect("jumpd --detach again");
    assert!(line.contains("nothing (no pinned state)"), "{line}");
    assert!(!root.exists(), "a detach of nothing creates nothing");
}

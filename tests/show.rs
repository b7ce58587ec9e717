//! `jumpctl show` against a running jumpd: it answers from the image jumpd installed in the
//! kernel, so audit mode (which rewrites every deny before the maps are written) shows as what
//! is enforced, not as the YAML says.

use jump_tests::{cgroup::TestCgroup, daemon::Jumpd, privileged, Bins};

const POLICY: &str = "\
defaults:
  egress: deny
  loopback: policy
rules:
  - name: a-internal
    users: [64503]
    allow:
      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}
    deny:
      - {to: [198.51.100.11], ports: [7000], proto: [tcp]}
";

fn show(bins: &Bins, jumpd: &Jumpd, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(&bins.jumpctl)
        .arg("show")
        .args(args)
        .arg("--socket")
        .arg(jumpd.socket())
        .output()
        .expect("run jumpctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn show_reads_the_installed_image_of_the_running_jumpd() {
    if !privileged("show_reads_the_installed_image_of_the_running_jumpd") {
        return;
    }
    let bins = Bins::from_env();
    let policy = tempfile::tempdir().expect("policy dir");
    let file = policy.path().join("10-a.yaml");
    std::fs::write(&file, POLICY).expect("policy file");
    let cg = TestCgroup::new().expect("cgroup");
    let f = file.display();
    for (mode, allow, deny) in [("enforce", "allow", "deny"), ("audit", "allow", "audit")] {
        let jumpd = Jumpd::start(&bins, policy.path(), &cg.path, &["--mode", mode]).expect("jumpd");
        jumpd.wait_generation(1);
        let (code, out, err) = show(&bins, &jumpd, &["64503"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("# generation 1, "), "{out}");
        for line in [
            "user 64503 (uid 64503)".to_string(),
            format!("      tcp 7000: {allow} by rule `a-internal` ({f}:5:5)"),
            format!("      tcp 7000: {deny} by rule `a-internal` ({f}:5:5)"),
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{mode} mode: `{line}` in:\n{out}"
            );
        }
        let (code, out, _) = show(&bins, &jumpd, &[]);
        assert_eq!(code, 0);
        assert!(
            out.contains("profile ") && out.contains(": 64503\n"),
            "{out}"
        );
        let (code, _, err) = show(&bins, &jumpd, &["jt-no-such-user"]);
        assert_eq!(
            (code, err.trim()),
            (2, "error: unknown user `jt-no-such-user`")
        );
        // Dropped: stopped, and its pins (so its programs) removed before the next mode.
        drop(jumpd);
    }
}

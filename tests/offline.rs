//! `jumpctl validate|check|test` away from the target host, as a policy repository's CI runs
//! them: the target's accounts from `--passwd/--group/--subuid` copies (and only those: this
//! host's users must not make a policy valid), machine output (`--json`, `--junit`), and exit
//! 2 for what cannot be answered. Runs the real binary; needs no root.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use jump_tests::Bins;

/// The target host's accounts: users this host does not have.
const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
jt-zed:x:64510:64510::/home/zed:/bin/bash
jt-yan:x:64511:64520::/home/yan:/bin/bash
";
const GROUP: &str = "\
root:x:0:
jt-zed:x:64510:
jt-ops:x:64520:jt-zed
";
const SUBUID: &str = "jt-zed:300000:65536\n";

const POLICY: &str = "\
defaults:
  egress: deny
rules:
  - name: ops-ssh
    groups: [jt-ops]
    allow:
      - {to: [198.51.100.0/24], ports: [22], proto: [tcp]}
  - name: zed-db
    users: [jt-zed]
    allow:
      - {to: [198.51.100.20], ports: [5432], proto: [tcp]}
";

const CASES: &str = "\
- {user: jt-yan, to: \"198.51.100.7:22\", expect: allow, rule: ops-ssh}
- {user: jt-zed, to: \"198.51.100.20:5432\", expect: allow}
- {user: jt-yan, to: \"198.51.100.20:5432\", expect: deny}
- {user: \"300001\", to: \"198.51.100.20:5432\", expect: allow}
";

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::create_dir(p.join("policies")).unwrap();
        std::fs::write(p.join("policies/10-access.yaml"), POLICY).unwrap();
        std::fs::write(p.join("cases.yaml"), CASES).unwrap();
        std::fs::write(p.join("passwd"), PASSWD).unwrap();
        std::fs::write(p.join("group"), GROUP).unwrap();
        std::fs::write(p.join("subuid"), SUBUID).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--passwd/--group/--subuid` of the target.
    fn accounts(&self) -> Vec<String> {
        ["passwd", "group", "subuid"]
            .iter()
            .flat_map(|f| [format!("--{f}"), self.path(f).display().to_string()])
            .collect()
    }
}

/// (exit code, stdout, stderr)
fn jumpctl(args: &[&str]) -> (i32, String, String) {
    let bins = Bins::from_env();
    assert!(
        bins.jumpctl.exists(),
        "`{}` not built (cargo xtask build)",
        bins.jumpctl.display()
    );
    let out = Command::new(&bins.jumpctl)
        .args(args)
        .output()
        .expect("run jumpctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn validate_check_and_test_against_the_targets_account_files() {
    let r = Repo::new();
    let dir = s(&r.path("policies"));
    let acc = r.accounts();
    let acc: Vec<&str> = acc.iter().map(String::as_str).collect();

    // This host has none of the target's users: without the files every name is unknown, and
    // all of them are reported at once.
    let (code, _, err) = jumpctl(&["validate", &dir]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown group `jt-ops`") && err.contains("unknown user `jt-zed`"),
        "{err}"
    );

    let (code, out, err) = jumpctl(&[&["validate", &dir][..], &acc].concat());
    assert_eq!(code, 0, "valid against the target's accounts: {err}");
    assert!(
        out.contains("valid policy, 3 rules"),
        "2 rules and the loopback rule: {out}"
    );

    let (code, out, _) = jumpctl(&[&["validate", "--json", &dir][..], &acc].concat());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("validate --json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["counts"]["rules"], 3);

    // jt-yan is in jt-ops by primary group only (gid 64520), as the group file says.
    let (code, out, err) = jumpctl(
        &[
            &["check", &dir, "jt-yan", "198.51.100.7:22", "--json"][..],
            &acc,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(v["allowed"], true, "{v:#}");

    let junit = r.path("junit.xml");
    let (code, out, err) = jumpctl(
        &[
            &[
                "test",
                &dir,
                &s(&r.path("cases.yaml")),
                "--json",
                "--junit",
                &s(&junit),
            ][..],
            &acc,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "every case passes against the target: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("test --json");
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(4), Some(0))
    );
    let xml = std::fs::read_to_string(&junit).expect("the JUnit file");
    assert!(
        xml.contains("<testsuite name=") && xml.matches("<testcase ").count() == 4,
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
}

#[test]
fn the_targets_files_replace_this_hosts_users_rather_than_add_to_them() {
    let r = Repo::new();
    // `root` exists here and in any NSS; the target's passwd file below has no such user.
    std::fs::write(r.path("passwd"), "jt-zed:x:64510:64510::/:/bin/sh\n").unwrap();
    std::fs::write(
        r.path("policies/20-root.yaml"),
        "rules:\n  - name: root-any\n    users: [root]\n    allow: [{to: 198.51.100.0/24}]\n",
    )
    .unwrap();
    let acc = r.accounts();
    let acc: Vec<&str> = acc.iter().map(String::as_str).collect();
    let dir = s(&r.path("policies"));
    let (code, _, err) = jumpctl(&[&["validate", &dir][..], &acc].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown user `root`"), "{err}");
}

/// A subordinate range over another account lets its owner become that account in a user
/// namespace (`newuidmap` reads only `/etc/subuid`), and so connect with its grants: jump cannot
/// close that, the subuid file must, so validate names the line.
#[test]
fn a_subordinate_range_over_another_account_is_warned_about_at_its_line() {
    let r = Repo::new();
    let acc = r.accounts();
    let acc: Vec<&str> = acc.iter().map(String::as_str).collect();
    let dir = s(&r.path("policies"));
    let (code, _, err) = jumpctl(&[&["validate", &dir][..], &acc].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("warning"),
        "the target's range covers nobody: {err}"
    );

    // jt-zed's second range reaches jt-yan's uid (64511).
    std::fs::write(
        r.path("subuid"),
        format!("{SUBUID}# one more\njt-zed:64500:100\n"),
    )
    .unwrap();
    let (code, out, err) = jumpctl(&[&["validate", &dir][..], &acc].concat());
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(out.contains("(1 warning)"), "{out}");
    let subuid = s(&r.path("subuid"));
    assert!(
        err.contains(&format!(
            "{subuid}:3:1: warning: the subordinate uids of `jt-zed` (64500-64599) include uid \
             64511 (an account): `jt-zed` can become it in a user namespace and connect with its \
             grants"
        )),
        "{err}"
    );
}

#[test]
fn what_cannot_be_answered_exits_2() {
    let r = Repo::new();
    let dir = s(&r.path("policies"));
    let missing = s(&r.path("no-such-passwd"));
    for args in [
        vec!["validate", "/nonexistent/jt-policies"],
        vec!["validate", &dir, "--passwd", &missing],
        vec![
            "check",
            &dir,
            "jt-zed",
            "198.51.100.20:5432",
            "--group",
            &missing,
        ],
        vec!["test", &dir, &missing],
        vec!["test", "/nonexistent/jt-policies", &missing],
    ] {
        let (code, out, err) = jumpctl(&args);
        assert_eq!(code, 2, "`jumpctl {}`: {out}{err}", args.join(" "));
        assert!(
            err.starts_with("error: ") || err.contains("cannot read"),
            "{err}"
        );
    }
}

#[test]
fn show_prints_a_users_effective_policy_from_the_compiled_image() {
    let r = Repo::new();
    let acc = r.accounts();
    let acc: Vec<&str> = acc.iter().map(String::as_str).collect();
    let dir = s(&r.path("policies"));
    let (code, out, err) = jumpctl(&[&["show", "--dir", &dir, "jt-zed"][..], &acc].concat());
    assert_eq!(code, 0, "{err}");
    let f = r.path("policies/10-access.yaml").display().to_string();
    for line in [
        "user jt-zed (uid 64510)".to_string(),
        "  subordinate uids 300000-365535 are decided as this user".to_string(),
        format!("      tcp 22: allow by rule `ops-ssh` ({f}:4:5)"),
        format!("      tcp 5432: allow by rule `zed-db` ({f}:8:5)"),
        "  anything else: deny (default); listening on any other port: deny".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "`{line}` in:\n{out}");
    }
    // A uid no rule names gets the default, said in so many words.
    let (code, out, _) = jumpctl(&[&["show", "--dir", &dir, "64599"][..], &acc].concat());
    assert_eq!(code, 0);
    assert!(
        out.contains("no rule names this user: the rules for everyone apply"),
        "{out}"
    );
    let (code, _, err) = jumpctl(&[&["show", "--dir", &dir, "jt-nobody"][..], &acc].concat());
    assert_eq!((code, err.trim()), (2, "unknown user `jt-nobody`"));
}

//! `jumpctl` subcommands end to end: whole outputs and exit codes.

use std::path::{Path, PathBuf};

use super::*;
use crate::resolve::FakeDirectory;

fn directory() -> FakeDirectory {
    FakeDirectory::default()
        .user("root", 0, 0)
        .user("alice", 1000, 1000)
        .user("bob", 1001, 1001)
        .user("carol", 1002, 1002)
        .group("ops", 2000, &["bob"])
        .subuid("alice", 100_000, 65_536)
}

fn policies() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

fn now() -> jiff::Timestamp {
    "2026-11-23T08:00:00Z".parse().unwrap()
}

/// A scratch policy directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("jumpctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, text) in files {
            std::fs::write(dir.join(f), text).unwrap();
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_validate(dir: &Path) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = validate(dir, &directory(), now(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn run_check(dir: &Path, user: &str, dest: &str, json: bool) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = check::run(
        dir,
        user,
        None,
        dest,
        now(),
        json,
        &directory(),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn validate_accepts_the_examples() {
    let (code, out, err) = run_validate(&policies());
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.ends_with(
            "valid policy, 8 rules, 5 profiles, 26 destination and 25 port entries (0 warnings)\n"
        ),
        "{out}"
    );
}

#[test]
fn validate_reports_every_error_and_exits_1() {
    let t = TempDir::new(
        "broken",
        &[
            ("10-zones.yaml", "zones:\n  dmz: [198.51.100.0/24]\n"),
            ("20-access.yaml", "rules:\n  - name: a\n    users: [alice, mallory]\n    allow: [{to: dnz, ports: [\"90-80\"]}]\n"),
        ],
    );
    let (code, out, err) = run_validate(&t.0);
    let f = t.0.join("20-access.yaml").display().to_string();
    assert_eq!(code, 1);
    assert_eq!(out, "");
    // Every error at once: the unknown user too, not only once the files are otherwise valid.
    assert_eq!(
        err,
        format!(
            "{f}:3:20: unknown user `mallory`\n  help: users come from /etc/passwd and NSS (LDAP, SSSD), or the file given with `--passwd`\n{f}:4:18: unknown zone `dnz`\n  help: did you mean `dmz`?\n{f}:4:31: invalid port range `90-80`: start is greater than end\nerror: invalid policy: 3 errors, 0 warnings\n"
        )
    );
}

#[test]
fn validate_reports_the_unknown_users_of_rules_with_errors_of_their_own() {
    // A rule without a name, with a name of the wrong type, or with a name already taken is
    // rejected at parse; its unknown users and groups are still reported with that error,
    // not only once the error is fixed.
    let allow = "    allow: [{to: 192.0.2.0/24, ports: [22]}]\n";
    let text = format!(
        "rules:\n  - name: a\n    users: [alice]\n{allow}  - name: a\n    users: [dup]\n{allow}  - users: [nameless]\n{allow}  - name: [x]\n    groups: [nogroup]\n{allow}"
    );
    let t = TempDir::new("own-errors", &[("20-access.yaml", &text)]);
    let (code, out, err) = run_validate(&t.0);
    let f = t.0.join("20-access.yaml").display().to_string();
    let user_help = "  help: users come from /etc/passwd and NSS (LDAP, SSSD), or the file given with `--passwd`";
    let group_help =
        "  help: groups come from /etc/group and NSS, or the file given with `--group`";
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "{f}:5:5: duplicate rule `a`: first defined at {f}:2:5\n\
             {f}:6:13: unknown user `dup`\n{user_help}\n\
             {f}:8:5: rule has no `name`\n  help: every rule needs a unique `name`; events and `jumpctl check` show it\n\
             {f}:8:13: unknown user `nameless`\n{user_help}\n\
             {f}:10:11: `name` must be a string, found a list\n\
             {f}:11:14: unknown group `nogroup`\n{group_help}\n\
             error: invalid policy: 6 errors, 0 warnings\n"
        )
    );
}

#[test]
fn validate_of_an_unreadable_directory_exits_2_and_json_has_one_shape() {
    let (code, out, err) = run_validate(Path::new("/nonexistent/policy"));
    assert_eq!(code, 2, "no answer, not an invalid policy");
    assert_eq!(out, "");
    assert!(
        err.starts_with("error: cannot read policy directory `/nonexistent/policy`: "),
        "{err}"
    );
    let t = TempDir::new(
        "json",
        &[(
            "p.yaml",
            "rules:\n  - name: a\n    users: [mallory]\n    allow: [{to: 10.0.0.0/8}]\n",
        )],
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = super::offline::validate(&t.0, &directory(), now(), true, &mut out, &mut err);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 3);
    assert_eq!(v["errors"][0]["message"], "unknown user `mallory`");
    assert_eq!(v["warnings"], serde_json::json!([]));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = super::offline::validate(&policies(), &directory(), now(), true, &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (v["valid"].clone(), v["counts"]["rules"].clone()),
        (true.into(), 8.into())
    );
}

#[test]
fn validate_prints_warnings_but_passes() {
    let t = TempDir::new(
        "warn",
        &[("p.yaml", "rules:\n  - name: old\n    users: [alice]\n    allow: [{to: 10.0.0.0/8}]\n    expires: 2025-01-01T00:00:00Z\n")],
    );
    let (code, out, err) = run_validate(&t.0);
    let f = t.0.join("p.yaml").display().to_string();
    assert_eq!(code, 0);
    assert_eq!(
        err,
        format!(
            "{f}:2:5: warning: rule `old` expired at 2025-01-01T00:00:00Z: it can never match\n"
        )
    );
    assert!(out.ends_with("(1 warning)\n"), "{out}");
}

#[test]
fn check_explains_and_sets_the_exit_code() {
    let (code, out, _) = run_check(&policies(), "alice", "198.51.100.130:5432", false);
    let p = policies().display().to_string();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "allow: alice (uid 1000) → 198.51.100.130:5432/tcp at 2026-11-23T08:00:00Z\n  decided by rule `dba` at {p}/20-access.yaml:10:5, expires 2026-12-31T18:00:00Z\n  matched: allow entry at {p}/20-access.yaml:12:13 of rule `dba`\n"
        )
    );
    let (code, out, _) = run_check(&policies(), "bob", "169.254.169.254:80", false);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("deny: bob (uid 1001) → 169.254.169.254:80/tcp"),
        "{out}"
    );
    let (code, out, _) = run_check(&policies(), "1001", "8.8.8.8:443", false);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "deny: uid 1001 → 8.8.8.8:443/tcp at 2026-11-23T08:00:00Z\n  decided by the default (`defaults.egress: deny`): no rule allows it\n"
    );
    let (code, out, _) = run_check(&policies(), "bob", "203.0.113.1:443", false);
    assert_eq!(code, 0, "audit lets the connection through");
    assert!(
        out.starts_with("audit (allowed, logged as \"would deny\"): bob"),
        "{out}"
    );
}

#[test]
fn check_decides_a_subordinate_uid_as_its_owner() {
    let (code, out, _) = run_check(&policies(), "100005", "198.51.100.130:5432", false);
    let p = policies().display().to_string();
    assert_eq!(code, 0, "alice's grant: {out}");
    assert_eq!(
        out,
        format!(
            "allow: uid 100005 → 198.51.100.130:5432/tcp at 2026-11-23T08:00:00Z\n  uid 100005 is a subordinate uid of uid 1000 (/etc/subuid): decided as uid 1000\n  decided by rule `dba` at {p}/20-access.yaml:10:5, expires 2026-12-31T18:00:00Z\n  matched: allow entry at {p}/20-access.yaml:12:13 of rule `dba`\n"
        )
    );
}

#[test]
fn check_json_is_machine_readable() {
    let (code, out, _) = run_check(&policies(), "carol", "[2001:db8:1::7]:22", true);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allowed"], true);
    assert!(v.get("generation").is_none(), "offline: no generation");
    let v = &v["report"];
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["uid"], 1002);
    assert_eq!(v["rule"]["name"], "contractor-window");
    assert_eq!(
        v["rule"]["schedule"],
        "mon,tue,wed,thu,fri 08:00-18:00 Europe/Paris"
    );
    assert_eq!(v["matches"].as_array().unwrap().len(), 1);
}

#[test]
fn check_errors_exit_2() {
    let (code, _, err) = run_check(&policies(), "mallory", "198.51.100.7:22", false);
    assert_eq!((code, err.as_str()), (2, "unknown user `mallory`\n"));
    let (code, _, err) = run_check(&policies(), "alice", "nowhere:22", false);
    assert_eq!(code, 2);
    assert_eq!(err, "invalid destination `nowhere:22`: expected `ADDR:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]` or `ADDR/icmp`\n");
    let (code, _, _) = run_check(
        Path::new("/nonexistent/policy"),
        "alice",
        "198.51.100.7:22",
        false,
    );
    assert_eq!(code, 2);
}

#[test]
fn test_cases_report_failures_with_their_line() {
    let t = TempDir::new(
        "cases",
        &[("cases.yaml", "- {user: alice, to: \"198.51.100.130:5432\", expect: allow}\n- {user: alice, to: \"198.51.100.7:22\", expect: allow}\n- {user: bob, to: \"169.254.169.254:80\", expect: deny, rule: dns}\n")],
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let cases = t.0.join("cases.yaml");
    let code = run_cases(&policies(), &cases, &directory(), now(), &mut out, &mut err);
    let c = cases.display().to_string();
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "{c}:2:3: alice → 198.51.100.7:22/tcp: expected allow, got deny by rule `default`\n{c}:3:3: bob → 169.254.169.254:80/tcp: expected deny by rule `dns`, got deny by rule `no-metadata`\n1 passed, 2 failed\n"
        )
    );
}

#[test]
fn schema_subcommand_prints_the_schema() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(&Command::Schema, &mut out, &mut err), 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        policy::schema::json_schema()
    );
}

#[test]
fn check_listen_on_port_0_answers_as_the_bind_hook() {
    let (code, out, err) = run_check(&policies(), "alice", "listen:0", false);
    assert_eq!((code, err.as_str()), (exit::OK, ""), "{out}");
    assert_eq!(
        out,
        "allow: alice (uid 1000) → listen:0/tcp at 2026-11-23T08:00:00Z\n  port 0 asks the kernel for an ephemeral port: binding it is always allowed\n"
    );
}

#[test]
fn check_at_refuses_times_the_kernel_cannot_express() {
    for at in [
        "1969-12-31T23:59:59Z",
        "2555-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        let e = parse_time(at).unwrap_err();
        assert_eq!(
            e,
            format!("invalid time `{at}`: out of range; a time must be between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33Z, what the kernel's clock can express")
        );
    }
    assert_eq!(
        parse_time("2026-01-01T00:00:00+25:00").unwrap_err(),
        "invalid time `2026-01-01T00:00:00+25:00`: the offset is out of range; RFC 3339 offsets run from -23:59 to +23:59"
    );
}

#[test]
fn a_live_answer_in_audit_mode_says_the_denial_is_only_logged() {
    let (code, out, _) = run_check(&policies(), "alice", "203.0.113.10:443", true);
    assert_eq!(code, 1, "{out}");
    // The offline JSON is the live reply's shape: it reads back as jumpd's answer would.
    let mut answer: crate::explain::CheckAnswer = serde_json::from_str(&out).unwrap();
    assert!(!check::render(&answer).contains("audit mode"));
    answer.mode = Some("audit".into());
    assert!(check::render(&answer).ends_with(
        "  jumpd runs in audit mode: this connection is allowed and logged as \"would deny\"\n"
    ));
}

#[test]
fn example_test_cases_pass() {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_cases(
        &policies(),
        &policies().join("tests/access.yaml"),
        &crate::compile::tests_examples::demo_directory(),
        "2026-11-23T12:00:00Z".parse().unwrap(),
        &mut out,
        &mut err,
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{out}{}", String::from_utf8_lossy(&err));
    assert!(out.ends_with(" passed, 0 failed\n"), "{out}");
}

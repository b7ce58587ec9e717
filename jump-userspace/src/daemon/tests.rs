//! Reload and control logic against the fake datapath: what a rejected reload keeps, what a
//! successful one reports, what audit mode writes, and what the control requests answer.

use std::path::Path;

use jump_common::action;

use super::{handlers::check, *};
use crate::datapath::Fake;

const GOOD: &str = "\
defaults:
  egress: deny
rules:
  - name: a-internal
    users: [64001]
    allow:
      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}
";

const MORE: &str = "\
defaults:
  egress: deny
rules:
  - name: a-internal
    users: [64001]
    allow:
      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}
  - name: b-web
    users: [64002]
    allow:
      - {to: [198.51.100.10], ports: [443], proto: [tcp]}
";

const BROKEN: &str = "\
defaults:
  egress: deny
rules:
  - name: a-internal
    users: [64001]
    allow:
      - {to: [198.51.100.10], ports: [90-80], proto: [tcp]}
";

pub(super) fn opts(dir: &Path, mode: Mode) -> Options {
    Options {
        config: None,
        policy_dir: dir.to_path_buf(),
        cgroup: "/nonexistent".into(),
        pin_dir: "/nonexistent".into(),
        log_format: None,
        mode,
        control_socket: "/nonexistent/jumpd.sock".into(),
        control_group: "root".into(),
        rate_limit: config::RateLimit::default(),
        watch: false,
        debug_kernel: false,
        subuid_file: "/etc/subuid".into(),
        grant_max: super::grants::DEFAULT_MAX_DURATION,
        metrics_listen: None,
        etcd: None,
        node_name: "test".into(),
        state_dir: "/nonexistent".into(),
        policy_dir_given: true,
    }
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("p.yaml"), text).unwrap();
}

#[test]
fn a_rejected_reload_keeps_the_active_generation_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    assert_eq!(st.generation(), 1);
    let before = dp.active.clone();

    write(dir.path(), BROKEN);
    reload(&mut dp, &mut st, &o, "sighup");
    assert_eq!(
        st.generation(),
        1,
        "the failed reload does not bump the generation"
    );
    assert_eq!(dp.active, before, "the kernel still holds generation 1");
    let r = st.last_reload().unwrap();
    assert!(!r.ok);
    assert_eq!(r.trigger, "sighup");
    let e = r.error.as_deref().unwrap();
    assert!(
        e.contains("p.yaml:7:"),
        "the error names the file and line: {e}"
    );

    write(dir.path(), MORE);
    dp.fail_next = true;
    reload(&mut dp, &mut st, &o, "jumpctl");
    assert_eq!(
        st.generation(),
        1,
        "a datapath failure keeps the generation too"
    );
    assert_eq!(
        st.last_reload().unwrap().error.as_deref(),
        Some("injected failure")
    );
}

#[test]
fn a_successful_reload_reports_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    write(dir.path(), MORE);
    reload(&mut dp, &mut st, &o, "jumpctl");
    let r = st.last_reload().unwrap();
    assert!(r.ok);
    assert_eq!(r.generation, 2);
    let c = r.changes.as_ref().unwrap();
    assert_eq!(c.rules_added, ["b-web"]);
    assert_eq!(c.users_added, [64002]);
    assert!(c.rules_removed.is_empty() && c.users_removed.is_empty());
    assert_eq!(dp.active.as_ref().unwrap().0, 2);
}

#[test]
fn a_reload_that_changes_nothing_keeps_the_generation_whoever_asks() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    for trigger in ["watch: /etc/passwd", "sighup", "jumpctl"] {
        reload(&mut dp, &mut st, &o, trigger);
        assert_eq!(
            st.generation(),
            1,
            "{trigger}: the same policy is not a new generation"
        );
        assert_eq!(
            dp.active.as_ref().map(|(g, _)| *g),
            Some(1),
            "nothing applied"
        );
        assert!(st.last_reload().unwrap().summary.starts_with("no change"));
    }
}

#[test]
fn audit_mode_installs_an_image_that_never_refuses_but_check_explains_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Audit);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    let (_, image) = dp.active.clone().unwrap();
    assert_eq!(
        image.default_action,
        action::AUDIT,
        "the kernel gets the audited image"
    );
    let v = image.lookup(64002, "203.0.113.10".parse().unwrap(), 6, 7000, 0);
    assert_eq!(v.action, action::AUDIT);

    let reply = check(&st, &o, "64002", None, "203.0.113.10:7000", None);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        reply.data["allowed"], false,
        "check answers for the policy as written"
    );
    assert_eq!(
        reply.data["mode"], "audit",
        "the client says the denial is only logged (`ctl::check::render`)"
    );
    let reply = check(&st, &o, "64001", None, "198.51.100.10:7000", None);
    assert_eq!(reply.data["allowed"], true);
    let reply = check(&st, &o, "64001", None, "198.51.100.10", None);
    assert_eq!(reply.kind, Some(ErrorKind::Invalid));
}

#[test]
fn status_and_stats_describe_the_active_policy() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), MORE);
    reload(&mut dp, &mut st, &o, "start");
    let s = status(&dp, &st, &o);
    // The compiler adds its own loopback rule to the two written ones.
    assert_eq!((s.generation, s.rules, s.users, s.profiles), (1, 3, 2, 3));
    assert_eq!(s.mode, "enforce");
    assert_eq!(s.policy_sha256.len(), 64);
    assert!(s.last_reload.unwrap().ok);
    let stats = stats(&dp, &st).unwrap();
    let names: Vec<&str> = stats.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["default", "loopback", "a-internal", "b-web"]);
}

#[test]
fn status_shows_the_last_attempt_and_when_the_directory_matches_again() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    write(dir.path(), BROKEN);
    reload(&mut dp, &mut st, &o, "watch: p.yaml");
    assert!(!st.last_reload().unwrap().ok);
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "watch: p.yaml");
    let last = st.last_reload().unwrap();
    assert!(last.ok, "the revert is the last attempt, and it succeeded");
    assert_eq!(
        last.summary,
        "no change: the policy directory matches generation 1"
    );
    assert_eq!(st.generation(), 1);
}

#[test]
fn a_live_check_at_any_moment_answers_without_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(
        dir.path(),
        "rules:\n  - name: office\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [22]}]\n    schedule: {days: [mon], hours: \"08:00-18:00\"}\n",
    );
    reload(&mut dp, &mut st, &o, "start");
    for at in [
        "2099-06-01T09:00:00Z",
        "2099-06-02T09:00:00Z",
        "1971-01-04T09:00:00Z",
        "2554-07-21T23:34:33Z",
    ] {
        let r = check(&st, &o, "64001", None, "198.51.100.10:22", Some(at));
        assert!(r.ok, "{at}: {:?}", r.error);
        let monday = at.starts_with("2099-06-01") || at.starts_with("1971-01-04");
        assert_eq!(r.data["allowed"], monday, "{at}");
    }
    let r = check(
        &st,
        &o,
        "64001",
        None,
        "198.51.100.10:22",
        Some("2555-01-01T00:00:00Z"),
    );
    assert_eq!(r.kind, Some(ErrorKind::Invalid));
    assert!(!r.error.unwrap().contains("internal error"));
}

#[test]
fn rewritten_maps_are_reported_in_status_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    check_integrity(&mut dp, &mut st);
    let s = status(&dp, &st, &o);
    assert_eq!((s.integrity.checks, s.counters.maps_tampered), (1, 0));
    assert!(s.integrity.last_tampering.is_none());

    dp.tampered = vec!["JUMP_SLOTS[1]: default action 1".into()];
    check_integrity(&mut dp, &mut st);
    assert!(dp.tampered.is_empty(), "the maps were restored");
    let s = status(&dp, &st, &o);
    assert_eq!(s.counters.maps_tampered, 1);
    let t = s.integrity.last_tampering.as_ref().unwrap();
    assert_eq!(
        (t.generation, t.what.as_slice(), t.restored),
        (
            1,
            &["JUMP_SLOTS[1]: default action 1".to_string()][..],
            true
        )
    );
    check_integrity(&mut dp, &mut st);
    assert_eq!(
        status(&dp, &st, &o).counters.maps_tampered,
        1,
        "a restored image is not counted again"
    );
}

/// A grant and its revocation apply to the policy in force, not to whatever the policy
/// directory holds at that moment: a broken (or hostile) edit there must not keep a revoked
/// grant in the kernel while `jumpctl revoke` says it is gone.
#[test]
fn a_revocation_holds_while_the_policy_directory_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), Mode::Enforce);
    let (mut dp, mut st) = (Fake::default(), State::new());
    let admin = control::Peer {
        uid: 0,
        gid: 0,
        pid: None,
    };
    let allows = |dp: &Fake| {
        let (_, image) = dp.active.clone().unwrap();
        image
            .lookup(64002, "198.51.100.20".parse().unwrap(), 6, 22, 0)
            .action
            == action::ALLOW
    };
    write(dir.path(), GOOD);
    reload(&mut dp, &mut st, &o, "start");
    write(dir.path(), BROKEN);
    reload(&mut dp, &mut st, &o, "watch: p.yaml");
    assert!(!st.last_reload().unwrap().ok);
    let req = protocol::GrantRequest {
        user: "64002".into(),
        dests: vec!["198.51.100.20:22/tcp".into()],
        duration: Some("1h".into()),
        until: None,
        reason: "INC-1".into(),
        session: None,
    };
    let reply = grants::grant(&mut dp, &mut st, &o, &admin, &req);
    assert!(reply.ok, "granted onto the policy in force: {reply:?}");
    assert!(allows(&dp));
    assert_eq!(st.generation(), 2);
    let last = st.last_reload().unwrap();
    assert!(
        !last.ok && last.error.as_deref().unwrap().contains("p.yaml:7:"),
        "status still shows that the directory is rejected: {last:?}"
    );

    let reply = grants::revoke(&mut dp, &mut st, &o, &admin, 1);
    assert!(reply.ok, "{reply:?}");
    assert!(!allows(&dp), "the kernel no longer holds the grant");
    assert_eq!(st.generation(), 3);
    assert!(st.grants.list().is_empty());
    let s = status(&dp, &st, &o);
    assert_eq!(s.rules, 2, "the policy in force, without the grant");

    // The directory is read again by a reload proper, which still refuses it.
    reload(&mut dp, &mut st, &o, "sighup");
    assert!(!st.last_reload().unwrap().ok);
    assert_eq!(st.generation(), 3);

    // A revocation that cannot be applied keeps the grant, and says so.
    let reply = grants::grant(&mut dp, &mut st, &o, &admin, &req);
    assert!(reply.ok, "{reply:?}");
    dp.fail_next = true;
    let reply = grants::revoke(&mut dp, &mut st, &o, &admin, 2);
    assert!(!reply.ok);
    assert!(
        reply
            .error
            .as_deref()
            .unwrap()
            .contains("grant 2 is still in force"),
        "{reply:?}"
    );
    assert!(allows(&dp));
    assert_eq!(st.grants.list().len(), 1, "still listed");
}

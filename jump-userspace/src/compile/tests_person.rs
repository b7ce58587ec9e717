//! `defaults.identity: person` and session-scoped rules, by example: the compiled image, the
//! reference evaluator and `jumpctl check --login` answer alike.

use jump_common::{action, LOGIN_UNSET};

use super::*;
use crate::{
    eval, explain, policy,
    resolve::{self, FakeDirectory},
};

fn directory() -> FakeDirectory {
    FakeDirectory::default()
        .user("root", 0, 0)
        .user("alice", 1000, 1000)
        .user("bob", 1001, 1001)
}

const POLICY: &str = r#"defaults:
  identity: person
rules:
  - name: root-anywhere
    users: [root]
    allow: [{to: 198.51.100.0/24}]
    listen: [{ports: ["8000-8100"]}]
  - name: alice-web
    users: [alice]
    allow: [{to: 198.51.100.10, ports: [443]}]
    listen: [{ports: [8080]}]
  - name: bob-deny
    users: [bob]
    deny: [{to: 198.51.100.10}]
    allow: [{to: 198.51.100.0/24}]
"#;

fn compiled(src: &str) -> Compiled {
    let loaded = policy::load_str("p.yaml", src).unwrap();
    compile_full(&loaded.policy, &directory(), jiff::Timestamp::now()).unwrap()
}

fn ask(
    c: &Compiled,
    uid: u32,
    login: Option<(&str, u32)>,
    dest: &str,
) -> (&'static str, String, &'static str) {
    let d = explain::parse_dest(dest).unwrap();
    let r = explain::check_person(
        c,
        "u",
        uid,
        login.map(|(n, u)| (n.to_string(), u)),
        d,
        jiff::Timestamp::now(),
    )
    .unwrap();
    (r.verdict.check_word(), r.rule.name, r.decided_by)
}

#[test]
fn sudo_cannot_widen_what_the_person_reaches() {
    let c = compiled(POLICY);
    assert_eq!(c.image.identity, jump_common::identity::PERSON);
    let alice = Some(("alice", 1000));
    assert_eq!(
        ask(&c, 0, None, "198.51.100.22:22"),
        ("allow", "root-anywhere".into(), "uid"),
        "root's own services (no login uid) are judged by uid alone"
    );
    assert_eq!(
        ask(&c, 0, alice, "198.51.100.22:22"),
        ("deny", "default".into(), "login"),
        "root with alice's login uid reaches only what alice may"
    );
    assert_eq!(
        ask(&c, 0, alice, "198.51.100.10:443"),
        ("allow", "root-anywhere".into(), "uid"),
        "where both allow, the uid's rule is reported"
    );
    assert_eq!(
        ask(&c, 1001, alice, "198.51.100.10:443"),
        ("deny", "bob-deny".into(), "uid"),
        "a login uid never widens: bob's deny stands"
    );
    assert_eq!(
        ask(&c, 0, Some(("bob", 1001)), "198.51.100.10:443"),
        ("deny", "bob-deny".into(), "login"),
        "the login uid's profile's denies apply"
    );
    assert_eq!(
        ask(&c, 0, alice, "listen:8080"),
        ("allow", "root-anywhere".into(), "uid")
    );
    assert_eq!(
        ask(&c, 0, alice, "listen:8081"),
        ("deny", "default".into(), "login"),
        "listen grants narrow the same way"
    );
    let uid_mode = compiled(&POLICY.replace("identity: person", "identity: uid"));
    assert_eq!(
        ask(&uid_mode, 0, alice, "198.51.100.22:22"),
        ("allow", "root-anywhere".into(), "uid"),
        "`identity: uid` is today's behaviour"
    );
}

#[test]
fn a_session_scoped_rule_holds_only_in_its_session() {
    let loaded = policy::load_str("p.yaml", POLICY).unwrap();
    let now = jiff::Timestamp::now();
    let (mut rules, _) =
        resolve::resolve_with(&loaded.policy, &directory(), Vanished::Error).unwrap();
    let mut grant = rules.rules[1].clone();
    grant.id = rules.rules.len() as u32 + 1;
    grant.name = "grant-1".into();
    grant.span = None;
    grant.uids = [1000].into();
    grant.listen.clear();
    grant.allow[0].ports = vec![(22, 22)];
    grant.expires = Some(now + jiff::SignedDuration::from_hours(1));
    grant.session = Some(7);
    rules.rules.push(grant);
    let (image, _) = compile_rules(&rules, now).unwrap();
    assert_eq!(
        image.window_sessions.values().copied().collect::<Vec<_>>(),
        [7]
    );
    let addr = "198.51.100.10".parse().unwrap();
    let t = time::ns(now);
    for (session, want, why) in [
        (7, action::ALLOW, "its own session"),
        (8, action::DENY, "another session of the same user"),
        (
            LOGIN_UNSET,
            action::DENY,
            "no session (a service, or a socket without a record)",
        ),
    ] {
        let k = image.lookup_in(1000, session, addr, 6, 22, t);
        let r = eval::evaluate_in(&rules, 1000, session, addr, 6, 22, now);
        assert_eq!(k.action, want, "{why}");
        assert_eq!(
            (k.action, k.rule_id),
            (r.action, r.rule_id),
            "{why}: compiled and reference agree"
        );
    }
}

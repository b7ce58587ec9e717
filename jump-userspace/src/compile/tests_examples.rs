//! The example policies in `policies/` compile, and the compiled image answers as documented.

use std::{net::IpAddr, path::PathBuf};

use jump_common::action;

use super::*;
use crate::{eval, explain, policy, resolve::FakeDirectory};

pub(crate) fn demo_directory() -> FakeDirectory {
    FakeDirectory::default()
        .user("root", 0, 0)
        .user("alice", 1000, 1000)
        .user("bob", 1001, 1001)
        .user("carol", 1002, 1002)
        .user("dave", 1003, 2000)
        .group("ops", 2000, &["bob"])
}

fn policies() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn verdict(c: &Compiled, uid: u32, dest: &str, t: &str) -> (u8, String) {
    let d = explain::parse_dest(dest).unwrap();
    let r = explain::check(c, "u", uid, d, at(t)).unwrap();
    let action = match r.verdict {
        crate::verdict::Verdict::Deny => action::DENY,
        crate::verdict::Verdict::WouldDeny => action::AUDIT,
        crate::verdict::Verdict::Allow => action::ALLOW,
    };
    (action, r.rule.name)
}

#[test]
fn example_policies_validate_and_decide_as_documented() {
    let loaded = policy::load_dir(&policies()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let monday_9_paris = "2026-11-23T08:00:00Z";
    let c = compile_full(&loaded.policy, &demo_directory(), at(monday_9_paris)).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = monday_9_paris;
    let allow = |r: &str| (action::ALLOW, r.to_string());
    let deny = |r: &str| (action::DENY, r.to_string());
    assert_eq!(verdict(&c, 1000, "198.51.100.130:5432", t), allow("dba"));
    assert_eq!(
        verdict(&c, 1207, "198.51.100.131:3307", t),
        allow("dba"),
        "numeric uid"
    );
    assert_eq!(verdict(&c, 1000, "198.51.100.130:3308", t), deny("default"));
    assert_eq!(
        verdict(&c, 1000, "198.51.100.130:5432", "2026-12-31T18:00:00Z"),
        deny("default"),
        "dba expired"
    );
    assert_eq!(
        verdict(&c, 1001, "198.51.100.7:22", t),
        allow("ops-ssh"),
        "bob is in ops"
    );
    assert_eq!(
        verdict(&c, 1003, "[2001:db8:1::7]:22", t),
        allow("ops-ssh"),
        "dave's primary group is ops"
    );
    assert_eq!(verdict(&c, 1000, "198.51.100.7:22", t), deny("default"));
    assert_eq!(
        verdict(&c, 1002, "198.51.100.7:22", t),
        allow("contractor-window")
    );
    assert_eq!(
        verdict(&c, 1002, "198.51.100.7:22", "2026-11-23T17:30:00Z"),
        deny("default"),
        "18:30 in Paris"
    );
    assert_eq!(
        verdict(&c, 1002, "198.51.100.7:22", "2026-11-28T08:00:00Z"),
        deny("default"),
        "a Saturday"
    );
    assert_eq!(
        verdict(&c, 0, "198.51.100.53:53/udp", t),
        allow("dns"),
        "root uses dns too"
    );
    assert_eq!(
        verdict(&c, 1001, "169.254.169.254:80", t),
        deny("no-metadata")
    );
    assert_eq!(
        verdict(&c, 1001, "169.254.169.254/icmp", t),
        deny("no-metadata"),
        "a deny means any protocol"
    );
    assert_eq!(
        verdict(&c, 1001, "203.0.113.5:443", t),
        (action::AUDIT, "rollout".into())
    );
    assert_eq!(verdict(&c, 1000, "203.0.113.5:443", t), deny("default"));
    assert_eq!(verdict(&c, 1000, "127.0.0.1:8080", t), allow("loopback"));
    assert_eq!(verdict(&c, 1000, "[::1]:8080", t), allow("loopback"));
    assert_eq!(
        verdict(&c, 1000, "[::ffff:198.51.100.130]:5432", t),
        allow("dba"),
        "IPv4-mapped is IPv4"
    );
}

#[test]
fn foundation_policy_for_the_kernel_test() {
    let loaded = policy::load_dir(&policies().join("tests/foundation")).unwrap();
    let c = compile_full(
        &loaded.policy,
        &FakeDirectory::default(),
        at("2026-11-23T12:00:00Z"),
    )
    .unwrap();
    let t = "2026-11-23T12:00:00Z";
    for dest in [
        "198.51.100.10:7000/tcp",
        "198.51.100.10:7000/udp",
        "[2001:db8:1::10]:7000",
        "[2001:db8:1::10]:7000/udp",
    ] {
        assert_eq!(
            verdict(&c, 64001, dest, t),
            (action::ALLOW, "a-internal".into()),
            "{dest}"
        );
        assert_eq!(
            verdict(&c, 64002, dest, t),
            (action::DENY, "default".into()),
            "{dest}"
        );
    }
    assert_eq!(
        verdict(&c, 64001, "198.51.100.10:7001", t),
        (action::DENY, "default".into())
    );
    assert_eq!(
        verdict(&c, 64001, "198.51.100.11:7000", t),
        (action::DENY, "default".into())
    );
    assert_eq!(c.image.rules[2].name, "a-internal");
    assert_eq!(c.image.rules[1].name, "loopback");
}

fn compile_src(src: &str, dir: &FakeDirectory) -> Result<Compiled, String> {
    let loaded = policy::load_str("p.yaml", src).map_err(|e| e.to_string())?;
    compile_full(&loaded.policy, dir, at("2026-11-23T12:00:00Z")).map_err(|e| e.to_string())
}

fn lookup(c: &Compiled, uid: u32, addr: &str, port: u16) -> (u8, u32) {
    let addr: IpAddr = addr.parse().unwrap();
    let v = c
        .image
        .lookup(uid, addr, 6, port, time::ns(at("2026-11-23T12:00:00Z")));
    let r = eval::evaluate(&c.rules, uid, addr, 6, port, at("2026-11-23T12:00:00Z"));
    assert_eq!(
        (v.action, v.rule_id),
        (r.action, r.rule_id),
        "compiled and reference should agree"
    );
    (v.action, v.rule_id)
}

#[test]
fn the_longest_prefix_carries_the_entries_of_the_networks_around_it() {
    let src = "defaults: {loopback: policy}\nrules:\n  - name: wide\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/16, ports: [22]}]\n  - name: narrow\n    users: [\"*\"]\n    allow: [{to: 10.0.1.0/24, ports: [80]}]\n";
    let c = compile_src(src, &FakeDirectory::default()).unwrap();
    assert_eq!(
        lookup(&c, 5, "10.0.1.9", 22),
        (action::ALLOW, 1),
        "the /24 entry should carry the /16's port 22"
    );
    assert_eq!(lookup(&c, 5, "10.0.1.9", 80), (action::ALLOW, 2));
    assert_eq!(lookup(&c, 5, "10.0.2.9", 80), (action::DENY, 0));
}

#[test]
fn ipv6_networks_do_not_hold_ipv4_destinations() {
    let src = "defaults: {loopback: policy}\nrules:\n  - name: v6\n    users: [\"*\"]\n    allow: [{to: \"::/0\"}]\n";
    let c = compile_src(src, &FakeDirectory::default()).unwrap();
    assert_eq!(lookup(&c, 5, "2001:db8::1", 22), (action::ALLOW, 1));
    assert_eq!(lookup(&c, 5, "192.0.2.1", 22), (action::DENY, 0));
    assert_eq!(lookup(&c, 5, "::ffff:192.0.2.1", 22), (action::DENY, 0));
}

#[test]
fn an_explicit_deny_beats_loopback_and_every_allow() {
    let src = "rules:\n  - name: no-local-db\n    users: [\"*\"]\n    deny: [{to: 127.0.0.1, ports: [5432]}]\n  - name: all\n    users: [\"*\"]\n    allow: [{to: 0.0.0.0/0}]\n";
    let c = compile_src(src, &FakeDirectory::default()).unwrap();
    assert_eq!(lookup(&c, 5, "127.0.0.1", 5432), (action::DENY, 2));
    assert_eq!(
        lookup(&c, 5, "127.0.0.1", 80),
        (action::ALLOW, 1),
        "the loopback rule"
    );
    assert_eq!(lookup(&c, 5, "192.0.2.1", 80), (action::ALLOW, 3));
}

#[test]
fn audit_deny_only_matters_where_something_would_allow() {
    let src = "defaults: {loopback: policy}\nrules:\n  - name: trial-deny\n    users: [\"*\"]\n    deny: [{to: 10.0.0.0/8}]\n    mode: audit\n  - name: web\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, ports: [443]}]\n";
    let c = compile_src(src, &FakeDirectory::default()).unwrap();
    assert_eq!(
        lookup(&c, 5, "10.1.1.1", 443),
        (action::AUDIT, 1),
        "allowed, logged as would deny"
    );
    assert_eq!(
        lookup(&c, 5, "10.1.1.1", 22),
        (action::DENY, 0),
        "an audit deny never opens what is closed"
    );
}

#[test]
fn users_with_the_same_rules_share_a_profile() {
    let dir = demo_directory();
    let src = "rules:\n  - name: a\n    users: [alice, bob]\n    allow: [{to: 10.0.0.0/8}]\n  - name: b\n    users: [carol]\n    allow: [{to: 10.0.0.0/8}]\n";
    let c = compile_src(src, &dir).unwrap();
    assert_eq!(c.image.users[&1000], c.image.users[&1001]);
    assert_ne!(c.image.users[&1000], c.image.users[&1002]);
    assert!(
        c.image.users.contains_key(&jump_common::ANY_UID),
        "the loopback rule is everyone's"
    );
}

#[test]
fn unknown_users_and_groups_are_errors_at_their_position() {
    let src = "rules:\n  - name: a\n    users: [alice, alcie]\n    groups: [opz]\n    allow: [{to: 10.0.0.0/8}]\n";
    assert_eq!(
        compile_src(src, &demo_directory()).unwrap_err(),
        "p.yaml:3:20: unknown user `alcie`\n  help: users come from /etc/passwd and NSS (LDAP, SSSD), or the file given with `--passwd`\n\
         p.yaml:4:14: unknown group `opz`\n  help: groups come from /etc/group and NSS, or the file given with `--group`"
    );
}

#[test]
fn expired_and_shadowed_rules_are_warnings() {
    let src = "rules:\n  - name: gone\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n    expires: 2020-01-01T00:00:00Z\n  - name: block\n    users: [\"*\"]\n    deny: [{to: 10.0.0.0/8}]\n  - name: hidden\n    users: [\"*\"]\n    allow: [{to: 10.1.0.0/16, ports: [22]}]\n";
    let c = compile_src(src, &FakeDirectory::default()).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "p.yaml:2:5: warning: rule `gone` expired at 2020-01-01T00:00:00Z: it can never match",
            "p.yaml:9:5: warning: rule `hidden` is fully shadowed by `block` (p.yaml:6:5): it never decides a connection",
        ]
    );
}

#[test]
fn too_many_overlapping_time_limited_rules_is_an_error() {
    let mut src = String::from("defaults: {loopback: policy}\nrules:\n");
    for i in 0..9 {
        src.push_str(&format!(
            "  - name: r{i}\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8}}]\n    expires: 2027-01-0{}T00:00:00Z\n",
            i + 1
        ));
    }
    assert_eq!(
        compile_src(&src, &FakeDirectory::default()).unwrap_err(),
        "p.yaml:3:5: 9 time-limited rules overlap on the same destinations and ports, more than 8: `r0`, `r1`, `r2`, `r3`, `r4`, `r5`, `r6`, `r7`, `r8`\n  help: merge rules that share a schedule, or narrow their destinations"
    );
}

/// Not a timed test: `cargo test --release -p jump-userspace scale_report -- --ignored --nocapture`
/// prints how long the 10,000 users × 20 rules policy takes to compile.
#[test]
#[ignore = "a measurement, run by hand in release mode"]
fn scale_report() {
    let start = std::time::Instant::now();
    let (p, dir) = bench::synthetic_policy(10_000, 20);
    eprintln!(
        "generating and loading the policy text: {:?}",
        start.elapsed()
    );
    let start = std::time::Instant::now();
    let c = compile_full(&p, &dir, at("2026-11-23T12:00:00Z")).unwrap();
    eprintln!(
        "10,000 users x 20 rules: {:?}, {} profiles, {} dests, {} ports, {} windows",
        start.elapsed(),
        c.image
            .users
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        c.image.dests.len(),
        c.image.ports.len(),
        c.image.windows.len()
    );
}

/// Loads a directory with file names shown as `policies/...`, so dumps do not hold the
/// checkout's absolute path.
fn load_as(dir: &std::path::Path, shown: &str) -> policy::Loaded {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    let files: Vec<(String, String)> = names
        .iter()
        .map(|p| {
            (
                format!("{shown}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    policy::load_files(&files).unwrap()
}

/// Golden dumps of the example policies: a compiler change shows up as a readable diff.
/// `UPDATE_GOLDEN=1 cargo test -p jump-userspace golden` rewrites them.
#[test]
fn golden_dumps() {
    for (dir, shown, golden) in [
        (policies(), "policies", "golden/example.txt"),
        (
            policies().join("tests/foundation"),
            "policies/tests/foundation",
            "golden/foundation.txt",
        ),
    ] {
        let loaded = load_as(&dir, shown);
        let c = compile_full(
            &loaded.policy,
            &demo_directory(),
            at("2026-11-23T12:00:00Z"),
        )
        .unwrap();
        let text = dump::dump(&c.image);
        let path = policies().join(golden);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale (UPDATE_GOLDEN=1 rewrites it); got:\n{text}",
            path.display()
        );
    }
}

#[test]
fn listening_needs_a_grant() {
    let src = "defaults: {egress: allow}\nrules:\n  - name: web\n    users: [alice]\n    listen: [{ports: [8080, \"9000-9001\"]}]\n  - name: dns-server\n    users: [\"*\"]\n    listen: [{ports: [53], proto: [udp, tcp]}]\n  - name: trial\n    users: [bob]\n    listen: [{ports: [7000], proto: any}]\n    mode: audit\n";
    let c = compile_src(src, &demo_directory()).unwrap();
    let now = time::ns(at("2026-11-23T12:00:00Z"));
    let l = |uid: u32, proto: u8, port: u16| {
        let v = c.image.listen(uid, proto, port, now);
        let r = eval::evaluate_listen(&c.rules, uid, proto, port, at("2026-11-23T12:00:00Z"));
        assert_eq!(
            (v.action, v.rule_id),
            (r.action, r.rule_id),
            "compiled and reference should agree"
        );
        (v.action, v.rule_id)
    };
    assert_eq!(l(1000, 6, 8080), (action::ALLOW, 2));
    assert_eq!(l(1000, 6, 9001), (action::ALLOW, 2));
    assert_eq!(
        l(1000, 17, 8080),
        (action::DENY, 0),
        "listen without proto means tcp"
    );
    assert_eq!(
        l(1001, 6, 8080),
        (action::DENY, 0),
        "refused without a grant, though egress is allow"
    );
    assert_eq!(l(1001, 17, 53), (action::ALLOW, 3), "everyone's grant");
    assert_eq!(l(1001, 17, 7000), (action::AUDIT, 4));
}

#[test]
fn listen_errors_and_warnings() {
    let src = "rules:\n  - name: a\n    users: [alice]\n    listen: [{ports: [22], proto: icmp}]\n";
    assert_eq!(
        compile_src(src, &demo_directory()).unwrap_err(),
        "p.yaml:4:35: `listen` takes `tcp` or `udp`, not `icmp`"
    );
    let src = "rules:\n  - name: a\n    users: [alice]\n    listen: [{ports: [22], addresses: [10.0.0.1]}]\n";
    let c = compile_src(src, &demo_directory()).unwrap();
    assert_eq!(
        c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        vec!["p.yaml:4:14: warning: `addresses` is not enforced yet: this grant applies to every local address"]
    );
}

#[test]
fn sample_probes_cover_both_verdicts() {
    let loaded = policy::load_dir(&policies().join("tests/foundation")).unwrap();
    let t = at("2026-11-23T12:00:00Z");
    let c = compile_full(&loaded.policy, &FakeDirectory::default(), t).unwrap();
    let probes = eval::sample_probes(&c, t, 200, 7);
    assert_eq!(probes.len(), 200);
    assert!(
        probes
            .iter()
            .any(|p| p.action == action::ALLOW && p.rule_id == 2),
        "some probes hit a-internal"
    );
    assert!(
        probes.iter().any(|p| p.action == action::DENY),
        "some probes are denied"
    );
    for p in &probes {
        let v = c.image.lookup(p.uid, p.addr, p.proto, p.port, time::ns(t));
        assert_eq!((v.action, v.rule_id), (p.action, p.rule_id));
    }
}

#[test]
fn schedules_ask_for_a_recompile_within_the_horizon() {
    let loaded = policy::load_dir(&policies()).unwrap();
    let t = at("2026-11-23T12:00:00Z");
    let c = compile_full(&loaded.policy, &demo_directory(), t).unwrap();
    assert_eq!(
        time::recompile_by(&c.rules, t),
        Some(at("2026-11-29T12:00:00Z"))
    );
    let loaded = policy::load_dir(&policies().join("tests/foundation")).unwrap();
    let c = compile_full(&loaded.policy, &demo_directory(), t).unwrap();
    assert_eq!(time::recompile_by(&c.rules, t), None);
}

/// `via` puts the rule's interfaces in the image by index, warns about interfaces the host does
/// not have, and the egress check denies a decision of that rule on any other interface.
#[test]
fn via_holds_only_on_the_named_interfaces() {
    let src = "rules:\n  - name: dmz\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, ports: [22]}]\n    via: [eth1, eth9]\n";
    let loaded = crate::policy::load_str("p.yaml", src).unwrap();
    let dir = FakeDirectory::default()
        .interface("eth0", 2)
        .interface("eth1", 3);
    let c = compile_full(&loaded.policy, &dir, at("2026-11-23T12:00:00Z")).unwrap();
    assert_eq!(
        c.image.vias.get(&2),
        Some(&vec![3]),
        "rule 2 (after loopback) holds on eth1 only"
    );
    let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        ["p.yaml:5:17: warning: no interface `eth9` on this host: rule `dmz` holds on no packet through it\n  help: the policy is compiled again when interfaces change"]
    );
    let v = c.image.lookup(
        1000,
        "10.1.2.3".parse().unwrap(),
        6,
        22,
        crate::compile::time::ns(at("2026-11-23T12:00:00Z")),
    );
    assert_eq!((v.action, v.rule_id), (action::ALLOW, 2));
    assert_eq!(
        c.image.on_interface(v, 3).action,
        action::ALLOW,
        "eth1 is named"
    );
    assert_eq!(
        (
            c.image.on_interface(v, 2).action,
            c.image.on_interface(v, 2).rule_id
        ),
        (action::DENY, 2),
        "eth0 is not: denied by the rule"
    );
}

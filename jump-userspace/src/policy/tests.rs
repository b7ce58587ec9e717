//! Every error class, with its whole message and position.

use super::*;

fn errors(src: &str) -> String {
    match load_str("p.yaml", src) {
        Ok(_) => "no error".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn duplicate_rule_names_name_both_places() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:5:5: duplicate rule `a`: first defined at p.yaml:2:5"
    );
}

#[test]
fn duplicate_rule_names_across_files() {
    let rule = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n";
    let e = load_files(&[
        ("x.yaml".into(), rule.into()),
        ("y.yaml".into(), rule.into()),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "y.yaml:2:5: duplicate rule `a`: first defined at x.yaml:2:5"
    );
}

#[test]
fn duplicate_zone_names_name_both_places() {
    let src = "zones:\n  dmz: [10.0.0.0/8]\n  dmz: [10.1.0.0/16]\n";
    assert_eq!(
        errors(src),
        "p.yaml:3:3: duplicate zone `dmz`: first defined at p.yaml:2:3"
    );
}

#[test]
fn unknown_zone_suggests_a_close_name() {
    let src = "zones:\n  dmz: [10.0.0.0/8]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: dnz}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:6:18: unknown zone `dnz`\n  help: did you mean `dmz`?"
    );
}

#[test]
fn host_bits_set_suggests_the_network() {
    let src = "zones:\n  dmz: [198.51.100.1/24]\n";
    assert_eq!(
        errors(src),
        "p.yaml:2:9: invalid CIDR `198.51.100.1/24`: host bits are set\n  help: did you mean `198.51.100.0/24`?"
    );
}

#[test]
fn invalid_cidr_and_address() {
    let src = "zones:\n  a: [10.0.0.0/33]\n  b: [\"10.0.0.256\"]\n";
    assert_eq!(
        errors(src),
        "p.yaml:2:7: invalid CIDR `10.0.0.0/33`\np.yaml:3:7: invalid address `10.0.0.256`"
    );
}

#[test]
fn reversed_port_range() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, ports: [\"90-80\"]}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:4:38: invalid port range `90-80`: start is greater than end"
    );
}

#[test]
fn out_of_range_ports() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, ports: [70000, 0]}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:4:38: port `70000` is out of range (1-65535)\np.yaml:4:45: port `0` is out of range (1-65535)"
    );
}

#[test]
fn unknown_keys_suggest_the_intended_one() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    deny: [{to: 10.0.0.0/8}]\n    alow: [{to: 10.0.0.0/8}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:5:5: unknown key `alow` in `rule`\n  help: did you mean `allow`?"
    );
    assert_eq!(
        errors("defaults:\n  egres: deny\n"),
        "p.yaml:2:3: unknown key `egres` in `defaults`\n  help: did you mean `egress`?"
    );
    assert_eq!(
        errors("rulez: []\n"),
        "p.yaml:1:1: unknown key `rulez` in `policy file`\n  help: did you mean `rules`?"
    );
}

#[test]
fn wrong_types() {
    let src = "rules:\n  - name: a\n    users: {alice: 1}\n    allow: [{to: 10.0.0.0/8, ports: {a: 1}}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:3:12: `users` must be a list of user names or uids, found a mapping\np.yaml:4:37: `ports` must be a port, a range or a list of them, found a mapping"
    );
    assert_eq!(
        errors("rules: 3\n"),
        "p.yaml:1:8: `rules` must be a list of rules, found a number"
    );
    assert_eq!(
        errors("defaults:\n  egress: maybe\n"),
        "p.yaml:2:11: invalid `defaults.egress` value `maybe`\n  help: expected one of `deny`, `allow`"
    );
}

#[test]
fn empty_rules() {
    let src =
        "rules:\n  - name: a\n    users: [\"*\"]\n  - name: b\n    allow: [{to: 10.0.0.0/8}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:2:5: rule `a` grants and denies nothing: it has no `allow`, `deny` or `listen` entries\n  help: add `allow: [{to: ZONE, ports: [PORT]}]`\n\
         p.yaml:4:5: rule `b` applies to no one: it has no `users` or `groups`\n  help: add `users: [\"*\"]` to apply it to every user"
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let e = errors("rules:\n  - name: a\n    users: [\"*\"\n");
    assert!(e.starts_with("p.yaml:4:1: invalid YAML: "), "{e}");
    let e = errors("a: b: c\n");
    assert!(e.starts_with("p.yaml:1:5: invalid YAML: "), "{e}");
}

#[test]
fn aliases_and_multiple_documents_are_refused() {
    assert_eq!(
        errors("zones:\n  a: &x [10.0.0.0/8]\n  b: *x\n"),
        "p.yaml:3:6: invalid YAML: YAML aliases (`*name`) are not supported in policies"
    );
    assert_eq!(
        errors("zones: {}\n---\nzones: {}\n"),
        "p.yaml:2:1: invalid YAML: a policy file holds one YAML document, found a second"
    );
}

#[test]
fn errors_are_collected_and_sorted() {
    let src = "zones:\n  z: [10.0.0.1/8]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: nowhere, ports: [\"9-1\"]}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:2:7: invalid CIDR `10.0.0.1/8`: host bits are set\n  help: did you mean `10.0.0.0/8`?\n\
         p.yaml:6:18: unknown zone `nowhere`\n\
         p.yaml:6:35: invalid port range `9-1`: start is greater than end"
    );
}

#[test]
fn schedule_and_expiry_errors() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n    expires: tomorrow\n    schedule: {days: [mon, funday], hours: \"8-18\", tz: Mars/Olympus}\n";
    assert_eq!(
        errors(src),
        "p.yaml:5:14: invalid `expires` `tomorrow`\n  help: write an RFC 3339 time with an offset, like `2026-12-31T18:00:00Z`\n\
         p.yaml:6:28: invalid `days` value `funday`\n  help: expected one of `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`\n\
         p.yaml:6:44: invalid `hours` `8-18`\n  help: write `HH:MM-HH:MM`, like `08:00-18:00` (`22:00-06:00` runs past midnight)\n\
         p.yaml:6:56: unknown time zone `Mars/Olympus`\n  help: use an IANA name like `Europe/Paris` or `UTC`"
    );
}

#[test]
fn reserved_names_and_icmp_ports() {
    let src = "rules:\n  - name: default\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, proto: icmp, ports: [1]}]\n";
    assert_eq!(
        errors(src),
        "p.yaml:2:11: rule name `default` is reserved\n\
         p.yaml:4:50: `ports` cannot be used with `icmp`\n  help: give `icmp` an entry of its own, without `ports`"
    );
}

#[test]
fn defaults_set_twice() {
    let e = load_files(&[
        ("a.yaml".into(), "defaults: {egress: deny}\n".into()),
        ("b.yaml".into(), "defaults: {egress: allow}\n".into()),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.yaml:1:12: `defaults.egress` is set twice: first set at a.yaml:1:12"
    );
}

#[test]
fn the_model_reads_as_written() {
    let src = "zones:\n  dmz: [198.51.100.0/24, \"2001:db8:1::/64\", \"::ffff:192.0.2.1\"]\nrules:\n  - name: a\n    users: [alice, 1207]\n    deny: [{to: dmz}]\n    allow: [{to: [dmz, 203.0.113.0/28], ports: [22, \"3306-3307\"], proto: [udp, tcp]}]\n    listen: [{ports: [8080]}]\n    mode: audit\n";
    let p = load_str("p.yaml", src).unwrap().policy;
    let r = &p.rules[0];
    assert_eq!(
        r.users.iter().map(|u| u.0.clone()).collect::<Vec<_>>(),
        vec![UserRef::Name("alice".into()), UserRef::Uid(1207)]
    );
    assert_eq!(
        r.deny[0].protos,
        Proto::ALL.to_vec(),
        "a deny without proto means any"
    );
    assert_eq!(
        r.deny[0].ports,
        vec![(0, 65535)],
        "no ports means every port"
    );
    assert_eq!(r.allow[0].protos, vec![Proto::Tcp, Proto::Udp]);
    assert_eq!(r.allow[0].ports, vec![(22, 22), (3306, 3307)]);
    assert_eq!(
        p.zones[0]
            .nets
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        vec!["192.0.2.1/32", "198.51.100.0/24", "2001:db8:1::/64"],
        "an IPv4-mapped address is the IPv4 address"
    );
    assert_eq!(r.mode, Mode::Audit);
    let p = load_str(
        "p.yaml",
        "rules:\n  - name: a\n    users: [\"*\"]\n    deny: [{to: 10.0.0.0/8, ports: [22]}]\n",
    )
    .unwrap()
    .policy;
    assert_eq!(
        p.rules[0].deny[0].protos,
        vec![Proto::Tcp, Proto::Udp],
        "a port-limited deny cannot match ICMP"
    );
    assert_eq!(r.listen.len(), 1);
}

#[test]
fn oversized_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("jump-policy-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.yaml");
    std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
    let e = load_dir(&dir).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        e,
        format!(
            "{}: file is 1048577 bytes, more than the limit of 1048576 bytes",
            big.display()
        )
    );
}

const TOKENS: &[&str] = &[
    "rules:",
    "zones:",
    "defaults:",
    "users:",
    "groups:",
    "allow:",
    "deny:",
    "listen:",
    "to:",
    "ports:",
    "proto:",
    "name:",
    "schedule:",
    "hours:",
    "days:",
    "expires:",
    "mode:",
    "egress:",
    " ",
    " ",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "*",
    "&a",
    "*a",
    "!",
    "|",
    ">",
    "#",
    "10.0.0.0/8",
    "::1",
    "22",
    "90-80",
    "70000",
    "tcp",
    "any",
    "mon",
    "08:00-18:00",
    "audit",
    "2026-12-31T18:00:00Z",
    "x",
    "\u{0}",
    "é",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

    /// Whatever the input, loading returns (errors or a policy) and never panics. The input is
    /// built from YAML punctuation and policy words, so it gets past the YAML parser often.
    #[test]
    fn arbitrary_text_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
        let _ = load_str("p.yaml", &tokens.concat());
    }

    /// Policy-shaped text with random values: never a panic either.
    #[test]
    fn arbitrary_values_never_panic(
        to in "[0-9a-f:./]{0,20}",
        port in "[-0-9a-z]{0,12}",
        hours in "[0-9:-]{0,12}",
        tz in "[A-Za-z/_]{0,16}",
        expires in "[0-9TZ:.+-]{0,25}",
    ) {
        let src = format!(
            "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{{to: \"{to}\", ports: [\"{port}\"]}}]\n    expires: \"{expires}\"\n    schedule: {{hours: \"{hours}\", tz: \"{tz}\"}}\n"
        );
        if let Ok(l) = load_str("p.yaml", &src) {
            let _ = crate::compile::compile(&l.policy, &crate::compile::FakeDirectory::default(), jiff::Timestamp::UNIX_EPOCH);
        }
    }
}

#[test]
fn unused_zones_are_warnings() {
    let l = load_str("p.yaml", "zones:\n  dmz: [10.0.0.0/8]\n  lab: [10.1.0.0/16]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: dmz}]\n").unwrap();
    assert_eq!(
        l.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        vec!["p.yaml:3:3: warning: zone `lab` is never used"]
    );
}

#[test]
fn invalid_interface_names_in_via() {
    let src = "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n    via: [eth1, \"a/b\", averyveryverylongname, 3]\n";
    assert_eq!(
        errors(src),
        "p.yaml:5:17: invalid interface name `a/b`\n  help: an interface name has 1 to 15 characters, without `/`, `:` or spaces (like `eth1`)\n\
         p.yaml:5:24: invalid interface name `averyveryverylongname`\n  help: an interface name has 1 to 15 characters, without `/`, `:` or spaces (like `eth1`)"
    );
    let ok =
        "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n    via: eth1\n";
    let p = load_str("p.yaml", ok).expect("`via: eth1` is valid").policy;
    assert_eq!(p.rules[0].via[0].0, "eth1");
}

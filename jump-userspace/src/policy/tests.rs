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
fn hours_are_written_plainly() {
    // Blanks around a time are taken (as before); within a number, nothing but digits.
    for bad in ["+8:00-18:00", "08:00-18:+0", "08:00-1_8:00", "0 8:00-18:00"] {
        let src = format!(
            "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8}}]\n    schedule: {{hours: \"{bad}\"}}\n"
        );
        assert!(
            errors(&src).contains(&format!("invalid `hours` `{bad}`")),
            "{bad}: {}",
            errors(&src)
        );
    }
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
            let _ = crate::compile::compile(&l.policy, &crate::resolve::FakeDirectory::default(), jiff::Timestamp::UNIX_EPOCH);
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

fn rule_with(extra: &str) -> String {
    format!("rules:\n  - name: r\n    users: [\"*\"]\n{extra}")
}

#[test]
fn an_empty_proto_list_is_an_error_like_empty_ports() {
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8, proto: []}]\n")),
        "p.yaml:4:37: `proto` is empty\n  help: omit `proto` to mean `tcp`"
    );
    assert_eq!(
        errors(&rule_with("    deny: [{to: 10.0.0.0/8, proto: []}]\n")),
        "p.yaml:4:36: `proto` is empty\n  help: omit `proto` to mean `any`"
    );
}

#[test]
fn rule_names_that_look_alike_or_hide_characters_are_refused() {
    let named = |n: &str| {
        errors(&format!(
            "rules:\n  - name: {n}\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8}}]\n"
        ))
    };
    assert_eq!(
        named("\"ops \""),
        "p.yaml:2:11: invalid rule name `ops `: it begins or ends with white space"
    );
    assert_eq!(
        named("\"   \""),
        "p.yaml:2:11: invalid rule name `   `: it is blank"
    );
    assert_eq!(
        named("\"a\\u001b[31mb\""),
        "p.yaml:2:11: invalid rule name `a\\u{1b}[31mb`: it holds a control character"
    );
    assert_eq!(
        named("\"op\\u200bs\""),
        "p.yaml:2:11: invalid rule name `op\\u{200b}s`: it holds an invisible formatting character"
    );
    assert_eq!(named("ops-1"), "no error");
}

#[test]
fn numbers_are_written_plainly() {
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8, ports: [\"+22\"]}]\n")),
        "p.yaml:4:38: invalid port `+22`\n  help: a port is a number like `22` or a range like `8000-8080`"
    );
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8, ports: [\" 22\"]}]\n")),
        "p.yaml:4:38: invalid port ` 22`\n  help: a port is a number like `22` or a range like `8000-8080`"
    );
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8, ports: [022]}]\n")),
        "p.yaml:4:38: invalid port `022`\n  help: write a port without leading zeros, like `22`"
    );
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/08}]\n")),
        "p.yaml:4:18: invalid CIDR `10.0.0.0/08`\n  help: the prefix length is a plain number without sign or leading zero, like `/8`"
    );
    assert_eq!(
        errors("rules:\n  - name: r\n    users: [01000]\n    allow: [{to: 10.0.0.0/8}]\n"),
        "p.yaml:3:13: invalid uid `01000`\n  help: write a uid without leading zeros"
    );
    assert_eq!(
        errors("rules:\n  - name: r\n    users: [4294967295]\n    allow: [{to: 10.0.0.0/8}]\n"),
        "p.yaml:3:13: invalid uid `4294967295`\n  help: 4294967295 is `(uid_t)-1`, which stands for no uid"
    );
}

#[test]
fn expires_is_rfc3339_within_the_kernel_clock() {
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8}]\n    expires: 9999-12-31T23:59:59Z\n")),
        "p.yaml:5:14: invalid `expires` `9999-12-31T23:59:59Z`: out of range\n  help: a time must be between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33Z, what the kernel's clock can express"
    );
    assert_eq!(
        errors(&rule_with("    allow: [{to: 10.0.0.0/8}]\n    expires: 2026-12-31T18:00:00+25:00\n")),
        "p.yaml:5:14: invalid `expires` `2026-12-31T18:00:00+25:00`: the offset is out of range\n  help: RFC 3339 offsets run from -23:59 to +23:59"
    );
}

/// A scratch policy directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("jump-read-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const OK_RULE: &str = "rules:\n  - name: r\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n";

#[test]
fn a_nul_byte_does_not_end_the_file() {
    let d = Scratch::new("nul");
    std::fs::write(
        d.file("a.yaml"),
        format!("{OK_RULE}\0\n  - name: d\n    users: [\"*\"]\n    deny: [{{to: 10.0.0.0/8}}]\n"),
    )
    .unwrap();
    assert_eq!(
        load_dir(&d.0).unwrap_err().to_string(),
        format!(
            "{}:5:1: NUL byte: a policy file is text, and YAML does not allow NUL",
            d.file("a.yaml").display()
        )
    );
}

#[test]
fn every_entry_named_like_a_policy_file_must_be_one() {
    let d = Scratch::new("kinds");
    std::fs::write(d.file("10-allow.yaml"), OK_RULE).unwrap();
    std::os::unix::fs::symlink("/nonexistent", d.file("20-deny.yaml")).unwrap();
    std::fs::create_dir(d.file("30-dir.yml")).unwrap();
    nix::unistd::mkfifo(
        &d.file("40-fifo.YAML"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(d.file("50-sock.yaml")).unwrap();
    std::fs::write(d.file(".hidden.yaml"), "not: [valid").unwrap();
    let e = load_dir(&d.0).unwrap_err().to_string();
    let p = |n: &str| d.file(n).display().to_string();
    assert_eq!(
        e,
        format!(
            "{}: is a symbolic link: policy files must be regular files (the policy directory itself may be a symlink)\n\
             {}: is a directory, not a regular file: a name ending in `.yaml` or `.yml` is a policy file\n\
             {}: is a FIFO, not a regular file: a name ending in `.yaml` or `.yml` is a policy file\n\
             {}: is a socket, not a regular file: a name ending in `.yaml` or `.yml` is a policy file",
            p("20-deny.yaml"),
            p("30-dir.yml"),
            p("40-fifo.YAML"),
            p("50-sock.yaml")
        ),
        "the hidden file is ignored; everything else named like a policy file is an error"
    );
}

#[test]
fn only_root_may_write_the_policy() {
    use std::os::unix::fs::PermissionsExt;
    let d = Scratch::new("modes");
    std::fs::write(d.file("a.yaml"), OK_RULE).unwrap();
    std::fs::set_permissions(d.file("a.yaml"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let refuse = ReadOptions {
        ownership: Ownership::Refuse,
        ..Default::default()
    };
    let e = load_dir_with(&d.0, refuse).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: policy file is writable by others than root (owner root (uid 0), mode 0666)",
            d.file("a.yaml").display()
        )),
        "{e}"
    );
    let warned = load_dir(&d.0).expect("validate only warns");
    assert_eq!(warned.warnings.len(), 1, "{:?}", warned.warnings);
    std::fs::set_permissions(d.file("a.yaml"), std::fs::Permissions::from_mode(0o044)).unwrap();
    let e = load_dir_with(&d.0, refuse).unwrap_err().to_string();
    assert!(
        e.contains(
            "not readable by jumpd after it drops its capabilities (owner root (uid 0), mode 0044)"
        ),
        "{e}"
    );
}

#[test]
fn private_files_are_not_quoted() {
    use std::os::unix::fs::PermissionsExt;
    let d = Scratch::new("private");
    std::fs::write(d.file("a.yaml"), "root:$6$secret:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(d.file("a.yaml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let opts = ReadOptions {
        redact_private: true,
        ..Default::default()
    };
    let e = load_dir_with(&d.0, opts).unwrap_err().to_string();
    assert!(!e.contains("secret"), "{e}");
    assert!(
        e.contains("error here, not shown: the file is not readable by everyone"),
        "{e}"
    );
}

#[test]
fn the_hash_does_not_depend_on_how_the_directory_is_spelled() {
    let dir = std::env::temp_dir().join(format!("jump-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10-a.yaml"),
        "rules:\n  - name: a\n    users: [1001]\n    allow:\n      - {to: [198.51.100.0/24], ports: [22]}\n",
    )
    .unwrap();
    let plain = super::load_dir(&dir).unwrap().sha256;
    let dotted = super::load_dir(&dir.join(".")).unwrap().sha256;
    let parent = super::load_dir(&dir.join("..").join(dir.file_name().unwrap()))
        .unwrap()
        .sha256;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(plain, dotted, "`dir` and `dir/.` are one policy");
    assert_eq!(plain, parent, "`dir` and `parent/../dir` are one policy");
}

/// Loads `files` through `memo`, as jumpd's reloads do.
fn memo_load(memo: &mut Memo, files: &[(&str, &str)]) -> Result<Loaded, String> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    load_files_memo(&files, Some(memo)).map_err(|e| e.to_string())
}

#[test]
fn memoised_files_load_as_if_parsed_again() {
    let a = "defaults:\n  egress: deny\nzones:\n  dmz: [10.0.0.0/8]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: dmz, ports: [22]}]\n";
    let b = "rules:\n  - name: b\n    users: [root]\n    deny: [{to: 192.0.2.0/24}]\n";
    let b2 = "rules:\n  - name: b\n    users: [root]\n    deny: [{to: 198.51.100.0/24}]\n";
    let mut memo = Memo::default();
    for files in [
        vec![("a.yaml", a), ("b.yaml", b)],
        vec![("a.yaml", a), ("b.yaml", b)],
        vec![("a.yaml", a), ("b.yaml", b2)],
        vec![("b.yaml", b2), ("a.yaml", a)],
    ] {
        let fresh = memo_load(&mut Memo::default(), &files).unwrap();
        let memoised = memo_load(&mut memo, &files).unwrap();
        assert_eq!(
            memoised.policy, fresh.policy,
            "a memoised file should give the policy parsing it again gives"
        );
        assert_eq!(memoised.sha256, fresh.sha256);
    }
    assert_eq!(memo.len(), 2, "both files are clean, so both are kept");
    memo_load(&mut memo, &[("b.yaml", b2)]).unwrap();
    assert_eq!(memo.len(), 1, "a file gone from the directory is forgotten");
}

#[test]
fn what_spans_files_is_checked_again_for_memoised_files() {
    let a = "defaults:\n  egress: deny\nzones:\n  dmz: [10.0.0.0/8]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: dmz}]\n";
    let mut memo = Memo::default();
    memo_load(&mut memo, &[("a.yaml", a)]).unwrap();
    // A new file that clashes with the memoised one, in every way that spans files.
    let c = "defaults:\n  egress: allow\nzones:\n  dmz: [10.1.0.0/16]\nrules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: dmz}]\n";
    let e = memo_load(&mut memo, &[("a.yaml", a), ("c.yaml", c)]).unwrap_err();
    assert_eq!(
        e,
        "c.yaml:2:3: `defaults.egress` is set twice: first set at a.yaml:2:3\n\
         c.yaml:4:3: duplicate zone `dmz`: first defined at a.yaml:4:3\n\
         c.yaml:6:5: duplicate rule `a`: first defined at a.yaml:6:5"
    );
    let fresh =
        load_files(&[("a.yaml".into(), a.into()), ("c.yaml".into(), c.into())]).unwrap_err();
    assert_eq!(e, fresh.to_string(), "the same errors as without a memo");
}

#[test]
fn files_with_diagnostics_are_not_memoised_and_report_every_time() {
    let bad =
        "rules:\n  - name: a\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8, ports: [90-80]}]\n";
    let mut memo = Memo::default();
    let first = memo_load(&mut memo, &[("a.yaml", bad)]).unwrap_err();
    assert_eq!(memo.len(), 0, "a file with an error is not kept");
    let again = memo_load(&mut memo, &[("a.yaml", bad)]).unwrap_err();
    assert_eq!(first, again, "its error is reported on every load");
}

#[test]
fn files_parsed_side_by_side_report_in_file_order() {
    // More files than threads, a syntax error, a rule error and a clean file among them: the
    // per-file parse runs on several threads, the report is still in the files' order, and
    // what spans files is judged in that order (the clean files share a rule name: the first
    // of them, 2.yaml, defines it, whichever thread parsed which).
    let files: Vec<(String, String)> = (0..9)
        .map(|i| {
            let text = match i % 3 {
                0 => format!("rules:\n  - name: r{i}\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8, ports: [90-80]}}]\n"),
                1 => "rules: [\n".to_string(),
                _ => "rules:\n  - name: shared\n    users: [\"*\"]\n    allow: [{to: 10.0.0.0/8}]\n".to_string(),
            };
            (format!("{i}.yaml"), text)
        })
        .collect();
    let e = load_files(&files).unwrap_err().to_string();
    let files_in_report: Vec<&str> = e.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        files_in_report,
        ["0.yaml", "1.yaml", "3.yaml", "4.yaml", "5.yaml", "6.yaml", "7.yaml", "8.yaml"],
        "{e}"
    );
    for later in ["5.yaml", "8.yaml"] {
        assert!(
            e.contains(&format!(
                "{later}:2:5: duplicate rule `shared`: first defined at 2.yaml:2:5"
            )),
            "{e}"
        );
    }
    let mut memo = Memo::default();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(memo_load(&mut memo, &files).unwrap_err(), e);
    assert_eq!(memo.len(), 3, "the clean files are kept");
}

#[test]
fn protocol_numbers_have_one_name_for_users() {
    use jump_common::proto;
    let names: Vec<_> = [
        proto::TCP,
        proto::UDP,
        proto::ICMP,
        proto::ICMPV6,
        proto::IGMP,
        132,
        255,
    ]
    .into_iter()
    .map(Proto::name_of)
    .collect();
    assert_eq!(
        names,
        ["tcp", "udp", "icmp", "icmp", "join", "other", "other"],
        "ICMPv6 should read as the policy's `icmp`, IGMP as the `join` entries, the rest `other`"
    );
}

//! The one rule set every system is measured with, and its expression in each system's own
//! language: jump policy files (a rule per grant), an nftables ruleset with a concatenated set, an
//! iptables-restore file with one owner-match rule per grant. Pure.
//!
//! A grant is (uid, IPv4 host, port, protocol). For N rules there are N grants: N − 4 generated
//! ones for other users (ten per uid, each to its own host in 10.0.0.0/8) and, last, the bench
//! client's four. Last is the worst case for iptables' linear chain (every grant is tried before
//! the client's); for jump and nftables the position does not matter.

use std::{
    fmt::Write,
    net::{Ipv4Addr, Ipv6Addr},
};

/// The granted uid the bench client runs as (no account needed: policies use numbers).
pub const CLIENT_UID: u32 = 60_000;
/// The server every measured connection goes to (`jump_tests::netns::INTERNAL_V4`).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The same server's IPv6 address (`jump_tests::netns::INTERNAL_V6`), for the `connect6` and
/// `sendmsg6` batches of the programs' run time. Granted in jump's policy only: the netfilter
/// systems are measured over IPv4.
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
pub const TCP_PORT: u16 = 7000;
pub const UDP_PORT: u16 = 7001;
/// iperf3's port, granted for tcp and udp.
pub const IPERF_PORT: u16 = 5201;
/// Not granted: connects here are refused by jump, the denied-storm target.
pub const DENIED_PORT: u16 = 9;
/// Generated uids start here, ten grants each.
const FIRST_UID: u32 = 100_000;
const GRANTS_PER_UID: usize = 10;
/// A policy file stays well under jump's per-file limit (`policy::MAX_FILE_BYTES`, 1 MiB).
const MAX_POLICY_FILE_BYTES: usize = 900_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub uid: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

/// The client's own grants, always the last four.
pub fn client_grants() -> [Grant; 4] {
    let g = |port, proto| Grant {
        uid: CLIENT_UID,
        addr: SERVER,
        port,
        proto,
    };
    [
        g(TCP_PORT, Proto::Tcp),
        g(UDP_PORT, Proto::Udp),
        g(IPERF_PORT, Proto::Tcp),
        g(IPERF_PORT, Proto::Udp),
    ]
}

/// `n` grants (at least the client's four).
pub fn grants(n: usize) -> Vec<Grant> {
    let client = client_grants();
    let generated = n.saturating_sub(client.len());
    assert!(generated < 1 << 24, "hosts are numbered within 10.0.0.0/8");
    let mut v: Vec<Grant> = (0..generated)
        .map(|i| Grant {
            uid: FIRST_UID + (i / GRANTS_PER_UID) as u32,
            addr: Ipv4Addr::from(0x0a00_0000 | i as u32),
            port: 1024 + (i % 50_000) as u16,
            proto: Proto::Tcp,
        })
        .collect();
    v.extend(client);
    v
}

/// Splits policy text into files under the per-file limit: `(file name, contents)`. The first
/// file carries the defaults; every file has its own `rules:` list.
fn policy_files(defaults: &str, rules: impl Iterator<Item = String>) -> Vec<(String, String)> {
    let mut files = vec![("00-defaults.yaml".to_string(), defaults.to_string())];
    let mut cur = String::new();
    for r in rules {
        if cur.len() + r.len() > MAX_POLICY_FILE_BYTES {
            files.push((format!("{:02}-rules.yaml", files.len()), cur));
            cur = String::new();
        }
        if cur.is_empty() {
            cur.push_str("rules:\n");
        }
        cur.push_str(&r);
    }
    if !cur.is_empty() {
        files.push((format!("{:02}-rules.yaml", files.len()), cur));
    }
    files
}

fn defaults(log: &str) -> String {
    format!("defaults:\n  egress: deny\n  log: {log}\n  loopback: allow\n")
}

/// jump: one rule per grant (`g<index>`), as iptables has, and for the bench client one more
/// with its IPv6 grants. `log` is `deny` (filtering only, like the netfilter systems) or `all`
/// (every decision an event: jump's audit use).
pub fn jump_policy(grants: &[Grant], log: &str) -> Vec<(String, String)> {
    let v6 = format!(
        "  - {{name: client-v6, users: [{CLIENT_UID}], allow: [{{to: [{SERVER6}], ports: [{TCP_PORT}, {UDP_PORT}], proto: [tcp, udp]}}]}}\n"
    );
    policy_files(
        &defaults(log),
        grants
            .iter()
            .enumerate()
            .map(|(i, g)| {
                format!(
                    "  - {{name: g{i}, users: [{}], allow: [{{to: [{}], ports: [{}], proto: [{}]}}]}}\n",
                    g.uid,
                    g.addr,
                    g.port,
                    g.proto.name()
                )
            })
            .chain(std::iter::once(v6)),
    )
}

/// The compile-and-apply target's shape: `users` users in teams of `team`, each team granted
/// `per_user` rules of its own (one host and port each), so every user has `per_user` rules.
/// Users of one team share one profile, as on a real jump host where teams share access.
pub fn teams_policy(users: usize, per_user: usize, team: usize) -> Vec<(String, String)> {
    let teams = users.div_ceil(team);
    policy_files(
        &defaults("all"),
        (0..teams).flat_map(move |t| {
            let members: Vec<String> = (t * team..((t + 1) * team).min(users))
                .map(|u| (200_000 + u).to_string())
                .collect();
            let members = members.join(", ");
            (0..per_user).map(move |r| {
                let host = Ipv4Addr::from(0x0a00_0000 | ((t as u32) << 8) | (r as u32 + 1));
                format!(
                    "  - {{name: t{t}r{r}, users: [{members}], allow: [{{to: [{host}], ports: [22], proto: [tcp]}}]}}\n"
                )
            })
        }),
    )
}

/// The nftables table name; replaced atomically by each load.
pub const NFT_TABLE: &str = "jump_bench";

/// nftables as an admin would write it for per-user egress: established traffic passes, new
/// traffic must match (uid . daddr . protocol . dport) in one concatenated set (a hash lookup),
/// anything else is dropped. The first two lines make the load an atomic replace.
pub fn nft_script(grants: &[Grant]) -> String {
    let mut s = format!(
        "table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\ntable ip {NFT_TABLE} {{\n\
         \tset grants {{\n\
         \t\ttypeof meta skuid . ip daddr . meta l4proto . th dport\n\
         \t\telements = {{\n"
    );
    for (i, g) in grants.iter().enumerate() {
        let sep = if i + 1 == grants.len() { "" } else { "," };
        let _ = writeln!(
            s,
            "\t\t\t{} . {} . {} . {}{sep}",
            g.uid,
            g.addr,
            g.proto.name(),
            g.port
        );
    }
    s.push_str(
        "\t\t}\n\t}\n\
         \tchain output {\n\
         \t\ttype filter hook output priority filter; policy drop;\n\
         \t\toifname \"lo\" accept\n\
         \t\tct state established,related accept\n\
         \t\tmeta skuid . ip daddr . meta l4proto . th dport @grants accept\n\
         \t}\n}\n",
    );
    s
}

/// iptables as an admin would write it without sets: one `-m owner --uid-owner` rule per grant,
/// tried in order, after the loopback and established-traffic rules; the policy drops the rest.
pub fn iptables_script(grants: &[Grant]) -> String {
    let mut s = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n\
         -A OUTPUT -o lo -j ACCEPT\n\
         -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    for g in grants {
        let p = g.proto.name();
        let _ = writeln!(
            s,
            "-A OUTPUT -d {}/32 -p {p} -m {p} --dport {} -m owner --uid-owner {} -j ACCEPT",
            g.addr, g.port, g.uid
        );
    }
    s.push_str("COMMIT\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_grants_end_with_the_clients() {
        let g = grants(10);
        assert_eq!(g.len(), 10);
        assert_eq!(&g[6..], &client_grants(), "the client's grants come last");
        assert_eq!(
            g[0],
            Grant {
                uid: 100_000,
                addr: Ipv4Addr::new(10, 0, 0, 0),
                port: 1024,
                proto: Proto::Tcp
            }
        );
        assert_eq!(g[5].addr, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(grants(2).len(), 4, "the client's grants are always there");
        let big = grants(100_000);
        assert_eq!(big.len(), 100_000);
        assert_eq!(big[99_995].addr, Ipv4Addr::new(10, 1, 134, 155));
        assert_eq!(big[99_995].uid, 109_999, "ten grants per generated uid");
    }

    #[test]
    fn jump_policy_is_one_rule_per_grant() {
        let files = jump_policy(&grants(5), "deny");
        assert_eq!(
            files,
            vec![
                (
                    "00-defaults.yaml".to_string(),
                    "defaults:\n  egress: deny\n  log: deny\n  loopback: allow\n".to_string()
                ),
                (
                    "01-rules.yaml".to_string(),
                    "rules:\n\
                     \x20 - {name: g0, users: [100000], allow: [{to: [10.0.0.0], ports: [1024], proto: [tcp]}]}\n\
                     \x20 - {name: g1, users: [60000], allow: [{to: [198.51.100.10], ports: [7000], proto: [tcp]}]}\n\
                     \x20 - {name: g2, users: [60000], allow: [{to: [198.51.100.10], ports: [7001], proto: [udp]}]}\n\
                     \x20 - {name: g3, users: [60000], allow: [{to: [198.51.100.10], ports: [5201], proto: [tcp]}]}\n\
                     \x20 - {name: g4, users: [60000], allow: [{to: [198.51.100.10], ports: [5201], proto: [udp]}]}\n\
                     \x20 - {name: client-v6, users: [60000], allow: [{to: [2001:db8:1::10], ports: [7000, 7001], proto: [tcp, udp]}]}\n"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn large_policies_are_split_under_the_file_limit() {
        let files = jump_policy(&grants(100_000), "all");
        assert!(files.len() > 2);
        for (name, text) in &files {
            assert!(
                text.len() <= MAX_POLICY_FILE_BYTES + 200,
                "{name} is too large"
            );
        }
        let count =
            |what: &str| -> usize { files.iter().map(|(_, t)| t.matches(what).count()).sum() };
        assert_eq!(
            count("name: "),
            100_001,
            "one rule per grant, and the client's IPv6 one"
        );
        assert_eq!(
            count("{to: "),
            100_001,
            "no grant lost at a file boundary (and the client's IPv6 one)"
        );
    }

    #[test]
    fn teams_give_every_user_its_rules() {
        let files = teams_policy(4, 2, 2);
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[1].1,
            "rules:\n\
             \x20 - {name: t0r0, users: [200000, 200001], allow: [{to: [10.0.0.1], ports: [22], proto: [tcp]}]}\n\
             \x20 - {name: t0r1, users: [200000, 200001], allow: [{to: [10.0.0.2], ports: [22], proto: [tcp]}]}\n\
             \x20 - {name: t1r0, users: [200002, 200003], allow: [{to: [10.0.1.1], ports: [22], proto: [tcp]}]}\n\
             \x20 - {name: t1r1, users: [200002, 200003], allow: [{to: [10.0.1.2], ports: [22], proto: [tcp]}]}\n"
        );
        let big = teams_policy(10_000, 20, 20);
        let rules: usize = big.iter().map(|(_, t)| t.matches("name: t").count()).sum();
        assert_eq!(rules, 10_000, "500 teams × 20 rules");
    }

    #[test]
    fn nft_set_holds_every_grant() {
        let s = nft_script(&grants(5));
        assert!(s.starts_with(
            "table ip jump_bench\ndelete table ip jump_bench\ntable ip jump_bench {\n"
        ));
        assert!(s.contains("\t\t\t100000 . 10.0.0.0 . tcp . 1024,\n"));
        assert!(
            s.contains("\t\t\t60000 . 198.51.100.10 . udp . 5201\n\t\t}"),
            "the last element has no trailing comma"
        );
        assert_eq!(
            s.matches(" . ").count(),
            3 * 5 + 3 + 3,
            "5 elements, the typeof and the rule"
        );
        assert!(s.contains("policy drop;"));
    }

    #[test]
    fn iptables_is_one_rule_per_grant_in_order() {
        let s = iptables_script(&grants(5));
        let rules: Vec<&str> = s.lines().filter(|l| l.contains("--uid-owner")).collect();
        assert_eq!(rules.len(), 5);
        assert_eq!(
            rules[0],
            "-A OUTPUT -d 10.0.0.0/32 -p tcp -m tcp --dport 1024 -m owner --uid-owner 100000 -j ACCEPT"
        );
        assert_eq!(
            rules[2],
            "-A OUTPUT -d 198.51.100.10/32 -p udp -m udp --dport 7001 -m owner --uid-owner 60000 -j ACCEPT"
        );
        assert!(s.ends_with("COMMIT\n"));
        assert!(s.contains(":OUTPUT DROP"));
    }
}

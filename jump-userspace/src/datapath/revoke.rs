//! Revocation: after a policy change, established connections the new policy no longer allows
//! are closed with netlink SOCK_DESTROY (through iproute2's `ss -K`), so the application sees
//! an error at once instead of the silent stall the egress backstop alone would give.
//!
//! Only sockets in the enforced cgroup (or below it) and in jumpd's own network namespace are
//! considered. A connection survives if the new policy allows its destination to its uid, or
//! if its local port is one the uid may listen on (an accepted connection).

use std::{net::SocketAddr, process::Command};

use jump_common::proto;

use crate::compile::image::MapImage;

/// One connected socket, as `ss -H -n -e --cgroup state established` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub proto: u8,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub uid: u32,
    pub cgroup: String,
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    // `ss` prints `[2001:db8::1]:22`, `198.51.100.1:22`, and IPv4-mapped as `[::ffff:a.b.c.d]:p`.
    s.parse().ok()
}

/// Parses `ss -H -n -e --cgroup` lines (no state column: a state filter is given).
pub fn parse(proto: u8, out: &str) -> Vec<Conn> {
    out.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = parse_addr(f.get(2)?)?;
            let peer = parse_addr(f.get(3)?)?;
            // ss omits `uid:` for root.
            let uid = f
                .iter()
                .find_map(|t| t.strip_prefix("uid:"))
                .and_then(|u| u.parse().ok())
                .unwrap_or(0);
            let cgroup = f
                .iter()
                .find_map(|t| t.strip_prefix("cgroup:"))
                .unwrap_or("")
                .to_string();
            Some(Conn {
                proto,
                local,
                peer,
                uid,
                cgroup,
            })
        })
        .collect()
}

/// Whether `cgroup` (as ss prints it, relative to the cgroup2 mount) is `root` or below it.
fn within(cgroup: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty()
        || cgroup == root
        || cgroup
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The connections the new image refuses. Pure, so the choice is unit-tested.
pub fn refused<'a>(
    image: &MapImage,
    conns: &'a [Conn],
    cgroup: &str,
    now_ns: u64,
) -> Vec<&'a Conn> {
    conns
        .iter()
        .filter(|c| within(&c.cgroup, cgroup))
        .filter(|c| {
            let egress = image.lookup(c.uid, c.peer.ip(), c.proto, c.peer.port(), now_ns);
            let accepted = image.listen(c.uid, c.proto, c.local.port(), now_ns);
            !MapImage::allows(egress) && !MapImage::allows(accepted)
        })
        .collect()
}

fn ss(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ss").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "`ss {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn flag(p: u8) -> &'static str {
    if p == proto::UDP {
        "-u"
    } else {
        "-t"
    }
}

/// Closes the connections in `cgroup` (relative to the cgroup2 mount) that `image` refuses.
pub fn revoke(image: &MapImage, cgroup: &str, now_ns: u64) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::new();
    for p in [proto::TCP, proto::UDP] {
        conns.extend(parse(
            p,
            &ss(&[
                "-H",
                "-n",
                "-e",
                "--cgroup",
                flag(p),
                "state",
                "established",
            ])?,
        ));
    }
    let mut closed = Vec::new();
    for c in refused(image, &conns, cgroup, now_ns) {
        let (src, dst) = (c.local.ip().to_string(), c.peer.ip().to_string());
        let (sport, dport) = (
            format!(":{}", c.local.port()),
            format!(":{}", c.peer.port()),
        );
        ss(&[
            "-K",
            "-H",
            "-n",
            flag(c.proto),
            "state",
            "established",
            "src",
            &src,
            "sport",
            "=",
            &sport,
            "dst",
            &dst,
            "dport",
            "=",
            &dport,
        ])?;
        closed.push(c.clone());
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::{DestEntry, PortEntry};
    use jump_common::{action, Candidate, LISTEN_CLASS};

    const SS: &str = "0      0      198.51.100.1:45678 198.51.100.10:7000 uid:64001 ino:1 sk:1 cgroup:/jump-test-1 <->
0      0      [2001:db8:1::1]:45679 [2001:db8:1::10]:22 uid:64002 ino:2 sk:2 cgroup:/jump-test-1/sub <->
0      0      198.51.100.1:22 198.51.100.99:50000 ino:3 sk:3 cgroup:/jump-test-1 <->
0      0      198.51.100.1:45680 198.51.100.10:7000 uid:64001 ino:4 sk:4 cgroup:/elsewhere <->";

    #[test]
    fn parses_ss_lines_with_and_without_uid() {
        let c = parse(proto::TCP, SS);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].peer, "198.51.100.10:7000".parse().unwrap());
        assert_eq!(c[0].uid, 64001);
        assert_eq!(c[1].local, "[2001:db8:1::1]:45679".parse().unwrap());
        assert_eq!(c[2].uid, 0, "ss prints no uid for root");
        assert_eq!(c[3].cgroup, "/elsewhere");
    }

    #[test]
    fn refuses_only_denied_connections_inside_the_cgroup() {
        let allow = Candidate {
            rule_id: 1,
            window: 0,
            action: action::ALLOW,
            _pad: [0; 3],
        };
        // uid 64001 keeps 198.51.100.10:7000; root may listen on 22; uid 64002 has nothing.
        let image = MapImage {
            default_action: action::DENY,
            users: [(64001, 0), (0, 1)].into_iter().collect(),
            dests: vec![DestEntry {
                profile: 0,
                net: "198.51.100.10/32".parse().unwrap(),
                class: 0,
            }],
            ports: vec![
                PortEntry {
                    class: 0,
                    proto: proto::TCP,
                    port: 7000,
                    bits: 16,
                    candidates: vec![allow],
                },
                PortEntry {
                    class: LISTEN_CLASS | 1,
                    proto: proto::TCP,
                    port: 22,
                    bits: 16,
                    candidates: vec![allow],
                },
            ],
            ..Default::default()
        };
        let conns = parse(proto::TCP, SS);
        let cut: Vec<u32> = refused(&image, &conns, "/jump-test-1", 0)
            .iter()
            .map(|c| c.uid)
            .collect();
        assert_eq!(
            cut,
            [64002],
            "the denied connection in a child cgroup goes; allowed, accepted and foreign ones stay"
        );
    }
}

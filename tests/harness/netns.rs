//! Network namespaces for the tests: a "jump host" namespace joined by veth pairs to an
//! "internal" network and an "internet" network, both in documentation ranges. Traffic never
//! leaves these namespaces.
//!
//! ```text
//!                      workstation (192.0.2.10, 2001:db8:2::10; optional)
//!                              | ws0
//!                              | host-ws (192.0.2.1, 2001:db8:2::1)
//!   internal (198.51.100.10, 2001:db8:1::10)      internet (203.0.113.10, 2001:db8:ff::10)
//!        | int0                                          | inet0
//!        | host-int (198.51.100.1, 2001:db8:1::1)        | host-inet (203.0.113.1, 2001:db8:ff::1)
//!        +------------------- jump host -----------------+
//! ```

use std::path::PathBuf;

use crate::{owner_alive, sh, unique};

const PREFIX: &str = "jt";

pub const INTERNAL_V4: &str = "198.51.100.10";
pub const INTERNAL_V6: &str = "2001:db8:1::10";
pub const INTERNET_V4: &str = "203.0.113.10";
pub const INTERNET_V6: &str = "2001:db8:ff::10";
/// The jump host's address as the admin workstation sees it.
pub const JUMP_V4: &str = "192.0.2.1";
pub const JUMP_V6: &str = "2001:db8:2::1";
pub const WORKSTATION_V4: &str = "192.0.2.10";

/// One named network namespace, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: String) -> anyhow::Result<Self> {
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The file `setns(2)` takes.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Sets a per-namespace sysctl, e.g. `net.ipv4.ping_group_range`.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "sysctl",
            "-q",
            "-w",
            &format!("{key}={value}"),
        ])
        .map(drop)
    }

    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = sh(&["ip", "netns", "del", &self.name]) {
            crate::cleanup_failed(e);
        }
    }
}

pub struct Topology {
    pub host: NetNs,
    pub internal: NetNs,
    pub internet: NetNs,
    /// An admin workstation that reaches only the jump host (the jump host does not forward:
    /// a new namespace starts with forwarding off). Built by [`Topology::with_workstation`].
    pub workstation: Option<NetNs>,
}

/// Joins `a` and `b` with a veth pair and addresses both ends (`nodad`: usable at once).
fn link(
    a: &NetNs,
    a_if: &str,
    a_addrs: &[&str],
    b: &NetNs,
    b_if: &str,
    b_addrs: &[&str],
) -> anyhow::Result<()> {
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ])?;
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["-6", "addr", "add", addr, "dev", ifname, "nodad"])?;
            } else {
                ns.ip(&["addr", "add", addr, "dev", ifname])?;
            }
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(())
}

impl Topology {
    pub fn new() -> anyhow::Result<Self> {
        Self::named(&unique(PREFIX))
    }

    /// The topology plus an admin workstation namespace `<base>-ws`.
    pub fn with_workstation() -> anyhow::Result<Self> {
        Self::named_with_workstation(&unique(PREFIX))
    }

    /// [`Topology::named`] plus the workstation `<base>-ws`.
    pub fn named_with_workstation(base: &str) -> anyhow::Result<Self> {
        let mut topo = Self::named(base)?;
        let ws = NetNs::new(format!("{base}-ws"))?;
        link(
            &topo.host,
            "host-ws",
            &[&format!("{JUMP_V4}/24"), &format!("{JUMP_V6}/64")],
            &ws,
            "ws0",
            &[&format!("{WORKSTATION_V4}/24"), "2001:db8:2::10/64"],
        )?;
        topo.workstation = Some(ws);
        Ok(topo)
    }

    /// The workstation namespace; panics when the topology was built without one.
    pub fn ws(&self) -> &NetNs {
        self.workstation
            .as_ref()
            .expect("topology built with_workstation")
    }

    /// Builds the topology with namespaces `<base>-host`, `<base>-int`, `<base>-inet`.
    pub fn named(base: &str) -> anyhow::Result<Self> {
        sweep();
        for suffix in ["host", "int", "inet", "ws"] {
            // A stale demo topology of the same name.
            let _ = sh(&["ip", "netns", "del", &format!("{base}-{suffix}")]);
        }
        let host = NetNs::new(format!("{base}-host"))?;
        let internal = NetNs::new(format!("{base}-int"))?;
        let internet = NetNs::new(format!("{base}-inet"))?;
        link(
            &host,
            "host-int",
            &["198.51.100.1/24", "2001:db8:1::1/64"],
            &internal,
            "int0",
            &["198.51.100.10/24", "2001:db8:1::10/64"],
        )?;
        link(
            &host,
            "host-inet",
            &["203.0.113.1/24", "2001:db8:ff::1/64"],
            &internet,
            "inet0",
            &["203.0.113.10/24", "2001:db8:ff::10/64"],
        )?;
        Ok(Self {
            host,
            internal,
            internet,
            workstation: None,
        })
    }
}

/// Deletes test namespaces left behind by test processes that no longer exist.
fn sweep() {
    let Ok(list) = sh(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let base = name.rsplit_once('-').map_or(name, |(b, _)| b);
        if name.starts_with(PREFIX)
            && base[PREFIX.len()..].starts_with(|c: char| c.is_ascii_digit())
            && !owner_alive(base, PREFIX)
        {
            let _ = sh(&["ip", "netns", "del", name]);
        }
    }
}

/// Runs `f` on a thread of its own inside the namespace `netns` (`setns(2)` with
/// `CLONE_NEWNET` moves only the calling thread), so a test can be a client anywhere without a
/// helper process.
pub fn in_netns<T: Send>(netns: &std::path::Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(netns)
                .unwrap_or_else(|e| panic!("open `{}`: {e}", netns.display()));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns `{}`: {e}", netns.display()));
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    })
}

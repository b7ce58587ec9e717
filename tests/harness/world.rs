//! The common test world: a topology, a child cgroup, echo servers in the internal zone, a
//! policy directory, and jumpd enforcing it on the cgroup once started. Tests that need more
//! (a control socket of their own, a metrics address) wrap it and deref to it.

use std::path::{Path, PathBuf};

use crate::{
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4},
    probe::{self, Outcome, Placement, Servers},
    Bins,
};

/// Fields drop in order: jumpd first, then what it enforced on.
pub struct World {
    pub jumpd: Option<Jumpd>,
    pub bins: Bins,
    pub policy: tempfile::TempDir,
    pub cg: TestCgroup,
    pub topo: Topology,
    servers: Vec<Servers>,
}

impl World {
    /// Echo servers on `tcp/PORT` of the internal host for each of `ports`, `files` written into
    /// a fresh policy directory; jumpd not started yet.
    pub fn new(ports: &[u16], files: &[(&str, &str)]) -> Self {
        let mut world = Self::bare(files);
        let specs: Vec<String> = ports
            .iter()
            .map(|p| format!("tcp:{INTERNAL_V4}:{p}"))
            .collect();
        world.serve(&world.topo.internal.path(), &specs);
        world
    }

    /// As `new`, with no servers yet (`serve` adds them).
    pub fn bare(files: &[(&str, &str)]) -> Self {
        let bins = Bins::from_env();
        let topo = Topology::new().expect("topology");
        let policy = tempfile::tempdir().expect("policy dir");
        let world = Self {
            jumpd: None,
            bins,
            policy,
            cg: TestCgroup::new().expect("cgroup"),
            topo,
            servers: Vec::new(),
        };
        for (name, text) in files {
            world.write(name, text);
        }
        world
    }

    /// Echo servers for the world's life in namespace `netns`: `specs` like
    /// `tcp:198.51.100.10:7000`, `udp:[2001:db8:1::10]:7000`.
    pub fn serve(&mut self, netns: &Path, specs: &[String]) {
        let servers = Servers::start(&self.bins, netns, specs).expect("servers");
        self.servers.push(servers);
    }

    /// Starts `jumpd EXTRA…` on the policy directory and the cgroup, and waits until it is ready.
    pub fn start(&mut self, extra: &[&str]) -> &Jumpd {
        self.jumpd = Some(
            Jumpd::start(&self.bins, self.policy.path(), &self.cg.path, extra).expect("jumpd"),
        );
        self.jumpd()
    }

    /// As `start`, with jumpd in the jump host's namespace: revocation closes the sockets of the
    /// namespace jumpd runs in.
    pub fn start_in_host(&mut self, extra: &[&str]) -> &Jumpd {
        self.jumpd = Some(
            Jumpd::start_in(
                &self.bins,
                Some(&self.host()),
                self.policy.path(),
                &self.cg.path,
                extra,
            )
            .expect("jumpd"),
        );
        self.jumpd()
    }

    pub fn jumpd(&self) -> &Jumpd {
        self.jumpd.as_ref().expect("jumpd started")
    }

    pub fn jumpd_mut(&mut self) -> &mut Jumpd {
        self.jumpd.as_mut().expect("jumpd started")
    }

    /// Writes policy file `name`: to a temporary name, renamed into place, as editors and
    /// config management do (the rename is one inotify event).
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.policy.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write policy");
        std::fs::rename(&tmp, self.policy_file(name)).expect("rename policy");
    }

    pub fn policy_file(&self, name: &str) -> PathBuf {
        self.policy.path().join(name)
    }

    /// Where a process of `uid` runs: the test cgroup, in the jump host's namespace.
    pub fn user(&self, uid: u32) -> Placement {
        Placement::user(uid, &self.cg.path, &self.host())
    }

    pub fn host(&self) -> PathBuf {
        self.topo.host.path()
    }

    /// A TCP connect by `uid` to the internal host's `port`.
    pub fn tcp(&self, uid: u32, port: u16) -> Outcome {
        probe::run(
            &self.bins,
            &self.user(uid),
            "tcp",
            &format!("{INTERNAL_V4}:{port}"),
        )
    }

    /// Asserts that `uid` reaches the internal host's `port` (`allowed`) or is refused.
    pub fn assert_reach(&self, uid: u32, port: u16, allowed: bool, why: &str) {
        let got = self.tcp(uid, port);
        if allowed {
            assert_eq!(got, Outcome::Ok, "uid {uid} should reach :{port} ({why})");
        } else {
            assert!(
                got.is_refused(),
                "uid {uid} should be refused :{port} ({why}), got {got:?}"
            );
        }
    }
}

//! The common test world: a topology, a child cgroup, echo servers in the internal zone, a
//! policy directory, and jumpd enforcing it on the cgroup once started. Tests that need more
//! (a control socket of their own, a metrics address) wrap it and deref to it.

use std::path::PathBuf;

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
    _servers: Servers,
}

impl World {
    /// Echo servers on `tcp/PORT` of the internal host for each of `ports`, `files` written into
    /// a fresh policy directory; jumpd not started yet.
    pub fn new(ports: &[u16], files: &[(&str, &str)]) -> Self {
        let bins = Bins::from_env();
        let topo = Topology::new().expect("topology");
        let specs: Vec<String> = ports
            .iter()
            .map(|p| format!("tcp:{INTERNAL_V4}:{p}"))
            .collect();
        let servers = Servers::start(&bins, &topo.internal.path(), &specs).expect("servers");
        let policy = tempfile::tempdir().expect("policy dir");
        let world = Self {
            jumpd: None,
            bins,
            policy,
            cg: TestCgroup::new().expect("cgroup"),
            topo,
            _servers: servers,
        };
        for (name, text) in files {
            world.write(name, text);
        }
        world
    }

    /// Starts `jumpd EXTRA…` on the policy directory and the cgroup, and waits until it is ready.
    pub fn start(&mut self, extra: &[&str]) -> &Jumpd {
        self.jumpd = Some(
            Jumpd::start(&self.bins, self.policy.path(), &self.cg.path, extra).expect("jumpd"),
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

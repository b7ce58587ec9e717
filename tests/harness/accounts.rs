//! Throw-away Unix users and groups (useradd/groupadd), removed by their guards — and, if a test
//! process died before its guards ran, by the next test's sweep. Names carry the owning test
//! process's pid like every harness name (`jtu1234x0`).

use crate::{owner_alive, sh, unique};

const USER_PREFIX: &str = "jtu";
const GROUP_PREFIX: &str = "jtg";

fn names_in(file: &str, prefix: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Removes users and groups of test processes that no longer exist.
fn sweep() {
    for u in names_in("/etc/passwd", USER_PREFIX) {
        if !owner_alive(&u, USER_PREFIX) {
            let _ = sh(&["userdel", &u]);
        }
    }
    for g in names_in("/etc/group", GROUP_PREFIX) {
        if !owner_alive(&g, GROUP_PREFIX) {
            let _ = sh(&["groupdel", &g]);
        }
    }
}

pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn new() -> anyhow::Result<Self> {
        sweep();
        let name = unique(GROUP_PREFIX);
        sh(&["groupadd", &name])?;
        let gid = nix::unistd::Group::from_name(&name)?
            .ok_or_else(|| anyhow::anyhow!("group `{name}` missing after groupadd"))?
            .gid
            .as_raw();
        Ok(Self { name, gid })
    }

    /// `gpasswd -a USER GROUP`: rewrites /etc/group (by rename), as an admin would.
    pub fn add(&self, user: &TestUser) -> anyhow::Result<()> {
        sh(&["gpasswd", "-a", &user.name, &self.name]).map(drop)
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        if let Err(e) = sh(&["groupdel", &self.name]) {
            eprintln!("warning: could not remove test group `{}`: {e}", self.name);
        }
    }
}

pub struct TestUser {
    pub name: String,
    pub uid: u32,
}

impl TestUser {
    /// A user with this uid, no home, primary group `users` (so no group of its own is made).
    pub fn new(uid: u32) -> anyhow::Result<Self> {
        sweep();
        let name = unique(USER_PREFIX);
        sh(&[
            "useradd",
            "--no-create-home",
            "--no-user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--uid",
            &uid.to_string(),
            &name,
        ])?;
        Ok(Self { name, uid })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if let Err(e) = sh(&["userdel", &self.name]) {
            eprintln!("warning: could not remove test user `{}`: {e}", self.name);
        }
    }
}

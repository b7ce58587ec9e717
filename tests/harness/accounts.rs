//! Unix accounts created for one test (`useradd`/`groupadd`) and removed on drop, also on
//! failure: `Accounts`, a test's set of named login accounts, and `TestUser`/`TestGroup`, one
//! account with a chosen uid or one group. Names are `<unique><role>`, e.g. `jt4711x2alice`
//! (`TestUser`: role `u`, `TestGroup`: role `g`): the test's pid is in the name, so accounts
//! left by a killed test are swept by the next one. Users carry the comment `jump-tests`, and
//! only such users are ever swept. `Accounts::fixed` is the demo's variant: given names, each
//! created only when missing.
//!
//! The accounts can log in with a key only: the password field is `*`, which matches no
//! password but, unlike useradd's default `!`, does not mark the account locked (sshd without
//! PAM refuses locked accounts).

use std::process::Command;

use crate::{owner_alive, sh, unique};

const PREFIX: &str = "jt";
const COMMENT: &str = "jump-tests";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Accounts of one test, removed (users, then groups, in reverse creation order) on drop.
pub struct Accounts {
    base: String,
    /// The users' comment (GECOS) field.
    comment: &'static str,
    users: Vec<User>,
    groups: Vec<String>,
}

/// Whether `name` is in the `passwd` or `group` database.
fn exists(db: &str, name: &str) -> bool {
    Command::new("getent")
        .args([db, name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The numeric id of a user (`id -u`) or a group (`getent group`).
fn lookup_uid(name: &str) -> anyhow::Result<(u32, u32)> {
    let uid = sh(&["id", "-u", name])?.trim().parse()?;
    let gid = sh(&["id", "-g", name])?.trim().parse()?;
    Ok((uid, gid))
}

impl Accounts {
    pub fn new() -> anyhow::Result<Self> {
        sweep();
        Ok(Self {
            base: unique(PREFIX),
            comment: COMMENT,
            users: Vec::new(),
            groups: Vec::new(),
        })
    }

    /// Accounts under the names given, as they are (the demo's `alice`, group `ops`), users
    /// marked with `comment`. `ensure_*` creates each only when missing, so only what was created
    /// here is removed. Nothing is swept: such names carry no pid.
    pub fn fixed(comment: &'static str) -> Self {
        Self {
            base: String::new(),
            comment,
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Creates group `name` unless it exists.
    pub fn ensure_group(&mut self, name: &str) -> anyhow::Result<()> {
        if !exists("group", name) {
            self.group(name)?;
        }
        Ok(())
    }

    /// Creates user `name` (as `user` does) unless it exists.
    pub fn ensure_user(&mut self, name: &str, groups: &[&str]) -> anyhow::Result<()> {
        if !exists("passwd", name) {
            self.user(name, groups)?;
        }
        Ok(())
    }

    /// Creates group `<base><role>` and returns its name.
    pub fn group(&mut self, role: &str) -> anyhow::Result<String> {
        let name = format!("{}{role}", self.base);
        sh(&["groupadd", &name])?;
        self.groups.push(name.clone());
        Ok(name)
    }

    /// Creates user `<base><role>` (own primary group, no home directory, bash) with the given
    /// supplementary groups.
    pub fn user(&mut self, role: &str, groups: &[&str]) -> anyhow::Result<User> {
        let name = format!("{}{role}", self.base);
        let list = groups.join(",");
        let mut args = vec![
            "useradd",
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/bin/bash",
            "--user-group",
            "--comment",
            self.comment,
            "--password",
            "*",
        ];
        if !groups.is_empty() {
            args.extend(["--groups", &list]);
        }
        args.push(&name);
        sh(&args)?;
        let (uid, gid) = match lookup_uid(&name) {
            Ok(ids) => ids,
            Err(e) => {
                let _ = sh(&["userdel", &name]);
                return Err(e);
            }
        };
        let user = User { name, uid, gid };
        self.users.push(user.clone());
        Ok(user)
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        let mut failed = Vec::new();
        for u in self.users.iter().rev() {
            // -f: a session process of the user that outlived its sshd must not keep the
            // account alive; the processes themselves are ended by the sshd guard.
            if let Err(e) = sh(&["userdel", "-f", &u.name]) {
                failed.push(e.to_string());
            }
        }
        for g in self.groups.iter().rev() {
            if let Err(e) = sh(&["groupdel", g.as_str()]) {
                failed.push(e.to_string());
            }
        }
        if !failed.is_empty() {
            crate::cleanup_failed(failed.join("; "));
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
        let name = format!("{}g", unique(PREFIX));
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
            crate::cleanup_failed(format!("remove test group `{}`: {e}", self.name));
        }
    }
}

pub struct TestUser {
    pub name: String,
    pub uid: u32,
}

impl TestUser {
    /// A user with this uid, no home, primary group `users` (so no group of its own is made),
    /// no login shell.
    pub fn new(uid: u32) -> anyhow::Result<Self> {
        sweep();
        let name = format!("{}u", unique(PREFIX));
        sh(&[
            "useradd",
            "--no-create-home",
            "--no-user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            COMMENT,
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
            crate::cleanup_failed(format!("remove test user `{}`: {e}", self.name));
        }
    }
}

/// `jt<digits>x<digits><letters>`: the shape of every name this module creates.
fn is_test_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let Some((pid, rest)) = rest.split_once('x') else {
        return false;
    };
    let n = rest.trim_end_matches(|c: char| c.is_ascii_lowercase());
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && n.len() < rest.len()
}

/// Removes accounts left behind by test processes that no longer exist.
fn sweep() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 5 && f[4] == COMMENT && is_test_name(f[0]) && !owner_alive(f[0], PREFIX) {
            let _ = Command::new("userdel").args(["-f", f[0]]).output();
        }
    }
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    for line in group.lines() {
        let name = line.split(':').next().unwrap_or("");
        if is_test_name(name) && !owner_alive(name, PREFIX) {
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_test_name;

    #[test]
    fn only_harness_shaped_names_are_swept() {
        assert!(is_test_name("jt4711x2alice"));
        assert!(!is_test_name("jt4711x2"), "no role");
        assert!(!is_test_name("jtx2alice"), "no pid");
        assert!(!is_test_name("jt47a11x2alice"));
        assert!(!is_test_name("alice"));
    }
}

//! Whether an event's audit login uid names the person who logged in, or only what some process
//! claimed. Any process whose login uid is unset may set it, once, to any value, without
//! privilege; so a login uid is believed only when its audit session was opened the way
//! `pam_loginuid` opens one.
//!
//! The rule: a session is *trusted* when its opener — a process of the session whose parent is
//! not in it — runs as root (real, effective, saved and file-system uid 0) from an executable
//! that is not set-uid or set-gid. sshd's privileged child, `login` and cron's job parent all
//! stay so for the whole session. A user who set their own login uid is the opener of that
//! session themselves (or, once they exit, so are their orphaned children): not root. Root
//! reached through a set-uid program (`sudo` prompting) is excluded by the executable check.
//! Everything else (the opener is gone, /proc unreadable) is untrusted: jump says so rather
//! than guess. Answers are kept per session, so a session proven once stays proven after its
//! opener exits.

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

use super::{
    cache::BoundedCache,
    proc::{Proc, Sessions, UNSET},
};

/// How many sessions' answers are kept.
pub const TRUST_CACHE: usize = 4096;

const SET_ID_BITS: u32 = 0o6000;

pub struct LoginTrust {
    root: PathBuf,
    sessions: BoundedCache<u32, bool>,
}

impl LoginTrust {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            sessions: BoundedCache::new(TRUST_CACHE),
        }
    }

    /// Whether audit session `session` was opened by a privileged process (see the module).
    pub fn trusted(&mut self, session: u32) -> bool {
        if session == UNSET {
            return false;
        }
        if let Some(t) = self.known(session) {
            return t;
        }
        let index = Proc::new(self.root.clone()).sessions();
        self.trusted_in(session, &index)
    }

    /// The answer kept for `session`, if any.
    pub fn known(&self, session: u32) -> Option<bool> {
        self.sessions.get(&session)
    }

    /// `trusted`, among the processes `index` lists for the session.
    pub fn trusted_in(&mut self, session: u32, index: &Sessions) -> bool {
        if session == UNSET {
            return false;
        }
        if let Some(t) = self.known(session) {
            return t;
        }
        let pids = index.pids(session);
        let t = self.opened_privileged(session, pids);
        // No process of the session in the index is no answer to keep: the session may have
        // started after the index was read.
        if t || !pids.is_empty() {
            self.sessions.insert(session, t);
        }
        t
    }

    fn read(&self, pid: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(pid).join(file)).ok()
    }

    fn session_of(&self, pid: &str) -> Option<u32> {
        self.read(pid, "sessionid")?.trim().parse().ok()
    }

    fn opened_privileged(&self, session: u32, pids: &[u32]) -> bool {
        for pid in pids {
            let pid = pid.to_string();
            // Read again: the index is from the start of the batch.
            if self.session_of(&pid) != Some(session) {
                continue;
            }
            let Some(status) = self.read(&pid, "status") else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_string()
            };
            let ppid = field("PPid:");
            if self.session_of(&ppid) == Some(session) {
                continue; // not the opener
            }
            let uids = field("Uid:");
            let root = !uids.is_empty() && uids.split_whitespace().all(|u| u == "0");
            // Root first: a user's executable is never looked at, as its file system (a FUSE
            // mount of theirs) could stall the stat and with it the main loop.
            if root
                && std::fs::metadata(self.root.join(&pid).join("exe"))
                    .is_ok_and(|m| m.permissions().mode() & SET_ID_BITS == 0)
            {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc of processes (pid, ppid, session, uids, exe mode).
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("jump-login-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn add(&self, pid: u32, ppid: u32, session: u32, uid: u32, exe_mode: u32) {
            let d = self.0.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("status"),
                format!("Name:\tx\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
            )
            .unwrap();
            std::fs::write(d.join("sessionid"), session.to_string()).unwrap();
            std::fs::write(d.join("exe"), "").unwrap();
            std::fs::set_permissions(d.join("exe"), std::fs::Permissions::from_mode(exe_mode))
                .unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_session_opened_by_root_is_trusted_one_a_user_opened_is_not() {
        let t = Tree::new("open");
        // sshd (no session) → its privileged child (root, opened session 7) → alice's shell.
        t.add(100, 1, UNSET, 0, 0o755);
        t.add(200, 100, 7, 0, 0o755);
        t.add(300, 200, 7, 1001, 0o755);
        // A daemon's child (no session) where alice set her own login uid: session 8.
        t.add(400, 1, UNSET, 0, 0o755);
        t.add(500, 400, 8, 1001, 0o755);
        t.add(501, 500, 8, 1001, 0o755);
        // Session 9: alice's opener ran a set-uid root program (sudo at its prompt).
        t.add(600, 400, 9, 0, 0o4755);
        let mut trust = LoginTrust::new(&t.0);
        assert!(
            trust.trusted(7),
            "pam_loginuid's shape: the opener stays root"
        );
        assert!(!trust.trusted(8), "the opener is alice herself");
        assert!(
            !trust.trusted(9),
            "root through a set-uid program is not privileged"
        );
        assert!(!trust.trusted(10), "no process of the session: cannot tell");
        assert!(!trust.trusted(UNSET));
    }

    #[test]
    fn answers_are_kept_after_the_opener_exits() {
        let t = Tree::new("cache");
        t.add(200, 1, 7, 0, 0o755);
        t.add(300, 200, 7, 1001, 0o755);
        let mut trust = LoginTrust::new(&t.0);
        assert!(trust.trusted(7));
        std::fs::remove_dir_all(t.0.join("200")).unwrap();
        assert!(trust.trusted(7), "proven once, the session stays proven");
        assert!(
            !LoginTrust::new(&t.0).trusted(7),
            "without the opener a fresh look cannot prove it"
        );
    }
}

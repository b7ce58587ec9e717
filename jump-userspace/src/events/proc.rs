//! What `/proc` tells about the process behind an event, for the facts the kernel did not put in
//! it: the executable, the audit login uid and session, and the SSH client of the session. The
//! root is a parameter, so tests use a fake tree.
//!
//! All of it is best effort: the process may have exited before the daemon reads its event (its
//! pid may even have been reused since), and a process owns its environment, so an SSH client
//! found there is a hint that names where the session came from, not proof. The audit login uid
//! and session id are set by the kernel (`pam_loginuid`) and cannot be changed by the user.

use std::{net::IpAddr, path::PathBuf};

/// The kernel's "unset" value of a login uid (`AUDIT_UID_UNSET`) and of a session id
/// (`AUDIT_SID_UNSET`); jump's events use the same value for "not captured".
pub const UNSET: u32 = u32::MAX;

/// How many processes the SSH client search visits, from the process up its parents. A login
/// shell under sshd is one to a few levels up; the bound keeps a deep process tree from costing
/// more than a few reads per event.
pub const MAX_ANCESTRY: usize = 16;

/// How many threads of a process `exe_of` looks at for the deciding thread's name.
pub const MAX_THREADS: usize = 256;

/// The environment variables sshd sets in a session, in order of preference. Both start with
/// the client's address.
const SSH_VARS: [&[u8]; 2] = [b"SSH_CONNECTION=", b"SSH_CLIENT="];

#[derive(Clone, Debug)]
pub struct Proc {
    root: PathBuf,
}

impl Default for Proc {
    fn default() -> Self {
        Self::new("/proc")
    }
}

/// The result of a search for a session's SSH client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSearch {
    pub client: Option<IpAddr>,
    /// Whether the search saw the whole session (reached its first process or pid 1), so that a
    /// `None` is an answer rather than a process that vanished mid-walk.
    pub complete: bool,
}

impl Proc {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn read_u32(&self, pid: u32, file: &str) -> Option<u32> {
        std::fs::read_to_string(self.path(pid, file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The executable's path, where readable.
    pub fn exe(&self, pid: u32) -> Option<String> {
        std::fs::read_link(self.path(pid, "exe"))
            .ok()
            .map(|p| p.display().to_string())
    }

    /// The executable of the process that made a decision at `decided_boot_ns` (CLOCK_BOOTTIME)
    /// with command name `comm` — or `None` when it cannot be the same program: the pid belongs
    /// to a process started after the decision (reused), or no thread of it has that command
    /// name any more (it exec'd, which renames it). Identity is read before and after the link,
    /// so an exec between the reads is seen too. A program that execs another of the same name
    /// is the one case this cannot tell.
    pub fn exe_of(&self, pid: u32, comm: &str, decided_boot_ns: u64) -> Option<String> {
        let same = || -> Option<()> {
            let started = self.start_ns(pid)?;
            (started <= decided_boot_ns && self.has_thread_named(pid, comm)).then_some(())
        };
        same()?;
        let exe = self.exe(pid)?;
        same()?;
        Some(exe)
    }

    /// When the process started, in CLOCK_BOOTTIME ns (field 22 of `stat`, in clock ticks of
    /// 10 ms: `CLK_TCK` is 100 on Linux), truncated to its tick: a pid reused within the same
    /// 10 ms as the decision is the one reuse this cannot see.
    fn start_ns(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(self.path(pid, "stat")).ok()?;
        // The command name may hold spaces and parentheses: fields follow the last `)`.
        let after = &stat[stat.rfind(')')? + 1..];
        let ticks: u64 = after.split_ascii_whitespace().nth(19)?.parse().ok()?;
        Some(ticks.saturating_mul(10_000_000))
    }

    /// Whether a thread of `pid` (at most `MAX_THREADS` looked at) is named `comm`: the kernel
    /// takes the name of the thread that decided, not always the main one.
    fn has_thread_named(&self, pid: u32, comm: &str) -> bool {
        let named = |p: PathBuf| {
            std::fs::read(p).is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == comm.as_bytes())
        };
        if named(self.path(pid, "comm")) {
            return true;
        }
        let Ok(tasks) = std::fs::read_dir(self.path(pid, "task")) else {
            return false;
        };
        tasks
            .flatten()
            .take(MAX_THREADS)
            .any(|t| named(t.path().join("comm")))
    }

    /// `(login uid, session id)` from `loginuid` and `sessionid`; `UNSET` where unset or
    /// unreadable.
    pub fn audit(&self, pid: u32) -> (u32, u32) {
        (
            self.read_u32(pid, "loginuid").unwrap_or(UNSET),
            self.read_u32(pid, "sessionid").unwrap_or(UNSET),
        )
    }

    /// The parent pid, from the `PPid:` line of `status`.
    pub fn ppid(&self, pid: u32) -> Option<u32> {
        let status = std::fs::read_to_string(self.path(pid, "status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()
    }

    /// The SSH client address in a process's initial environment: `Ok(None)` when it has none,
    /// `Err` when the environment cannot be read.
    pub fn ssh_env(&self, pid: u32) -> std::io::Result<Option<IpAddr>> {
        let env = std::fs::read(self.path(pid, "environ"))?;
        Ok(ssh_client_in(&env))
    }

    /// Searches the SSH client of `session` from `pid` up its parents: at most `MAX_ANCESTRY`
    /// processes, never leaving the session (a parent in another audit session is not part of
    /// it), and the outermost value wins — the one sshd gave the session's first process, which
    /// a child's `env SSH_CLIENT=…` cannot override. `session == UNSET` (no audit sessions on
    /// this host) only bounds the walk by depth.
    pub fn ssh_client(&self, pid: u32, session: u32) -> SshSearch {
        let mut found = None;
        let mut pid = pid;
        for _ in 0..MAX_ANCESTRY {
            if pid <= 1 {
                return SshSearch {
                    client: found,
                    complete: true,
                };
            }
            if session != UNSET && self.audit(pid).1 != session {
                // Also the answer when `pid` has exited: its sessionid reads as UNSET. That
                // is a complete search only when the walk got past the event's own process.
                let complete = self.root.join(pid.to_string()).exists();
                return SshSearch {
                    client: found,
                    complete,
                };
            }
            match self.ssh_env(pid) {
                Ok(Some(c)) => found = Some(c),
                Ok(None) => {}
                Err(_) => {
                    return SshSearch {
                        client: found,
                        complete: false,
                    }
                }
            }
            match self.ppid(pid) {
                Some(p) => pid = p,
                None => {
                    return SshSearch {
                        client: found,
                        complete: false,
                    }
                }
            }
        }
        SshSearch {
            client: found,
            complete: false,
        }
    }
}

/// The client address of `SSH_CONNECTION=ADDR PORT …` or `SSH_CLIENT=ADDR PORT PORT` in a
/// NUL-separated environment block. A value that is not an address is ignored.
pub fn ssh_client_in(environ: &[u8]) -> Option<IpAddr> {
    SSH_VARS.iter().find_map(|var| {
        environ
            .split(|&b| b == 0)
            .find_map(|kv| kv.strip_prefix(*var))
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|a| a.parse().ok())
    })
}

/// A fake `/proc` for tests: `add(pid, ppid, loginuid, sessionid, environ)`.
#[cfg(test)]
pub(crate) struct FakeProc {
    pub dir: PathBuf,
}

#[cfg(test)]
impl FakeProc {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jump-fakeproc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn add(&self, pid: u32, ppid: u32, loginuid: u32, sessionid: u32, environ: &[&str]) {
        let d = self.dir.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let w = |f: &str, s: &[u8]| std::fs::write(d.join(f), s).unwrap();
        w(
            "status",
            format!("Name:\tx\nPid:\t{pid}\nPPid:\t{ppid}\n").as_bytes(),
        );
        w("comm", b"curl\n");
        // Started 1 s after boot (100 ticks); the name with a space and a parenthesis.
        w(
            "stat",
            format!("{pid} (cu rl) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0")
                .as_bytes(),
        );
        w("loginuid", loginuid.to_string().as_bytes());
        w("sessionid", sessionid.to_string().as_bytes());
        let mut env = Vec::new();
        for kv in environ {
            env.extend_from_slice(kv.as_bytes());
            env.push(0);
        }
        w("environ", &env);
    }

    pub fn proc(&self) -> Proc {
        Proc::new(&self.dir)
    }
}

#[cfg(test)]
impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSH: &str = "SSH_CONNECTION=192.0.2.5 50022 192.0.2.1 22";

    #[test]
    fn ssh_client_is_read_from_either_variable() {
        assert_eq!(
            ssh_client_in(b"HOME=/root\0SSH_CLIENT=2001:db8::5 50022 22\0"),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(
            ssh_client_in(
                b"SSH_CLIENT=198.51.100.1 1 22\0SSH_CONNECTION=192.0.2.5 50022 192.0.2.1 22\0"
            ),
            Some("192.0.2.5".parse().unwrap()),
            "SSH_CONNECTION is preferred"
        );
        assert_eq!(ssh_client_in(b"SSH_CLIENT=not-an-address 1 22\0"), None);
        assert_eq!(ssh_client_in(b"XSSH_CLIENT=192.0.2.5 1 22\0"), None);
        assert_eq!(ssh_client_in(b""), None);
    }

    #[test]
    fn audit_ids_and_parent_are_read_from_proc() {
        let fake = FakeProc::new("audit");
        fake.add(4711, 4700, 1000, 7, &[]);
        let p = fake.proc();
        assert_eq!(p.audit(4711), (1000, 7));
        assert_eq!(p.ppid(4711), Some(4700));
        assert_eq!(
            p.audit(4712),
            (UNSET, UNSET),
            "a vanished process reads as unset"
        );
        assert_eq!(p.exe(4711), None);
    }

    #[test]
    fn the_executable_is_named_only_for_the_process_that_decided() {
        let fake = FakeProc::new("exe");
        fake.add(4711, 1, 1000, 7, &[]);
        let exe = fake.dir.join("4711/exe");
        std::os::unix::fs::symlink("/usr/bin/curl", &exe).unwrap();
        let p = fake.proc();
        assert_eq!(p.start_ns(4711), Some(1_000_000_000));
        assert_eq!(
            p.exe_of(4711, "curl", 2_000_000_000).as_deref(),
            Some("/usr/bin/curl")
        );
        assert_eq!(
            p.exe_of(4711, "sh", 2_000_000_000),
            None,
            "it exec'd since: another name"
        );
        assert_eq!(
            p.exe_of(4711, "curl", 500_000_000),
            None,
            "the pid was reused: started after the decision"
        );
        std::fs::create_dir_all(fake.dir.join("4711/task/4712")).unwrap();
        std::fs::write(fake.dir.join("4711/task/4712/comm"), "worker\n").unwrap();
        assert_eq!(
            p.exe_of(4711, "worker", 2_000_000_000).as_deref(),
            Some("/usr/bin/curl"),
            "another thread's name"
        );
        assert_eq!(p.exe_of(4799, "curl", 2_000_000_000), None, "gone");
    }

    #[test]
    fn ssh_client_is_found_in_an_ancestor_of_the_same_session() {
        let fake = FakeProc::new("ancestor");
        // sshd (session UNSET) → login shell (session 7, SSH env) → sudo → curl (env cleared)
        fake.add(100, 1, UNSET, UNSET, &[]);
        fake.add(200, 100, 1000, 7, &[SSH]);
        fake.add(300, 200, 1000, 7, &["PATH=/bin"]);
        fake.add(400, 300, 1000, 7, &[]);
        assert_eq!(
            fake.proc().ssh_client(400, 7),
            SshSearch {
                client: Some("192.0.2.5".parse().unwrap()),
                complete: true
            }
        );
    }

    #[test]
    fn the_outermost_value_of_the_session_wins_over_a_childs_own() {
        let fake = FakeProc::new("outermost");
        fake.add(200, 1, 1000, 7, &[SSH]);
        fake.add(300, 200, 1000, 7, &["SSH_CLIENT=203.0.113.66 1 22"]);
        assert_eq!(
            fake.proc().ssh_client(300, 7).client,
            Some("192.0.2.5".parse().unwrap())
        );
    }

    #[test]
    fn the_search_stops_at_the_session_boundary() {
        let fake = FakeProc::new("boundary");
        // The parent has SSH variables but belongs to another session: not this one's client.
        fake.add(200, 1, 1000, 6, &[SSH]);
        fake.add(300, 200, 1000, 7, &[]);
        assert_eq!(
            fake.proc().ssh_client(300, 7),
            SshSearch {
                client: None,
                complete: true
            }
        );
    }

    #[test]
    fn a_vanished_process_makes_the_search_incomplete() {
        let fake = FakeProc::new("vanished");
        assert!(!fake.proc().ssh_client(4711, 7).complete);
        assert!(!fake.proc().ssh_client(4711, UNSET).complete);
        // The parent is gone: the child's own value is kept, but the answer is not final.
        fake.add(300, 200, 1000, 7, &[SSH]);
        assert_eq!(
            fake.proc().ssh_client(300, UNSET),
            SshSearch {
                client: Some("192.0.2.5".parse().unwrap()),
                complete: false
            }
        );
    }

    #[test]
    fn the_search_is_bounded_in_depth() {
        let fake = FakeProc::new("depth");
        // A chain longer than MAX_ANCESTRY whose only SSH variables are at the top.
        let n = MAX_ANCESTRY as u32 + 4;
        for pid in 2..2 + n {
            let env: &[&str] = if pid == 2 { &[SSH] } else { &[] };
            fake.add(pid, pid - 1, UNSET, UNSET, env);
        }
        assert_eq!(
            fake.proc().ssh_client(2 + n - 1, UNSET),
            SshSearch {
                client: None,
                complete: false
            }
        );
    }
}

//! What `/proc` tells about the process behind an event, for the facts the kernel did not put in
//! it: the executable, the audit login uid and session, and the SSH connection of the session.
//! The root is a parameter, so tests use a fake tree.
//!
//! All of it is best effort: the process may have exited before the daemon reads its event (its
//! pid may even have been reused since). The audit login uid and session id are set by the
//! kernel (`pam_loginuid`) and cannot be changed by the user. The SSH connection is not taken
//! from the user's environment (`SSH_CONNECTION` is theirs to set, and `/proc/PID/environ` is
//! 0400 to jumpd without CAP_DAC_*): it is the TCP socket held by the session's privileged sshd
//! — the root `sshd: USER [priv]` monitor in which `pam_loginuid` opened the audit session, so
//! it carries the session id. jumpd reads that process's `fd/` as the same uid (root) with
//! CAP_SYS_PTRACE (the kernel's ptrace access check for a non-dumpable process), and its
//! `net/tcp*` tables, which are world-readable and show the sshd's own network namespace.
//!
//! (Over 500 lines, half of them the fake `/proc` tree and the tests that use it.)

use std::{
    collections::{BTreeMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

/// The kernel's "unset" value of a login uid (`AUDIT_UID_UNSET`) and of a session id
/// (`AUDIT_SID_UNSET`); jump's events use the same value for "not captured".
pub const UNSET: u32 = u32::MAX;

/// How many threads of a process `exe_of` looks at for the deciding thread's name.
pub const MAX_THREADS: usize = 256;

#[derive(Clone, Debug)]
pub struct Proc {
    root: PathBuf,
}

impl Default for Proc {
    fn default() -> Self {
        Self::new("/proc")
    }
}

/// An SSH session's TCP connection as the jump host's sshd sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SshConn {
    /// The peer: the SSH client's address and port.
    pub client: SocketAddr,
    /// sshd's local end: the address and port the client connected to.
    pub server: SocketAddr,
}

/// The result of a search for a session's SSH connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSearch {
    pub conn: Option<SshConn>,
    /// Whether every candidate process could be read, so that a `None` is an answer (no sshd
    /// holds the session: not an SSH login, or it has ended) rather than a failed read.
    pub complete: bool,
}

/// Which processes are in which audit session, from one read of every `/proc/PID/sessionid`.
/// A batch of events shares one: an unknown session would otherwise cost a scan of all of
/// `/proc` per event (twice: trust, then the SSH connection), and a user may open sessions at
/// will (an unset login uid may be set once, which starts a new one), enough to stall jumpd.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    /// Session → its pids, ascending.
    pids: BTreeMap<u32, Vec<u32>>,
    /// Whether `/proc` could be listed at all.
    pub complete: bool,
}

impl Sessions {
    pub fn pids(&self, session: u32) -> &[u32] {
        self.pids.get(&session).map_or(&[], Vec::as_slice)
    }
}

impl Proc {
    /// Every process's audit session (a process gone mid-scan is left out).
    pub fn sessions(&self) -> Sessions {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Sessions::default();
        };
        let mut pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        let mut out = Sessions {
            pids: BTreeMap::new(),
            complete: true,
        };
        for pid in pids {
            if let Some(s) = self.read_u32(pid, "sessionid").filter(|&s| s != UNSET) {
                out.pids.entry(s).or_default().push(pid);
            }
        }
        out
    }

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

    /// The executable's path, where readable and the process sees the host's files: a path is
    /// as the process's mount namespace has it, and a user may make one of their own (with a
    /// user namespace) and bind-mount any program of theirs over `/usr/bin/ssh`. So the path is
    /// named only for a process in init's mount namespace (where init's can be read: some
    /// sandboxes' init hides its namespaces even from root).
    pub fn exe(&self, pid: u32) -> Option<String> {
        let mnt = |pid: &str| std::fs::read_link(self.root.join(pid).join("ns/mnt")).ok();
        if let Some(init) = mnt("1") {
            if mnt(&pid.to_string()) != Some(init) {
                return None;
            }
        }
        std::fs::read_link(self.path(pid, "exe"))
            .ok()
            .map(|p| p.display().to_string())
    }

    /// The executable of the process that made a decision at `decided_boot_ns` (CLOCK_BOOTTIME)
    /// with command name `comm` — or `None` when it cannot be the same program: the pid belongs
    /// to a process started after the decision (reused), or no thread of it has that command
    /// name any more (it exec'd, which renames it). Identity is read before and after the link,
    /// so an exec between the reads is seen too. A program that execs another of the same name
    /// is the one case this cannot tell. With `start_ticks` (the kernel's record of when the
    /// deciding process started, `Event::start_ticks`; 0 if unknown), the process must have
    /// started then exactly: a pid reused before the decision (an egress drop of a socket whose
    /// connector has exited) is seen too.
    pub fn exe_of(
        &self,
        pid: u32,
        comm: &str,
        decided_boot_ns: u64,
        start_ticks: u32,
    ) -> Option<String> {
        self.exe_and_start(pid, comm, decided_boot_ns, start_ticks)
            .map(|(exe, _)| exe)
    }

    /// `exe_of` with the process's start time (CLOCK_BOOTTIME ns, truncated to its tick).
    pub fn exe_and_start(
        &self,
        pid: u32,
        comm: &str,
        decided_boot_ns: u64,
        start_ticks: u32,
    ) -> Option<(String, u64)> {
        let same = || -> Option<u64> {
            let started = self.start_ns(pid)?;
            (started <= decided_boot_ns
                && (start_ticks == 0 || ticks(started) == start_ticks)
                && self.has_thread_named(pid, comm))
            .then_some(started)
        };
        let started = same()?;
        let exe = self.exe(pid)?;
        (same()? == started).then_some((exe, started))
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

    /// The TCP connection of audit session `session`'s SSH login, from the session's
    /// privileged sshd (see the module): its sockets (`fd/` links `socket:[INODE]`) looked up
    /// in its own network namespace's `net/tcp` and `net/tcp6`. Candidates are visited by
    /// ascending pid and the first with an established TCP socket wins: sshd's `[priv]`
    /// monitor, where `pam_loginuid` opened the session, is older than anything it started.
    pub fn ssh_conn(&self, session: u32) -> SshSearch {
        if session == UNSET {
            return SshSearch {
                conn: None,
                complete: true,
            };
        }
        self.ssh_conn_in(session, &self.sessions())
    }

    /// `ssh_conn` among the processes `sessions` lists for the session.
    pub fn ssh_conn_in(&self, session: u32, sessions: &Sessions) -> SshSearch {
        let none = |complete| SshSearch {
            conn: None,
            complete,
        };
        if session == UNSET {
            return none(true);
        }
        if !sessions.complete {
            return none(false);
        }
        let mut complete = true;
        for &pid in sessions.pids(session) {
            if self.read_u32(pid, "sessionid") != Some(session) || !self.is_root_sshd(pid) {
                continue;
            }
            match self.established_tcp(pid) {
                Some(Some(conn)) => {
                    return SshSearch {
                        conn: Some(conn),
                        complete: true,
                    }
                }
                Some(None) => {}
                // Unreadable (or gone mid-read): the answer may be there, not final.
                None => complete = false,
            }
        }
        none(complete)
    }

    /// Whether `pid` runs as root (real, effective, saved and file-system uid) from an
    /// executable named `sshd*` (`sshd`, or `sshd-session` of OpenSSH 9.8 and later). A user
    /// cannot make such a process: naming a program `sshd` or setting its `comm` is not
    /// enough.
    fn is_root_sshd(&self, pid: u32) -> bool {
        let root = std::fs::read_to_string(self.path(pid, "status")).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|u| {
                    let ids: Vec<&str> = u.split_whitespace().collect();
                    ids.len() == 4 && ids.iter().all(|id| *id == "0")
                })
        });
        root && std::fs::read_link(self.path(pid, "exe")).is_ok_and(|exe| {
            exe.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sshd"))
        })
    }

    /// The first established TCP connection among `pid`'s sockets: `None` when its fds or
    /// network tables cannot be read, `Some(None)` when it has none.
    fn established_tcp(&self, pid: u32) -> Option<Option<SshConn>> {
        let mut inodes = HashSet::new();
        for fd in std::fs::read_dir(self.path(pid, "fd")).ok()?.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue; // closed since the directory was read
            };
            if let Some(inode) = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|i| i.parse::<u64>().ok())
            {
                inodes.insert(inode);
            }
        }
        if inodes.is_empty() {
            return Some(None);
        }
        for table in ["net/tcp", "net/tcp6"] {
            let text = std::fs::read_to_string(self.path(pid, table)).ok()?;
            if let Some(conn) = text.lines().skip(1).find_map(|l| tcp_entry(l, &inodes)) {
                return Some(Some(conn));
            }
        }
        Some(None)
    }
}

/// `TCP_ESTABLISHED` in the `st` column of `/proc/net/tcp`.
const ESTABLISHED: &str = "01";

/// One line of `/proc/net/tcp{,6}` (`sl local rem st tx:rx tr:when retrnsmt uid timeout
/// inode …`) as a connection, when it is established and its inode is one of `inodes`.
fn tcp_entry(line: &str, inodes: &HashSet<u64>) -> Option<SshConn> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != ESTABLISHED || !inodes.contains(&f[9].parse().ok()?) {
        return None;
    }
    Some(SshConn {
        server: tcp_addr(f[1])?,
        client: tcp_addr(f[2])?,
    })
}

/// `0100007F:0016` or `…32 hex digits…:0016`. The kernel prints the address as 32-bit words in
/// the host's byte order (`%08X` of each `__be32`), the port as a number.
fn tcp_addr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            // sshd listening on `::` serves IPv4 clients as IPv4-mapped addresses.
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A fake `/proc` for tests: `add(pid, ppid, loginuid, sessionid)` for any process,
/// `sshd(…)` for one holding sockets.
/// A start time as `start_ns` gives it, in the kernel's `Event::start_ticks` form (clock ticks
/// of 10 ms, modulo 2^32).
pub fn ticks(start_ns: u64) -> u32 {
    (start_ns / 10_000_000) as u32
}

#[cfg(test)]
pub(crate) struct FakeProc {
    pub dir: PathBuf,
}

/// The header line of `/proc/net/tcp`.
#[cfg(test)]
const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

#[cfg(test)]
impl FakeProc {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jump-fakeproc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn add(&self, pid: u32, ppid: u32, loginuid: u32, sessionid: u32) {
        let d = self.dir.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let w = |f: &str, s: &[u8]| std::fs::write(d.join(f), s).unwrap();
        w(
            "status",
            format!("Name:\tx\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t1000\t1000\t1000\t1000\n")
                .as_bytes(),
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
    }

    /// A process of `session` running `exe` as `uid`, with sockets of the given inodes (and
    /// stdin on /dev/null) and the network tables `net/tcp` and `net/tcp6` (entry lines, no
    /// header).
    pub fn sshd(
        &self,
        pid: u32,
        session: u32,
        uid: u32,
        exe: &str,
        sockets: &[u64],
        [tcp, tcp6]: [&[&str]; 2],
    ) {
        self.add(pid, 1, UNSET, session);
        let d = self.dir.join(pid.to_string());
        std::fs::write(
            d.join("status"),
            format!("Name:\tsshd\nPid:\t{pid}\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
        std::os::unix::fs::symlink(exe, d.join("exe")).unwrap();
        std::fs::create_dir_all(d.join("fd")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("fd/0")).unwrap();
        for (n, inode) in sockets.iter().enumerate() {
            std::os::unix::fs::symlink(
                format!("socket:[{inode}]"),
                d.join(format!("fd/{}", n + 3)),
            )
            .unwrap();
        }
        std::fs::create_dir_all(d.join("net")).unwrap();
        for (file, lines) in [("tcp", tcp), ("tcp6", tcp6)] {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(d.join("net").join(file), format!("{TCP_HEADER}{text}")).unwrap();
        }
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

    // Lines as the kernel prints them on a little-endian host (x86, arm64): the jump host's
    // sshd on 192.0.2.1:22 and [2001:db8::1]:22, clients 192.0.2.5:50022 (on a `::` socket,
    // IPv4-mapped) and [2001:db8::5]:50022, a listener (state 0A) and a user's connection.
    const V4_LISTEN: &str = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0";
    const V4_SESSION: &str = "   1: 010200C0:0016 050200C0:C366 01 00000000:00000000 02:000A7B4C 00000000     0        0 101 4 0000000000000000 20 4 30 10 -1";
    const V6_MAPPED: &str = "   0: 0000000000000000FFFF0000010200C0:0016 0000000000000000FFFF0000050200C0:C366 01 00000000:00000000 02:000A7B4C 00000000     0        0 102 4 0000000000000000 20 4 30 10 -1";
    const V6_SESSION: &str = "   1: B80D0120000000000000000001000000:0016 B80D0120000000000000000005000000:C366 01 00000000:00000000 02:000A7B4C 00000000     0        0 103 4 0000000000000000 20 4 30 10 -1";
    const USER_CONN: &str = "   2: 010200C0:D431 427100CB:0016 01 00000000:00000000 00:00000000 00000000  1000        0 104 1 0000000000000000 20 4 30 10 -1";
    const SSHD: &str = "/usr/sbin/sshd";

    fn conn(client: &str, server: &str) -> Option<SshConn> {
        Some(SshConn {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
        })
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn tcp_table_addresses_are_read_in_the_kernels_notation() {
        let all: HashSet<u64> = (100..=104).collect();
        assert_eq!(tcp_entry(V4_LISTEN, &all), None, "a listener is no session");
        assert_eq!(
            tcp_entry(V4_SESSION, &all),
            conn("192.0.2.5:50022", "192.0.2.1:22")
        );
        assert_eq!(
            tcp_entry(V6_MAPPED, &all),
            conn("192.0.2.5:50022", "192.0.2.1:22"),
            "IPv4-mapped addresses are shown as IPv4"
        );
        assert_eq!(
            tcp_entry(V6_SESSION, &all),
            conn("[2001:db8::5]:50022", "[2001:db8::1]:22")
        );
        assert_eq!(
            tcp_entry(V4_SESSION, &HashSet::from([999])),
            None,
            "another process's socket"
        );
        assert_eq!(tcp_addr("0100007F:zz"), None);
        assert_eq!(tcp_addr("0100007F0:0016"), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_ssh_connection_is_the_sessions_root_sshd_socket() {
        let fake = FakeProc::new("sshconn");
        let tables: &[&str] = &[V4_LISTEN, V4_SESSION, USER_CONN];
        // The listener (no session), a user's fake `sshd` and a root sshd of another session
        // hold sockets too; the session's monitor holds 101, its unprivileged child too.
        fake.sshd(100, UNSET, 0, SSHD, &[100], [tables, &[]]);
        fake.sshd(150, 7, 1000, "/home/u/sshd", &[104], [tables, &[]]);
        fake.sshd(160, 6, 0, SSHD, &[104], [tables, &[]]);
        fake.sshd(170, 7, 0, "/usr/bin/sudo", &[104], [tables, &[]]);
        fake.sshd(180, 7, 0, SSHD, &[], [tables, &[]]);
        fake.sshd(200, 7, 0, SSHD, &[101], [tables, &[]]);
        fake.sshd(210, 7, 1000, SSHD, &[101], [tables, &[]]);
        fake.add(300, 210, 1000, 7);
        let p = fake.proc();
        assert_eq!(
            p.ssh_conn(7),
            SshSearch {
                conn: conn("192.0.2.5:50022", "192.0.2.1:22"),
                complete: true
            }
        );
        assert_eq!(
            p.ssh_conn(6),
            SshSearch {
                conn: conn("203.0.113.66:22", "192.0.2.1:54321"),
                complete: true
            },
            "session 6's own sshd"
        );
        fake.sshd(400, 8, 0, SSHD, &[103], [&[], &[V6_SESSION]]);
        assert_eq!(
            p.ssh_conn(8).conn,
            conn("[2001:db8::5]:50022", "[2001:db8::1]:22")
        );
    }

    #[test]
    fn a_session_without_sshd_is_an_answer_an_unreadable_one_is_not() {
        let fake = FakeProc::new("nosshd");
        fake.add(300, 1, 1000, 7);
        let p = fake.proc();
        let none = |complete| SshSearch {
            conn: None,
            complete,
        };
        assert_eq!(p.ssh_conn(7), none(true), "cron or console: no sshd");
        assert_eq!(p.ssh_conn(9), none(true), "the session has ended");
        assert_eq!(
            p.ssh_conn(UNSET),
            none(true),
            "no session: nothing to look up"
        );
        fake.sshd(200, 7, 0, SSHD, &[101], [&[], &[]]);
        std::fs::remove_dir_all(fake.dir.join("200/fd")).unwrap();
        std::fs::write(fake.dir.join("200/fd"), "").unwrap();
        assert_eq!(p.ssh_conn(7), none(false), "its fds cannot be read");
        assert_eq!(Proc::new(fake.dir.join("absent")).ssh_conn(7), none(false));
    }

    #[test]
    fn audit_ids_and_parent_are_read_from_proc() {
        let fake = FakeProc::new("audit");
        fake.add(4711, 4700, 1000, 7);
        let p = fake.proc();
        assert_eq!(p.audit(4711), (1000, 7));
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
        fake.add(4711, 1, 1000, 7);
        let exe = fake.dir.join("4711/exe");
        std::os::unix::fs::symlink("/usr/bin/curl", &exe).unwrap();
        let p = fake.proc();
        assert_eq!(p.start_ns(4711), Some(1_000_000_000));
        assert_eq!(
            p.exe_of(4711, "curl", 2_000_000_000, 0).as_deref(),
            Some("/usr/bin/curl")
        );
        assert_eq!(
            p.exe_of(4711, "curl", 2_000_000_000, 100).as_deref(),
            Some("/usr/bin/curl"),
            "started when the kernel recorded (1 s = 100 ticks)"
        );
        assert_eq!(
            p.exe_of(4711, "curl", 2_000_000_000, 99),
            None,
            "another process than the recorded one, though started before the decision"
        );
        assert_eq!(
            p.exe_of(4711, "sh", 2_000_000_000, 0),
            None,
            "it exec'd since: another name"
        );
        assert_eq!(
            p.exe_of(4711, "curl", 500_000_000, 0),
            None,
            "the pid was reused: started after the decision"
        );
        std::fs::create_dir_all(fake.dir.join("4711/task/4712")).unwrap();
        std::fs::write(fake.dir.join("4711/task/4712/comm"), "worker\n").unwrap();
        assert_eq!(
            p.exe_of(4711, "worker", 2_000_000_000, 0).as_deref(),
            Some("/usr/bin/curl"),
            "another thread's name"
        );
        assert_eq!(p.exe_of(4799, "curl", 2_000_000_000, 0), None, "gone");
    }

    /// A path is as the process's mount namespace has it, where its user may have bind-mounted
    /// their own program over `/usr/bin/ssh`: named only in init's.
    #[test]
    fn the_executable_is_named_only_in_inits_mount_namespace() {
        let fake = FakeProc::new("mntns");
        fake.add(1, 0, UNSET, UNSET);
        fake.add(4711, 1, 1000, 7);
        std::os::unix::fs::symlink("/usr/bin/ssh", fake.dir.join("4711/exe")).unwrap();
        for pid in ["1", "4711"] {
            std::fs::create_dir_all(fake.dir.join(pid).join("ns")).unwrap();
        }
        let ns = |pid: &str, ino: &str| {
            let link = fake.dir.join(pid).join("ns/mnt");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("mnt:[{ino}]"), link).unwrap();
        };
        ns("1", "4026531841");
        ns("4711", "4026531841");
        let p = fake.proc();
        assert_eq!(p.exe(4711).as_deref(), Some("/usr/bin/ssh"), "the host's");
        ns("4711", "4026532999");
        assert_eq!(p.exe(4711), None, "a mount namespace of its own");
        std::fs::remove_file(fake.dir.join("1/ns/mnt")).unwrap();
        assert_eq!(
            p.exe(4711).as_deref(),
            Some("/usr/bin/ssh"),
            "init's cannot be read: no comparison"
        );
    }
}

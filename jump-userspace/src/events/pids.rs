//! What `/proc` said about a process (its executable, its audit ids), kept while the process
//! lives, so a storm of one process's events costs a liveness check per ring-buffer drain
//! instead of seven `/proc` reads per event.
//!
//! Pid reuse: an entry holds a pidfd of the process it describes. While that process has not
//! exited, no other process can hold its pid, so an event of that pid decided at or before the
//! last moment it was seen alive is its own (`valid_until_tai`); a later event first checks
//! that it is still alive (`poll` on the pidfd) and still runs the same executable (one
//! `readlink`, which catches an exec since). An event decided before the process started (a
//! previous holder of the pid) never matches, and a command name not yet confirmed for the
//! entry (another thread, or a name from before an exec) takes the full `/proc` path
//! (`Proc::exe_and_start`), exactly as without the cache. A program that execs another
//! executable and back between two checks is the one case this cannot tell.
//!
//! A pid no process holds (`pidfd_open` fails) is remembered too: events decided before then
//! came from a process that has exited, whose facts `/proc` can no longer give — the usual
//! case when a storm is read after its process ended.
//!
//! Bounded: at most `PID_CACHE` processes (each holds one descriptor); a fork storm of
//! distinct pids only costs lookups, never memory or descriptors beyond that.

use std::{collections::HashMap, os::fd::OwnedFd, sync::Arc};

use jump_common::COMM_LEN;
use rustix::{
    event::{poll, PollFd, PollFlags},
    process::{pidfd_open, Pid, PidfdFlags},
};

use super::proc::{Proc, UNSET};

/// How many processes are remembered (each holds a pidfd, well within the default limit of
/// 1024 descriptors).
pub const PID_CACHE: usize = 256;
/// How many command names (threads) are confirmed per process.
const MAX_NAMES: usize = 8;

struct Entry {
    pidfd: OwnedFd,
    /// Start, CLOCK_BOOTTIME ns, truncated to its 10 ms tick (`Proc::exe_and_start`).
    start_boot: u64,
    exe: Arc<str>,
    /// Command names seen on a thread of this process while it ran `exe`.
    names: Vec<[u8; COMM_LEN]>,
    /// `(login uid, session id)` read from `/proc`, when an event needed them.
    audit: Option<(u32, u32)>,
    /// The process held this pid, running `exe`, until at least this CLOCK_TAI time.
    valid_until_tai: u64,
}

/// Whether the process behind `pidfd` has not exited (a pidfd turns readable when it does).
fn alive(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    matches!(
        poll(
            &mut fds,
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0
            })
        ),
        Ok(0)
    )
}

/// One event's view of its process.
pub struct Decider<'a> {
    pub pid: u32,
    pub comm: &'a str,
    pub comm_raw: &'a [u8; COMM_LEN],
    /// When it decided, CLOCK_TAI and CLOCK_BOOTTIME ns.
    pub decided_tai: u64,
    pub decided_boot: u64,
    /// When its process started, as the kernel recorded it (`Event::start_ticks`); 0 if not.
    pub start_ticks: u32,
}

pub struct Pids {
    map: HashMap<u32, Entry>,
    /// Pids no process held at a CLOCK_TAI time (`pidfd_open` failed with ESRCH): events of
    /// them decided by then were decided by a process that has exited, which `/proc` can no
    /// longer describe (what it shows under that pid later is another process). The common
    /// case of a storm read after its process ended; bounded like `map`.
    gone: HashMap<u32, u64>,
    cap: usize,
    now_tai: fn() -> u64,
}

fn system_tai() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_TAI)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl Default for Pids {
    fn default() -> Self {
        Self::new(PID_CACHE, system_tai)
    }
}

impl Pids {
    pub fn new(cap: usize, now_tai: fn() -> u64) -> Self {
        assert!(cap > 0, "a cache holds at least one entry");
        Self {
            map: HashMap::new(),
            gone: HashMap::new(),
            cap,
            now_tai,
        }
    }

    /// The entry of the process that made decision `d`, checked again if `d` is later than its
    /// last check; `None` (and the entry gone, if it is stale) when it cannot be shown to be.
    fn current(&mut self, proc: &Proc, d: &Decider) -> Option<&mut Entry> {
        let e = self.map.get(&d.pid)?;
        if d.decided_boot < e.start_boot {
            return None; // a previous holder of the pid
        }
        if d.start_ticks != 0 && super::proc::ticks(e.start_boot) != d.start_ticks {
            return None; // another holder of the pid than the one the kernel recorded
        }
        if d.decided_tai > e.valid_until_tai {
            let now = (self.now_tai)();
            let same = proc.exe(d.pid).is_some_and(|x| *x == *e.exe) && alive(&e.pidfd);
            if !same {
                self.map.remove(&d.pid);
                return None;
            }
            let e = self.map.get_mut(&d.pid)?;
            e.valid_until_tai = now;
            // An unset login uid may still be set once, by the process itself.
            if e.audit.is_some_and(|(l, _)| l == UNSET) {
                e.audit = None;
            }
            if d.decided_tai > now {
                return None;
            }
        }
        self.map.get_mut(&d.pid)
    }

    /// `Proc::exe_of` for decision `d`, from the cache where it shows the same process.
    pub fn exe(&mut self, proc: &Proc, d: &Decider) -> Option<Arc<str>> {
        if let Some(e) = self.current(proc, d) {
            if e.names.contains(d.comm_raw) {
                return Some(e.exe.clone());
            }
        }
        if self.exited(d) {
            return None;
        }
        let before = (self.now_tai)();
        // Opened first: if it is still alive after the reads, the reads were of this process.
        let pidfd = match pidfd_open(Pid::from_raw(d.pid as i32)?, PidfdFlags::empty()) {
            Ok(fd) => {
                self.gone.remove(&d.pid);
                Some(fd)
            }
            Err(rustix::io::Errno::SRCH) => {
                // INVARIANT (bounded): `gone.len() <= cap` after every call.
                if self.gone.len() >= self.cap && !self.gone.contains_key(&d.pid) {
                    self.gone.clear();
                }
                self.gone.insert(d.pid, before);
                return None;
            }
            Err(_) => None,
        };
        let (exe, start_boot) = proc.exe_and_start(d.pid, d.comm, d.decided_boot, d.start_ticks)?;
        let exe: Arc<str> = exe.into();
        if let Some(pidfd) = pidfd.filter(alive) {
            self.remember(d, pidfd, exe.clone(), start_boot, before);
        }
        Some(exe)
    }

    fn remember(&mut self, d: &Decider, pidfd: OwnedFd, exe: Arc<str>, start_boot: u64, at: u64) {
        if let Some(e) = self
            .map
            .get_mut(&d.pid)
            .filter(|e| e.start_boot == start_boot && e.exe == exe)
        {
            if e.names.len() < MAX_NAMES && !e.names.contains(d.comm_raw) {
                e.names.push(*d.comm_raw);
            }
            e.valid_until_tai = e.valid_until_tai.max(at);
            return;
        }
        // INVARIANT (bounded): `map.len() <= cap` after every call.
        if self.map.len() >= self.cap && !self.map.contains_key(&d.pid) {
            self.map.clear();
        }
        self.map.insert(
            d.pid,
            Entry {
                pidfd,
                start_boot,
                exe,
                names: vec![*d.comm_raw],
                audit: None,
                valid_until_tai: at,
            },
        );
    }

    /// Whether the process that made decision `d` is known to have exited (see `gone`).
    fn exited(&self, d: &Decider) -> bool {
        self.gone.get(&d.pid).is_some_and(|&at| d.decided_tai <= at)
    }

    /// `Proc::audit` for decision `d`, from the cache where it shows the same process; unset
    /// when that process has exited (another may hold its pid by now).
    pub fn audit(&mut self, proc: &Proc, d: &Decider) -> (u32, u32) {
        if self.exited(d) {
            return (UNSET, UNSET);
        }
        if let Some(e) = self.current(proc, d) {
            if let Some(a) = e.audit {
                return a;
            }
            let a = proc.audit(d.pid);
            e.audit = Some(a);
            return a;
        }
        proc.audit(d.pid)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::proc::FakeProc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The tests' CLOCK_TAI: 10 s, moved by hand.
    static NOW: AtomicU64 = AtomicU64::new(10_000_000_000);

    fn now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    const CURL: [u8; COMM_LEN] = *b"curl\0\0\0\0\0\0\0\0\0\0\0\0";

    /// A decision of `pid` by `curl` at `tai` ns, 2 s after boot (the fake processes started
    /// at 1 s).
    fn decided(pid: u32, tai: u64) -> Decider<'static> {
        Decider {
            pid,
            comm: "curl",
            comm_raw: &CURL,
            decided_tai: tai,
            decided_boot: 2_000_000_000,
            start_ticks: 0,
        }
    }

    /// A fake /proc entry for a real process (pidfds need one), running `/usr/bin/curl`.
    fn fake_process(fake: &FakeProc, pid: u32) {
        fake.add(pid, 1, UNSET, UNSET);
        let _ = std::fs::remove_file(fake.dir.join(format!("{pid}/exe")));
        std::os::unix::fs::symlink("/usr/bin/curl", fake.dir.join(format!("{pid}/exe"))).unwrap();
    }

    #[test]
    fn a_live_process_is_read_once_and_its_exit_ends_the_entry() {
        let fake = FakeProc::new("pids-live");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        fake_process(&fake, pid);
        let (p, mut pids) = (fake.proc(), Pids::new(4, now));
        let at = now();
        assert_eq!(
            pids.exe(&p, &decided(pid, at - 1)).as_deref(),
            Some("/usr/bin/curl")
        );
        assert_eq!(pids.len(), 1);
        // Cached: /proc no longer answers, events up to the last check still get the answer.
        std::fs::remove_file(fake.dir.join(format!("{pid}/stat"))).unwrap();
        assert_eq!(
            pids.exe(&p, &decided(pid, at - 1)).as_deref(),
            Some("/usr/bin/curl")
        );
        // A later event: alive, same executable, so still the same process.
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert_eq!(
            pids.exe(&p, &decided(pid, now() - 1)).as_deref(),
            Some("/usr/bin/curl")
        );
        assert_eq!(
            pids.exe(
                &p,
                &Decider {
                    comm: "wget",
                    comm_raw: b"wget\0\0\0\0\0\0\0\0\0\0\0\0",
                    ..decided(pid, now() - 1)
                }
            ),
            None,
            "a name not confirmed for the process takes the /proc path, which cannot answer"
        );
        assert_eq!(
            pids.exe(
                &p,
                &Decider {
                    decided_boot: 500_000_000,
                    ..decided(pid, now() - 1)
                }
            ),
            None,
            "decided before the process started: the pid's previous holder"
        );
        assert_eq!(
            pids.exe(
                &p,
                &Decider {
                    start_ticks: 1,
                    ..decided(pid, now() - 1)
                }
            ),
            None,
            "the kernel recorded another start: the pid's previous holder"
        );
        // It exits: its pid may be reused, so a later event is not answered from the cache.
        child.kill().unwrap();
        child.wait().unwrap();
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert_eq!(pids.exe(&p, &decided(pid, now() - 1)), None);
        assert_eq!(pids.len(), 0, "the entry of an exited process is gone");
        // Its pid is free: its events up to now are answered without /proc, whatever /proc
        // shows under that pid later (here: the fake still has it).
        assert!(pids.exited(&decided(pid, now() - 1)));
        assert_eq!(pids.audit(&p, &decided(pid, now() - 1)), (UNSET, UNSET));
        std::fs::write(fake.dir.join(format!("{pid}/loginuid")), "1000").unwrap();
        assert_eq!(
            pids.audit(&p, &decided(pid, now() - 1)),
            (UNSET, UNSET),
            "not the audit ids of whatever holds the pid now"
        );
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert!(
            !pids.exited(&decided(pid, now() - 1)),
            "a later decision is another process's"
        );
    }

    #[test]
    fn an_exec_since_the_last_check_ends_the_entry() {
        let fake = FakeProc::new("pids-exec");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        fake_process(&fake, pid);
        let (p, mut pids) = (fake.proc(), Pids::new(4, now));
        assert!(pids.exe(&p, &decided(pid, now() - 1)).is_some());
        let exe = fake.dir.join(format!("{pid}/exe"));
        std::fs::remove_file(&exe).unwrap();
        std::os::unix::fs::symlink("/tmp/evil", &exe).unwrap();
        // Renamed back to `curl` after the exec: the executable gives it away.
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert_eq!(
            pids.exe(&p, &decided(pid, now() - 1)).as_deref(),
            Some("/tmp/evil"),
            "read again from /proc, not the cached /usr/bin/curl"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn audit_ids_are_kept_once_set_and_read_again_while_unset() {
        let fake = FakeProc::new("pids-audit");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        fake_process(&fake, pid);
        let (p, mut pids) = (fake.proc(), Pids::new(4, now));
        assert!(pids.exe(&p, &decided(pid, now() - 1)).is_some());
        assert_eq!(pids.audit(&p, &decided(pid, now() - 1)), (UNSET, UNSET));
        std::fs::write(fake.dir.join(format!("{pid}/loginuid")), "1000").unwrap();
        std::fs::write(fake.dir.join(format!("{pid}/sessionid")), "7").unwrap();
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert_eq!(
            pids.audit(&p, &decided(pid, now() - 1)),
            (1000, 7),
            "an unset login uid may be set once: read again after the next check"
        );
        std::fs::write(fake.dir.join(format!("{pid}/loginuid")), "0").unwrap();
        NOW.fetch_add(1_000_000, Ordering::SeqCst);
        assert_eq!(pids.audit(&p, &decided(pid, now() - 1)), (1000, 7));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_fork_storm_stays_within_the_capacity() {
        let fake = FakeProc::new("pids-storm");
        let mut children: Vec<_> = (0..5)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let (p, mut pids) = (fake.proc(), Pids::new(2, now));
        for c in &children {
            fake_process(&fake, c.id());
            assert!(pids.exe(&p, &decided(c.id(), now() - 1)).is_some());
            assert!(pids.len() <= 2, "{} entries", pids.len());
        }
        for c in &mut children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

//! Revocation: closes the connections the policy in force no longer allows, so the application
//! gets `ECONNABORTED` at once instead of the stall the egress backstop alone would give. It
//! runs after every reload and at every edge of a time window (expiry, schedule end).
//!
//! A socket is judged by its `JUMP_SOCKS` record — the uid that connected it, not the one that
//! created it — and only sockets with a record are considered: the kernel writes records only
//! for sockets connected under jump's hooks, so no cgroup filter is needed. Sockets are listed
//! and destroyed with netlink (`sockdiag`) in every network namespace that a process of the
//! enforced cgroup uses, plus jumpd's own. One failure is reported and the pass goes on.
//!
//! The passes run on a thread of their own (`Worker`), started before jumpd drops its
//! capabilities: entering another network namespace (`setns`) needs `CAP_SYS_ADMIN`, which
//! this one thread keeps (with `CAP_NET_ADMIN` and `CAP_BPF`) while the daemon's main thread,
//! which parses policies and serves the control socket, does not.
//!
//! (Over 500 lines, a quarter of them tests: the judgement, the namespace walk and the worker
//! thread share the worker's capabilities, which nothing else in jumpd holds.)

use std::{
    collections::BTreeMap,
    fs::File,
    net::SocketAddr,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
};

use aya::maps::{Map, MapData, SkStorage};
use jump_common::SockRecord;

use super::sockdiag::{self, Diag, Sock};
use crate::{compile::image::MapImage, policy::Proto};

/// Why a pass runs; carried through to the revocation records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The policy was reloaded to this generation.
    Reload(u64),
    /// A time window of the active image opened or closed at this Unix time (ns).
    Edge(u64),
}

/// One connection closed, with the record that judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub proto: u8,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub record: SockRecord,
    /// The network namespace (its nsfs inode).
    pub netns: u64,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub revoked: Vec<Revoked>,
    /// Each failure (a namespace not entered, a dump or a destroy refused), as a message.
    pub failures: Vec<String>,
}

/// Whether `image` refuses the connection `s` made under `rec`, at `now_ns` (Unix time).
/// Pure, so the choice is unit-tested.
pub fn refuses(image: &MapImage, s: &Sock, rec: &SockRecord, now_ns: u64) -> bool {
    let peer = s.peer.ip().to_canonical();
    // The kernel decided 0.0.0.0 and :: as loopback; the socket's peer is already rewritten.
    // The person and session are the connector's, as recorded (`identity: person`, grants
    // scoped to a session).
    let v = image.lookup_person(
        rec.uid,
        rec.login_uid,
        rec.session_id,
        peer,
        s.proto,
        s.peer.port(),
        now_ns,
    );
    !MapImage::allows(v.ruling)
}

/// The next instant after `now_ns` at which some time window of `image` opens or closes.
pub fn next_edge(image: &MapImage, now_ns: u64) -> Option<u64> {
    image
        .windows
        .iter()
        .flatten()
        .flat_map(|&(start, end)| [start, end])
        .filter(|&t| t > now_ns && t != u64::MAX)
        .min()
}

/// The network namespaces the processes of `cgroup` (and its descendants) use, plus the
/// caller's own: nsfs inode → a path that opens it. Processes that exit meanwhile are skipped;
/// other failures are added to `failures`.
pub fn namespaces(cgroup: &Path, failures: &mut Vec<String>) -> BTreeMap<u64, PathBuf> {
    let mut out = BTreeMap::new();
    let own = PathBuf::from("/proc/self/ns/net");
    if let Ok(m) = std::fs::metadata(&own) {
        out.insert(m.ino(), own);
    }
    for pid in pids(cgroup) {
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        match std::fs::metadata(&ns) {
            Ok(m) => {
                out.entry(m.ino()).or_insert(ns);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failures.push(format!("failed to read `{}`: {e}", ns.display())),
        }
    }
    out
}

/// The processes of `cgroup` and its descendants.
fn pids(cgroup: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut dirs = vec![cgroup.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(
                procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Records of UDP sockets, which sock_diag does not report (see `Sock::record`): read from
/// the map with a duplicate of the socket taken from a process that holds it (`pidfd_getfd`,
/// which needs `CAP_SYS_PTRACE`), found by the socket's inode in `/proc/PID/fd`.
pub struct ByDescriptor {
    map: SkStorage<MapData, SockRecord>,
    cgroup: PathBuf,
    /// Socket inode → (pid, fd), built on first use in a pass.
    owners: Option<BTreeMap<u32, (i32, i32)>>,
}

impl ByDescriptor {
    pub fn new(map_fd: &OwnedFd, cgroup: &Path) -> anyhow::Result<Self> {
        let data = MapData::from_fd(map_fd.try_clone()?)?;
        Ok(Self {
            map: SkStorage::try_from(Map::SkStorage(data))?,
            cgroup: cgroup.to_path_buf(),
            owners: None,
        })
    }

    fn owners(cgroup: &Path) -> BTreeMap<u32, (i32, i32)> {
        let mut out = BTreeMap::new();
        for pid in pids(cgroup) {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let inode = link
                    .to_str()
                    .and_then(|l| l.strip_prefix("socket:["))
                    .and_then(|l| l.strip_suffix(']'))
                    .and_then(|l| l.parse::<u32>().ok());
                let num = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
                if let (Some(inode), Some(num)) = (inode, num) {
                    out.entry(inode).or_insert((pid, num));
                }
            }
        }
        out
    }

    /// The record of the socket with `inode`, if a process of the cgroup holds it.
    pub fn record(&mut self, inode: u32) -> Option<SockRecord> {
        if !taking() {
            return None;
        }
        let cgroup = &self.cgroup;
        let &(pid, fd) = self
            .owners
            .get_or_insert_with(|| Self::owners(cgroup))
            .get(&inode)?;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid)?,
            rustix::process::PidfdFlags::empty(),
        )
        .ok()?;
        let taken =
            rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
                .ok()?;
        let sock = the_socket(taken, inode)?;
        // A blank record (`SockRecord::is_blank`) is no record.
        self.map.get(&sock, 0).ok().filter(|r| !r.is_blank())
    }

    /// Forgets the sockets found so far: a new pass looks again.
    fn reset(&mut self) {
        self.owners = None;
    }
}

/// Closes of taken descriptors that were not the socket looked for, still running.
static DISPOSING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// While this many such closes run, no more descriptors are taken (`ByDescriptor::record`).
const MAX_DISPOSING: usize = 16;

/// `taken` if it is the socket with `inode`. Between reading `/proc/PID/fd` and taking the
/// descriptor, its owner may have put another file at that number: a file on a FUSE mount of
/// their own (a user namespace may mount one), whose close waits, without end and beyond any
/// signal, for their FUSE daemon to answer a flush; or another socket, whose close lingers if
/// the owner has closed theirs meanwhile. Told apart without touching a file system (`SO_TYPE`
/// fails on anything but a socket; the inode of a socket is sockfs's), anything but the socket
/// looked for (a UDP socket, whose close never waits) is closed on a thread of its own, so the
/// revocation pass goes on whatever the close does.
fn the_socket(taken: OwnedFd, inode: u32) -> Option<OwnedFd> {
    use std::sync::atomic::Ordering;
    let is_socket =
        nix::sys::socket::getsockopt(&taken, nix::sys::socket::sockopt::SockType).is_ok();
    if is_socket && nix::sys::stat::fstat(&taken).is_ok_and(|s| s.st_ino == u64::from(inode)) {
        return Some(taken);
    }
    tracing::warn!(
        "a process put another file at the descriptor of socket {inode} while the revocation \
         pass took it; its record is not read"
    );
    DISPOSING.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("jumpd-dispose".into())
        .spawn(move || {
            drop(taken);
            DISPOSING.fetch_sub(1, Ordering::Relaxed);
        });
    if spawned.is_err() {
        DISPOSING.fetch_sub(1, Ordering::Relaxed);
    }
    None
}

/// Whether descriptors may be taken: not while `MAX_DISPOSING` closes of swapped ones hang.
fn taking() -> bool {
    DISPOSING.load(std::sync::atomic::Ordering::Relaxed) < MAX_DISPOSING
}

/// The pass in the calling thread's namespace `ino`: list, judge, destroy.
fn pass_here(
    ino: u64,
    map_fd: i32,
    by_fd: &mut ByDescriptor,
    image: &MapImage,
    now_ns: u64,
    out: &mut Outcome,
) {
    let mut diag = match Diag::open() {
        Ok(d) => d,
        Err(e) => {
            out.failures.push(format!(
                "netns {ino}: failed to open a sock_diag socket: {e}"
            ));
            return;
        }
    };
    // UDP, then TCP (any order would do; `a_failing_destroy_does_not_stop_the_pass` uses this
    // one to see TCP sockets closed after a UDP destroy failed).
    for proto in [sockdiag::IPPROTO_UDP, sockdiag::IPPROTO_TCP] {
        for family in sockdiag::FAMILIES {
            let socks = match diag.dump(family, proto, map_fd) {
                Ok(s) => s,
                Err(e) => {
                    out.failures.push(format!(
                        "netns {ino}: failed to list {} sockets of family {family}: {e}",
                        Proto::name_of(proto)
                    ));
                    continue;
                }
            };
            let judged: Vec<(&Sock, SockRecord)> = socks
                .iter()
                .filter_map(|s| Some((s, s.record.or_else(|| by_fd.record(s.inode))?)))
                .filter(|(s, rec)| refuses(image, s, rec, now_ns))
                .collect();
            for (s, rec) in judged {
                match diag.destroy(s) {
                    Ok(()) => out.revoked.push(Revoked {
                        proto,
                        local: s.local,
                        peer: s.peer,
                        record: rec,
                        netns: ino,
                    }),
                    Err(e) => out.failures.push(format!(
                        "failed to close {} {} -> {} of uid {}: {e}",
                        Proto::name_of(proto),
                        s.local,
                        s.peer,
                        rec.uid
                    )),
                }
            }
        }
    }
}

/// One pass over every namespace of `cgroup`. Each foreign namespace is entered by a
/// short-lived thread (`setns` moves only the calling thread), so this thread stays where it is;
/// without `CAP_SYS_ADMIN` (`can_enter` false) they are counted in one failure instead.
pub fn pass(
    map_fd: &OwnedFd,
    by_fd: &mut ByDescriptor,
    image: &MapImage,
    cgroup: &Path,
    now_ns: u64,
    can_enter: bool,
) -> Outcome {
    let mut out = Outcome::default();
    by_fd.reset();
    let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
    let mut not_entered = 0;
    for (ino, path) in namespaces(cgroup, &mut out.failures) {
        if Some(ino) == own {
            pass_here(ino, map_fd.as_raw_fd(), by_fd, image, now_ns, &mut out);
            continue;
        }
        if !can_enter {
            not_entered += 1;
            continue;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                out.failures
                    .push(format!("failed to open `{}`: {e}", path.display()));
                continue;
            }
        };
        let fd = map_fd.as_raw_fd();
        let sub = std::thread::scope(|s| {
            s.spawn(|| {
                let mut sub = Outcome::default();
                match nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET) {
                    Ok(()) => pass_here(ino, fd, &mut *by_fd, image, now_ns, &mut sub),
                    Err(e) => sub.failures.push(format!(
                        "failed to enter netns {ino} (`{}`): {e}",
                        path.display()
                    )),
                }
                sub
            })
            .join()
        });
        match sub {
            Ok(sub) => {
                out.revoked.extend(sub.revoked);
                out.failures.extend(sub.failures);
            }
            Err(_) => out
                .failures
                .push(format!("the pass in netns {ino} panicked")),
        }
    }
    if not_entered > 0 {
        out.failures.push(format!(
            "{not_entered} other network namespace(s) not entered: jumpd lacks CAP_SYS_ADMIN \
             (as under the shipped unit), so their revoked connections are not closed; egress \
             drops their packets"
        ));
    }
    out
}

/// A pass to run.
pub struct Job {
    pub image: Arc<MapImage>,
    pub trigger: Trigger,
    pub now_ns: u64,
}

/// The revocation thread: takes jobs, answers with outcomes.
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

/// Capabilities the revocation thread keeps for itself: `setns` into another network
/// namespace needs `CAP_SYS_ADMIN`, reading another user's `/proc/PID/ns/net` the ptrace access
/// check (`CAP_SYS_PTRACE`), `SOCK_DESTROY` `CAP_NET_ADMIN`, reading socket storage `CAP_BPF`.
pub const WORKER_CAPS: &[caps::Capability] = &[
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_NET_ADMIN,
    caps::Capability::CAP_BPF,
];

fn restrict_thread() -> anyhow::Result<()> {
    use caps::{CapSet, CapsHashSet};
    let keep: CapsHashSet = WORKER_CAPS.iter().copied().collect();
    // As `daemon::privileges`: without CAP_SETPCAP the service manager's bounding set stands.
    let can_bound = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)?;
    for cap in caps::read(None, CapSet::Bounding)? {
        if can_bound && !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let permitted = caps::read(None, CapSet::Permitted)?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

impl Worker {
    /// Starts the thread. Call it before the daemon drops its capabilities: the thread keeps
    /// `WORKER_CAPS` of what the process has, and drops everything else itself.
    pub fn start(
        map_fd: OwnedFd,
        cgroup: PathBuf,
        done: tokio::sync::mpsc::UnboundedSender<(Trigger, Outcome)>,
    ) -> anyhow::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut by_fd = ByDescriptor::new(&map_fd, &cgroup)?;
        std::thread::Builder::new()
            .name("jumpd-revoke".into())
            .spawn(move || {
                let _ = ready_tx.send(restrict_thread().map_err(|e| e.to_string()));
                let can_enter = caps::has_cap(
                    None,
                    caps::CapSet::Effective,
                    caps::Capability::CAP_SYS_ADMIN,
                )
                .unwrap_or(false);
                while let Ok(mut job) = rx.recv() {
                    // Reloads can come faster than passes: only the newest image matters, but
                    // every trigger is answered.
                    let mut triggers = vec![job.trigger.clone()];
                    while let Ok(next) = rx.try_recv() {
                        triggers.push(next.trigger.clone());
                        job = next;
                    }
                    let outcome = pass(
                        &map_fd, &mut by_fd, &job.image, &cgroup, job.now_ns, can_enter,
                    );
                    let last = triggers.pop().unwrap_or(job.trigger);
                    for t in triggers {
                        let _ = done.send((t, Outcome::default()));
                    }
                    if done.send((last, outcome)).is_err() {
                        break;
                    }
                }
            })?;
        ready_rx
            .recv()?
            .map_err(|e| anyhow::anyhow!("the revocation thread failed to restrict itself: {e}"))?;
        Ok(Self { jobs })
    }

    pub fn submit(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::{DestEntry, PortEntry};
    use jump_common::{action, proto, Candidate};

    fn allow(rule_id: u32, window: u32) -> Candidate {
        Candidate {
            rule_id,
            window,
            action: action::ALLOW,
            _pad: [0; 3],
        }
    }

    /// uid 64001 may reach 198.51.100.10:7000 and [2001:db8:1::10]:7000 (rule 1), and :7001
    /// until t=100 (rule 2, window 1).
    fn image() -> MapImage {
        MapImage {
            default_action: action::DENY,
            users: [(64001, 0)].into_iter().collect(),
            dests: vec![
                DestEntry {
                    profile: 0,
                    net: "198.51.100.10/32".parse().unwrap(),
                    class: 0,
                },
                DestEntry {
                    profile: 0,
                    net: "2001:db8:1::10/128".parse().unwrap(),
                    class: 0,
                },
            ],
            ports: vec![
                PortEntry {
                    class: 0,
                    proto: proto::TCP,
                    port: 7000,
                    bits: 16,
                    candidates: vec![allow(1, 0)],
                },
                PortEntry {
                    class: 0,
                    proto: proto::TCP,
                    port: 7001,
                    bits: 16,
                    candidates: vec![allow(2, 1)],
                },
            ],
            windows: vec![vec![], vec![(0, 100)]],
            ..Default::default()
        }
    }

    fn sock(peer: &str) -> Sock {
        Sock::for_test(
            proto::TCP,
            "198.51.100.1:40000".parse().unwrap(),
            peer.parse().unwrap(),
        )
    }

    fn rec(uid: u32) -> SockRecord {
        SockRecord {
            uid,
            ..Default::default()
        }
    }

    #[test]
    fn a_socket_is_judged_by_its_connector() {
        let i = image();
        let s = sock("198.51.100.10:7000");
        assert!(
            !refuses(&i, &s, &rec(64001), 0),
            "the connector keeps its grant"
        );
        assert!(refuses(&i, &s, &rec(64002), 0), "another uid has no grant");
        assert!(
            !refuses(&i, &sock("[::ffff:198.51.100.10]:7000"), &rec(64001), 0),
            "an IPv4-mapped peer of an IPv6 socket is judged as IPv4"
        );
        assert!(!refuses(&i, &sock("[2001:db8:1::10]:7000"), &rec(64001), 0));
        assert!(refuses(&i, &sock("[2001:db8:1::10]:7002"), &rec(64001), 0));
    }

    #[test]
    fn with_identity_person_the_recorded_login_uid_narrows_too() {
        let s = sock("198.51.100.10:7000");
        let by = |login| SockRecord {
            login_uid: login,
            ..rec(64001)
        };
        assert!(
            !refuses(&image(), &s, &by(64002), 0),
            "`identity: uid` ignores the login uid"
        );
        let person = MapImage {
            identity: jump_common::identity::PERSON,
            ..image()
        };
        assert!(
            refuses(&person, &s, &by(64002), 0),
            "the person (64002) may not reach it"
        );
        assert!(!refuses(&person, &s, &by(jump_common::LOGIN_UNSET), 0));
        assert!(!refuses(&person, &s, &by(64001), 0));
    }

    #[test]
    fn a_time_limited_grant_is_refused_from_its_end() {
        let i = image();
        let s = sock("198.51.100.10:7001");
        assert!(!refuses(&i, &s, &rec(64001), 99));
        assert!(refuses(&i, &s, &rec(64001), 100), "the window is half-open");
    }

    #[test]
    fn the_next_edge_is_the_nearest_window_boundary_after_now() {
        let mut i = image();
        i.windows.push(vec![(50, 70), (200, u64::MAX)]);
        assert_eq!(next_edge(&i, 0), Some(50));
        assert_eq!(next_edge(&i, 50), Some(70));
        assert_eq!(next_edge(&i, 70), Some(100));
        assert_eq!(next_edge(&i, 100), Some(200));
        assert_eq!(next_edge(&i, 200), None, "an open end is no edge");
    }

    /// A descriptor taken from a process is used only if it is still the socket found in its
    /// `/proc/PID/fd`: anything else at that number is closed off this thread.
    #[test]
    fn a_taken_descriptor_is_used_only_if_it_is_the_socket_found() {
        use std::os::unix::fs::MetadataExt;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd: OwnedFd = sock.into();
        let ino = nix::sys::stat::fstat(&fd).unwrap().st_ino as u32;
        let dup = fd.try_clone().unwrap();
        assert!(the_socket(dup, ino).is_some(), "the socket found");
        let dup = fd.try_clone().unwrap();
        assert!(the_socket(dup, ino + 1).is_none(), "another socket");
        let file: OwnedFd = std::fs::File::open("/proc/self/stat").unwrap().into();
        let file_ino = std::fs::metadata("/proc/self/stat").unwrap().ino() as u32;
        assert!(the_socket(file, file_ino).is_none(), "not a socket");
    }
}

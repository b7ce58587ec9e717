//! The memory limits over jumpd's own memory cgroup, which jumpd warns about at start.
//!
//! The kernel charges socket-local storage to the memory cgroup of the process that created the
//! map, not to the socket's owner: every TCP and UDP socket on the host puts its record
//! (`JUMP_SOCKS`, a few hundred bytes) on jumpd's account. Under a limit, a user holding many
//! sockets pushes jumpd's cgroup over it (the kernel lets those atomic allocations exceed it),
//! and jumpd's next allocation of its own, at a reload or an event, gets it killed by the
//! cgroup's OOM killer; a restarted jumpd lands in the same, still full, cgroup. Enforcement
//! stays (the programs are pinned), the audit trail stops.

use std::path::{Path, PathBuf};

/// One limit: the file that sets it, and its value in bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Limit {
    pub file: PathBuf,
    pub bytes: u64,
}

/// cgroup v1 writes "no limit" as the largest page-aligned `i64` (9223372036854771712);
/// anything from 2^62 up is taken as that.
const V1_UNLIMITED: u64 = 1 << 62;

/// The limits on the memory cgroup of the process whose `/proc/PID/cgroup` is `cgroup`, and on
/// every cgroup above it, under the mounts in `mounts` (`/proc/self/mounts`); `read` reads a
/// file (`None`: absent, so that controller does not apply there).
pub fn limits(cgroup: &str, mounts: &str, read: impl Fn(&Path) -> Option<String>) -> Vec<Limit> {
    let mut out = Vec::new();
    for line in cgroup.lines() {
        // "hierarchy-ID:controllers:path"; the path may itself hold ':'.
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (mount, files): (_, &[&str]) = if id == "0" && controllers.is_empty() {
            (
                mount_of(mounts, "cgroup2", None),
                &["memory.max", "memory.high"],
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                mount_of(mounts, "cgroup", Some("memory")),
                &["memory.limit_in_bytes"],
            )
        } else {
            continue;
        };
        let Some(mount) = mount else { continue };
        let mut dir = mount.join(path.trim_start_matches('/'));
        // The cgroup and each one above it, up to the hierarchy's root.
        loop {
            for name in files {
                let file = dir.join(name);
                if let Some(bytes) = read(&file).as_deref().and_then(parse) {
                    out.push(Limit { file, bytes });
                }
            }
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
    }
    out
}

/// The mount point of the first mount of `fstype` whose options include `option`.
fn mount_of(mounts: &str, fstype: &str, option: Option<&str>) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let options = f.get(3)?;
        (f.get(2) == Some(&fstype) && option.is_none_or(|o| options.split(',').any(|x| x == o)))
            .then(|| PathBuf::from(f[1]))
    })
}

/// A limit's value; `None` for no limit ("max", or v1's largest value).
fn parse(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < V1_UNLIMITED).then_some(n)
}

/// The limits over this process, read from `/proc/self` and the cgroup file systems.
pub fn of_self() -> Vec<Limit> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    match (
        read(Path::new("/proc/self/cgroup")),
        read(Path::new("/proc/self/mounts")),
    ) {
        (Some(cgroup), Some(mounts)) => limits(&cgroup, &mounts, read),
        _ => Vec::new(),
    }
}

/// Logs one warning per limit over jumpd's memory cgroup.
pub fn warn() {
    for l in of_self() {
        tracing::warn!(
            "`{}` limits jumpd's memory cgroup to {} bytes: the kernel charges every TCP and UDP \
             socket's record to it, so a user holding many sockets can push jumpd over the \
             limit and have it killed, which stops the audit trail; remove the limit (README, \
             Operations: \"Memory\")",
            l.file.display(),
            l.bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0
";

    fn found(cgroup: &str, files: &[(&str, &str)]) -> Vec<Limit> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        limits(cgroup, MOUNTS, |p| files.get(p).cloned())
    }

    #[test]
    fn a_v1_memory_limit_on_the_cgroup_or_above_it_is_found() {
        let l = found(
            "4:memory:/system.slice/jumpd.service\n1:cpu:/\n0::/system.slice/jumpd.service\n",
            &[
                (
                    "/sys/fs/cgroup/memory/system.slice/jumpd.service/memory.limit_in_bytes",
                    "9223372036854771712\n",
                ),
                (
                    "/sys/fs/cgroup/memory/system.slice/memory.limit_in_bytes",
                    "268435456\n",
                ),
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "9223372036854771712\n",
                ),
            ],
        );
        assert_eq!(
            l,
            [Limit {
                file: "/sys/fs/cgroup/memory/system.slice/memory.limit_in_bytes".into(),
                bytes: 268_435_456
            }]
        );
    }

    #[test]
    fn v2_max_and_high_count_and_max_means_none() {
        let l = found(
            "0::/system.slice/jumpd.service\n",
            &[
                (
                    "/sys/fs/cgroup/unified/system.slice/jumpd.service/memory.max",
                    "max\n",
                ),
                (
                    "/sys/fs/cgroup/unified/system.slice/jumpd.service/memory.high",
                    "104857600\n",
                ),
            ],
        );
        assert_eq!(
            l,
            [Limit {
                file: "/sys/fs/cgroup/unified/system.slice/jumpd.service/memory.high".into(),
                bytes: 104_857_600
            }]
        );
    }

    #[test]
    fn no_limit_and_no_memory_controller_find_nothing() {
        assert!(found("0::/\n4:memory:/\n", &[]).is_empty());
        assert!(found(
            "1:cpu:/x\n",
            &[("/sys/fs/cgroup/cpu/x/memory.limit_in_bytes", "1")]
        )
        .is_empty());
        // No cgroup2 mount listed: a v2 line is skipped, not read from a guessed path.
        assert!(limits("0::/x\n", "", |_| Some("1".into())).is_empty());
    }

    #[test]
    fn the_walk_stops_at_the_hierarchy_root() {
        let l = found(
            "4:memory:/a\n",
            &[
                ("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "1000"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "2000"),
                ("/sys/fs/cgroup/memory.limit_in_bytes", "3000"),
            ],
        );
        let bytes: Vec<u64> = l.iter().map(|l| l.bytes).collect();
        assert_eq!(bytes, [1000, 2000]);
    }
}

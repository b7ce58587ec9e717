//! A child cgroup of the cgroup2 root, created by and for one test. Programs are only ever
//! attached to such a child, never to the root: that would filter the machine's own traffic.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{owner_alive, poll_until, unique};

const PREFIX: &str = "jump-test-";

/// The cgroup2 mount point, from /proc/mounts.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn new() -> anyhow::Result<Self> {
        Self::named(&unique(PREFIX))
    }

    /// A cgroup with a fixed name (the demo's), removing a stale one first.
    pub fn named(name: &str) -> anyhow::Result<Self> {
        let root =
            cgroup2_root().ok_or_else(|| anyhow::anyhow!("no cgroup2 mount in /proc/mounts"))?;
        sweep(&root);
        let path = root.join(name);
        if path.exists() {
            remove(&path)?;
        }
        fs::create_dir(&path)
            .map_err(|e| anyhow::anyhow!("failed to create cgroup `{}`: {e}", path.display()))?;
        Ok(Self { path })
    }

    /// A child of this cgroup, `name`, removed on drop (before this one, if declared after
    /// it). Programs attached to it run with this cgroup's on its processes' sockets.
    pub fn child(&self, name: &str) -> anyhow::Result<Self> {
        let path = self.path.join(name);
        fs::create_dir(&path)
            .map_err(|e| anyhow::anyhow!("failed to create cgroup `{}`: {e}", path.display()))?;
        Ok(Self { path })
    }

    pub fn procs(&self) -> Vec<u32> {
        read_procs(&self.path)
    }
}

fn read_procs(path: &Path) -> Vec<u32> {
    fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Removes a test cgroup: its processes are this test's own children, which have been ended by
/// their guards; wait briefly for the kernel to reap them, then rmdir.
fn remove(path: &Path) -> anyhow::Result<()> {
    // A child cgroup (`child`) left behind by a test that died keeps the parent from going.
    for entry in fs::read_dir(path).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove(&entry.path())?;
        }
    }
    poll_until(Duration::from_secs(1), "the cgroup to empty", || {
        (read_procs(path).is_empty() && fs::remove_dir(path).is_ok()).then_some(())
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "could not remove cgroup `{}` (still has processes {:?}): {e}",
            path.display(),
            read_procs(path)
        )
    })
}

/// Removes test cgroups left behind by test processes that no longer exist.
fn sweep(root: &Path) {
    let Ok(dir) = fs::read_dir(root) else { return };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && !owner_alive(&name, PREFIX) {
            if let Err(e) = remove(&entry.path()) {
                eprintln!("warning: {e}");
            }
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.path) {
            crate::cleanup_failed(e);
        }
    }
}

/// A memory cgroup created by and for one test, to run jumpd in: a child of the cgroup v1
/// memory hierarchy's root where one is mounted, else of the cgroup2 root when that hands the
/// memory controller to its children. Removed on drop, once its processes are gone.
pub struct MemoryCgroup {
    pub path: PathBuf,
    /// cgroup v2: `memory.max` and `memory.current`; v1: `memory.limit_in_bytes` and
    /// `memory.usage_in_bytes`.
    v2: bool,
}

impl MemoryCgroup {
    /// `None` when this machine has no memory controller a test may use.
    pub fn new() -> anyhow::Result<Option<Self>> {
        let mounts = fs::read_to_string("/proc/mounts")?;
        let v1 = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup") && f.get(3)?.split(',').any(|o| o == "memory"))
                .then(|| PathBuf::from(f[1]))
        });
        let (root, v2) = match v1 {
            Some(root) => (root, false),
            None => match cgroup2_root() {
                Some(root)
                    if fs::read_to_string(root.join("cgroup.subtree_control"))
                        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory")) =>
                {
                    (root, true)
                }
                _ => return Ok(None),
            },
        };
        sweep(&root);
        let path = root.join(unique(PREFIX));
        fs::create_dir(&path)
            .map_err(|e| anyhow::anyhow!("failed to create cgroup `{}`: {e}", path.display()))?;
        Ok(Some(Self { path, v2 }))
    }

    /// The file that limits this cgroup's memory.
    pub fn limit_file(&self) -> PathBuf {
        self.path.join(if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        })
    }

    pub fn set_limit(&self, bytes: u64) -> anyhow::Result<()> {
        let f = self.limit_file();
        fs::write(&f, bytes.to_string())
            .map_err(|e| anyhow::anyhow!("failed to write `{}`: {e}", f.display()))
    }

    /// Bytes charged to this cgroup now.
    pub fn usage(&self) -> u64 {
        let name = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        fs::read_to_string(self.path.join(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `sh -c …` that moves itself into this cgroup, then execs the rest of its command line:
    /// a prefix for `Jumpd::start_prefixed`.
    pub fn enter_prefix(&self) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo $$ > '{}' && exec \"$@\"",
                self.path.join("cgroup.procs").display()
            ),
            "sh".into(),
        ]
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.path) {
            crate::cleanup_failed(e);
        }
    }
}

//! Where enforcement lives between daemon runs: every map and link is pinned in bpffs under
//! `<pin-dir>/<layout version>/cgroup-<inode>/`, so a stopped or killed jumpd leaves the
//! programs enforcing the last policy, a restarted one adopts them, and only a deliberate
//! detach removes them. The directory is per cgroup, so two enforced cgroups never share maps.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use aya::programs::links::PinnedLink;

/// Bumped whenever a map layout in jump-common changes: maps pinned by an older layout are
/// never reused by a newer jumpd (detach the old one first).
pub const LAYOUT_VERSION: &str = "v6";

/// The pin directory of `cgroup` under `root`.
pub fn dir_for(root: &Path, cgroup: &Path) -> anyhow::Result<PathBuf> {
    let ino = fs::metadata(cgroup)
        .with_context(|| format!("cannot stat cgroup `{}`", cgroup.display()))?
        .ino();
    Ok(root.join(LAYOUT_VERSION).join(format!("cgroup-{ino}")))
}

/// An exclusive `flock` on a cgroup's pin directory, held for the daemon's life: one jumpd
/// per cgroup. Taken before any map is opened or created, so a second jumpd fails without
/// touching the kernel state the first one enforces. Released by the kernel when the process
/// ends, however it ends, so a killed jumpd never leaves a stale lock behind.
pub struct PinLock(#[expect(dead_code, reason = "held for its Drop")] nix::fcntl::Flock<fs::File>);

/// Creates `dir` if needed and locks it; fails at once if another process holds it.
pub fn lock(dir: &Path, cgroup: &Path) -> anyhow::Result<PinLock> {
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create pin directory `{}`", dir.display()))?;
    let file = fs::File::open(dir)
        .with_context(|| format!("failed to open pin directory `{}`", dir.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(PinLock(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => anyhow::bail!(
            "another jumpd is enforcing on `{}` (it holds the lock on `{}`): stop it first, or talk to it with jumpctl; nothing was changed",
            cgroup.display(),
            dir.display()
        ),
        Err((_, e)) => Err(anyhow::anyhow!(
            "failed to lock pin directory `{}`: {e}",
            dir.display()
        )),
    }
}

pub fn maps_dir(dir: &Path) -> PathBuf {
    dir.join("maps")
}

pub fn link_path(dir: &Path, program: &str) -> PathBuf {
    dir.join("links").join(program)
}

/// Mounts bpffs at `/sys/fs/bpf` when `root` lies there and nothing is mounted yet (systemd
/// does this at boot; a bare host may not have).
pub fn ensure_bpffs(root: &Path) -> anyhow::Result<()> {
    let bpffs = Path::new("/sys/fs/bpf");
    if !root.starts_with(bpffs) {
        return Ok(());
    }
    // The filesystem magic answers "is bpffs mounted here" without parsing /proc/mounts.
    if matches!(nix::sys::statfs::statfs(bpffs), Ok(s) if s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
    {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpffs"),
        bpffs,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        Some("mode=0700"),
    )
    .context("failed to mount bpffs at /sys/fs/bpf")
}

/// Removes enforcement: unpins every link (which detaches its program) and every map, then the
/// directory. Returns the programs detached.
pub fn detach(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut detached = Vec::new();
    if let Ok(links) = fs::read_dir(dir.join("links")) {
        for entry in links.flatten() {
            let link = PinnedLink::from_pin(entry.path()).with_context(|| {
                format!("failed to open pinned link `{}`", entry.path().display())
            })?;
            // Dropping the last reference detaches the program from the cgroup.
            drop(link.unpin()?);
            detached.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if let Ok(maps) = fs::read_dir(maps_dir(dir)) {
        for entry in maps.flatten() {
            fs::remove_file(entry.path())?;
        }
    }
    for d in [dir.join("links"), maps_dir(dir), dir.to_path_buf()] {
        let _ = fs::remove_dir(d);
    }
    detached.sort();
    Ok(detached)
}

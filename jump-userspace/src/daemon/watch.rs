//! Reload triggers from the file system: inotify on the policy directory, on its parent (so a
//! directory replaced by rename, symlink swap or rm and recreate is watched again) and on /etc
//! (for `passwd` and `group`, which tools such as `useradd` and `gpasswd` replace by rename, so
//! the directory is watched, not the files), and on the directory of the subordinate uid file
//! (`/etc/subuid`, which `usermod --add-subuids` replaces the same way). Bursts are debounced: the reload runs `DEBOUNCE`
//! after the last relevant change, but never later than `MAX_DELAY` after the first, so a
//! stream of changes (an unprivileged `chfn` in a loop rewrites /etc/passwd) cannot postpone a
//! reload, and with it a revocation, forever.

use std::{
    collections::BTreeSet,
    ffi::{OsStr, OsString},
    os::fd::{AsFd, AsRawFd, RawFd},
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{io::unix::AsyncFd, sync::mpsc, time::Instant};

pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// The longest a relevant change waits for its reload, however many follow it.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
const ETC: &str = "/etc";
/// The files in /etc whose change can change who a policy names.
const ETC_FILES: &[&str] = &["passwd", "group"];

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Which watched directory an event came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dir {
    Policy,
    /// The policy directory's parent: only entries named like the policy directory matter.
    Parent,
    /// /etc, and the subordinate uid file's name when it lives there.
    Etc(Option<String>),
    /// The subordinate uid file's directory, and the file's name, when it is not /etc.
    Subuid(String),
}

/// Whether a change to `name` in `dir` can change the compiled policy. Editors' swap and backup
/// files and hidden files are ignored, exactly as the loader ignores them
/// (`policy::is_policy_name`); a rename into place reports the final name.
fn relevant(dir: &Dir, name: &OsStr, policy_name: &OsStr) -> bool {
    let text = name.to_string_lossy();
    match dir {
        Dir::Policy => crate::policy::is_policy_name(name),
        Dir::Parent => name == policy_name,
        Dir::Etc(subuid) => {
            ETC_FILES.contains(&text.as_ref()) || subuid.as_deref() == Some(text.as_ref())
        }
        Dir::Subuid(file) => *file == text,
    }
}

/// When the pending reload runs: `DEBOUNCE` after the last change, capped at `MAX_DELAY` after
/// the first.
fn deadline(first: Instant, last: Instant) -> Instant {
    (last + DEBOUNCE).min(first + MAX_DELAY)
}

fn policy_flags() -> AddWatchFlags {
    // IN_MODIFY: a file being written postpones the reload (up to MAX_DELAY); the reader then
    // also insists on two identical reads.
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

fn dir_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
}

/// Starts watching; returns the paths watched. Changes arrive on `tx` as the trigger text
/// (`watch: /etc/group`).
pub fn start(
    policy_dir: &Path,
    subuid: &Path,
    tx: mpsc::Sender<String>,
) -> anyhow::Result<Vec<String>> {
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    let policy_wd = ino
        .add_watch(policy_dir, policy_flags())
        .map_err(|e| anyhow::anyhow!("failed to watch `{}`: {e}", policy_dir.display()))?;
    let abs = std::path::absolute(policy_dir).unwrap_or_else(|_| policy_dir.to_path_buf());
    let parent = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let policy_name = abs.file_name().map(OsStr::to_os_string).unwrap_or_default();
    let parent_wd = ino
        .add_watch(&parent, dir_flags())
        .map_err(|e| anyhow::anyhow!("failed to watch `{}`: {e}", parent.display()))?;
    let etc_wd = ino
        .add_watch(ETC, dir_flags())
        .map_err(|e| anyhow::anyhow!("failed to watch `{ETC}`: {e}"))?;
    let mut watched = vec![
        policy_dir.display().to_string(),
        format!(
            "{} (for `{}` replaced)",
            parent.display(),
            policy_name.to_string_lossy()
        ),
        format!("{ETC}/passwd"),
        format!("{ETC}/group"),
        subuid.display().to_string(),
    ];
    let subuid_dir = subuid
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let subuid_name = subuid
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (etc_dir, subuid_watch) = if subuid_dir == Path::new(ETC) {
        (Dir::Etc(Some(subuid_name)), None)
    } else {
        match ino.add_watch(subuid_dir, dir_flags()) {
            Ok(wd) => (
                Dir::Etc(None),
                Some((wd, Dir::Subuid(subuid_name), subuid_dir.to_path_buf())),
            ),
            // No directory, no subordinate uids: nothing to follow until jumpd restarts.
            Err(e) => {
                tracing::warn!("not watching `{}`: {e}", subuid_dir.display());
                watched.pop();
                (Dir::Etc(None), None)
            }
        }
    };
    let mut w = Watches {
        policy: (policy_wd, policy_dir.to_path_buf()),
        parent: (parent_wd, parent),
        target: None,
        etc: (etc_wd, etc_dir, PathBuf::from(ETC)),
        subuid: subuid_watch,
        policy_name,
    };
    w.watch_target(&ino);
    let fd = super::async_fd(Fd(ino))?;
    tokio::spawn(run(fd, w, tx));
    Ok(watched)
}

struct Watches {
    policy: (WatchDescriptor, PathBuf),
    parent: (WatchDescriptor, PathBuf),
    /// When the policy path is a symlink: the directory holding its target, and the target's
    /// name there (a target renamed away and replaced is a replacement too).
    target: Option<(WatchDescriptor, PathBuf, OsString)>,
    etc: (WatchDescriptor, Dir, PathBuf),
    subuid: Option<(WatchDescriptor, Dir, PathBuf)>,
    policy_name: OsString,
}

impl Watches {
    fn which(&self, wd: WatchDescriptor) -> Option<(Dir, &Path)> {
        if wd == self.policy.0 {
            Some((Dir::Policy, &self.policy.1))
        } else if wd == self.parent.0 {
            Some((Dir::Parent, &self.parent.1))
        } else if let Some((_, path, _)) = self.target.as_ref().filter(|t| t.0 == wd) {
            Some((Dir::Parent, path))
        } else if wd == self.etc.0 {
            Some((self.etc.1.clone(), &self.etc.2))
        } else if let Some((_, d, path)) = self.subuid.as_ref().filter(|s| s.0 == wd) {
            Some((d.clone(), path))
        } else {
            None
        }
    }

    /// Whether `name` in directory `wd` is the policy directory (by its path or its target).
    fn names_policy(&self, wd: WatchDescriptor, name: &OsStr) -> bool {
        (wd == self.parent.0 && name == self.policy_name)
            || self
                .target
                .as_ref()
                .is_some_and(|(t, _, n)| *t == wd && name == n)
    }

    /// Watches the directory holding the policy path's symlink target, when it is elsewhere.
    fn watch_target(&mut self, ino: &Inotify) {
        let Ok(real) = std::fs::canonicalize(&self.policy.1) else {
            return;
        };
        let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
            return;
        };
        if dir == self.parent.1 && name == self.policy_name {
            return;
        }
        if self
            .target
            .as_ref()
            .is_some_and(|(_, d, n)| d == dir && n == name)
        {
            return;
        }
        if let Ok(wd) = ino.add_watch(dir, dir_flags()) {
            if let Some((old, ..)) = self.target.take() {
                if old != wd && old != self.parent.0 && old != self.etc.0 {
                    let _ = ino.rm_watch(old);
                }
            }
            self.target = Some((wd, dir.to_path_buf(), name.to_os_string()));
        }
    }

    /// Watches whatever the policy path names now (a new directory after a replacement). If it
    /// is missing, the parent's watch sees it come back.
    fn rearm(&mut self, ino: &Inotify) {
        self.watch_target(ino);
        match ino.add_watch(&self.policy.1, policy_flags()) {
            Ok(wd) if wd != self.policy.0 => {
                // The old directory may live on elsewhere (renamed away): stop hearing it.
                let _ = ino.rm_watch(self.policy.0);
                self.policy.0 = wd;
                tracing::info!(
                    "watching `{}` again: it was replaced",
                    self.policy.1.display()
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "policy directory `{}` is gone ({e}); watching its parent for its return",
                self.policy.1.display()
            ),
        }
    }
}

async fn run(mut fd: AsyncFd<Fd>, mut w: Watches, tx: mpsc::Sender<String>) {
    let mut pending: BTreeSet<String> = BTreeSet::new();
    // (first change, last change) of the pending burst.
    let mut burst: Option<(Instant, Instant)> = None;
    loop {
        let sleep = async {
            match burst {
                Some((first, last)) => tokio::time::sleep_until(deadline(first, last)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = fd.readable_mut() => {
                let Ok(mut guard) = guard else { return };
                let events = guard.get_inner().0.read_events();
                match events {
                    Ok(events) => {
                        let mut rearm = false;
                        for e in events {
                            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                                pending.insert("watch: event queue overflow".into());
                                rearm = true;
                                continue;
                            }
                            let Some((dir, path)) = w.which(e.wd) else { continue };
                            if dir == Dir::Policy
                                && e.mask.intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED)
                            {
                                pending.insert(format!("{} (replaced)", path.display()));
                                rearm = true;
                                continue;
                            }
                            let Some(name) = &e.name else { continue };
                            let is_policy = dir == Dir::Parent && w.names_policy(e.wd, name);
                            if is_policy || (dir != Dir::Parent && relevant(&dir, name, &w.policy_name)) {
                                if dir == Dir::Parent {
                                    rearm = true;
                                    pending.insert(format!("{} (replaced)", path.join(name).display()));
                                } else {
                                    pending.insert(path.join(name).display().to_string());
                                }
                            }
                        }
                        if rearm {
                            w.rearm(&guard.get_inner().0);
                        }
                        if !pending.is_empty() {
                            let now = Instant::now();
                            burst = Some((burst.map_or(now, |b| b.0), now));
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                    Err(e) => {
                        tracing::error!("inotify read failed, no more automatic reloads: {e}");
                        return;
                    }
                }
            }
            () = sleep => {
                burst = None;
                let what = std::mem::take(&mut pending).into_iter().collect::<Vec<_>>().join(", ");
                if tx.send(format!("watch: {what}")).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policy_files_the_directory_itself_and_passwd_group_subuid_are_relevant() {
        let p = OsStr::new("policies");
        let r = |d: Dir, n: &str| relevant(&d, OsStr::new(n), p);
        let etc = || Dir::Etc(Some("subuid".into()));
        assert!(r(Dir::Policy, "20-access.yaml"));
        assert!(r(Dir::Policy, "x.yml"));
        assert!(
            r(Dir::Policy, "X.YAML"),
            "the loader reads it, so it is watched"
        );
        assert!(
            !r(Dir::Policy, ".20-access.yaml"),
            "hidden: neither read nor watched"
        );
        assert!(!r(Dir::Policy, ".20-access.yaml.swp"));
        assert!(!r(Dir::Policy, "20-access.yaml~"));
        assert!(!r(Dir::Policy, "README.md"));
        assert!(r(Dir::Parent, "policies"));
        assert!(!r(Dir::Parent, "policies.new"));
        assert!(r(etc(), "group"));
        assert!(r(etc(), "passwd"));
        assert!(r(etc(), "subuid"));
        assert!(
            !r(Dir::Etc(None), "subuid"),
            "a subuid file elsewhere is watched there"
        );
        assert!(!r(etc(), "subuid-"), "the backup usermod leaves");
        assert!(!r(etc(), "group-"), "the backup useradd leaves");
        assert!(!r(etc(), "group+"), "the temporary file before the rename");
        assert!(!r(etc(), "shadow"));
        assert!(r(Dir::Subuid("ids".into()), "ids"));
        assert!(!r(Dir::Subuid("ids".into()), "ids.tmp"));
    }

    #[test]
    fn churn_cannot_postpone_a_reload_beyond_the_maximum_delay() {
        let first = Instant::now();
        assert_eq!(deadline(first, first), first + DEBOUNCE);
        // A change every 100 ms for a minute: the reload still runs MAX_DELAY after the first.
        let last = first + Duration::from_secs(60);
        assert_eq!(deadline(first, last), first + MAX_DELAY);
    }
}

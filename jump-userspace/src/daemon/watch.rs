//! Reload triggers from the file system: inotify on the policy directory and on /etc (for
//! `passwd` and `group`, which tools such as `useradd` and `gpasswd` replace by rename, so the
//! directory is watched, not the files), and on the directory of the subordinate uid file
//! (`/etc/subuid`, which `usermod --add-subuids` replaces the same way). Bursts are debounced: the reload runs `DEBOUNCE` after
//! the last relevant change, naming the files that changed.

use std::{
    collections::BTreeSet,
    ffi::OsStr,
    os::fd::{AsFd, AsRawFd, RawFd},
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{io::unix::AsyncFd, sync::mpsc};

pub const DEBOUNCE: Duration = Duration::from_millis(300);
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
    /// /etc, and the subordinate uid file's name when it lives there.
    Etc(Option<String>),
    /// The subordinate uid file's directory, and the file's name, when it is not /etc.
    Subuid(String),
}

/// Whether a change to `name` in `dir` can change the compiled policy. Editors' swap and backup
/// files are ignored; a rename into place reports the final name.
fn relevant(dir: &Dir, name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    match dir {
        Dir::Policy => {
            !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
        }
        Dir::Etc(subuid) => {
            ETC_FILES.contains(&name.as_ref()) || subuid.as_deref() == Some(name.as_ref())
        }
        Dir::Subuid(file) => *file == name,
    }
}

/// Starts watching; returns the paths watched. Changes arrive on `tx` as the trigger text
/// (`watch: /etc/group`).
pub fn start(
    policy_dir: &Path,
    subuid: &Path,
    tx: mpsc::Sender<String>,
) -> anyhow::Result<Vec<String>> {
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    let flags = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB;
    let policy_wd = ino
        .add_watch(policy_dir, flags)
        .map_err(|e| anyhow::anyhow!("failed to watch `{}`: {e}", policy_dir.display()))?;
    let etc_wd = ino
        .add_watch(ETC, flags)
        .map_err(|e| anyhow::anyhow!("failed to watch `{ETC}`: {e}"))?;
    let mut watched = vec![
        policy_dir.display().to_string(),
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
    let mut dirs = vec![(policy_wd, Dir::Policy, policy_dir.to_path_buf())];
    if subuid_dir == Path::new(ETC) {
        dirs.push((etc_wd, Dir::Etc(Some(subuid_name)), PathBuf::from(ETC)));
    } else {
        dirs.push((etc_wd, Dir::Etc(None), PathBuf::from(ETC)));
        match ino.add_watch(subuid_dir, flags) {
            Ok(wd) => dirs.push((wd, Dir::Subuid(subuid_name), subuid_dir.to_path_buf())),
            // No directory, no subordinate uids: nothing to follow until jumpd restarts.
            Err(e) => {
                tracing::warn!("not watching `{}`: {e}", subuid_dir.display());
                watched.pop();
            }
        }
    }
    let fd = super::async_fd(Fd(ino))?;
    tokio::spawn(run(fd, dirs, tx));
    Ok(watched)
}

async fn run(
    mut fd: AsyncFd<Fd>,
    dirs: Vec<(WatchDescriptor, Dir, PathBuf)>,
    tx: mpsc::Sender<String>,
) {
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = fd.readable_mut() => {
                let Ok(mut guard) = guard else { return };
                match guard.get_inner().0.read_events() {
                    Ok(events) => {
                        for e in events {
                            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                                pending.insert("watch: event queue overflow".into());
                                continue;
                            }
                            let Some((_, dir, path)) = dirs.iter().find(|(wd, ..)| *wd == e.wd) else {
                                continue;
                            };
                            let Some(name) = &e.name else { continue };
                            if relevant(dir, name) {
                                pending.insert(path.join(name).display().to_string());
                            }
                        }
                        if !pending.is_empty() {
                            deadline = Some(tokio::time::Instant::now() + DEBOUNCE);
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
                deadline = None;
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
    fn only_policy_yaml_and_passwd_group_are_relevant() {
        let r = |d: Dir, n: &str| relevant(&d, OsStr::new(n));
        let etc = || Dir::Etc(Some("subuid".into()));
        assert!(r(Dir::Policy, "20-access.yaml"));
        assert!(r(Dir::Policy, "x.yml"));
        assert!(!r(Dir::Policy, ".20-access.yaml.swp"));
        assert!(!r(Dir::Policy, "20-access.yaml~"));
        assert!(!r(Dir::Policy, "README.md"));
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
}

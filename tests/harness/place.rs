//! Placing the running process where a test or benchmark says, in the one order that works:
//! the cgroup first (hooks follow the cgroup a socket was *created* in, and `setns` into a
//! network namespace must not hide the cgroup2 mount), then the network namespace, then the
//! group and user (after which joining either would be refused).

use std::fs::File;

use nix::{
    sched::{setns, CloneFlags},
    unistd::{setgid, setgroups, setuid, Gid, Uid},
};

/// Removes `flag VALUE` from `args` and returns VALUE.
pub fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    let v = args.get(i + 1).cloned();
    args.drain(i..(i + 2).min(args.len()));
    v
}

/// Joins the cgroup, then the network namespace.
pub fn join(cgroup: Option<&str>, netns: Option<&str>) -> Result<(), String> {
    if let Some(cg) = cgroup {
        std::fs::write(format!("{cg}/cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("join cgroup {cg}: {e}"))?;
    }
    if let Some(ns) = netns {
        let f = File::open(ns).map_err(|e| format!("open {ns}: {e}"))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {ns}: {e}"))?;
    }
    Ok(())
}

/// Becomes `gid` (as the only group) and then `uid`.
pub fn become_user(uid: Option<&str>, gid: Option<&str>) -> Result<(), String> {
    if let Some(gid) = gid {
        let gid = Gid::from_raw(gid.parse().map_err(|_| "bad --gid")?);
        setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
        setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    }
    if let Some(uid) = uid {
        setuid(Uid::from_raw(uid.parse().map_err(|_| "bad --uid")?))
            .map_err(|e| format!("setuid: {e}"))?;
    }
    Ok(())
}

/// Takes `--cgroup DIR`, `--netns FILE`, `--uid U`, `--gid G` out of `args` and applies them.
pub fn place_self(args: &mut Vec<String>) -> Result<(), String> {
    let cgroup = take_flag(args, "--cgroup");
    let netns = take_flag(args, "--netns");
    let uid = take_flag(args, "--uid");
    let gid = take_flag(args, "--gid");
    join(cgroup.as_deref(), netns.as_deref())?;
    become_user(uid.as_deref(), gid.as_deref())
}

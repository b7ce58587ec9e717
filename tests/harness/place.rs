//! Placing the running process where a test or benchmark says, in the one order that works:
//! the cgroup first (hooks follow the cgroup a socket was *created* in, and `setns` into a
//! network namespace must not hide the cgroup2 mount), then the network namespace, then the
//! group and user (after which joining either would be refused).

use std::fs::File;

use nix::{
    sched::{setns, CloneFlags},
    unistd::{setgid, setgroups, setuid, Gid, Uid},
};

/// Takes `--cgroup DIR`, `--netns FILE`, `--uid U`, `--gid G` out of `args` and applies them.
pub fn place_self(args: &mut Vec<String>) -> Result<(), String> {
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let cgroup = take("--cgroup");
    let netns = take("--netns");
    let uid = take("--uid");
    let gid = take("--gid");
    if let Some(cg) = cgroup {
        std::fs::write(format!("{cg}/cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("join cgroup {cg}: {e}"))?;
    }
    if let Some(ns) = netns {
        let f = File::open(&ns).map_err(|e| format!("open {ns}: {e}"))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {ns}: {e}"))?;
    }
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

//! Least privilege: once the programs are loaded and attached, jumpd keeps only the
//! capabilities its later work needs, clears the rest from every set (bounding included, so no
//! child could regain them) and sets no-new-privileges. It stays uid 0, so it can still read
//! root-owned policy files and /etc without CAP_DAC_*.
//!
//! INVARIANT (single thread at drop): capabilities are per thread. jumpd runs tokio's
//! current-thread runtime and starts one thread before `drop_privileges`: the revocation thread
//! (`datapath::revoke::Worker`), which restricts itself to `revoke::WORKER_CAPS` (entering
//! another network namespace needs `CAP_SYS_ADMIN`). Every other thread is started later and
//! inherits the main thread's reduced sets.

use caps::{CapSet, Capability, CapsHashSet};

/// What jumpd keeps after attaching, and why (also in README "Operations").
pub const KEPT: &[(Capability, &str)] = &[
    (
        Capability::CAP_BPF,
        "policy reloads write the BPF maps; kernels before 6.5 refuse every bpf() command, map updates included, without it while kernel.unprivileged_bpf_disabled is set",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "closing the connections a policy no longer allows (netlink SOCK_DESTROY) needs it; the revocation thread does that, in every network namespace of the cgroup",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "each event names the executable by reading /proc/PID/exe, and the SSH client by reading the session sshd's /proc/PID/fd, which the kernel's ptrace access check refuses for another user's (or a non-dumpable) process without it",
    ),
];

pub fn kept() -> CapsHashSet {
    KEPT.iter().map(|(c, _)| *c).collect()
}

/// Names as `/proc/PID/status` and capsh print them, lower-case: `cap_bpf,cap_sys_ptrace`.
pub fn names(set: &CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string().to_lowercase()).collect();
    v.sort();
    v
}

/// Drops every capability but `KEPT` from the bounding, inheritable, ambient, permitted and
/// effective sets, then sets no-new-privileges. All or nothing is not possible here: an error
/// is returned and jumpd stops, rather than running with more than it should.
pub fn drop_privileges() -> anyhow::Result<CapsHashSet> {
    let keep = kept();
    // The bounding set first: dropping from it needs CAP_SETPCAP in the effective set. Without
    // it (the systemd unit leaves it out), the service manager's bounding set stands: once the
    // permitted set is cut and no-new-privileges is set below, nothing can regain the rest.
    let can_bound = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)?;
    for cap in caps::read(None, CapSet::Bounding)? {
        if can_bound && !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                anyhow::anyhow!("failed to drop `{cap}` from the bounding set: {e}")
            })?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let permitted = caps::read(None, CapSet::Permitted)?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| anyhow::anyhow!("failed to set no-new-privileges: {e}"))?;
    let now = caps::read(None, CapSet::Effective)?;
    anyhow::ensure!(
        now == keep,
        "capabilities after the drop are {:?}, expected {:?}",
        names(&now),
        names(&keep)
    );
    Ok(now)
}

/// The effective set now, for `jumpctl status`.
pub fn effective() -> Vec<String> {
    caps::read(None, CapSet::Effective)
        .map(|s| names(&s))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_set_is_small_and_named_as_proc_names_it() {
        assert_eq!(
            names(&kept()),
            ["cap_bpf", "cap_net_admin", "cap_sys_ptrace"]
        );
        assert!(
            !kept().contains(&Capability::CAP_SYS_ADMIN),
            "nothing jumpd does after attaching needs CAP_SYS_ADMIN"
        );
    }
}

//! jumpd's command line: parsed by `bin/jumpd.rs`, and the source of the jumpd(8) manual page
//! (`examples/manuals.rs`), so the page lists exactly the flags the binary takes.

use clap::Parser;

use super::config;

/// Enforces per-user egress policy in the kernel and logs every decision.
#[derive(Parser)]
#[command(
    name = "jumpd",
    version,
    long_about = "jumpd enforces per-user egress policy on a jump host: eBPF programs attached to a \
cgroup v2 directory (on a jump host, the root) decide in the kernel, for every process, which \
destinations each uid may connect to, send to and listen on. jumpd compiles the policy files \
into the programs' maps, keeps them current (file changes, SIGHUP, `jumpctl reload`) and logs \
every decision to journald. Enforcement is pinned in bpffs and survives a stop or crash of jumpd; \
`jumpd --detach` (or `jumpctl detach`) removes it."
)]
pub struct Args {
    #[command(flatten)]
    pub flags: config::Flags,
    /// Remove the pinned enforcement of --cgroup, then exit. A normal stop leaves it in force.
    #[arg(long)]
    pub detach: bool,
}

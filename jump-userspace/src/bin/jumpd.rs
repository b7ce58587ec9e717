//! `jumpd`: the jump enforcement daemon.
use std::path::PathBuf;

use clap::Parser;
use jump_userspace::{
    daemon,
    events::sink::{self, LogFormat},
};

/// Enforces per-user egress policy in the kernel and logs every decision.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory of policy YAML files.
    #[arg(long, default_value = "/etc/jump/policies")]
    policy_dir: PathBuf,
    /// cgroup v2 directory to enforce on. On a jump host: the cgroup v2 root (the whole host).
    /// Required: attaching to the root of a machine that is not a jump host cuts its traffic.
    #[arg(long)]
    cgroup: PathBuf,
    /// Log sink; journald when its socket exists, otherwise JSON lines on stdout.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Forward the kernel programs' own debug diagnostics (aya-log) at debug level.
    #[arg(long)]
    debug_kernel: bool,
    /// bpffs directory for the pinned programs and maps that outlive jumpd.
    #[arg(long, default_value = "/sys/fs/bpf/jump")]
    pin_dir: PathBuf,
    /// Remove the pinned enforcement of --cgroup, then exit. A normal stop leaves it in force.
    #[arg(long)]
    detach: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let format = args.log_format.unwrap_or_else(LogFormat::detect);
    if let Err(e) = sink::init(format) {
        eprintln!("jumpd: cannot start logging to {}: {e:#}", format.name());
        return std::process::ExitCode::from(2);
    }
    tracing::info!(
        message_id = daemon::message_id::STARTED,
        "jumpd {} starting, logging to {}",
        env!("CARGO_PKG_VERSION"),
        format.name()
    );
    let opts = daemon::Options {
        policy_dir: args.policy_dir,
        cgroup: args.cgroup,
        pin_dir: args.pin_dir,
        debug_kernel: args.debug_kernel,
    };
    let result = if args.detach {
        daemon::detach(&opts)
    } else {
        daemon::run(opts).await
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("jumpd: {e:#}");
            eprintln!("jumpd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `cargo xtask setup|build|run|test|bench|shell`: the project's own build chain. Everything a
//! fresh machine needs is installed by `setup`, so `run` and `test` work on it unaided.
#![forbid(unsafe_code)]

mod bench;
mod build;
mod demo;
mod install;
mod setup;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: Debian packages and bpf-linker (idempotent).
    Setup,
    /// Build the eBPF object with Debian's toolchain, then jumpd and jumpctl embedding it.
    Build,
    /// The demo: a jump host in a box in network namespaces, jumpd in the foreground.
    /// With `-- ARGS…`, runs jumpd with those arguments instead (a real deployment).
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Every test: unit and property tests, then the privileged kernel tests (as root).
    Test,
    /// Benchmarks: jump's cost per connection next to no filter, nftables sets and linear
    /// iptables rules, at 10 to 100,000 rules; policy compile/apply; events/s (as root).
    Bench {
        /// A short run (under two minutes): fewer sizes, repetitions and iterations.
        #[arg(long)]
        quick: bool,
        /// Print the results as JSON instead of markdown tables.
        #[arg(long)]
        json: bool,
        /// Also write the markdown report to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Open a shell as USER inside the running demo's enforced cgroup and jump-host namespace.
    Shell { user: String },
    /// Build, then install binaries, the systemd unit, the example config and policies (an
    /// existing config or policy directory is kept). Enables nothing.
    Install {
        /// Where binaries go (`PREFIX/sbin/jumpd`, `PREFIX/bin/jumpctl`)
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Staging root for packaging; everything lands under it
        #[arg(long, default_value = "/")]
        destdir: PathBuf,
    },
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// bpffs at /sys/fs/bpf as this xtask found it. jumpd mounts it when missing (its pins live
/// there); if the xtask's tests or demo caused that and left no pins behind, it is unmounted
/// again so the machine is as it was.
struct BpffsAsFound {
    was_mounted: bool,
}

const BPFFS: &str = "/sys/fs/bpf";

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split_whitespace().nth(1) == Some(BPFFS) && l.split_whitespace().nth(2) == Some("bpf")
        })
}

impl Drop for BpffsAsFound {
    fn drop(&mut self) {
        if self.was_mounted || !bpffs_mounted() {
            return;
        }
        // Only the kernel's own iterator files (`maps.debug`, `progs.debug`): no pins of anyone's.
        let only_kernel_files = std::fs::read_dir(BPFFS)
            .map(|d| {
                d.flatten()
                    .all(|e| e.file_name().to_string_lossy().ends_with(".debug"))
            })
            .unwrap_or(false);
        if only_kernel_files {
            let _ = std::process::Command::new("umount").arg(BPFFS).status();
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _bpffs = BpffsAsFound {
        was_mounted: bpffs_mounted(),
    };
    let result = match cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Build => setup::run().and_then(|()| build::run().map(drop)),
        Cmd::Run { args } => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| demo::run(&b, &args)),
        Cmd::Test => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| build::test(&b)),
        Cmd::Bench { quick, json, out } => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| bench::run(&b, &bench::Options { quick, json, out })),
        Cmd::Shell { user } => demo::shell(&user),
        Cmd::Install { prefix, destdir } => {
            setup::run().and_then(|()| build::run()).and_then(|b| {
                let bin = b.jumpd.parent().expect("in a directory").to_path_buf();
                install::install(
                    &workspace_root(),
                    &bin,
                    &install::Layout { prefix, destdir },
                )
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

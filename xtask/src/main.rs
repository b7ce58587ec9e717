//! `cargo xtask setup|build|lint-ebpf|run|test|bench|shell|deb|install`: the project's own build chain. Everything a
//! fresh machine needs is installed by `setup`, so `run` and `test` work on it unaided.
#![forbid(unsafe_code)]

mod bench;
mod build;
mod deb;
mod dist;
mod install;
mod run;
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
    /// `cargo fmt --check` and `clippy -D warnings` for jump-ebpf (outside the host workspace).
    LintEbpf,
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
    /// Build the Debian package into target/debian/ (with cargo-deb): jumpd, jumpctl, the
    /// systemd unit, the jump-admin group, config and example policy, schema, manual pages,
    /// completions. Installing it enables and starts nothing.
    Deb,
    /// Build, then install the Debian package's files with `/usr` at PREFIX (an existing config
    /// or policy directory is kept). Enables nothing.
    Install {
        /// Where binaries go (`PREFIX/sbin/jumpd`, `PREFIX/bin/jumpctl`)
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Staging root for packaging; everything lands under it
        #[arg(long, default_value = "/")]
        destdir: PathBuf,
    },
}

/// The checkout xtask works on, found at run time — not the tree it was compiled in, which a
/// copied checkout (with its `target/`) would otherwise keep using: `cargo run` (what `cargo
/// xtask` is) sets `CARGO_MANIFEST_DIR` to this tree's `xtask/`; run directly, the nearest
/// ancestor of the working directory that holds `xtask/Cargo.toml`.
pub fn workspace_root() -> PathBuf {
    let from_cargo = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.ends_with("xtask") && d.join("Cargo.toml").is_file())
        .and_then(|d| d.parent().map(PathBuf::from));
    let from_cwd = || {
        std::env::current_dir()
            .ok()
            .and_then(|d| find_workspace(&d))
    };
    from_cargo.or_else(from_cwd).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace")
            .to_path_buf()
    })
}

/// The nearest of `dir` and its ancestors that holds `xtask/Cargo.toml` and a `Cargo.toml`.
fn find_workspace(dir: &std::path::Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|a| a.join("xtask/Cargo.toml").is_file() && a.join("Cargo.toml").is_file())
        .map(PathBuf::from)
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
        Cmd::LintEbpf => setup::run().and_then(|()| build::lint_ebpf()),
        Cmd::Run { args } => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| run::run(&b, &args)),
        Cmd::Test => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| build::test(&b)),
        Cmd::Bench { quick, json, out } => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| bench::run(&b, &bench::Options { quick, json, out })),
        Cmd::Shell { user } => run::shell(&user),
        Cmd::Deb => setup::run()
            .and_then(|()| build::run())
            .and_then(|b| deb::run(&b).map(drop)),
        Cmd::Install { prefix, destdir } => {
            setup::run().and_then(|()| build::run()).and_then(|b| {
                let root = workspace_root();
                let generated = build::target_dir().join("jump-generated");
                dist::generate(&root, &b, &generated)?;
                let staged = build::target_dir().join("jump-install");
                let bin = b.jumpd.parent().expect("in a directory");
                let layout = install::Layout { prefix, destdir };
                let prefix = dist::Prefix(layout.prefix.clone());
                let files = dist::stage(&root, bin, &generated, &prefix, &staged)?;
                install::install(&staged, &files, &layout)?;
                install::finish(&layout);
                Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_copied_checkout_is_found_from_inside_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("copy");
        std::fs::create_dir_all(root.join("xtask")).unwrap();
        std::fs::create_dir_all(root.join("policies/tests")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(root.join("xtask/Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(
            super::find_workspace(&root.join("policies/tests")),
            Some(root.clone())
        );
        assert_eq!(super::find_workspace(d.path()), None);
    }
}

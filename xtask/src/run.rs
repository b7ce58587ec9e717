//! `cargo xtask run` and `cargo xtask shell`: jumpd with the operator's arguments, or the demo,
//! the test crate's `jump-demo` (tests/demo/), built by `build::run` beside the binaries it runs.

use std::process::Command;

use anyhow::Context;

use crate::{
    build::{sh, target_dir, Bins},
    workspace_root,
};

fn demo_bin() -> std::path::PathBuf {
    target_dir().join("release/jump-demo")
}

pub fn run(bins: &Bins, args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        // A real deployment: jumpd with the operator's arguments, nothing else.
        let status = Command::new(&bins.jumpd).args(args).status()?;
        anyhow::ensure!(status.success(), "jumpd exited with {status}");
        return Ok(());
    }
    // Ctrl-C reaches the demo too (same process group), which stops jumpd and removes what it
    // created; this process only waits for it to finish doing so.
    ctrlc::set_handler(|| {}).context("failed to handle Ctrl-C")?;
    sh(Command::new(demo_bin())
        .env("JUMPD_BIN", &bins.jumpd)
        .env("JUMPCTL_BIN", &bins.jumpctl)
        .env("JUMP_PROBE_BIN", &bins.probe)
        .arg("run")
        .arg(workspace_root().join("policies")))
}

/// `cargo xtask shell USER` (no build: the demo, which built it, must be running).
pub fn shell(user: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        demo_bin().exists(),
        "the demo is not running (`{}` not built); start it with `cargo xtask run` (as root)",
        demo_bin().display()
    );
    sh(Command::new(demo_bin()).arg("shell").arg(user))
}

//! `cargo xtask bench`: runs the benchmark's own crate (`bench/`, binary `jump-bench-run`), built
//! by `build::run` beside the binaries it measures, which it is told of as the tests are.

use std::process::Command;

use anyhow::Context;
use jump_tests::Bins;

use crate::build::sh;

pub struct Options {
    pub quick: bool,
    pub json: bool,
    pub out: Option<std::path::PathBuf>,
}

pub fn run(bins: &Bins, opts: &Options) -> anyhow::Result<()> {
    let driver = bins.probe.with_file_name("jump-bench-run");
    let mut cmd = Command::new(&driver);
    cmd.env("JUMPD_BIN", &bins.jumpd)
        .env("JUMPCTL_BIN", &bins.jumpctl)
        .env("JUMP_PROBE_BIN", &bins.probe);
    if opts.quick {
        cmd.arg("--quick");
    }
    if opts.json {
        cmd.arg("--json");
    }
    if let Some(out) = &opts.out {
        cmd.arg("--out").arg(out);
    }
    // Ctrl-C reaches the bench too (same process group), which stops and removes what it
    // created; this process only waits for it to finish doing so.
    ctrlc::set_handler(|| {}).context("failed to handle Ctrl-C")?;
    sh(&mut cmd)
}

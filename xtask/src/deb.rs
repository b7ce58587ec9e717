//! `cargo xtask deb`: the Debian package, by cargo-deb (the version `cargo xtask setup`
//! installs), from the tree `dist::stage` writes to `target/release/jump-dist/` with `/usr` as
//! the prefix. The package's control data (name, dependencies, maintainer scripts, asset globs)
//! is jump-userspace's `[package.metadata.deb]`; its maintainer scripts (contrib/debian/) create
//! the `jump-admin` group and enable or start nothing.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context};

use crate::{
    build::{target_dir, Bins},
    dist::{self, Prefix},
    setup::cargo_bin_dir,
    workspace_root,
};

/// Builds `target/debian/jump_VERSION_ARCH.deb` from the built `bins`; returns its path.
pub fn run(bins: &Bins) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let generated = target_dir().join("jump-generated");
    dist::generate(&root, bins, &generated)?;
    let bin = bins.jumpd.parent().expect("in a directory");
    // cargo-deb reads `target/release/…` asset paths from the actual target directory.
    let tree = target_dir().join("release/jump-dist");
    dist::stage(&root, bin, &generated, &Prefix("/usr".into()), &tree)?;
    let out_dir = target_dir().join("debian");
    std::fs::create_dir_all(&out_dir)?;
    eprintln!("deb: packaging {}", tree.display());
    let out = Command::new(cargo_bin_dir().join("cargo-deb"))
        .current_dir(&root)
        .args(["-p", "jump-userspace", "--no-build", "--output"])
        .arg(&out_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("failed to run cargo-deb (`cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!("cargo-deb failed with {}", out.status);
    }
    // cargo-deb prints the package's path last on stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo-deb named no .deb")?;
    eprintln!("deb: {}", deb.display());
    Ok(deb)
}

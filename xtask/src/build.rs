//! `cargo xtask build` and `cargo xtask test`.
//!
//! The eBPF object is built by Debian's compiler (`/usr/bin/rustc`, whose sysroot has the
//! `core` sources that `-Z build-std=core` compiles for `bpfel-unknown-none`) in its own target
//! directory; the host crates are built by the default toolchain and embed it.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context};
use jump_tests::Bins;

use crate::{setup::cargo_bin_dir, workspace_root};

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub(crate) fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The host cargo, as invoked by `cargo xtask`.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Cargo for jump-ebpf with Debian's toolchain, running `subcommand` for `bpfel-unknown-none`
/// (release, `-Z build-std=core`) into `target/ebpf`: what the build and the lints both use.
fn ebpf_cargo(subcommand: &str) -> anyhow::Result<Command> {
    let mut cmd = Command::new("/usr/bin/cargo");
    // The outer cargo's variables (toolchain, flags, target dir) would leak into the inner
    // build and pick rustup's compiler, which has no `core` sources for build-std.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if (k.starts_with("CARGO") && k != "CARGO_HOME")
            || k.starts_with("RUSTUP")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
            || k == "RUSTDOCFLAGS"
        {
            cmd.env_remove(&k);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Debian's `cargo-clippy` before rustup's proxy of the same name (which would pick rustup's
    // toolchain); bpf-linker from cargo's bin directory.
    let mut paths = vec![PathBuf::from("/usr/bin"), cargo_bin_dir()];
    paths.extend(std::env::split_paths(&path));
    cmd.current_dir(workspace_root().join("jump-ebpf"))
        .env("PATH", std::env::join_paths(paths)?)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            subcommand,
            "--release",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(target_dir().join("ebpf"));
    Ok(cmd)
}

fn build_ebpf() -> anyhow::Result<PathBuf> {
    eprintln!("build: eBPF programs (Debian rustc, bpfel-unknown-none)");
    sh(&mut ebpf_cargo("build")?)?;
    Ok(target_dir().join("ebpf/bpfel-unknown-none/release/jump"))
}

/// `cargo xtask lint-ebpf`: the house rules for jump-ebpf, which is outside the host workspace
/// that `cargo fmt --all` and `cargo clippy --workspace` cover. Formatting needs no target, so
/// the host's rustfmt checks it; clippy is Debian's (`rust-web-clippy`), matching the compiler
/// that builds the object.
pub fn lint_ebpf() -> anyhow::Result<()> {
    eprintln!("lint: jump-ebpf formatting");
    sh(cargo().current_dir(workspace_root()).args([
        "fmt",
        "--manifest-path",
        "jump-ebpf/Cargo.toml",
        "--check",
    ]))?;
    eprintln!("lint: jump-ebpf clippy (Debian toolchain, bpfel-unknown-none)");
    sh(ebpf_cargo("clippy")?.args(["--", "-D", "warnings"]))
}

pub fn run() -> anyhow::Result<Bins> {
    let object = build_ebpf()?;
    eprintln!("build: jumpd, jumpctl, the test programs and the benchmark");
    sh(cargo()
        .current_dir(workspace_root())
        .env("JUMP_EBPF_OBJECT", &object)
        .args([
            "build",
            "--release",
            "--bins",
            "-p",
            "jump-userspace",
            "-p",
            "jump-tests",
            "-p",
            "jump-bench",
        ]))?;
    let bin = target_dir().join("release");
    Ok(Bins {
        jumpd: bin.join("jumpd"),
        jumpctl: bin.join("jumpctl"),
        probe: bin.join("jump-probe"),
    })
}

pub fn test(bins: &Bins) -> anyhow::Result<()> {
    let object = target_dir().join("ebpf/bpfel-unknown-none/release/jump");
    let root = nix::unistd::Uid::effective().is_root();
    eprintln!("test: unit and property tests");
    sh(cargo()
        .current_dir(workspace_root())
        .env("JUMP_EBPF_OBJECT", &object)
        .args([
            "test",
            "--release",
            "--workspace",
            "--exclude",
            "jump-tests",
        ]))?;
    if !root {
        bail!("the kernel tests need root (they create namespaces and cgroups and load BPF programs); run `sudo cargo xtask test`");
    }
    // tests/package.rs reads the package `cargo xtask deb` makes.
    let deb = crate::deb::run(bins)?;
    eprintln!("test: privileged kernel tests (one at a time)");
    sh(cargo()
        .env("JUMP_DEB", &deb)
        .current_dir(workspace_root())
        .env("JUMP_EBPF_OBJECT", &object)
        .env("JUMPD_BIN", &bins.jumpd)
        .env("JUMPCTL_BIN", &bins.jumpctl)
        .env("JUMP_PROBE_BIN", &bins.probe)
        // Under xtask a test that cannot run is a failure, not a skip.
        .env("JUMP_TESTS_REQUIRED", "1")
        .args([
            "test",
            "--release",
            "-p",
            "jump-tests",
            "--",
            "--test-threads=1",
        ]))?;
    // Proves the benchmark harness works end to end; its numbers pass or fail nothing.
    eprintln!("test: the benchmark harness (`bench --quick`, numbers not judged)");
    crate::bench::run(
        bins,
        &crate::bench::Options {
            quick: true,
            json: false,
            out: None,
        },
    )
    .context("`cargo xtask bench --quick` failed")?;
    Ok(())
}

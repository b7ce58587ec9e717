//! `cargo xtask setup`: installs the eBPF build chain and the test dependencies, skipping what
//! is there. Checking is one `dpkg-query`, `bpf-linker --version` and `cargo-deb --version`, so a ready machine
//! passes in well under a second.

use std::process::Command;

use anyhow::{bail, Context};

/// Debian packages: Debian's Rust (its sysroot carries the `core` sources `-Z build-std`
/// needs, which rustup here cannot download), LLVM 22 for bpf-linker, and the tools the tests
/// the demo and the benchmark drive (OpenSSH: the end-to-end test and the demo start their own
/// sshd with their own configuration and never use the machine's).
pub const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    // clippy matching Debian's rustc, for jump-ebpf (`cargo xtask lint-ebpf`).
    "rust-web-clippy",
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "util-linux",
    // newuidmap: the subordinate-uid test enters a user namespace as a real user would.
    "uidmap",
    "systemd",
    "openssh-server",
    "openssh-client",
    // What `cargo xtask bench` compares jump with, and its packet-path load generator.
    "nftables",
    "iptables",
    "iperf3",
    // promtool: the metrics test checks /metrics with the real Prometheus parser.
    "prometheus",
    // etcd-client's build script generates its gRPC code from etcd's .proto files, which import
    // protobuf's own (`google/protobuf/*.proto`, in libprotobuf-dev: only recommended, and
    // setup installs no recommends).
    "protobuf-compiler",
    "libprotobuf-dev",
    // The fleet test runs its own etcd (3.4) and writes to it with etcdctl.
    "etcd-server",
    "etcd-client",
    // `perf`, to profile jumpd under the bench's event storm.
    "linux-perf",
    // jump-policy(5) from policies/README.md (`cargo xtask deb` and `install`).
    "go-md2man",
    // `cargo xtask deb`: cargo-deb's dependency resolution (dpkg-shlibdeps), and the package
    // test reads the package with dpkg-deb and renders its pages with man.
    "dpkg-dev",
    "man-db",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// The newest cargo-deb when this was written; builds with rustc 1.85 and later.
const CARGO_DEB_VERSION: &str = "3.8.0";

fn missing_packages() -> anyhow::Result<Vec<&'static str>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(PACKAGES)
        .output()
        .context("failed to run dpkg-query (is this Debian?)")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    Ok(PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !installed
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [*p, "ii"])
        })
        .collect())
}

/// Where `cargo install` puts binaries; added to PATH for the eBPF build.
pub fn cargo_bin_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| "/root/.cargo".into())
        .join("bin")
}

fn bpf_linker_ok() -> bool {
    Command::new(cargo_bin_dir().join("bpf-linker"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
}

fn cargo_deb_ok() -> bool {
    Command::new(cargo_bin_dir().join("cargo-deb"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION))
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    let missing = missing_packages()?;
    if !missing.is_empty() {
        eprintln!("setup: installing Debian packages: {}", missing.join(" "));
        sh(Command::new("apt-get").args(["update", "-q"]))?;
        sh(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if !bpf_linker_ok() {
        eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} (built against LLVM 22; takes a few minutes)");
        sh(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
                .args(["--no-default-features", "--features", "llvm-22", "--force"])
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
        )?;
    }
    if !cargo_deb_ok() {
        eprintln!("setup: installing cargo-deb {CARGO_DEB_VERSION}");
        sh(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["install", "cargo-deb", "--version", CARGO_DEB_VERSION])
                .args(["--locked", "--force"]),
        )?;
    }
    Ok(())
}

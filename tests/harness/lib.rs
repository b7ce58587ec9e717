//! The privileged test harness: network namespaces joined by veth (`netns`), a child cgroup
//! (`cgroup`), `jumpd` as a child process whose events are collected (`daemon`), and client and
//! server programs run as a chosen uid inside a chosen cgroup and namespace (`probe`), Unix
//! accounts made for one test (`accounts`), real OpenSSH servers and clients (`ssh`), a
//! standalone journald in a private mount namespace (`journal`), jumpd's metrics endpoint as a
//! scraper reads it (`metrics`), `poll_until`, the one way to wait on a condition (`wait`), and
//! the common set-up of servers, cgroup, policy and jumpd (`world`).
//!
//! Every resource is an RAII guard, so it is removed on success, failure and panic; names carry
//! the test process's pid, and each constructor first sweeps leftovers of dead test processes.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod cgroup;
pub mod child;
pub mod daemon;
pub mod journal;
pub mod metrics;
pub mod netns;
pub mod place;
pub mod probe;
pub mod sniff;
pub mod ssh;
pub mod wait;
pub mod world;

pub use wait::{poll_every, poll_until};

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// The binaries under test.
#[derive(Clone, Debug)]
pub struct Bins {
    pub jumpd: PathBuf,
    pub jumpctl: PathBuf,
    pub probe: PathBuf,
}

impl Bins {
    /// From `JUMPD_BIN`/`JUMPCTL_BIN`/`JUMP_PROBE_BIN`, else beside the running test binary
    /// (`target/<profile>/deps/..`), where cargo puts them.
    pub fn from_env() -> Self {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(PathBuf::from))
            .unwrap_or_default();
        let pick = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(name))
        };
        Self {
            jumpd: pick("JUMPD_BIN", "jumpd"),
            jumpctl: pick("JUMPCTL_BIN", "jumpctl"),
            probe: pick("JUMP_PROBE_BIN", "jump-probe"),
        }
    }
}

/// A name unique to this process and call, e.g. `jt1234x3`. Short, because interface and
/// namespace names are read by humans in `ip netns list`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the pid embedded in a harness name (`<prefix><pid>x<n>`) is still alive.
pub fn owner_alive(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return true;
    };
    let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<u32>().ok()) else {
        return true;
    };
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Returns true when the privileged tests can run here. When they cannot, prints why and
/// returns false — or panics under `cargo xtask test` (`JUMP_TESTS_REQUIRED=1`), where a skip
/// would hide a broken setup.
pub fn privileged(test: &str) -> bool {
    let mut why = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        why.push("not running as root".to_string());
    }
    let bins = Bins::from_env();
    for p in [&bins.jumpd, &bins.probe] {
        if !p.exists() {
            why.push(format!(
                "`{}` not built (run `cargo xtask test`)",
                p.display()
            ));
        }
    }
    if cgroup::cgroup2_root().is_none() {
        why.push("no cgroup2 mount".into());
    }
    if why.is_empty() {
        return true;
    }
    let msg = format!("SKIPPED {test}: {}", why.join("; "));
    if std::env::var_os("JUMP_TESTS_REQUIRED").is_some() {
        panic!("{msg}");
    }
    eprintln!("{msg}");
    false
}

/// Reports a cleanup that failed in a guard's `Drop`: a panic, which fails the test (a leaked
/// link, namespace or account must not pass silently, as in aya's integration tests) — unless
/// the thread is already panicking, where a second panic would abort and hide the first
/// failure; then it is printed.
pub fn cleanup_failed(what: impl std::fmt::Display) {
    if std::thread::panicking() {
        eprintln!("cleanup failed: {what}");
    } else {
        panic!("cleanup failed: {what}");
    }
}

/// Runs a command, failing with its output.
pub fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

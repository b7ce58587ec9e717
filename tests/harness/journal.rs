//! A real `systemd-journald` for one test, standalone (no systemd as PID 1), in a private mount
//! namespace so it never meets the machine's own journal.
//!
//! journald (and every journald client, `tracing-journald` in jumpd included) uses the fixed
//! paths `/run/systemd/journal/{socket,stdout,dev-log}`; so instead of pointing them elsewhere,
//! the test gets its own `/run`: `unshare --mount` (private propagation) mounts a tmpfs over
//! `/run` and over `/var/log/journal`, bind-mounts a test `journald.conf` over
//! `/etc/systemd/journald.conf`, and execs journald. Processes that must log to it (jumpd) are
//! started in that namespace with `nsenter --mount`; the journal is read from outside through
//! `/proc/<pid>/root`. Nothing is created on the host: when journald (ended by its pid) and
//! every process in the namespace are gone, the namespace, its mounts and their contents go
//! with it.
//!
//! journald also gets a network namespace of its own, for one setting: the length of its
//! socket's datagram queue, which the kernel takes from `net.unix.max_dgram_qlen` of the
//! namespace the socket is made in. systemd, as PID 1, raises it from the kernel's 10 to 512
//! at boot, before journald makes its socket, so on a host booted by systemd (where jumpd's unit
//! runs) journald's queue holds 512 entries. A machine without systemd as PID 1 (this one)
//! keeps 10, and a producer of many entries then waits on journald every eleventh: the
//! private namespace's setting makes the test's journald the one a booted host has, without
//! touching the machine's. Clients stay in their own network namespace: a socket bound to a
//! path is reached from any.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::child::Guarded;
use crate::poll_until;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// The test configuration: kept in memory (the tmpfs), nothing from the kernel log, no rate
/// limit (the storm must reach the journal whole), no forwarding anywhere.
const CONFIG: &str = "[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitIntervalSec=0\n\
RateLimitBurst=0\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\nForwardToWall=no\n";

/// `net.unix.max_dgram_qlen` as systemd sets it at boot (`DEFAULT_UNIX_MAX_DGRAM_QLEN`).
const BOOTED_DGRAM_QLEN: u32 = 512;

/// Sets the (private) network namespace's datagram queue length, then execs journald.
fn exec_journald() -> String {
    format!(
        "set -e
echo {BOOTED_DGRAM_QLEN} > /proc/sys/net/unix/max_dgram_qlen
exec {JOURNALD}"
    )
}

fn script() -> String {
    format!(
        "set -e
mount -t tmpfs -o mode=0755 jump-test-run /run
mkdir -p /run/systemd/journal /run/jump-test
printf '%s' '{CONFIG}' > /run/jump-test/journald.conf
if [ -e /etc/systemd/journald.conf ]; then
  mount --bind /run/jump-test/journald.conf /etc/systemd/journald.conf
fi
if [ -d /var/log/journal ]; then mount -t tmpfs jump-test-journal /var/log/journal; fi
{}
",
        exec_journald()
    )
}

/// Why a journald test cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let missing: Vec<&str> = [
        JOURNALD,
        "/usr/bin/journalctl",
        "/usr/bin/unshare",
        "/usr/bin/nsenter",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}

pub struct Journald {
    child: Guarded,
}

impl Journald {
    /// Starts journald in a new mount and network namespace and waits for its socket.
    pub fn start() -> anyhow::Result<Self> {
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg(script())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let mut j = Self {
            child: Guarded::with_grace(child, Duration::from_secs(5)),
        };
        let socket = j.root().join("run/systemd/journal/socket");
        let exited = poll_until(Duration::from_secs(10), "journald's socket", || {
            if socket.exists() {
                Some(None)
            } else {
                j.child.exited().map(Some)
            }
        })?;
        if let Some(status) = exited {
            anyhow::bail!("journald exited with {status} before its socket appeared");
        }
        Ok(j)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Ends journald as a crash would. Its socket file stays in the namespace's `/run` while a
    /// process in the namespace (jumpd) lives, and sends to it fail: a journald that is gone.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts journald again after `kill`, in the mount namespace of `pid` (a process that logs
    /// to it and so kept the namespace), with the same configuration and journal (and a new
    /// network namespace, as `start` makes): a restart.
    pub fn restart_in(&mut self, pid: u32) -> anyhow::Result<()> {
        let child = Command::new("nsenter")
            .arg(format!("--mount=/proc/{pid}/ns/mnt"))
            .args(["--", "unshare", "--net", "--", "sh", "-c"])
            .arg(exec_journald())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        self.child = Guarded::with_grace(child, Duration::from_secs(5));
        let socket = self.root().join("run/systemd/journal/socket");
        poll_until(
            Duration::from_secs(10),
            "journald's socket to answer",
            || {
                let s = std::os::unix::net::UnixDatagram::unbound().ok()?;
                s.connect(&socket).ok()
            },
        )?;
        Ok(())
    }

    /// The namespace's root as seen from outside it.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid()))
    }

    /// A command that runs `program` in journald's mount namespace (and so logs to it).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.pid()))
            .arg("--")
            .arg(program);
        c
    }

    /// Every entry of the journal, as `journalctl -o json` prints them.
    pub fn entries(&self) -> anyhow::Result<Vec<Value>> {
        let out = Command::new("journalctl")
            .arg("--directory")
            .arg(self.root().join("run/log/journal"))
            .args(["-o", "json", "--no-pager", "-q"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "journalctl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// jumpd's entries (`SYSLOG_IDENTIFIER=jumpd`).
    pub fn jumpd_entries(&self) -> Vec<Value> {
        self.entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["SYSLOG_IDENTIFIER"] == "jumpd")
            .collect()
    }

    /// Waits up to 10 s for a jumpd entry matching `pred`.
    pub fn wait_entry(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll_until(Duration::from_secs(10), what, || {
            self.jumpd_entries().into_iter().find(|e| pred(e))
        })
        .unwrap_or_else(|e| {
            let entries = self.jumpd_entries();
            let messages: Vec<&Value> = entries.iter().map(|e| &e["MESSAGE"]).collect();
            panic!("{e}; jumpd's entries so far: {messages:#?}")
        })
    }
}

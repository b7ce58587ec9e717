//! Running `jump-probe` as a client (one operation, one verdict) or as echo servers.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{child::Guarded, Bins};

/// Where and as whom a probe runs.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub cgroup: Option<PathBuf>,
    pub netns: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Placement {
    /// As `uid` (with the same number as gid), inside `cgroup` and `netns`.
    pub fn user(uid: u32, cgroup: &Path, netns: &Path) -> Self {
        Self {
            cgroup: Some(cgroup.into()),
            netns: Some(netns.into()),
            uid: Some(uid),
            gid: Some(uid),
        }
    }

    fn args(&self, cmd: &mut Command) {
        if let Some(c) = &self.cgroup {
            cmd.arg("--cgroup").arg(c);
        }
        if let Some(n) = &self.netns {
            cmd.arg("--netns").arg(n);
        }
        if let Some(u) = self.uid {
            cmd.arg("--uid").arg(u.to_string());
        }
        if let Some(g) = self.gid {
            cmd.arg("--gid").arg(g.to_string());
        }
    }
}

/// A client operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Failed with this errno (EPERM = 1 is the kernel's refusal).
    Err(i32, String),
}

pub const EPERM: i32 = 1;

impl Outcome {
    pub fn is_refused(&self) -> bool {
        matches!(self, Outcome::Err(EPERM, _))
    }
}

/// Runs `jump-probe OP TARGET` placed as given and returns what happened.
pub fn run(bins: &Bins, at: &Placement, op: &str, target: &str) -> Outcome {
    run_args(bins, at, op, target, &[])
}

/// `run` for operations that take more than one argument (`opt OPTION ADDR`, …).
pub fn run_args(bins: &Bins, at: &Placement, op: &str, target: &str, more: &[&str]) -> Outcome {
    let mut cmd = Command::new(&bins.probe);
    at.args(&mut cmd);
    let out = cmd
        .arg(op)
        .arg(target)
        .args(more)
        .output()
        .expect("failed to start jump-probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "jump-probe {op} {target} printed no verdict: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if v["ok"] == true {
        Outcome::Ok
    } else {
        Outcome::Err(
            v["errno"].as_i64().unwrap_or(-1) as i32,
            v["error"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Echo servers in a namespace, ended (by pid) on drop.
pub struct Servers {
    _child: Guarded,
}

impl Servers {
    /// `specs` like `tcp:198.51.100.10:7000`, `udp:[2001:db8:1::10]:7000`.
    pub fn start(bins: &Bins, netns: &Path, specs: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(&bins.probe)
            .arg("--netns")
            .arg(netns)
            .arg("serve")
            .args(specs)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let servers = Self {
            _child: Guarded::new(child),
        };
        anyhow::ensure!(line.trim() == "ready", "echo servers did not start");
        Ok(servers)
    }
}

/// A probe kept alive after its verdict until the guard goes (its session's opener must still
/// be there when jumpd looks): the command's first stdout line is the verdict; dropping closes
/// its stdin, which ends it, and the harness's child guard ends it by pid (SIGTERM, then
/// SIGKILL) if it has not exited within the guard's grace period.
pub struct Lingering {
    pub child: Guarded,
    pub verdict: serde_json::Value,
}

impl Lingering {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jump-probe");
        let stdout = child.stdout.take().expect("piped");
        let child = Guarded::new(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("verdict line");
        let verdict = serde_json::from_str(line.trim())
            .unwrap_or_else(|_| panic!("no verdict from the probe: {line:?}"));
        Self { child, verdict }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn allowed(&self) -> bool {
        self.verdict["ok"] == true
    }

    pub fn refused(&self) -> bool {
        self.verdict["errno"] == 1
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        // Its exit status is not checked: a refused probe (or `sh -c '… && read _'`) exits
        // non-zero by design. Whatever is still running goes with the guard.
        drop(self.child.child.stdin.take());
        let _ = self.child.wait_exit(std::time::Duration::from_secs(10));
    }
}

/// A TCP listener on `port` in `netns`, as root, accepting for `window_secs`: the far side of
/// a refused attempt. `nothing_arrived` proves the attempt never reached it.
pub struct FarSide {
    child: Guarded,
    out: BufReader<std::process::ChildStdout>,
}

impl FarSide {
    pub fn start(bins: &Bins, netns: &Path, port: u16, window_secs: u32) -> Self {
        let mut child = Command::new(&bins.probe)
            .arg("--netns")
            .arg(netns)
            .args(["accept", &port.to_string(), &window_secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("jump-probe accept");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("listener line");
        let child = Guarded::new(child);
        assert!(
            line.contains("\"port\""),
            "the far-side listener failed: {line}"
        );
        Self { child, out }
    }

    /// Waits out the listener's window and asserts no connection came.
    pub fn nothing_arrived(mut self, what: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("listener verdict");
        let _ = self.child.child.wait();
        assert!(
            line.contains("\"ok\":false") && line.contains("timed out"),
            "{what}: the far side should have seen no connection, it reported {line}"
        );
    }
}

/// A probe holding a TCP session (`hold`): its verdict is how the session ended. Ended with
/// the test if it is still running.
pub struct Held {
    pub child: Guarded,
    pub out: BufReader<std::process::ChildStdout>,
}

impl Held {
    /// `child`, whose stdout `out` is, guarded.
    pub fn new(child: Child, out: BufReader<std::process::ChildStdout>) -> Self {
        Self {
            child: Guarded::new(child),
            out,
        }
    }

    /// Waits for the probe to end and returns its verdict line.
    pub fn verdict(&mut self) -> serde_json::Value {
        self.child.child.wait().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("probe printed `{line}`"))
    }

    pub fn running(&mut self) -> bool {
        self.child.child.try_wait().unwrap().is_none()
    }
}

/// `errno` of ECONNABORTED, what a revoked session's application sees.
pub const ECONNABORTED: i64 = 103;

/// Time since the Unix epoch, as window edges are given.
pub fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Waits for the held session to end and asserts it ended with ECONNABORTED, not before
/// `edge` (Unix time) and within a second after it.
pub fn closed_at_edge(h: &mut Held, edge: std::time::Duration, what: &str) {
    let v = h.verdict();
    let now = unix_now();
    assert_eq!(
        v["errno"], ECONNABORTED,
        "{what}: the application should see ECONNABORTED, got {v}"
    );
    assert!(
        now + std::time::Duration::from_millis(50) >= edge,
        "{what}: closed before the edge ({now:?} < {edge:?})"
    );
    assert!(
        now < edge + std::time::Duration::from_secs(1),
        "{what}: closed {:?} after the edge",
        now - edge
    );
    eprintln!(
        "{what}: closed {:?} after the edge",
        now.saturating_sub(edge)
    );
}

//! `jumpd` as a child process logging JSON lines, collected so tests can assert on the events
//! each decision produced.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{child::Guarded, poll_until, Bins};

pub struct Jumpd {
    child: Guarded,
    lines: Arc<Mutex<Vec<Value>>>,
    /// The command line, to restart jumpd on the same pinned state.
    program: Vec<std::ffi::OsString>,
    cgroup: PathBuf,
    /// This instance's own bpffs pin root, removed on drop.
    pub pin_root: PathBuf,
    /// The control socket jumpctl should use.
    socket: PathBuf,
    /// The socket's directory when the harness chose it (removed on drop).
    socket_dir: Option<PathBuf>,
}

const PIN_PREFIX: &str = "jt";

/// Removes pin roots left by test processes that no longer exist. Unlinking a pinned link
/// releases it, which detaches its program.
fn sweep_pins() {
    let Ok(dir) = std::fs::read_dir("/sys/fs/bpf") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PIN_PREFIX) && !crate::owner_alive(&name, PIN_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Jumpd {
    /// Starts `jumpd --log-format json ARGS…` and waits until it reports it is enforcing.
    pub fn start(
        bins: &Bins,
        policy_dir: &Path,
        cgroup: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_in(bins, None, policy_dir, cgroup, extra)
    }

    /// As `start`, with jumpd in network namespace `netns`: revocation closes the sockets of
    /// the namespace jumpd runs in.
    pub fn start_in(
        bins: &Bins,
        netns: Option<&Path>,
        policy_dir: &Path,
        cgroup: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let prefix: Vec<String> = match netns {
            Some(ns) => vec![
                "nsenter".into(),
                format!("--net={}", ns.display()),
                "--".into(),
            ],
            None => Vec::new(),
        };
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        Self::start_prefixed(bins, &prefix, policy_dir, cgroup, extra)
    }

    /// As `start`, with jumpd run by `PREFIX… jumpd …` (`nsenter`, `setpriv`).
    pub fn start_prefixed(
        bins: &Bins,
        prefix: &[&str],
        policy_dir: &Path,
        cgroup: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        sweep_pins();
        let pin_root = PathBuf::from("/sys/fs/bpf").join(crate::unique(PIN_PREFIX));
        let mut program: Vec<std::ffi::OsString> = prefix.iter().map(|a| a.into()).collect();
        program.push(bins.jumpd.clone().into());
        for a in [
            "--policy-dir".as_ref(),
            policy_dir.as_os_str(),
            "--cgroup".as_ref(),
            cgroup.as_os_str(),
            "--pin-dir".as_ref(),
            pin_root.as_os_str(),
            "--log-format".as_ref(),
            "json".as_ref(),
        ] {
            program.push(a.into());
        }
        // Without `--control-socket` in ARGS, the control socket goes into a fresh directory of
        // its own, so tests never meet a real jumpd's `/run/jump/jumpd.sock`.
        let given = extra
            .iter()
            .position(|a| *a == "--control-socket")
            .and_then(|i| extra.get(i + 1));
        let (socket, socket_dir) = match given {
            Some(s) => (PathBuf::from(s), None),
            None => {
                let dir = std::env::temp_dir().join(crate::unique("jump-test-sock"));
                program.push("--control-socket".into());
                program.push(dir.join("jumpd.sock").into());
                (dir.join("jumpd.sock"), Some(dir))
            }
        };
        program.extend(extra.iter().map(|a| a.into()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let child = spawn(&program, &lines)?;
        Ok(Self {
            child,
            lines,
            program,
            cgroup: cgroup.to_path_buf(),
            pin_root,
            socket,
            socket_dir,
        })
    }

    /// Starts jumpd again with the same arguments (after `kill`), on the same pinned state.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.child = spawn(&self.program, &self.lines)?;
        Ok(())
    }

    /// SIGKILL, as a crash would: no cleanup runs.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// `jumpd --detach` for this instance's cgroup and pins; returns its log line.
    pub fn detach(&self, bins: &Bins) -> anyhow::Result<String> {
        let out = Command::new(&bins.jumpd)
            .arg("--cgroup")
            .arg(&self.cgroup)
            .arg("--pin-dir")
            .arg(&self.pin_root)
            .args(["--log-format", "json", "--detach"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "jumpd --detach failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The control socket jumpctl should use.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits for the exit of a jumpd that stops on its own (`jumpctl detach`).
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        self.child.wait_exit(Duration::from_secs(secs))
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Decision events (those with a `jump_verdict`).
    pub fn events(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v.get("jump_verdict").is_some())
            .collect()
    }

    /// Waits up to 10 s until jumpd logged `policy generation N loaded` for `generation`.
    pub fn wait_generation(&self, generation: u64) {
        let want = format!("policy generation {generation} loaded");
        // Scans every line once: under an event storm the "loaded" line can be buried under
        // thousands of decisions logged after it.
        let mut seen = 0;
        poll_until(
            Duration::from_secs(10),
            &format!("jumpd to load generation {generation}"),
            || {
                let lines = self.lines.lock().unwrap();
                let found = lines[seen..]
                    .iter()
                    .any(|l| l["message"].as_str().is_some_and(|m| m.starts_with(&want)));
                seen = lines.len();
                found.then_some(())
            },
        )
        .unwrap_or_else(|e| {
            let lines = self.lines();
            panic!(
                "{e}; its last lines: {:#?}",
                &lines[lines.len().saturating_sub(8)..]
            )
        });
    }

    /// Waits up to 5 s for any log line matching `pred`.
    pub fn wait_line(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll_until(Duration::from_secs(5), what, || {
            self.lines().into_iter().find(&pred)
        })
        .unwrap_or_else(|e| panic!("{e}; lines so far: {:#?}", self.lines()))
    }

    /// Waits up to 5 s for an event matching `pred`.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll_until(Duration::from_secs(5), what, || {
            self.events().into_iter().find(&pred)
        })
        .unwrap_or_else(|e| panic!("{e}; events so far: {:#?}", self.events()))
    }

    pub fn signal(&self, sig: Signal) {
        self.child.signal(sig);
    }

    /// SIGTERM, then wait; SIGKILL after 10 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.stop()
    }
}

impl Drop for Jumpd {
    fn drop(&mut self) {
        self.stop();
        // A stopped jumpd leaves its programs pinned and enforcing: remove them.
        let mut failed = Vec::new();
        if let Err(e) = self.detach(&crate::Bins::from_env()) {
            failed.push(e.to_string());
        }
        for dir in std::iter::once(&self.pin_root).chain(&self.socket_dir) {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    failed.push(format!("remove `{}`: {e}", dir.display()))
                }
                _ => {}
            }
        }
        if !failed.is_empty() {
            crate::cleanup_failed(failed.join("; "));
        }
    }
}

/// Spawns jumpd and waits for its `jumpd ready` line, collecting every JSON line into `lines`.
fn spawn(
    program: &[std::ffi::OsString],
    lines: &Arc<Mutex<Vec<Value>>>,
) -> anyhow::Result<Guarded> {
    let mut child = Guarded::new(
        Command::new(&program[0])
            .args(&program[1..])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let (ready_tx, ready_rx) = mpsc::channel();
    let stdout = child.child.stdout.take().expect("piped");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                eprintln!("jumpd (not JSON): {line}");
                continue;
            };
            if v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("jumpd ready"))
            {
                let _ = ready_tx.send(());
            }
            sink.lock().unwrap().push(v);
        }
    });
    // Ready, or exited first (`Some(status)`); on a timeout the guard kills it.
    let exited = poll_until(Duration::from_secs(30), "jumpd to be ready", || {
        if ready_rx.try_recv().is_ok() {
            Some(None)
        } else {
            child.exited().map(Some)
        }
    })?;
    if let Some(status) = exited {
        anyhow::bail!(
            "jumpd exited with {status} before it was ready; its log: {:?}",
            lines.lock().unwrap()
        );
    }
    Ok(child)
}

//! `jumpd` as a child process logging JSON lines, collected so tests can assert on the events
//! each decision produced.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

use crate::Bins;

pub struct Jumpd {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    socket: std::path::PathBuf,
    /// The socket's directory when the harness chose it (removed on drop).
    socket_dir: Option<std::path::PathBuf>,
}

impl Jumpd {
    /// Starts `jumpd --log-format json ARGS…` and waits until it reports it is enforcing.
    /// Without `--control-socket` in ARGS, the control socket goes into a fresh directory of
    /// its own, so tests never meet a real jumpd's `/run/jump/jumpd.sock`.
    pub fn start(
        bins: &Bins,
        policy_dir: &Path,
        cgroup: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let given = extra
            .iter()
            .position(|a| *a == "--control-socket")
            .and_then(|i| extra.get(i + 1));
        let (socket, socket_dir) = match given {
            Some(s) => (std::path::PathBuf::from(s), None),
            None => {
                let dir = std::env::temp_dir().join(crate::unique("jump-test-sock"));
                (dir.join("jumpd.sock"), Some(dir))
            }
        };
        let mut cmd = Command::new(&bins.jumpd);
        if given.is_none() {
            cmd.arg("--control-socket").arg(&socket);
        }
        let mut child = cmd
            .arg("--policy-dir")
            .arg(policy_dir)
            .arg("--cgroup")
            .arg(cgroup)
            .args(["--log-format", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
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
        let mut d = Self {
            child,
            lines,
            socket,
            socket_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                anyhow::bail!(
                    "jumpd exited with {status} before it was ready; its log: {:?}",
                    d.lines()
                );
            }
            anyhow::ensure!(Instant::now() < deadline, "jumpd not ready after 30 s");
        }
    }

    /// The control socket jumpctl should use.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Waits up to 5 s for an event matching `pred`.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.events().into_iter().find(&pred) {
                return e;
            }
            if Instant::now() > deadline {
                panic!("no event for {what}; events so far: {:#?}", self.events());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `secs` for a log line (any, not only events) matching `pred`.
    pub fn wait_line(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.lines().into_iter().find(&pred) {
                return l;
            }
            if Instant::now() > deadline {
                let msgs: Vec<String> = self
                    .lines()
                    .iter()
                    .filter(|v| v.get("jump_verdict").is_none())
                    .map(|v| v["message"].as_str().unwrap_or_default().to_string())
                    .collect();
                panic!("no log line for {what} within {secs} s; jumpd's messages: {msgs:#?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit of a jumpd that stops on its own (`jumpctl detach`).
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// SIGTERM, then wait; SIGKILL after 10 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Jumpd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
        if let Some(dir) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

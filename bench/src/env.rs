//! What the benchmark runs and changes, each behind a guard that undoes it on drop (success,
//! error, panic, Ctrl-C): child processes ended by their own pid, jumpd logging to a file,
//! netfilter rulesets loaded only inside the benchmark's namespaces, and the one global setting
//! it touches, `kernel.bpf_stats_enabled`, restored to what it was.
//!
//! (Over 500 lines: every guard of the run is here, so that what the bench changes on the machine
//! and how it is undone can be read in one place.)

use std::{
    fs,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use jump_tests::{child::Guarded, poll_every, Bins};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The bench's own client and server, built beside jump-probe.
pub fn bench_bin(bins: &Bins) -> PathBuf {
    bins.probe.with_file_name("jump-bench")
}

/// The reference programs' object (`jump-ebpf/src/reference.rs`), built beside jump's.
pub fn reference_object(bins: &Bins) -> PathBuf {
    let release = bins.probe.parent().unwrap_or(Path::new("."));
    release.join("../ebpf/bpfel-unknown-none/release/reference")
}

/// `jump-bench reference` (or `beside`: the one-lookup programs only): the reference programs
/// attached to `cgroup` (one of the bench's own) with the client's grants, until the returned
/// guard ends the loader (the kernel then detaches them).
pub fn reference(
    bins: &Bins,
    set: &str,
    cgroup: &Path,
    uid: u32,
    server: std::net::Ipv4Addr,
    ports: &[u16],
) -> anyhow::Result<Proc> {
    let mut p = Proc::spawn(
        Command::new(bench_bin(bins))
            .arg(set)
            .arg(reference_object(bins))
            .arg(cgroup)
            .arg(uid.to_string())
            .arg(server.to_string())
            .args(ports.iter().map(u16::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
        "the reference programs' loader",
    )?;
    let mut line = String::new();
    BufReader::new(p.guard.child.stdout.take().expect("piped")).read_line(&mut line)?;
    anyhow::ensure!(
        line.trim() == "ready",
        "the reference programs were not attached: {line}"
    );
    Ok(p)
}

/// The policy pipeline timer (this crate's `policy-compile-time`), built in the same profile.
pub fn compile_time_bin(bins: &Bins) -> PathBuf {
    bins.probe.with_file_name("policy-compile-time")
}

/// A child process, ended by its pid on drop: the harness's guard (`jump_tests::child::Guarded`),
/// SIGTERM, then SIGKILL after 5 s, with a name for messages.
pub struct Proc {
    pub guard: Guarded,
    what: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &str) -> anyhow::Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {what}"))?;
        Ok(Self {
            guard: Guarded::with_grace(child, Duration::from_secs(5)),
            what: what.into(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn signal(&self, sig: Signal) {
        self.guard.signal(sig);
    }

    /// Fails if the process has already exited.
    pub fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.guard.exited() {
            bail!("{} exited early with {status}", self.what);
        }
        Ok(())
    }

    /// SIGTERM and wait; SIGKILL after 5 s. Idempotent.
    pub fn stop(&mut self) {
        self.guard.stop();
    }
}

/// `jump-bench serve SPECS…` in a namespace, ready when it says so.
pub fn servers(bins: &Bins, netns: &Path, specs: &[String]) -> anyhow::Result<Proc> {
    let mut p = Proc::spawn(
        Command::new(bench_bin(bins))
            .arg("--netns")
            .arg(netns)
            .arg("serve")
            .args(specs)
            .stdout(Stdio::piped()),
        "the bench servers",
    )?;
    let mut line = String::new();
    BufReader::new(p.guard.child.stdout.take().expect("piped")).read_line(&mut line)?;
    anyhow::ensure!(
        line.trim() == "ready",
        "bench servers did not start: {line}"
    );
    Ok(p)
}

/// jumpd with JSON lines to a file: the fastest sink there is, so the events measurement is of
/// jump, and a connect storm's hundred thousand lines cost no memory here. jumpd pins its
/// programs so that enforcement outlives it; each instance gets its own pin root (named like
/// the harness's, so `jump_tests::daemon` sweeps those of a bench that was killed), and drop
/// runs `jumpd --detach` on it and removes it.
pub struct Jumpd {
    proc: Proc,
    jumpd: PathBuf,
    cgroup: PathBuf,
    policy: PathBuf,
    pin_root: PathBuf,
    log: PathBuf,
    /// Bytes of the log already looked at by `wait_line`.
    seen: u64,
    generation: u64,
    /// How long from spawn to "jumpd ready" (initial compile, load, apply, attach).
    pub start_time: Duration,
    /// The hooks jumpd reported it attached.
    pub hooks: String,
}

impl Jumpd {
    /// `extra`: further jumpd flags. Always: the bench's own pin root and control socket (never
    /// a real jumpd's), and no file watching, so every generation is one the bench asked for.
    pub fn start(
        bins: &Bins,
        policy: &Path,
        cgroup: &Path,
        log: PathBuf,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let out = fs::File::create(&log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let pin_root = PathBuf::from("/sys/fs/bpf").join(jump_tests::unique("jt"));
        let t = Instant::now();
        let proc = Proc::spawn(
            Command::new(&bins.jumpd)
                .arg("--policy-dir")
                .arg(policy)
                .arg("--cgroup")
                .arg(cgroup)
                .arg("--pin-dir")
                .arg(&pin_root)
                .arg("--control-socket")
                .arg(log.with_extension("sock"))
                .args(["--log-format", "json", "--no-watch"])
                .args(extra)
                .stdout(out),
            "jumpd",
        )?;
        let mut d = Self {
            proc,
            jumpd: bins.jumpd.clone(),
            cgroup: cgroup.to_path_buf(),
            policy: policy.to_path_buf(),
            pin_root,
            log,
            seen: 0,
            generation: 0,
            start_time: Duration::ZERO,
            hooks: String::new(),
        };
        let ready = d.wait_line(Duration::from_secs(120), |m| m.starts_with("jumpd ready"))?;
        d.start_time = t.elapsed();
        d.generation = 1;
        // "jumpd ready: enforcing on `…` with hooks a,b,c; control socket `…`"
        d.hooks = ready
            .rsplit_once("with hooks ")
            .map(|(_, h)| h.split(';').next().unwrap_or(h).trim().to_string())
            .unwrap_or_default();
        Ok(d)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `start`, but logging to `journal` (`--log-format journald`, run in its mount namespace);
    /// ready once the journal has jumpd's "jumpd ready" entry. Its standard output (nothing,
    /// normally) goes to `log`.
    pub fn start_journald(
        bins: &Bins,
        policy: &Path,
        cgroup: &Path,
        log: PathBuf,
        journal: &jump_tests::journal::Journald,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let out = fs::File::create(&log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let pin_root = PathBuf::from("/sys/fs/bpf").join(jump_tests::unique("jt"));
        let t = Instant::now();
        let proc = Proc::spawn(
            journal
                .command(&bins.jumpd)
                .arg("--policy-dir")
                .arg(policy)
                .arg("--cgroup")
                .arg(cgroup)
                .arg("--pin-dir")
                .arg(&pin_root)
                .arg("--control-socket")
                .arg(log.with_extension("sock"))
                .args(["--log-format", "journald", "--no-watch"])
                .args(extra)
                .stdout(out),
            "jumpd (journald)",
        )?;
        let mut d = Self {
            proc,
            jumpd: bins.jumpd.clone(),
            cgroup: cgroup.to_path_buf(),
            policy: policy.to_path_buf(),
            pin_root,
            log,
            seen: 0,
            generation: 1,
            start_time: Duration::ZERO,
            hooks: String::new(),
        };
        // A fixed pause, not the harness's backoff: the time to ready is reported.
        poll_every(
            Duration::from_secs(120),
            Duration::from_millis(50),
            "jumpd logging to journald to be ready",
            || {
                let ready = journal.jumpd_entries().into_iter().any(|e| {
                    e["MESSAGE"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("jumpd ready"))
                });
                if ready {
                    return Some(Ok(()));
                }
                d.proc.alive().err().map(Err)
            },
        )??;
        d.start_time = t.elapsed();
        Ok(d)
    }

    /// Waits for a log line whose `message` satisfies `pred`, returning the message. Polls
    /// every 0.5 ms, not with the harness's backoff: the wait's end is the reload time reported.
    fn wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut f = fs::File::open(&self.log)?;
        let mut buf = String::new();
        let found = poll_every(
            timeout,
            Duration::from_micros(500),
            "an expected log line",
            || match self.next_line(&mut f, &mut buf, &pred) {
                Ok(Some(m)) => Some(Ok(m)),
                Err(e) => Some(Err(e)),
                Ok(None) => self.proc.alive().err().map(|e| Err(e.context(self.tail()))),
            },
        );
        match found {
            Ok(line) => line,
            Err(e) => bail!("jumpd: {e}; {}", self.tail()),
        }
    }

    /// The first line written since the last look whose `message` satisfies `pred`; lines
    /// before it (and all whole lines, if none does) count as seen.
    fn next_line(
        &mut self,
        f: &mut fs::File,
        buf: &mut String,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Option<String>> {
        f.seek(SeekFrom::Start(self.seen))?;
        buf.clear();
        f.read_to_string(buf)?;
        // Only whole lines; a partial last line is read again next time.
        let whole = buf.rfind('\n').map_or(0, |i| i + 1);
        let mut offset = 0;
        for line in buf[..whole].split_inclusive('\n') {
            offset += line.len();
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let m = v["message"].as_str().unwrap_or_default();
            if pred(m) {
                self.seen += offset as u64;
                return Ok(Some(m.to_string()));
            }
        }
        self.seen += whole as u64;
        Ok(None)
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last lines of its log: {}",
            lines[lines.len().saturating_sub(5)..].join("\n")
        )
    }

    /// SIGHUP, then the time until the next generation is reported loaded (parse, compile, fill
    /// the inactive slot, switch).
    ///
    /// jumpd keeps the generation of a reload that compiles to the same policy, so each reload
    /// first changes one rule that applies to every user (a deny of one documentation address),
    /// which makes jumpd compile and write every profile again. The file is written before the
    /// clock starts and left alone long enough that jumpd takes it as whole at once (it re-reads
    /// a file changed within the last 150 ms), as it would an admin's finished edit.
    ///
    /// Also returns the CPU time jumpd spent from SIGHUP to "loaded" (10 ms ticks): on a
    /// shared machine the wall time says as much about the neighbours as about jumpd.
    pub fn reload_with_cpu(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let next = self.generation + 1;
        let change = self.policy.join("zz-bench-reload.yaml");
        fs::write(
            &change,
            format!(
                "rules:\n  - name: bench-reload\n    users: [\"*\"]\n    deny: [{{to: 192.0.2.{}/32, ports: [9]}}]\n",
                next % 250 + 1
            ),
        )
        .with_context(|| format!("failed to write `{}`", change.display()))?;
        std::thread::sleep(Duration::from_millis(300));
        let want = format!("policy generation {next} loaded");
        let cpu = self.cpu_time();
        let t = Instant::now();
        self.proc.signal(Signal::SIGHUP);
        self.wait_line(Duration::from_secs(120), |m| m.starts_with(&want))?;
        let took = t.elapsed();
        let cpu = self.cpu_time().saturating_sub(cpu);
        self.generation = next;
        Ok((took, cpu))
    }

    /// Resident and peak memory (KiB) from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU time consumed so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    pub fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }
}

impl Drop for Jumpd {
    fn drop(&mut self) {
        self.proc.stop();
        let detach = Command::new(&self.jumpd)
            .arg("--cgroup")
            .arg(&self.cgroup)
            .arg("--pin-dir")
            .arg(&self.pin_root)
            .args(["--log-format", "json", "--detach"])
            .output();
        if !detach.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!(
                "warning: `jumpd --detach` of `{}` failed: {detach:?}",
                self.cgroup.display()
            );
        }
        let _ = fs::remove_dir_all(&self.pin_root);
    }
}

/// What a jumpd log says about decision events.
pub struct EventCounts {
    /// Decision events logged.
    pub events: u64,
    /// Events reported held back: lost, over a uid's budget or suppressed as similar.
    pub held: u64,
    /// Byte offset just past the last decision event's line.
    pub last_event_end: u64,
}

/// Decision events and reported losses in a jumpd log (counted without parsing each line: a
/// storm writes hundreds of thousands).
pub fn event_counts(log: &Path) -> anyhow::Result<EventCounts> {
    let f = fs::File::open(log)?;
    let mut c = EventCounts {
        events: 0,
        held: 0,
        last_event_end: 0,
    };
    let mut offset = 0u64;
    for line in BufReader::new(f).split(b'\n') {
        let line = String::from_utf8(line?)?;
        offset += line.len() as u64 + 1;
        if line.contains("\"jump_verdict\"") {
            c.events += 1;
            c.last_event_end = offset;
        } else if line.contains("jump_events_lost") {
            // Per-uid summaries count what was lost, over budget or suppressed; the untracked
            // report only what was lost.
            let v: Value = serde_json::from_str(&line)?;
            for field in [
                "jump_events_lost",
                "jump_events_over_budget",
                "jump_events_suppressed",
            ] {
                c.held += v[field]
                    .as_u64()
                    .or_else(|| v["fields"][field].as_u64())
                    .unwrap_or(0);
            }
        }
    }
    Ok(c)
}

/// utime + stime of a process, from /proc/PID/stat (clock ticks of 10 ms on Debian's kernels;
/// `getconf CLK_TCK` is 100 everywhere Linux runs today).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After ")": state is field 3 (index 0), utime field 14 (index 11), stime 15 (index 12).
    let ticks = f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
    Duration::from_millis(ticks * 10)
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command run inside network namespace `netns` (a /run/netns path). `nsenter` rather than
/// `ip netns exec`, which would also remount /sys.
pub fn in_netns(netns: &Path, prog: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns.display())).arg(prog);
    c
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` for the guard's life (the kernel then times every BPF program
/// run, which costs a little everywhere: so only around the one batch that needs it).
pub struct BpfStats {
    before: String,
}

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
        let before =
            fs::read_to_string(BPF_STATS).with_context(|| format!("failed to read {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("failed to write {BPF_STATS}"))?;
        Ok(Self {
            before: before.trim().to_string(),
        })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = fs::write(BPF_STATS, &self.before) {
            eprintln!(
                "warning: could not restore {BPF_STATS} to {}: {e}",
                self.before
            );
        }
    }
}

/// One program attached to a cgroup, with the kernel's counters.
#[derive(Clone, Debug)]
pub struct ProgStat {
    pub id: u64,
    pub name: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub map_ids: Vec<u64>,
}

fn bpftool(args: &[&str]) -> anyhow::Result<Value> {
    let out = run(Command::new("bpftool").arg("-j").args(args))?;
    serde_json::from_str(&out).with_context(|| format!("bpftool {args:?} printed no JSON"))
}

/// The programs attached directly to `cgroup` and their run counters.
pub fn cgroup_progs(cgroup: &Path) -> anyhow::Result<Vec<ProgStat>> {
    progs_of(&["cgroup", "show", &cgroup.display().to_string()])
}

/// The programs that run on `cgroup`'s sockets: its own and its ancestors' (for the systems
/// that run jump's and the reference's programs on the same calls).
pub fn effective_progs(cgroup: &Path) -> anyhow::Result<Vec<ProgStat>> {
    progs_of(&["cgroup", "show", &cgroup.display().to_string(), "effective"])
}

fn progs_of(show: &[&str]) -> anyhow::Result<Vec<ProgStat>> {
    let list = bpftool(show)?;
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        let id = p["id"].as_u64().context("bpftool cgroup show: no id")?;
        let info = bpftool(&["prog", "show", "id", &id.to_string()])?;
        out.push(ProgStat {
            id,
            name: p["name"].as_str().unwrap_or_default().to_string(),
            run_time_ns: info["run_time_ns"].as_u64().unwrap_or(0),
            run_cnt: info["run_cnt"].as_u64().unwrap_or(0),
            map_ids: info["map_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect(),
        });
    }
    Ok(out)
}

/// The kernel's memory accounting of the maps these programs use, in bytes, by map name.
pub fn map_memory(progs: &[ProgStat]) -> anyhow::Result<Vec<(String, u64)>> {
    let mut ids: Vec<u64> = progs.iter().flat_map(|p| p.map_ids.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let m = bpftool(&["map", "show", "id", &id.to_string()])?;
        out.push((
            m["name"].as_str().unwrap_or_default().to_string(),
            m["bytes_memlock"].as_u64().unwrap_or(0),
        ));
    }
    Ok(out)
}

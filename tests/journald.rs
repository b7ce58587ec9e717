//! Connection events in a real journal: a standalone `systemd-journald` in its own mount
//! namespace (see `harness/journal.rs`), jumpd logging to it with `--log-format journald`, and
//! allowed, denied and audited ("would deny") connections by two users — one of them acting for
//! another login uid, as after `su` in an SSH session — read back with `journalctl -o json`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use jump_tests::{
    cgroup::TestCgroup,
    child::Guarded,
    journal::{self, Journald},
    metrics,
    netns::{Topology, INTERNAL_V4, INTERNET_V4},
    poll_until, privileged,
    probe::Servers,
    Bins,
};
use serde_json::Value;

/// Granted tcp/7000 on the internal host by `policies/tests/journald`.
const A: u32 = 64011;
/// Granted tcp/7000 on the internet host in audit mode: let through, logged as "would deny".
const B: u32 = 64012;
/// The login uid B acts for: the person who logged in and then became B.
const B_LOGIN: u32 = 64010;
/// The SSH client B's session came from.
const SSH_CLIENT: &str = "192.0.2.5";

mod message_id {
    pub const ALLOW: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b21";
    pub const DENY: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b22";
    pub const WOULD_DENY: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b23";
    pub const STARTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f801";
    pub const POLICY_LOADED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f802";
    pub const RELOAD_REJECTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f803";
    pub const DETACHED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f804";
    pub const STOPPED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f805";
    pub const EVENTS_HELD: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f809";
}

const UNSET: &str = "4294967295";

fn policy_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/journald/policy.yaml")
}

/// A copy of the test policy in a directory of its own, so the test can break it for a reload;
/// removed on drop.
struct PolicyDir(PathBuf);

impl PolicyDir {
    fn new() -> Self {
        Self::with(&std::fs::read_to_string(policy_file()).expect("the test policy"))
    }

    fn with(policy: &str) -> Self {
        let dir = std::env::temp_dir().join(jump_tests::unique("jump-journald-policy-"));
        std::fs::create_dir_all(&dir).expect("policy dir");
        std::fs::write(dir.join("policy.yaml"), policy).expect("write policy");
        Self(dir)
    }
}

impl Drop for PolicyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The name jumpd gives a uid: the account's, else the number.
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

fn field<'a>(e: &'a Value, name: &str) -> Option<&'a str> {
    e.get(name).and_then(Value::as_str)
}

/// A connection the test makes, and what its journal entry must say.
struct Case {
    uid: u32,
    login: Option<u32>,
    ssh: bool,
    dst: String,
    verdict: &'static str,
    rule: &'static str,
}

/// What a lingering probe was: its pid and the audit ids /proc showed while it ran.
struct Ran {
    pid: u32,
    login_uid: String,
    session_id: String,
    outcome: Value,
}

/// Runs `jump-probe tcp DST` placed as `c` says, kept alive (`--linger`) until its entry is in
/// the journal, so jumpd finds its /proc entry whatever the scheduling.
fn run_probe(bins: &Bins, cg: &Path, netns: &Path, c: &Case, journal: &Journald) -> (Ran, Value) {
    let mut cmd = Command::new(&bins.probe);
    cmd.arg("--cgroup")
        .arg(cg)
        .arg("--netns")
        .arg(netns)
        .args(["--uid", &c.uid.to_string(), "--gid", &c.uid.to_string()])
        .arg("--linger")
        .env_remove("SSH_CLIENT")
        .env_remove("SSH_CONNECTION");
    if let Some(l) = c.login {
        cmd.args(["--loginuid", &l.to_string()]);
    }
    if c.ssh {
        cmd.env("SSH_CONNECTION", format!("{SSH_CLIENT} 50022 192.0.2.1 22"));
    }
    let mut p = Guarded::new(
        cmd.args(["tcp", &c.dst])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jump-probe"),
    );
    let pid = p.pid();
    let mut line = String::new();
    BufReader::new(p.child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("probe verdict");
    let outcome: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|_| panic!("jump-probe printed no verdict: {line:?}"));
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .expect("the lingering probe's /proc entry")
            .trim()
            .to_string()
    };
    let ran = Ran {
        pid,
        login_uid: read("loginuid"),
        session_id: read("sessionid"),
        outcome,
    };
    let entry = journal.wait_entry(&format!("pid {pid} -> {}", c.dst), |e| {
        field(e, "JUMP_PID") == Some(&pid.to_string()) && field(e, "JUMP_VERDICT").is_some()
    });
    drop(p.child.stdin.take()); // ends the linger
    p.stop();
    (ran, entry)
}

/// jumpd in the journal's namespace with `--log-format journald` and its own bpffs pin root.
/// Dropping it stops jumpd (by pid) and removes the pinned enforcement it leaves behind.
struct JournaldJumpd {
    proc: Guarded,
    cgroup: PathBuf,
    pin_root: PathBuf,
}

impl JournaldJumpd {
    /// Starts jumpd and waits for its "ready" entry.
    fn start(bins: &Bins, journal: &Journald, policy: &Path, cgroup: &Path) -> Self {
        Self::start_with(bins, journal, policy, cgroup, &[])
    }

    /// `start`, with more of jumpd's options.
    fn start_with(
        bins: &Bins,
        journal: &Journald,
        policy: &Path,
        cgroup: &Path,
        more: &[&str],
    ) -> Self {
        // The `jt<pid>x<n>` name the harness sweeps when its test process is gone.
        let pin_root = PathBuf::from("/sys/fs/bpf").join(jump_tests::unique("jt"));
        let jumpd = Self {
            proc: Guarded::new(
                journal
                    .command(&bins.jumpd)
                    .arg("--policy-dir")
                    .arg(policy)
                    .arg("--cgroup")
                    .arg(cgroup)
                    .arg("--pin-dir")
                    .arg(&pin_root)
                    .args(["--log-format", "journald"])
                    .args(more)
                    .spawn()
                    .expect("start jumpd"),
            ),
            cgroup: cgroup.to_path_buf(),
            pin_root,
        };
        let ready = journal.wait_entry("jumpd ready", |e| {
            field(e, "MESSAGE").is_some_and(|m| m.starts_with("jumpd ready"))
        });
        assert_eq!(field(&ready, "MESSAGE_ID"), Some(message_id::STARTED));
        assert_eq!(field(&ready, "_PID"), Some(&*jumpd.pid().to_string()));
        jumpd
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `jumpd --detach` for this instance, logging to `journal` when given.
    fn detach(&self, bins: &Bins, journal: Option<&Journald>) -> std::process::ExitStatus {
        let mut cmd = match journal {
            Some(j) => j.command(&bins.jumpd),
            None => Command::new(&bins.jumpd),
        };
        let format = if journal.is_some() {
            "journald"
        } else {
            "json"
        };
        cmd.arg("--cgroup")
            .arg(&self.cgroup)
            .arg("--pin-dir")
            .arg(&self.pin_root)
            .args(["--log-format", format, "--detach"])
            .stdout(Stdio::null())
            .status()
            .expect("run jumpd --detach")
    }
}

impl Drop for JournaldJumpd {
    fn drop(&mut self) {
        self.proc.stop();
        let status = self.detach(&Bins::from_env(), None);
        if !status.success() {
            eprintln!("warning: jumpd --detach failed with {status}");
        }
        let _ = std::fs::remove_dir_all(&self.pin_root);
    }
}

/// Skips (or fails, under `cargo xtask test`) when journald tests cannot run here.
fn can_run(name: &str) -> bool {
    if !privileged(name) {
        return false;
    }
    if let Some(why) = journal::unavailable() {
        let msg = format!("SKIPPED {name}: {why}");
        if std::env::var_os("JUMP_TESTS_REQUIRED").is_some() {
            panic!("{msg}");
        }
        eprintln!("{msg}");
        return false;
    }
    true
}

fn check_entry(bins: &Bins, c: &Case, ran: &Ran, e: &Value, sha: &str) {
    let ctx = format!("entry for uid {} -> {}: {e:#}", c.uid, c.dst);
    let want = |name: &str, value: &str| {
        assert_eq!(field(e, name), Some(value), "{name} in the {ctx}");
    };
    let (priority, id) = match c.verdict {
        "allow" => ("6", message_id::ALLOW),
        "would-deny" => ("5", message_id::WOULD_DENY),
        _ => ("4", message_id::DENY),
    };
    let (addr, port) = c.dst.rsplit_once(':').unwrap();
    let uid = c.uid.to_string();
    let user = user_name(c.uid);
    want("SYSLOG_IDENTIFIER", "jumpd");
    want("PRIORITY", priority);
    want("MESSAGE_ID", id);
    want("JUMP_VERDICT", c.verdict);
    want("JUMP_UID", &uid);
    want("JUMP_USER", &user);
    want("JUMP_GID", &uid);
    want("JUMP_PID", &ran.pid.to_string());
    want("JUMP_COMM", "jump-probe");
    let exe = std::fs::canonicalize(&bins.probe).unwrap();
    want("JUMP_EXE", &exe.display().to_string());
    want("JUMP_PROTO", "tcp");
    want("JUMP_DST_ADDR", addr);
    want("JUMP_DST_PORT", port);
    want("JUMP_HOOK", "connect4");
    want("JUMP_POLICY_GENERATION", "1");
    want("JUMP_POLICY_SHA256", sha);
    let rule = field(e, "JUMP_RULE").unwrap_or_default();
    want("JUMP_RULE_NAME", c.rule);
    assert!(
        field(e, "JUMP_TIME").is_some_and(|t| t.starts_with("20") && t.ends_with('Z')),
        "JUMP_TIME is the decision's time in the {ctx}"
    );
    if c.rule == "default" {
        assert_eq!(
            field(e, "JUMP_RULE_FILE"),
            None,
            "the default has no file: {ctx}"
        );
    } else {
        let file = field(e, "JUMP_RULE_FILE").unwrap_or_default();
        let line = field(e, "JUMP_RULE_LINE").unwrap_or_default();
        assert!(
            file.ends_with("/policy.yaml") && rule == format!("{} ({file}:{line}:5)", c.rule),
            "JUMP_RULE_FILE and JUMP_RULE_LINE are JUMP_RULE's place in the {ctx}"
        );
    }
    if c.rule == "default" {
        assert_eq!(rule, "default", "JUMP_RULE in the {ctx}");
    } else {
        assert!(
            rule.starts_with(&format!("{} (", c.rule)) && rule.contains("policy.yaml:"),
            "JUMP_RULE names the rule and its file:line in the {ctx}"
        );
    }
    // The audit ids: what the kernel gave the process, left out where unset.
    for (name, value) in [
        ("JUMP_LOGIN_UID", &ran.login_uid),
        ("JUMP_SESSION_ID", &ran.session_id),
    ] {
        if value == UNSET {
            assert_eq!(field(e, name), None, "{name} is left out when unset: {ctx}");
        } else {
            want(name, value);
        }
    }
    let mut message = format!(
        "{} {user}({uid}) -> {}/tcp rule={rule} hook=connect4 pid={} comm=jump-probe",
        c.verdict, c.dst, ran.pid
    );
    if let Some(l) = c.login {
        assert_eq!(ran.login_uid, l.to_string(), "the probe set its login uid");
        assert_ne!(ran.session_id, UNSET, "a login uid comes with a session");
        // The probe set its login uid as root and then became the user itself: no privileged
        // process holds its session open, so jump does not vouch for it (`events/login.rs`).
        message.push_str(&format!(" login=?{}({l}) (untrusted)", user_name(l)));
        want("JUMP_LOGIN_TRUSTED", "0");
    }
    want("MESSAGE", &message);
    // The environment is the user's to write: a process outside any SSH session that claims
    // `SSH_CONNECTION` is not given a client (jumpd asks the session's sshd, and there is none).
    if c.ssh {
        assert_eq!(
            field(e, "JUMP_SSH_CLIENT"),
            None,
            "an SSH client claimed in the environment is not logged: {ctx}"
        );
    }
    if let Some(p) = field(e, "JUMP_SRC_PORT") {
        assert_ne!(p, "0", "a source port is only written when known: {ctx}");
    }
    assert_eq!(
        field(e, "JUMP_SUPPRESSED"),
        None,
        "nothing was suppressed: {ctx}"
    );
}

#[test]
fn decisions_and_the_daemons_life_are_journal_entries_with_every_field() {
    if !can_run("decisions_and_the_daemons_life_are_journal_entries_with_every_field") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let _internal = Servers::start(
        &bins,
        &topo.internal.path(),
        &[format!("tcp:{INTERNAL_V4}:7000")],
    )
    .expect("internal servers");
    let _internet = Servers::start(
        &bins,
        &topo.internet.path(),
        &[format!("tcp:{INTERNET_V4}:7000")],
    )
    .expect("internet servers");
    let cg = TestCgroup::new().expect("cgroup");
    let policy = PolicyDir::new();
    let journal = Journald::start().expect("journald");

    let mut jumpd = JournaldJumpd::start(&bins, &journal, &policy.0, &cg.path);
    let starting = journal.wait_entry("the startup line", |e| {
        field(e, "MESSAGE").is_some_and(|m| m.starts_with("jumpd ") && m.contains("starting"))
    });
    assert!(
        field(&starting, "MESSAGE").is_some_and(|m| m.ends_with("logging to journald")),
        "the startup line says where jumpd logs: {starting:#}"
    );
    let loaded = journal.wait_entry("policy loaded", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::POLICY_LOADED)
    });
    assert_eq!(field(&loaded, "JUMP_POLICY_GENERATION"), Some("1"));
    let sha = field(&loaded, "JUMP_POLICY_SHA256")
        .expect("the loaded policy's hash")
        .to_string();
    assert_eq!(sha.len(), 64, "a sha256 in hex: {sha}");

    let internal = format!("{INTERNAL_V4}:7000");
    let internet = format!("{INTERNET_V4}:7000");
    let cases = [
        Case {
            uid: A,
            login: None,
            ssh: false,
            dst: internal.clone(),
            verdict: "allow",
            rule: "a-internal",
        },
        Case {
            uid: A,
            login: None,
            ssh: false,
            dst: internet.clone(),
            verdict: "deny",
            rule: "default",
        },
        Case {
            uid: B,
            login: Some(B_LOGIN),
            ssh: true,
            dst: internet.clone(),
            verdict: "would-deny",
            rule: "b-trial",
        },
        Case {
            uid: B,
            login: Some(B_LOGIN),
            ssh: true,
            dst: internal.clone(),
            verdict: "deny",
            rule: "default",
        },
    ];
    let host = topo.host.path();
    for c in &cases {
        let (ran, entry) = run_probe(&bins, &cg.path, &host, c, &journal);
        let refused = ran.outcome["errno"] == 1;
        assert_eq!(
            refused,
            c.verdict == "deny",
            "uid {} -> {}: only a deny refuses (an audit rule lets through): {}",
            c.uid,
            c.dst,
            ran.outcome
        );
        check_entry(&bins, c, &ran, &entry, &sha);
    }

    // The README's example, as written: the audited rule's entries by verdict and rule name.
    let out = Command::new("journalctl")
        .arg("--directory")
        .arg(journal.root().join("run/log/journal"))
        .args([
            "-t",
            "jumpd",
            "JUMP_VERDICT=would-deny",
            "JUMP_RULE_NAME=b-trial",
            "-o",
            "json",
            "-q",
        ])
        .output()
        .expect("journalctl");
    let found = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        found, 1,
        "`journalctl -t jumpd JUMP_VERDICT=would-deny JUMP_RULE_NAME=…` finds the audited connect"
    );
    let ready = journal.wait_entry("ready", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::STARTED) && field(e, "JUMP_CGROUP").is_some()
    });
    assert_eq!(
        field(&ready, "JUMP_CGROUP"),
        Some(&*cg.path.display().to_string())
    );
    assert!(
        field(&loaded, "JUMP_RULES").is_some(),
        "every field jump adds starts with JUMP_: {loaded:#}"
    );
    for name in ["RULES", "USERS", "CHANGES", "CGROUP"] {
        assert!(
            journal
                .jumpd_entries()
                .iter()
                .all(|e| e.get(name).is_none()),
            "no entry has a field `{name}` without the JUMP_ prefix"
        );
    }

    // A reload of a broken policy is rejected, and says why.
    std::fs::write(
        policy.0.join("policy.yaml"),
        "defaults: {egress: sideways}\n",
    )
    .unwrap();
    jumpd.proc.signal(nix::sys::signal::Signal::SIGHUP);
    let rejected = journal.wait_entry("reload rejected", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::RELOAD_REJECTED)
    });
    assert_eq!(field(&rejected, "PRIORITY"), Some("3"));
    assert!(
        field(&rejected, "MESSAGE").is_some_and(|m| m.contains("policy.yaml")),
        "the rejection names the file: {rejected:#}"
    );

    let status = jumpd.proc.stop().expect("jumpd exit status");
    assert!(status.success(), "jumpd stops cleanly on SIGTERM: {status}");
    journal.wait_entry("jumpd stopped", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::STOPPED)
    });
    assert!(
        jumpd.detach(&bins, Some(&journal)).success(),
        "jumpd --detach succeeds"
    );
    journal.wait_entry("programs detached", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::DETACHED)
    });
}

/// `sched(7)` policies, as `/proc/<pid>/task/<tid>/stat` gives them.
const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// Each thread of `pid`, main thread first: its name and scheduling policy (field 41 of its
/// `stat`, counted after the parenthesised name, which may hold spaces).
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("jumpd's threads")
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_by_key(|&t| (t != pid, t));
    tids.into_iter()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let policy = rest.split_whitespace().nth(41 - 3)?.parse().ok()?;
            Some((name.to_string(), policy))
        })
        .collect()
}

fn number(e: &Value, name: &str) -> u64 {
    field(e, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// How many connects the storm makes: the "50,000 denied connects in a few seconds".
const STORM: u64 = 50_000;

#[test]
fn a_connect_storm_is_rate_limited_and_every_event_is_accounted_for() {
    if !can_run("a_connect_storm_is_rate_limited_and_every_event_is_accounted_for") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let cg = TestCgroup::new().expect("cgroup");
    let policy = PolicyDir::new();
    let journal = Journald::start().expect("journald");
    let mut jumpd = JournaldJumpd::start(&bins, &journal, &policy.0, &cg.path);
    // The thread draining the ring (jumpd's main thread) runs under SCHED_BATCH, so under a
    // storm it fills journald's queue instead of switching with journald per entry; the
    // revocation thread keeps the default policy. Set just after "ready": polled briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut policies = thread_policies(jumpd.pid());
    while policies.first().map(|p| p.1) != Some(SCHED_BATCH) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        policies = thread_policies(jumpd.pid());
    }
    assert_eq!(
        policies.first().map(|p| p.1),
        Some(SCHED_BATCH),
        "{policies:?}"
    );
    let revoke: Vec<_> = policies.iter().filter(|p| p.0 == "jumpd-revoke").collect();
    assert!(
        !revoke.is_empty() && revoke.iter().all(|p| p.1 == SCHED_OTHER),
        "{policies:?}"
    );
    let host = topo.host.path();
    let internet = format!("{INTERNET_V4}:7000");
    let internal = format!("{INTERNAL_V4}:7001");
    let probe = |uid: u32, args: &[&str]| {
        Command::new(&bins.probe)
            .arg("--cgroup")
            .arg(&cg.path)
            .arg("--netns")
            .arg(&host)
            .args(["--uid", &uid.to_string(), "--gid", &uid.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jump-probe")
    };

    // A's storm, and meanwhile one connect by B: B's event must not be starved by A's.
    let start = std::time::Instant::now();
    let storm = probe(A, &["storm", &STORM.to_string(), &internet]);
    let b = probe(B, &["tcp", &internal]).wait_with_output().unwrap();
    let out = storm.wait_with_output().expect("storm");
    let secs = start.elapsed().as_secs_f64();
    let result: Value = serde_json::from_slice(&out.stdout).expect("storm result");
    assert_eq!(
        result[&internet]["eperm"], STORM,
        "every connect of the storm is refused: {result}"
    );
    eprintln!("storm: {STORM} refused connects in {secs:.2} s");
    assert!(
        String::from_utf8_lossy(&b.stdout).contains("\"errno\":1"),
        "B's connect is refused"
    );
    journal.wait_entry("B's connect during the storm", |e| {
        field(e, "JUMP_UID") == Some(&*B.to_string()) && field(e, "JUMP_VERDICT") == Some("deny")
    });
    // One more connect of the same key after the rate window (1 s): it is sent, carrying the
    // count suppressed since the last sent one.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let last = probe(A, &["tcp", &internet]).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&last.stdout).contains("\"errno\":1"));
    let wanted = STORM + 1;

    // Wait until the counts add up (jumpd reports suppressed and lost events every second); on
    // timeout the last counts are asserted below, so the failure shows them.
    let mut last = (0, 0, 0, 0);
    let (logged, suppressed, lost, carried) = poll_until(
        std::time::Duration::from_secs(20),
        "the storm's entries and summaries to add up",
        || {
            let entries = journal.jumpd_entries();
            let storm_entries: Vec<&Value> = entries
                .iter()
                .filter(|e| {
                    field(e, "JUMP_UID") == Some(&*A.to_string())
                        && field(e, "JUMP_DST_ADDR") == Some(INTERNET_V4)
                })
                .collect();
            let logged = storm_entries.len() as u64;
            let carried: u64 = storm_entries
                .iter()
                .map(|e| number(e, "JUMP_SUPPRESSED"))
                .sum();
            let suppressed: u64 = entries
                .iter()
                .map(|e| number(e, "JUMP_EVENTS_SUPPRESSED"))
                .sum();
            let lost: u64 = entries.iter().map(|e| number(e, "JUMP_EVENTS_LOST")).sum();
            last = (logged, suppressed, lost, carried);
            (logged + suppressed + lost >= wanted).then_some(last)
        },
    )
    .unwrap_or(last);
    eprintln!("storm: {logged} logged, {suppressed} suppressed, {lost} lost");
    assert_eq!(
        logged + suppressed + lost,
        wanted,
        "every decision is logged, or counted as suppressed or lost: {logged} + {suppressed} + {lost}"
    );
    assert!(
        logged < 100,
        "the rate limit holds the storm to a few entries, got {logged}"
    );
    if lost == 0 {
        assert_eq!(
            carried, suppressed,
            "the sent events' JUMP_SUPPRESSED add up to the suppressed summaries"
        );
    } else {
        // A lost event takes the count it carried with it, so only the bound is known.
        assert!(
            carried <= suppressed,
            "the sent events' JUMP_SUPPRESSED ({carried}) cannot exceed the suppressed \
             summaries ({suppressed}), {lost} events lost"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", jumpd.pid()))
        .expect("read jumpd's /proc status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no readable VmHWM in jumpd's /proc status:\n{status}"));
    eprintln!("storm: jumpd peak RSS {rss_kib} KiB");
    assert!(
        rss_kib < 64 * 1024,
        "jumpd's memory stays small under the storm: {rss_kib} KiB"
    );
    let status = jumpd.proc.stop().expect("jumpd exit status");
    assert!(status.success(), "jumpd survives the storm: {status}");
}

/// jumpd's decision entries that journald did not take are counted as lost, not dropped
/// silently: with journald gone (killed; its socket file left behind, so every send is refused),
/// each denied connect's event still reaches jumpd from the kernel and shows in
/// `jump_events_total{outcome="unsent"}` at once, and once journald is back the user's summary
/// entry says how many it missed. Before, with journald there, the same kind of event is in the
/// journal and nothing is unsent.
#[test]
fn what_journald_does_not_take_is_counted_as_lost() {
    if !can_run("what_journald_does_not_take_is_counted_as_lost") {
        return;
    }
    const UNSENT: &str = "jump_events_total{outcome=\"unsent\"}";
    const SENT: &str = "jump_events_total{outcome=\"sent\"}";
    /// Denied connects while journald is gone, each to a port of its own (no repeats for the
    /// per-destination rate limit to suppress; well within the uid's budget).
    const WHILE_GONE: u16 = 12;
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let cg = TestCgroup::new().expect("cgroup");
    let policy = PolicyDir::new();
    let mut journal = Journald::start().expect("journald");
    let jumpd = JournaldJumpd::start_with(
        &bins,
        &journal,
        &policy.0,
        &cg.path,
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let line = journal.wait_entry("the metrics address", |e| {
        field(e, "MESSAGE").is_some_and(|m| m.starts_with("metrics at http://"))
    });
    let addr: std::net::SocketAddr = field(&line, "MESSAGE")
        .unwrap()
        .trim_start_matches("metrics at http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("a socket address in the entry");
    let host = topo.host.path();
    let deny = |port: u16| {
        let out = Command::new(&bins.probe)
            .arg("--cgroup")
            .arg(&cg.path)
            .arg("--netns")
            .arg(&host)
            .args(["--uid", &A.to_string(), "--gid", &A.to_string()])
            .args(["tcp", &format!("{INTERNET_V4}:{port}")])
            .output()
            .expect("run jump-probe");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"errno\":1"),
            "A's connect to the internet host on port {port} is refused"
        );
    };

    // The twin: journald takes the entry, nothing is unsent.
    deny(7100);
    journal.wait_entry("the denied connect while journald runs", |e| {
        field(e, "JUMP_DST_PORT") == Some("7100") && field(e, "JUMP_VERDICT") == Some("deny")
    });
    let text = metrics::get(addr, "/metrics").expect("metrics").1;
    assert_eq!(metrics::sample(&text, UNSENT).unwrap_or(0.0), 0.0, "{text}");
    let sent_before = metrics::sample(&text, SENT).unwrap_or(0.0);

    journal.kill();
    for port in 7101..7101 + WHILE_GONE {
        deny(port);
    }
    let wanted = f64::from(WHILE_GONE);
    metrics::wait_sample(addr, SENT, "the kernel's events to reach jumpd", |v| {
        v >= sent_before + wanted
    });
    let unsent = metrics::wait_sample(addr, UNSENT, "every entry journald did not take", |v| {
        v >= wanted
    });
    assert_eq!(
        unsent, wanted,
        "each event received while journald was gone is counted once as unsent"
    );

    // journald back, as after a restart: the summary of A's events names what it missed.
    journal
        .restart_in(jumpd.pid())
        .expect("journald started again");
    let a = A.to_string();
    let summary = journal.wait_entry("A's summary of what journald missed", |e| {
        field(e, "MESSAGE_ID") == Some(message_id::EVENTS_HELD) && field(e, "JUMP_UID") == Some(&a)
    });
    let n = WHILE_GONE.to_string();
    for (name, want) in [
        ("JUMP_EVENTS_UNSENT", n.as_str()),
        ("JUMP_EVENTS_LOST", &n),
        ("JUMP_EVENTS_HELD", &n),
        ("JUMP_HELD_DENY", &n),
    ] {
        assert_eq!(field(&summary, name), Some(want), "{name} in {summary:#}");
    }
    assert!(
        field(&summary, "MESSAGE")
            .is_some_and(|m| m.contains(&format!("({n} not taken by journald)"))),
        "{summary:#}"
    );
}

/// The flooding user of the fairness test: no rule, so every connect is refused.
const FLOOD: u32 = 64013;
/// Flooding processes, and connects each makes: the "≥ 300,000 from several processes".
const FLOODERS: u32 = 3;
const FLOOD_ROUNDS: u32 = 100;
/// Distinct destinations per flooding process (addresses × ports), so the per-destination rate
/// limit cannot absorb the flood and only the per-uid budget stands between it and the ring
/// buffer. 250 × 4 × 100 rounds = 100,000 connects per process.
const FLOOD_HOSTS: u32 = 250;
const FLOOD_PORTS: u32 = 4;

const FAIRNESS_POLICY: &str = "\
defaults: {egress: deny, log: all, loopback: allow}
rules:
  - name: a-internal
    users: [64011]
    allow:
      - {to: [198.51.100.10], ports: [7000-7019], proto: [tcp]}
";

fn sum_outcomes(result: &Value) -> (u64, u64) {
    let (mut eperm, mut all) = (0, 0);
    for v in result.as_object().expect("per-address outcomes").values() {
        eperm += v["eperm"].as_u64().unwrap_or(0);
        all += v["ok"].as_u64().unwrap_or(0)
            + v["eperm"].as_u64().unwrap_or(0)
            + v["other"].as_u64().unwrap_or(0);
    }
    (eperm, all)
}

#[test]
fn one_users_flood_cannot_push_another_users_decisions_out_of_the_log() {
    if !can_run("one_users_flood_cannot_push_another_users_decisions_out_of_the_log") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let ports: Vec<u16> = (7000..7020).collect();
    let _internal = Servers::start(
        &bins,
        &topo.internal.path(),
        &ports
            .iter()
            .map(|p| format!("tcp:{INTERNAL_V4}:{p}"))
            .collect::<Vec<_>>(),
    )
    .expect("internal servers");
    let cg = TestCgroup::new().expect("cgroup");
    let policy = PolicyDir::with(FAIRNESS_POLICY);
    let journal = Journald::start().expect("journald");
    // Default limits: what a deployment runs with.
    let jumpd = JournaldJumpd::start(&bins, &journal, &policy.0, &cg.path);
    let host = topo.host.path();
    let probe = |uid: u32, args: &[String]| {
        Command::new(&bins.probe)
            .arg("--cgroup")
            .arg(&cg.path)
            .arg("--netns")
            .arg(&host)
            .args(["--uid", &uid.to_string(), "--gid", &uid.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .map(Guarded::new)
            .expect("start jump-probe")
    };

    let flooders: Vec<Guarded> = (0..FLOODERS)
        .map(|k| {
            let mut args = vec!["storm".to_string(), FLOOD_ROUNDS.to_string()];
            for port in 0..FLOOD_PORTS {
                for host in 1..=FLOOD_HOSTS {
                    args.push(format!(
                        "203.0.113.{host}:{}",
                        9000 + k * FLOOD_PORTS + port
                    ));
                }
            }
            probe(FLOOD, &args)
        })
        .collect();
    let flood_uid = FLOOD.to_string();
    journal.wait_entry("the flood's first events", |e| {
        field(e, "JUMP_UID") == Some(&*flood_uid) && field(e, "JUMP_VERDICT").is_some()
    });

    // While the flood runs: A's 20 allowed and 20 refused connects, each to its own
    // destination (so the per-destination limit, which coalesces repeats, is not what is tested).
    let mut args = vec!["storm".to_string(), "1".to_string()];
    args.extend(ports.iter().map(|p| format!("{INTERNAL_V4}:{p}")));
    args.extend(ports.iter().map(|p| format!("{INTERNET_V4}:{p}")));
    let mut a = probe(A, &args);
    let a_out = a.child.wait_with_output_ref();
    let a_result: Value = serde_json::from_slice(&a_out).expect("A's storm result");
    let mut flood_running = 0;
    let mut flood_attempts = 0;
    let mut flood_refused = 0;
    for mut f in flooders {
        if f.child.try_wait().expect("try_wait").is_none() {
            flood_running += 1;
        }
        let out = f.child.wait_with_output_ref();
        let result: Value = serde_json::from_slice(&out).expect("flood result");
        let (eperm, all) = sum_outcomes(&result);
        flood_attempts += all;
        flood_refused += eperm;
    }
    assert!(
        flood_running > 0,
        "A's connects ran while the flood was still running"
    );
    assert_eq!(
        flood_attempts,
        u64::from(FLOODERS * FLOOD_ROUNDS * FLOOD_HOSTS * FLOOD_PORTS)
    );
    assert_eq!(
        flood_refused, flood_attempts,
        "every connect of the flood is refused"
    );
    for p in &ports {
        let ok = &a_result[format!("{INTERNAL_V4}:{p}")];
        assert_eq!(
            ok["ok"], 1,
            "A's connect to port {p} is allowed: {a_result}"
        );
        let refused = &a_result[format!("{INTERNET_V4}:{p}")];
        assert_eq!(
            refused["eperm"], 1,
            "A's connect to the internet is refused: {a_result}"
        );
    }

    // Wait until the flood is accounted for: logged one by one, or in its uid's summaries.
    let a_uid = A.to_string();
    // On timeout the last counts are asserted below, so the failure shows them.
    let mut last = (Vec::new(), 0, 0);
    let (entries, logged, summarised) = poll_until(
        std::time::Duration::from_secs(60),
        "the flood to be logged or summarised",
        || {
            let entries = journal.jumpd_entries();
            let logged = entries
                .iter()
                .filter(|e| {
                    field(e, "JUMP_UID") == Some(&*flood_uid) && field(e, "JUMP_VERDICT").is_some()
                })
                .count() as u64;
            let summarised: u64 = entries
                .iter()
                .filter(|e| {
                    field(e, "MESSAGE_ID") == Some(message_id::EVENTS_HELD)
                        && field(e, "JUMP_UID") == Some(&*flood_uid)
                })
                .map(|e| number(e, "JUMP_EVENTS_HELD"))
                .sum();
            let done = logged + summarised >= flood_attempts;
            last = (entries, logged, summarised);
            done.then(|| last.clone())
        },
    )
    .unwrap_or(last);
    eprintln!("flood: {flood_attempts} connects, {logged} logged one by one, {summarised} in per-user summaries");
    assert_eq!(
        logged + summarised,
        flood_attempts,
        "the flood is accounted for exactly: each connect logged, or counted in its user's summary"
    );
    let summaries: Vec<&Value> = entries
        .iter()
        .filter(|e| field(e, "MESSAGE_ID") == Some(message_id::EVENTS_HELD))
        .collect();
    let mut over_budget = 0;
    for s in &summaries {
        assert_eq!(
            field(s, "JUMP_UID"),
            Some(&*flood_uid),
            "only the flooder is held back: {s:#}"
        );
        assert_eq!(
            field(s, "JUMP_USER"),
            Some(&*user_name(FLOOD)),
            "a summary names the user: {s:#}"
        );
        assert_eq!(
            number(s, "JUMP_HELD_DENY"),
            number(s, "JUMP_EVENTS_HELD"),
            "the flood's verdicts: {s:#}"
        );
        assert_eq!(
            number(s, "JUMP_EVENTS_LOST"),
            0,
            "nothing lost to a full ring buffer: {s:#}"
        );
        assert!(
            field(s, "JUMP_HELD_FIRST").is_some() && field(s, "JUMP_HELD_LAST").is_some(),
            "a summary has its time span: {s:#}"
        );
        assert!(number(s, "JUMP_HELD_DESTINATIONS") > 0, "{s:#}");
        over_budget += number(s, "JUMP_EVENTS_OVER_BUDGET");
    }
    assert!(
        over_budget > 0,
        "the per-user budget held back part of the flood"
    );
    let most = summaries
        .iter()
        .map(|s| number(s, "JUMP_HELD_DESTINATIONS"))
        .max()
        .unwrap_or(0);
    assert!(
        most >= 100,
        "a summary estimates the flood's many destinations, got {most}"
    );

    let a_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| field(e, "JUMP_UID") == Some(&*a_uid) && field(e, "JUMP_VERDICT").is_some())
        .collect();
    for p in &ports {
        let port = p.to_string();
        for (addr, verdict) in [(INTERNAL_V4, "allow"), (INTERNET_V4, "deny")] {
            assert!(
                a_entries
                    .iter()
                    .any(|e| field(e, "JUMP_DST_ADDR") == Some(addr)
                        && field(e, "JUMP_DST_PORT") == Some(&*port)
                        && field(e, "JUMP_VERDICT") == Some(verdict)),
                "A's {verdict} to {addr}:{p} is logged despite the flood"
            );
        }
    }
    assert_eq!(a_entries.len(), 40, "each of A's 40 decisions is one entry");
    drop(jumpd);
}

/// Reads a child's whole stdout after it exits.
trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> Vec<u8>;
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_ref(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_end(&mut out).expect("read stdout");
        }
        self.wait().expect("wait");
        out
    }
}

/// A command name that, printed raw, ends the line, erases it (`\e[2K`) and starts a forged
/// `allow` line. 11 bytes: it fits the kernel's 15.
const FORGING_COMM: &str = "\n\x1b[2Kallow";

/// jumpd with `--log-format text` into a file, in the journal's mount namespace (like the
/// others here), with its own control socket; stopped and detached on drop.
struct TextJumpd {
    proc: Guarded,
    cgroup: PathBuf,
    pin_root: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
}

impl TextJumpd {
    fn start(bins: &Bins, journal: &Journald, policy: &Path, cgroup: &Path) -> Self {
        let pin_root = PathBuf::from("/sys/fs/bpf").join(jump_tests::unique("jt"));
        let socket_dir = std::env::temp_dir().join(jump_tests::unique("jump-text-"));
        std::fs::create_dir_all(&socket_dir).unwrap();
        let log = socket_dir.join("jumpd.log");
        let child = journal
            .command(&bins.jumpd)
            .arg("--policy-dir")
            .arg(policy)
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--pin-dir")
            .arg(&pin_root)
            .arg("--control-socket")
            .arg(socket_dir.join("jumpd.sock"))
            .args(["--log-format", "text", "--no-watch"])
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start jumpd");
        let j = Self {
            proc: Guarded::new(child),
            cgroup: cgroup.to_path_buf(),
            pin_root,
            log,
            socket_dir,
        };
        j.wait_text("jumpd ready", |t| t.contains("jumpd ready"));
        j
    }

    fn socket(&self) -> PathBuf {
        self.socket_dir.join("jumpd.sock")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn wait_text(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        poll_until(std::time::Duration::from_secs(20), what, || {
            Some(self.text()).filter(|t| pred(t))
        })
        .unwrap_or_else(|e| panic!("{e} in jumpd's text output: {}", self.text()))
    }
}

impl Drop for TextJumpd {
    fn drop(&mut self) {
        self.proc.stop();
        let status = Command::new(&Bins::from_env().jumpd)
            .arg("--cgroup")
            .arg(&self.cgroup)
            .arg("--pin-dir")
            .arg(&self.pin_root)
            .args(["--log-format", "json", "--detach"])
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.pin_root);
        let _ = std::fs::remove_dir_all(&self.socket_dir);
        if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("jumpd --detach failed: {status:?}");
        }
    }
}

/// Every line of human output is a whole record: no raw control character anywhere, and each
/// line starts the way `starts` says.
fn assert_unforged(output: &str, what: &str, starts: impl Fn(&str) -> bool) {
    assert!(
        !output.contains(|c: char| c.is_control() && c != '\n'),
        "no raw control character in {what}: {output:?}"
    );
    for line in output.lines() {
        assert!(
            starts(line),
            "every line of {what} is a record of its own: {line:?} in {output:?}"
        );
    }
}

#[test]
fn a_command_name_cannot_forge_or_erase_a_line_of_human_output() {
    if !can_run("a_command_name_cannot_forge_or_erase_a_line_of_human_output") {
        return;
    }
    let bins = Bins::from_env();
    let topo = Topology::new().expect("topology");
    let cg = TestCgroup::new().expect("cgroup");
    let policy = PolicyDir::new();
    let journal = Journald::start().expect("journald");
    let jumpd = TextJumpd::start(&bins, &journal, &policy.0, &cg.path);
    let internet = format!("{INTERNET_V4}:7000");
    let out = Command::new(&bins.probe)
        .arg("--cgroup")
        .arg(&cg.path)
        .arg("--netns")
        .arg(topo.host.path())
        .args(["--uid", &A.to_string(), "--gid", &A.to_string()])
        .args(["--comm", FORGING_COMM, "tcp", &internet])
        .output()
        .expect("jump-probe");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"errno\":1"),
        "the connect is refused: {out:?}"
    );
    let escaped = "comm=\\n\\e[2Kallow";
    let text = jumpd.wait_text("the refused connect", |t| t.contains(escaped));
    // tracing's text lines start with the time: `2026-…Z  WARN deny …`.
    assert_unforged(&text, "the text sink", |l| l.starts_with("20"));
    assert!(
        text.lines().any(
            |l| l.contains(&format!("deny {A}({A}) -> {internet}/tcp")) && l.ends_with(escaped)
        ),
        "the refused connect is one escaped line: {text}"
    );

    let jumpctl = |json: bool| {
        let mut c = Command::new(&bins.jumpctl);
        c.args(["events", "--socket"]).arg(jumpd.socket());
        if json {
            c.arg("--json");
        }
        let out = c.output().expect("jumpctl events");
        assert!(out.status.success(), "jumpctl events: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let human = jumpctl(false);
    assert_unforged(&human, "jumpctl events", |l| {
        ["allow ", "deny ", "would-deny "]
            .iter()
            .any(|v| l.contains(v))
    });
    assert!(
        human.contains(escaped),
        "jumpctl events shows the escaped name: {human}"
    );
    let json = jumpctl(true);
    let exact = json
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["comm"] == FORGING_COMM);
    assert!(
        exact,
        "jumpctl events --json keeps the exact command name: {json}"
    );
    assert!(
        human
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z ")),
        "jumpctl events shows each event's time first: {human}"
    );
    assert!(json.contains("\"time\":\"20"), "and --json has it: {json}");

    // Filters that match nothing because they are misspelt are errors (exit 2), not silence.
    for bad in [
        &["--verdict", "denied"][..],
        &["--user", "no-such-user-jump-test"],
    ] {
        let out = Command::new(&bins.jumpctl)
            .args(["events", "--socket"])
            .arg(jumpd.socket())
            .args(bad)
            .output()
            .expect("jumpctl events");
        assert_eq!(
            out.status.code(),
            Some(2),
            "jumpctl events {bad:?}: {out:?}"
        );
    }
}

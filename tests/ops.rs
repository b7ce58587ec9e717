//! Operating jumpd against the real kernel: reload by each trigger, a rejected reload that
//! leaves the old policy enforced, the control socket's permission checks, the capabilities
//! left after start, and what `jumpctl status/stats/events/check/detach` report.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use jump_tests::{
    accounts::{TestGroup, TestUser},
    child::Guarded,
    daemon::Jumpd,
    netns::{INTERNAL_V4, INTERNET_V4},
    poll_until, privileged,
    world::World,
    Bins,
};
use serde_json::Value;

/// Granted tcp/7000 on the internal host.
const A: u32 = 64001;
/// Not granted at first.
const B: u32 = 64002;

const POLICY: &str = "\
defaults:
  egress: deny
  log: all
  loopback: allow
rules:
  - name: a-internal
    users: [64001]
    allow:
      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}
";

/// The harness's world with a control socket of its own; the world (jumpd first) drops before
/// the socket's directory.
struct Fixture {
    world: World,
    socket: PathBuf,
    _socket_dir: tempfile::TempDir,
}

impl std::ops::Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

impl Fixture {
    /// Servers on tcp/7000-7001 in the internal zone; `files` written into a fresh policy
    /// directory; jumpd not started yet.
    fn new(files: &[(&str, &str)]) -> Self {
        // Traversable by the unprivileged callers of the permission test; the socket itself is
        // what jumpd protects.
        let socket_dir = tempfile::tempdir().expect("socket dir");
        std::fs::set_permissions(socket_dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        Self {
            world: World::new(&[7000, 7001], files),
            socket: socket_dir.path().join("jumpd.sock"),
            _socket_dir: socket_dir,
        }
    }

    fn start(&mut self, extra: &[&str]) -> &Jumpd {
        let socket = self.socket.display().to_string();
        let mut args = vec!["--control-socket", &socket];
        args.extend_from_slice(extra);
        self.world.start(&args)
    }

    fn ctl(&self, args: &[&str]) -> Ctl {
        jumpctl(&self.bins, &self.socket, &[], args)
    }

    /// Waits for the log line of generation `g` and returns it.
    fn wait_generation(&self, g: u64, what: &str) -> Value {
        self.jumpd()
            .wait_line(&format!("generation {g} ({what})"), |l| {
                l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f802"
                    && l["jump_policy_generation"] == g
            })
    }
}

struct Ctl {
    code: i32,
    out: String,
    err: String,
}

impl Ctl {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("jumpctl printed no JSON ({e}): {} {}", self.out, self.err))
    }
}

/// Runs jumpctl, under `setpriv ARGS…` when `setpriv` is not empty.
fn jumpctl(bins: &Bins, socket: &Path, setpriv: &[&str], args: &[&str]) -> Ctl {
    let mut cmd = if setpriv.is_empty() {
        Command::new(&bins.jumpctl)
    } else {
        let mut c = Command::new("setpriv");
        c.args(setpriv).arg("--").arg(&bins.jumpctl);
        c
    };
    let out = cmd
        .args(args)
        .env("JUMP_SOCKET", socket)
        .output()
        .expect("failed to run jumpctl");
    Ctl {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn reload_by_sighup_jumpctl_policy_edit_and_group_membership() {
    if !privileged("reload_by_sighup_jumpctl_policy_edit_and_group_membership") {
        return;
    }
    let group = TestGroup::new().expect("group");
    let user = TestUser::new(64010).expect("user");
    let group_rule = format!(
        "rules:\n  - name: g-internal\n    groups: [{}]\n    allow:\n      - {{to: [198.51.100.10], ports: [7001], proto: [tcp]}}\n",
        group.name
    );
    let mut f = Fixture::new(&[("10-a.yaml", POLICY), ("20-g.yaml", &group_rule)]);
    f.start(&[]);
    f.wait_generation(1, "start");

    // Reloads of an unchanged directory: no new generation, whoever asks.
    f.jumpd().signal(nix::sys::signal::Signal::SIGHUP);
    let l = f.jumpd().wait_line("the unchanged sighup reload", |l| {
        l["jump_reload_trigger"] == "sighup" && l["jump_policy_unchanged"] == true
    });
    assert_eq!(l["jump_policy_generation"], 1, "{l}");

    let r = f.ctl(&["reload"]);
    assert_eq!(r.code, 0, "jumpctl reload: {} {}", r.out, r.err);
    assert!(
        r.out
            .starts_with("reloaded: generation 1 in force (no change"),
        "{}",
        r.out
    );
    f.write("10-a.yaml", &format!("# edited\n{POLICY}"));
    let trigger = f.wait_generation(2, "an edit")["jump_reload_trigger"].clone();
    assert!(
        trigger.as_str().is_some_and(|t| t.ends_with("/10-a.yaml")),
        "{trigger}"
    );
    let r = f.ctl(&["reload"]);
    assert!(
        r.out
            .starts_with("reloaded: generation 2 in force (no change"),
        "{}",
        r.out
    );
    f.jumpd().signal(nix::sys::signal::Signal::SIGHUP);
    f.jumpd()
        .wait_line("the second unchanged sighup reload", |l| {
            l["jump_reload_trigger"] == "sighup"
                && l["jump_policy_unchanged"] == true
                && l["jump_policy_generation"] == 2
        });
    // A changed file is a changed policy (its hash), even if it compiles alike: generation 3.
    f.write("10-a.yaml", &format!("# edited again\n{POLICY}"));
    f.wait_generation(3, "another edit");

    f.assert_reach(B, 7000, false, "before B's rule exists");
    f.write(
        "30-b.yaml",
        "rules:\n  - name: b-internal\n    users: [64002]\n    allow:\n      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}\n",
    );
    let l = f.wait_generation(4, "policy file edit");
    let trigger = l["jump_reload_trigger"].as_str().unwrap();
    assert!(
        trigger.starts_with("watch: ") && trigger.ends_with("/30-b.yaml"),
        "the trigger names the file: {trigger}"
    );
    assert!(
        l["jump_changes"]
            .as_str()
            .unwrap()
            .contains("rules +b-internal; users +64002"),
        "the reload says what changed: {l}"
    );
    f.assert_reach(B, 7000, true, "after the policy edit");

    f.assert_reach(user.uid, 7001, false, "before joining the group");
    group.add(&user).expect("gpasswd -a");
    let l = f.wait_generation(5, "/etc/group change");
    assert_eq!(l["jump_reload_trigger"], "watch: /etc/group");
    assert!(
        l["jump_changes"]
            .as_str()
            .unwrap()
            .contains(&format!("users +64010({})", user.name)),
        "the new member is named: {l}"
    );
    f.assert_reach(
        user.uid,
        7001,
        true,
        "a new group member is granted without a manual reload",
    );
}

#[test]
fn a_broken_policy_edit_is_rejected_and_the_old_policy_stays_enforced() {
    if !privileged("a_broken_policy_edit_is_rejected_and_the_old_policy_stays_enforced") {
        return;
    }
    let mut f = Fixture::new(&[("10-a.yaml", POLICY)]);
    f.start(&[]);
    f.assert_reach(A, 7000, true, "granted");
    f.assert_reach(B, 7000, false, "not granted");

    f.write(
        "10-a.yaml",
        &POLICY.replace("ports: [7000]", "ports: [90-80]"),
    );
    let l = f.jumpd().wait_line("the rejected reload", |l| {
        l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f803"
    });
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.contains("generation 1 stays in force") && msg.contains("10-a.yaml:9:"),
        "the rejection names the error's file and line: {msg}"
    );

    f.assert_reach(A, 7000, true, "the old policy still allows what it allowed");
    f.assert_reach(
        B,
        7000,
        false,
        "the old policy still refuses what it refused",
    );
    let s = f.ctl(&["status", "--json"]).json();
    assert_eq!(s["generation"], 1);
    assert_eq!(s["last_reload"]["ok"], false);
    assert!(
        s["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("10-a.yaml:9:"),
        "status shows the rejected reload: {s:#}"
    );
    let human = f.ctl(&["status"]);
    assert!(human.out.contains("last reload: REJECTED"), "{}", human.out);

    let r = f.ctl(&["reload"]);
    assert_eq!(r.code, 1, "a rejected reload exits 1: {} {}", r.out, r.err);
    assert!(
        r.err
            .contains("reload rejected, the active policy stays in force"),
        "{}",
        r.err
    );
}

#[test]
fn the_control_socket_refuses_users_outside_the_admin_group() {
    if !privileged("the_control_socket_refuses_users_outside_the_admin_group") {
        return;
    }
    let admins = TestGroup::new().expect("group");
    let user = TestUser::new(64011).expect("user");
    let mut f = Fixture::new(&[("10-a.yaml", POLICY)]);
    f.start(&["--control-group", &admins.name]);

    let meta = std::fs::metadata(&f.socket).expect("socket");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (0, admins.gid, 0o660),
        "the socket is root:admin 0660"
    );

    let uid = format!("--reuid={}", user.uid);
    let as_user = [uid.as_str(), "--regid=100", "--clear-groups"];
    let r = jumpctl(&f.bins, &f.socket, &as_user, &["status"]);
    assert_eq!(
        r.code, 4,
        "the kernel refuses connect(): {} {}",
        r.out, r.err
    );
    assert!(r.err.contains("permission denied"), "{}", r.err);

    // A process holding the group that /etc/group does not list the user in (a session from
    // before the user was removed from it) gets through the socket's mode, and jumpd refuses.
    let groups = format!("--groups={}", admins.gid);
    let stale = [uid.as_str(), "--regid=100", groups.as_str()];
    let r = jumpctl(&f.bins, &f.socket, &stale, &["status"]);
    assert_eq!(r.code, 4, "jumpd refuses: {} {}", r.out, r.err);
    assert!(
        r.err
            .contains(&format!("uid {} is neither root nor in group", user.uid)),
        "{}",
        r.err
    );
    let l = f.jumpd().wait_line("the refusal", |l| {
        l["message"].as_str().is_some_and(|m| m.contains("refused"))
            && l["jump_peer_uid"] == user.uid
    });
    assert!(
        l["jump_peer_pid"].as_u64().is_some(),
        "the refusal names the caller's pid: {l}"
    );

    // Nor does the group as the process's own gid, as `newgrp` or `sg` leaves it in a session
    // that outlives the membership.
    let regid = format!("--regid={}", admins.gid);
    let newgrp = [uid.as_str(), regid.as_str(), "--clear-groups"];
    let r = jumpctl(&f.bins, &f.socket, &newgrp, &["status"]);
    assert_eq!(r.code, 4, "jumpd refuses: {} {}", r.out, r.err);
    assert!(r.err.contains("is neither root nor in group"), "{}", r.err);

    admins.add(&user).expect("gpasswd -a");
    let r = jumpctl(&f.bins, &f.socket, &stale, &["status", "--json"]);
    assert_eq!(r.code, 0, "a member may ask: {} {}", r.out, r.err);
    f.jumpd()
        .wait_line("the request logged with its caller", |l| {
            l["jump_control_request"] == "status" && l["jump_peer_uid"] == user.uid
        });
}

/// /proc/PID/task/*/status fields of every thread.
fn thread_status(pid: u32) -> Vec<std::collections::HashMap<String, String>> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn after_start_jumpd_keeps_only_cap_bpf_net_admin_sys_ptrace_and_still_reloads() {
    if !privileged("after_start_jumpd_keeps_only_cap_bpf_net_admin_sys_ptrace_and_still_reloads") {
        return;
    }
    let mut f = Fixture::new(&[("10-a.yaml", POLICY)]);
    f.start(&[]);
    // CAP_NET_ADMIN = 12, CAP_SYS_PTRACE = 19, CAP_BPF = 39 (linux/capability.h).
    let kept = format!("{:016x}", (1u64 << 12) | (1u64 << 19) | (1u64 << 39));
    // The revocation thread alone also keeps CAP_SYS_ADMIN (21), for entering the network
    // namespaces of the cgroup's processes.
    let revoker = format!(
        "{:016x}",
        (1u64 << 12) | (1u64 << 19) | (1u64 << 21) | (1u64 << 39)
    );
    let threads = thread_status(f.jumpd().pid());
    assert!(!threads.is_empty());
    for t in &threads {
        let get = |k: &str| t.get(k).map(String::as_str).unwrap_or("?");
        let kept = if get("Name") == "jumpd-revoke" {
            &revoker
        } else {
            &kept
        };
        assert_eq!(
            get("CapEff"),
            *kept,
            "effective set of thread {}",
            get("Pid")
        );
        assert_eq!(
            get("CapPrm"),
            *kept,
            "permitted set of thread {}",
            get("Pid")
        );
        assert_eq!(
            get("CapBnd"),
            *kept,
            "bounding set of thread {}",
            get("Pid")
        );
        assert_eq!(get("CapInh"), "0000000000000000");
        assert_eq!(get("CapAmb"), "0000000000000000");
        assert_eq!(
            get("NoNewPrivs"),
            "1",
            "no-new-privileges on thread {}",
            get("Pid")
        );
    }
    let s = f.ctl(&["status", "--json"]).json();
    assert_eq!(
        s["capabilities"],
        serde_json::json!(["cap_bpf", "cap_net_admin", "cap_sys_ptrace"])
    );

    f.assert_reach(B, 7000, false, "before the reload");
    f.write(
        "10-a.yaml",
        &POLICY.replace("users: [64001]", "users: [64001, 64002]"),
    );
    f.wait_generation(2, "reload after the drop");
    f.assert_reach(
        B,
        7000,
        true,
        "the reload wrote the maps without the dropped capabilities",
    );
}

#[test]
fn jumpctl_status_stats_events_check_and_detach_report_the_live_daemon() {
    if !privileged("jumpctl_status_stats_events_check_and_detach_report_the_live_daemon") {
        return;
    }
    let mut f = Fixture::new(&[("10-a.yaml", POLICY)]);
    f.start(&[]);

    // A follower started before the traffic sees it live.
    let mut follower = Guarded::new(
        Command::new(&f.bins.jumpctl)
            .args(["events", "--follow", "--json", "--verdict", "deny"])
            .env("JUMP_SOCKET", &f.socket)
            .stdout(Stdio::piped())
            .spawn()
            .expect("jumpctl events --follow"),
    );
    let (tx, followed) = std::sync::mpsc::channel::<Value>();
    let stdout = follower.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let e = serde_json::from_str(&line).expect("a JSON event line");
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    // The follower is subscribed once it sees a canary refusal (B to 7000), made until it does.
    let canary = |e: &Value| e["uid"] == B && e["dst_port"] == 7000;
    poll_until(
        Duration::from_secs(10),
        "the follower to see a canary",
        || {
            f.assert_reach(B, 7000, false, "the canary");
            followed.recv_timeout(Duration::from_millis(100)).ok()
        },
    )
    .unwrap();

    f.assert_reach(A, 7000, true, "granted");
    f.assert_reach(A, 7001, false, "not granted");
    f.assert_reach(B, 7000, false, "not granted");

    let e = followed
        .iter()
        .find(|e| !canary(e))
        .expect("a followed event");
    follower.kill();
    assert_eq!(e["verdict"], "deny", "the follower's filter: {e}");
    assert_eq!(
        (e["uid"].clone(), e["dst_port"].clone()),
        (A.into(), 7001.into()),
        "{e}"
    );

    let s = f.ctl(&["status", "--json"]).json();
    assert_eq!(s["generation"], 1);
    assert_eq!(s["mode"], "enforce");
    assert_eq!(s["policy_sha256"].as_str().unwrap().len(), 64);
    // a-internal and the compiler's own loopback rule.
    assert_eq!(
        (s["rules"].clone(), s["users"].clone()),
        (2.into(), 1.into()),
        "{s:#}"
    );
    let hooks: Vec<&str> = s["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        hooks.contains(&"connect4") && hooks.contains(&"connect6"),
        "{hooks:?}"
    );
    assert!(s["counters"]["decisions"].as_u64().unwrap() >= 3, "{s:#}");
    assert!(s["counters"]["events_sent"].as_u64().unwrap() >= 3, "{s:#}");
    assert_eq!(s["counters"]["events_dropped"], 0);
    assert_eq!(s["last_reload"]["trigger"], "start");
    assert!(s["uptime_secs"].as_u64().is_some());
    let human = f.ctl(&["status"]);
    assert!(human.out.contains("generation 1"), "{}", human.out);

    let st = f.ctl(&["stats", "--json"]).json();
    let rule = |name: &str| {
        st["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {name} in {st:#}"))
    };
    assert!(rule("a-internal")["allow"].as_u64().unwrap() >= 1, "{st:#}");
    assert!(rule("default")["deny"].as_u64().unwrap() >= 2, "{st:#}");
    let human = f.ctl(&["stats"]);
    assert!(human.out.contains("a-internal"), "{}", human.out);

    let ev = f.ctl(&["events", "--json", "--user", &B.to_string()]);
    let evs: Vec<Value> = ev
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!evs.is_empty(), "B's refusal is among the recent events");
    assert!(
        evs.iter().all(|e| e["uid"] == B && e["verdict"] == "deny"),
        "{evs:#?}"
    );
    assert!(evs[0]["rule"] == "default" && evs[0]["policy_generation"] == 1);
    let human = f.ctl(&["events", "--verdict", "allow"]);
    assert!(
        human.out.contains(&format!(
            "allow {A}({A}) -> {INTERNAL_V4}:7000/tcp rule=a-internal"
        )),
        "{}",
        human.out
    );

    let c = f.ctl(&["check", &A.to_string(), &format!("{INTERNAL_V4}:7000")]);
    assert_eq!(c.code, 0, "allowed: {} {}", c.out, c.err);
    assert!(c.out.starts_with("allow: uid 64001"), "{}", c.out);
    let c = f.ctl(&[
        "check",
        "--json",
        &B.to_string(),
        &format!("{INTERNET_V4}:443"),
    ]);
    assert_eq!(c.code, 1, "denied: {} {}", c.out, c.err);
    assert_eq!(c.json()["report"]["verdict"], "deny");
    let c = f.ctl(&["check", "nosuchuser", &format!("{INTERNET_V4}:443")]);
    assert_eq!(
        (c.code, c.err.trim()),
        (2, "error: unknown user `nosuchuser`")
    );

    let d = f.ctl(&["detach"]);
    assert_eq!(d.code, 2, "detach wants confirmation");
    let d = f.ctl(&["detach", "--yes"]);
    assert_eq!(d.code, 0, "{} {}", d.out, d.err);
    let status = f
        .jumpd
        .as_mut()
        .unwrap()
        .wait_exit(10)
        .expect("jumpd exits after detach");
    assert!(status.success(), "{status}");
    f.assert_reach(B, 7000, true, "nothing is enforced after the detach");
    assert!(!f.socket.exists(), "the control socket is removed");
    let gone = f.ctl(&["status"]);
    assert_eq!(gone.code, 3, "no jumpd: {}", gone.err);
}

#[test]
fn rule_counters_only_grow_across_reloads() {
    if !privileged("rule_counters_only_grow_across_reloads") {
        return;
    }
    let mut f = Fixture::new(&[("10-a.yaml", POLICY)]);
    f.start(&[]);
    f.wait_generation(1, "start");
    f.assert_reach(A, 7000, true, "the grant");
    f.assert_reach(B, 7000, false, "no grant");
    let hits = |f: &Fixture| {
        let st = f.ctl(&["stats", "--json"]).json();
        let of = |name: &str, what: &str| {
            st["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .and_then(|r| r[what].as_u64())
                .unwrap_or_else(|| panic!("no rule {name} in {st:#}"))
        };
        (of("a-internal", "allow"), of("default", "deny"))
    };
    let first = hits(&f);
    assert!(first.0 >= 1 && first.1 >= 1, "{first:?}");
    // Each edit is a generation; the third recycles the first one's kernel slot.
    for g in 2..=4u64 {
        f.write("10-a.yaml", &format!("# edit {g}\n{POLICY}"));
        f.wait_generation(g, "an edit");
        assert_eq!(
            hits(&f),
            first,
            "generation {g}: a reload neither resets nor double-counts a rule's hits"
        );
    }
    f.assert_reach(A, 7000, true, "the grant, later");
    let last = hits(&f);
    assert!(
        last.0 > first.0 && last.1 == first.1,
        "a new hit adds to the total: {first:?} then {last:?}"
    );
}

#[test]
fn events_decided_while_jumpd_was_down_name_their_rule_and_policy() {
    if !privileged("events_decided_while_jumpd_was_down_name_their_rule_and_policy") {
        return;
    }
    events_while_down_are_named(&[]);
}

/// The same with 25,000 rules before the granting one: their names and places (~4 MB) are more
/// than the 2 MiB the pinned rule table once held, when the restarted jumpd named such rules
/// by number.
#[test]
fn events_decided_while_jumpd_was_down_name_their_rule_in_a_large_policy() {
    if !privileged("events_decided_while_jumpd_was_down_name_their_rule_in_a_large_policy") {
        return;
    }
    let files: Vec<(String, String)> = (0..4)
        .map(|f| {
            let rules: String = (0..6_250)
                .map(|i| {
                    format!(
                        "  - {{name: filler-rule-with-a-long-name-that-fills-the-rule-table-{f}-{i:05}, \
                         users: [64100], allow: [{{to: [192.0.2.1], ports: [{}], proto: [tcp]}}]}}\n",
                        i + 1
                    )
                })
                .collect();
            (format!("05-filler-{f}.yaml"), format!("rules:\n{rules}"))
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    events_while_down_are_named(&files);
}

/// A crash of jumpd, a granted and a refused connect while it is down, and a restart: the
/// events name the rule, file and policy hash of the generation that decided them.
fn events_while_down_are_named(extra: &[(&str, &str)]) {
    let mut files = extra.to_vec();
    files.push(("10-a.yaml", POLICY));
    let mut f = Fixture::new(&files);
    f.start(&[]);
    let loaded = f.wait_generation(1, "start");
    let sha = loaded["jump_policy_sha256"].as_str().unwrap().to_string();
    // A crash: the pinned programs keep deciding and queue events nobody reads.
    f.jumpd_mut().kill();
    f.assert_reach(A, 7000, true, "granted while jumpd is down");
    f.assert_reach(B, 7000, false, "refused while jumpd is down");
    // The policy changes before the restart: the restarted jumpd's own generation differs.
    f.write("10-a.yaml", &format!("# changed while down\n{POLICY}"));
    f.jumpd_mut().restart().expect("restart jumpd");
    let allowed = f.jumpd().wait_event("A's connect of generation 1", |e| {
        e["jump_uid"] == A && e["jump_verdict"] == "allow" && e["jump_policy_generation"] == 1
    });
    assert_eq!(allowed["jump_rule_name"], "a-internal", "{allowed}");
    assert_eq!(allowed["jump_policy_sha256"], sha.as_str(), "{allowed}");
    assert!(
        allowed["jump_rule_file"]
            .as_str()
            .is_some_and(|f| f.ends_with("/10-a.yaml")),
        "{allowed}"
    );
    let refused = f.jumpd().wait_event("B's connect of generation 1", |e| {
        e["jump_uid"] == B && e["jump_verdict"] == "deny" && e["jump_policy_generation"] == 1
    });
    assert_eq!(refused["jump_rule_name"], "default", "{refused}");
    assert_eq!(refused["jump_policy_sha256"], sha.as_str(), "{refused}");
    let now = f.wait_generation(2, "the restart");
    assert_ne!(
        now["jump_policy_sha256"],
        sha.as_str(),
        "the restart loaded the edit"
    );
}

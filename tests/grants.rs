//! Just-in-time grants on the real kernel: a grant opens a destination for its time, the
//! kernel ends it by its own clock and its connections are closed, `jumpctl revoke` ends it at
//! once, it survives a jumpd restart, a session-scoped grant holds in one audit session only,
//! a policy deny still wins, and only admins may grant.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use jump_tests::{
    accounts::{TestGroup, TestUser},
    child::Guarded,
    netns::INTERNAL_V4,
    poll_until, privileged,
    probe::{self, unix_now, Held, Outcome, Placement, ECONNABORTED},
    Bins,
};
use serde_json::Value;

const A: u32 = 64411;

/// A may reach 7000 only; 7002 is denied to A outright (a grant must not open it).
fn policy() -> String {
    format!(
        "rules:\n  - name: a-base\n    users: [{A}]\n    allow: [{{to: {INTERNAL_V4}, ports: [7000]}}]\n\
         \x20 - name: a-never-7002\n    users: [{A}]\n    deny: [{{to: {INTERNAL_V4}, ports: [7002]}}]\n"
    )
}

/// The harness's world with echo servers on 7000–7002, `policy()`, and jumpd (in the jump host
/// namespace, where the sockets it revokes live) keeping its grants in `state`.
struct World {
    base: jump_tests::world::World,
    state: PathBuf,
    _state_dir: tempfile::TempDir,
}

impl std::ops::Deref for World {
    type Target = jump_tests::world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

impl World {
    fn new(extra: &[&str]) -> Self {
        let mut base = jump_tests::world::World::new(&[7000, 7001, 7002], &[("p.yaml", &policy())]);
        let state_dir = tempfile::tempdir().expect("state dir");
        let state = state_dir.path().join("state");
        let state_arg = state.display().to_string();
        let mut args = vec!["--no-watch", "--state-dir", &state_arg];
        args.extend_from_slice(extra);
        base.start_in_host(&args);
        World {
            base,
            state,
            _state_dir: state_dir,
        }
    }

    fn a(&self) -> Placement {
        Placement::user(A, &self.cg.path, &self.topo.host.path())
    }

    fn reach(&self, port: u16) -> Outcome {
        probe::run(
            &self.bins,
            &self.a(),
            "tcp",
            &format!("{INTERNAL_V4}:{port}"),
        )
    }

    /// `jumpctl ARGS` as root against this jumpd: (exit code, stdout, stderr).
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl_as(&self.bins, self.jumpd().socket(), &[], args)
    }

    /// Grants `dests` to A and returns (id, until as Unix time).
    fn grant(&self, args: &[&str]) -> (u64, Duration) {
        let mut all = vec!["grant", "--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.ctl(&all);
        assert_eq!(code, 0, "jumpctl grant: {out} {err}");
        let v: Value = serde_json::from_str(&out).expect("grant JSON");
        let until: jiff::Timestamp = v["grant"]["until"].as_str().unwrap().parse().unwrap();
        (
            v["grant"]["id"].as_u64().unwrap(),
            Duration::from_nanos(until.as_nanosecond() as u64),
        )
    }

    /// `jump-probe hold` as A for `secs`: returns once it is connected.
    fn hold(&self, port: u16, secs: u32) -> Held {
        let mut child = Command::new(&self.bins.probe)
            .arg("--cgroup")
            .arg(&self.cg.path)
            .arg("--netns")
            .arg(self.topo.host.path())
            .args(["--uid", &A.to_string(), "--gid", &A.to_string()])
            .args(["hold", &format!("{INTERNAL_V4}:{port}"), &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("jump-probe hold");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.contains("connected"),
            "hold should connect first: {line}"
        );
        Held::new(child, out)
    }
}

fn ctl_as(
    bins: &Bins,
    socket: &std::path::Path,
    setpriv: &[&str],
    args: &[&str],
) -> (i32, String, String) {
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
        .expect("jumpctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_grant_opens_for_its_time_and_its_connections_close_at_its_end() {
    if !privileged("a_grant_opens_for_its_time_and_its_connections_close_at_its_end") {
        return;
    }
    let w = World::new(&[]);
    assert!(w.reach(7001).is_refused(), "refused before the grant");

    let reason = "INC-42\nfake: line \x1b[2K";
    let target = format!("{INTERNAL_V4}:7001");
    let denied = format!("{INTERNAL_V4}:7002");
    let (id, until) = w.grant(&[
        &A.to_string(),
        &target,
        &denied,
        "--for",
        "4s",
        "--reason",
        reason,
    ]);
    assert_eq!(w.reach(7001), Outcome::Ok, "allowed during the grant");
    let e = w.jumpd().wait_event("the granted connect", |e| {
        e["jump_uid"] == A && e["jump_dst_port"] == 7001 && e["jump_verdict"] == "allow"
    });
    assert_eq!(e["jump_rule_name"], format!("grant-{id}"), "{e}");
    assert_eq!(
        e["jump_grant_reason"], reason,
        "the event carries the exact reason: {e}"
    );
    let m = e["message"].as_str().unwrap();
    assert!(!m.contains(['\n', '\x1b']), "one escaped line: {m:?}");
    assert!(
        w.reach(7002).is_refused(),
        "the policy's deny wins over the grant"
    );

    let given = w.jumpd().wait_line("the grant's journal entry", |l| {
        l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80b" && l["jump_grant_id"] == id
    });
    assert_eq!(
        (
            &given["jump_grant_uid"],
            &given["jump_granted_by_uid"],
            &given["jump_grant_reason"]
        ),
        (&A.into(), &0.into(), &reason.into()),
        "{given}"
    );
    let (code, out, _) = w.ctl(&["grants"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("{id} ")) && !out.contains('\x1b'),
        "{out}"
    );

    // An open session ends with the grant, by the kernel's clock and the edge's revocation.
    let mut h = w.hold(7001, 30);
    probe::closed_at_edge(&mut h, until, "at the grant's end");
    assert!(w.reach(7001).is_refused(), "refused after the grant");
    w.jumpd().wait_line("the grant's expiry entry", |l| {
        l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80d" && l["jump_grant_id"] == id
    });
    let (_, out, _) = w.ctl(&["grants", "--json"]);
    assert_eq!(out.trim(), "[]", "pruned");
}

#[test]
fn a_revoked_grant_ends_at_once_and_its_connections_close() {
    if !privileged("a_revoked_grant_ends_at_once_and_its_connections_close") {
        return;
    }
    let w = World::new(&[]);
    let target = format!("{INTERNAL_V4}:7001");
    let (id, _) = w.grant(&[
        &A.to_string(),
        &target,
        "--for",
        "1h",
        "--reason",
        "contractor",
    ]);
    assert_eq!(w.reach(7001), Outcome::Ok);
    let mut h = w.hold(7001, 30);
    let t0 = Instant::now();
    let (code, out, err) = w.ctl(&["revoke", &id.to_string()]);
    assert_eq!(code, 0, "{out} {err}");
    let v = h.verdict();
    assert_eq!(v["errno"], ECONNABORTED, "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "closed {:?} after the revocation",
        t0.elapsed()
    );
    assert!(w.reach(7001).is_refused(), "refused after the revocation");
    w.jumpd().wait_line("the revocation's journal entry", |l| {
        l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80c" && l["jump_grant_id"] == id
    });
    let (code, _, err) = w.ctl(&["revoke", &id.to_string()]);
    assert_eq!(code, 2, "no such grant any more: {err}");
}

#[test]
fn a_grant_survives_a_restart_of_jumpd() {
    if !privileged("a_grant_survives_a_restart_of_jumpd") {
        return;
    }
    let mut w = World::new(&[]);
    let target = format!("{INTERNAL_V4}:7001");
    let (id, _) = w.grant(&[
        &A.to_string(),
        &target,
        "--for",
        "1h",
        "--reason",
        "on call",
    ]);
    let (_, short_until) = w.grant(&[
        &A.to_string(),
        &format!("{INTERNAL_V4}:7000"),
        "--for",
        "2s",
        "--reason",
        "short",
    ]);
    assert!(
        w.state.join("grants.json").exists(),
        "kept in the state directory"
    );
    w.jumpd_mut().stop();
    // The short grant ends while jumpd is down: the kernel ends it, the restart logs it.
    poll_until(Duration::from_secs(10), "the short grant's end", || {
        (unix_now() >= short_until + Duration::from_millis(100)).then_some(())
    })
    .expect("the clock passes the short grant's end");
    w.jumpd_mut().restart().expect("restart");
    w.jumpd().wait_line("the restarted jumpd", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("jumpd ready") && m.contains("(adopted)"))
    });
    w.jumpd().wait_line(
        "the expiry of the grant that ended while jumpd was down",
        |l| l["message_id"] == "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80d" && l["jump_grant_id"] == id + 1,
    );
    let (_, out, _) = w.ctl(&["grants", "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(list[0]["id"], id, "{out}");
    assert_eq!(
        w.reach(7001),
        Outcome::Ok,
        "the kept grant holds after the restart"
    );
    let (code, _, _) = w.ctl(&["revoke", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(w.reach(7001).is_refused());
}

/// A root shell that opens an audit session for A (as `pam_loginuid` does at login) and prints
/// its session id; each line written to it runs one probe connect as A in that session.
struct Session {
    child: Guarded,
    out: BufReader<ChildStdout>,
    id: u32,
}

impl Session {
    fn open(w: &World, port: u16) -> Self {
        let script = format!(
            "echo {A} > /proc/self/loginuid && cat /proc/self/sessionid && echo && \
             while read _; do \"$0\" --cgroup \"$1\" --netns \"$2\" --uid {A} --gid {A} tcp {INTERNAL_V4}:{port}; done"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&w.bins.probe)
            .arg(&w.cg.path)
            .arg(w.topo.host.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("session shell");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let id = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no session id: {line:?}"));
        Self {
            child: Guarded::new(child),
            out,
            id,
        }
    }

    fn connect(&mut self) -> Value {
        writeln!(self.child.child.stdin.as_mut().unwrap()).unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("probe printed {line:?}"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Its loop ends with its input; the guard then ends what is left.
        drop(self.child.child.stdin.take());
    }
}

#[test]
fn a_session_scoped_grant_holds_only_in_its_session() {
    if !privileged("a_session_scoped_grant_holds_only_in_its_session") {
        return;
    }
    let w = World::new(&[]);
    let mut mine = Session::open(&w, 7001);
    let mut other = Session::open(&w, 7001);
    assert_ne!(mine.id, other.id, "two logins, two sessions");
    let target = format!("{INTERNAL_V4}:7001");
    w.grant(&[
        &A.to_string(),
        &target,
        "--for",
        "1h",
        "--reason",
        "this login",
        "--session",
        &mine.id.to_string(),
    ]);
    let v = mine.connect();
    assert_eq!(v["ok"], true, "the grant holds in its session: {v}");
    let v = other.connect();
    assert_eq!(
        v["errno"], 1,
        "and not in another session of the same user: {v}"
    );
    assert!(w.reach(7001).is_refused(), "nor outside any session");
}

#[test]
fn only_admins_may_grant_and_a_refusal_is_logged() {
    if !privileged("only_admins_may_grant_and_a_refusal_is_logged") {
        return;
    }
    let admins = TestGroup::new().expect("group");
    let user = TestUser::new(64412).expect("user");
    let w = World::new(&["--control-group", &admins.name]);
    // The process holds the admin gid (it passes the socket's mode) but /etc/group does not list
    // the user: jumpd refuses by the caller's credentials.
    let uid = format!("--reuid={}", user.uid);
    let groups = format!("--groups={}", admins.gid);
    let setpriv = [uid.as_str(), "--regid=100", groups.as_str()];
    let target = format!("{INTERNAL_V4}:7001");
    let (code, out, err) = ctl_as(
        &w.bins,
        w.jumpd().socket(),
        &setpriv,
        &[
            "grant",
            &user.uid.to_string(),
            &target,
            "--for",
            "1h",
            "--reason",
            "me",
        ],
    );
    assert_eq!(code, 4, "a non-admin's grant is refused: {out} {err}");
    w.jumpd().wait_line("the refusal", |l| {
        l["message"].as_str().is_some_and(|m| m.contains("refused"))
            && l["jump_peer_uid"] == user.uid
    });
    let (code, _, err) = ctl_as(&w.bins, w.jumpd().socket(), &setpriv, &["grants"]);
    assert_eq!(code, 4, "nor may a non-admin read the grants: {err}");
    let (_, out, _) = w.ctl(&["grants", "--json"]);
    assert_eq!(out.trim(), "[]", "nothing was granted");
    assert!(w.reach(7001).is_refused());
}

/// A grant names its granter's login only where a privileged process opened the granter's
/// session: an admin whose login uid was unset may claim anyone's once, and the grant must not
/// then name that person as having granted it.
#[test]
fn a_claimed_login_is_not_named_as_the_granter() {
    if !privileged("a_claimed_login_is_not_named_as_the_granter") {
        return;
    }
    let admins = TestGroup::new().expect("group");
    let admin = TestUser::new(64413).expect("user");
    admins.add(&admin).expect("gpasswd -a");
    let w = World::new(&["--control-group", &admins.name]);
    let target = format!("{INTERNAL_V4}:7001");
    // Sets the login uid (unset in this process tree) to 4242, then runs jumpctl grant.
    let grant_claiming = |setpriv: &[&str]| -> Value {
        let mut cmd = Command::new("setpriv");
        cmd.args(setpriv).args(["--", "sh", "-c"]).arg(
            "echo 4242 > /proc/self/loginuid && exec \"$0\" grant --json \"$1\" \"$2\" --for 1h --reason test",
        );
        let out = cmd
            .arg(&w.bins.jumpctl)
            .arg(A.to_string())
            .arg(&target)
            .env("JUMP_SOCKET", w.jumpd().socket())
            .output()
            .expect("jumpctl");
        assert!(
            out.status.success(),
            "{} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("grant JSON")["grant"].clone()
    };
    let uid = format!("--reuid={}", admin.uid);
    let claimed = grant_claiming(&[uid.as_str(), "--regid=100", "--init-groups"]);
    assert_eq!(claimed["granted_by_uid"], admin.uid);
    assert!(
        claimed.get("granted_by_login_uid").is_none(),
        "the admin opened that session: their claim is not the granter's login: {claimed}"
    );
    // The twin: root opening a session is how login does it, and is believed.
    let opened = grant_claiming(&["--reuid=0"]);
    assert_eq!(opened["granted_by_login_uid"], 4242, "{opened}");
}

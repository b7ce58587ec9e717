//! jumpd under hostile and careless operation, against the real kernel: a second jumpd on the
//! same cgroup, a policy directory replaced under it, a file rewritten in place during reloads,
//! an account deleted while the policy names it, a flood of control connections, a stream
//! of changes that must not postpone a reload forever, and a memory limit on jumpd's cgroup that
//! users' sockets can fill.

use std::{
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jump_tests::{
    accounts::TestUser,
    cgroup::{MemoryCgroup, TestCgroup},
    daemon::Jumpd,
    poll_until, privileged,
    probe::Lingering,
    Bins,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const LOADED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f802";

fn policy(uid: u32, port: u16) -> String {
    format!(
        "defaults:\n  egress: deny\nrules:\n  - name: grant\n    users: [{uid}]\n    allow: [{{to: [198.51.100.10], ports: [{port}]}}]\n"
    )
}

fn jumpctl(bins: &Bins, socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(&bins.jumpctl)
        .args(args)
        .env("JUMP_SOCKET", socket)
        .output()
        .expect("run jumpctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `jumpctl check UID DEST` against the live policy: true when allowed.
fn live_allows(bins: &Bins, j: &Jumpd, uid: u32, port: u16) -> bool {
    let (code, out, err) = jumpctl(
        bins,
        j.socket(),
        &["check", &uid.to_string(), &format!("198.51.100.10:{port}")],
    );
    assert!(code == 0 || code == 1, "jumpctl check failed: {out}{err}");
    code == 0
}

/// A jumpd on `cgroup` beside a test's first one, with its own policy and control socket.
fn second_jumpd(
    bins: &Bins,
    policy_dir: &Path,
    cgroup: &Path,
    pin_dir: &Path,
    socket_dir: &Path,
) -> Command {
    let mut c = Command::new(&bins.jumpd);
    c.arg("--policy-dir")
        .arg(policy_dir)
        .arg("--cgroup")
        .arg(cgroup)
        .arg("--pin-dir")
        .arg(pin_dir)
        .arg("--control-socket")
        .arg(socket_dir.join("b.sock"))
        .args(["--log-format", "json"]);
    c
}

fn loaded_lines(j: &Jumpd) -> Vec<Value> {
    j.lines()
        .into_iter()
        .filter(|l| l["message_id"] == LOADED)
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write policy file");
}

#[test]
fn a_second_jumpd_on_the_same_cgroup_fails_and_changes_nothing() {
    if !privileged("a_second_jumpd_on_the_same_cgroup_fails_and_changes_nothing") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let first = tempfile::tempdir().unwrap();
    write(first.path(), "p.yaml", &policy(64101, 7000));
    let a = Jumpd::start(&bins, first.path(), &cg.path, &[]).expect("first jumpd");
    let second = tempfile::tempdir().unwrap();
    write(second.path(), "p.yaml", &policy(64102, 7001));
    let sock = tempfile::tempdir().unwrap();
    let out = second_jumpd(&bins, second.path(), &cg.path, &a.pin_root, sock.path())
        .output()
        .expect("run a second jumpd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second jumpd must fail: {err}");
    assert!(
        err.contains("another jumpd is enforcing on") && err.contains("nothing was changed"),
        "the second jumpd says why: {err}"
    );
    assert!(
        !sock.path().join("b.sock").exists(),
        "the second jumpd never opened a control socket"
    );
    let (code, out, _) = jumpctl(&bins, a.socket(), &["status", "--json"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["generation"], 1,
        "the first jumpd's generation stands"
    );
    assert!(
        live_allows(&bins, &a, 64101, 7000),
        "the first policy is in force"
    );
    assert!(
        !live_allows(&bins, &a, 64102, 7001),
        "the second policy was not installed"
    );
    // `jumpd --detach` from outside would pull the pins from under the running jumpd.
    let e = a.detach(&bins).expect_err("detach while a jumpd runs");
    assert!(e.to_string().contains("another jumpd is enforcing"), "{e}");
}

#[test]
fn a_jumpd_refuses_a_cgroup_that_jump_programs_of_other_pins_enforce() {
    if !privileged("a_jumpd_refuses_a_cgroup_that_jump_programs_of_other_pins_enforce") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let first = tempfile::tempdir().unwrap();
    write(first.path(), "p.yaml", &policy(64101, 7000));
    let mut a = Jumpd::start(&bins, first.path(), &cg.path, &[]).expect("first jumpd");
    // Killed, as a crash or an upgrade that skipped `--detach` leaves it: its programs stay
    // attached and hold no lock.
    a.kill();
    // Another pin directory (or pin layout) would attach a second set beside the first.
    let other_root = PathBuf::from(format!("{}-other", a.pin_root.display()));
    let second = tempfile::tempdir().unwrap();
    write(second.path(), "p.yaml", &policy(64102, 7001));
    let sock = tempfile::tempdir().unwrap();
    let mut b = second_jumpd(&bins, second.path(), &cg.path, &other_root, sock.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a second jumpd");
    let exited = poll_until(Duration::from_secs(20), "the second jumpd to exit", || {
        b.try_wait().ok().flatten()
    });
    if exited.is_err() {
        // It started beside the first: stop it and take its set away again, then fail.
        let _ = b.kill();
        let _ = b.wait();
        let detach = Command::new(&bins.jumpd)
            .arg("--cgroup")
            .arg(&cg.path)
            .arg("--pin-dir")
            .arg(&other_root)
            .args(["--log-format", "json", "--detach"])
            .output();
        let removed = std::fs::remove_dir_all(&other_root);
        panic!(
            "the second jumpd started beside the first instead of refusing \
             (its set detached: {detach:?}; its pins removed: {removed:?})"
        );
    }
    let out = b.wait_with_output().expect("the second jumpd's output");
    let exists = other_root.exists();
    let _ = std::fs::remove_dir_all(&other_root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second jumpd must fail: {err}");
    assert!(
        err.contains("already runs jump programs") && err.contains("nothing was changed"),
        "the second jumpd says why: {err}"
    );
    assert!(!exists, "the refused jumpd created no pins");
    // Its own pins' jumpd is no stranger: the restart adopts them and its policy stands.
    a.restart().expect("restart the first jumpd");
    a.wait_line("the adopting start", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("jumpd ready") && m.contains("(adopted)"))
    });
    assert!(
        live_allows(&bins, &a, 64101, 7000),
        "the first policy is in force"
    );
    assert!(
        !live_allows(&bins, &a, 64102, 7001),
        "the second policy was not installed"
    );
}

#[test]
fn a_replaced_policy_directory_is_watched_again_and_reloaded() {
    if !privileged("a_replaced_policy_directory_is_watched_again_and_reloaded") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let root = tempfile::tempdir().unwrap();
    let v = |n: u32| root.path().join(format!("v{n}"));
    let link = root.path().join("current");
    std::fs::create_dir(v(1)).unwrap();
    write(&v(1), "p.yaml", &policy(64111, 7001));
    std::os::unix::fs::symlink(v(1), &link).unwrap();
    let j = Jumpd::start(&bins, &link, &cg.path, &[]).expect("jumpd");

    // 1. Symlink swap, as `ln -sfn` and deployment tools do it: a new link renamed over.
    std::fs::create_dir(v(2)).unwrap();
    write(&v(2), "p.yaml", &policy(64111, 7002));
    let tmp = root.path().join("current.tmp");
    std::os::unix::fs::symlink(v(2), &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    j.wait_generation(2);
    assert!(
        live_allows(&bins, &j, 64111, 7002),
        "v2 after the symlink swap"
    );

    // 2. rm and recreate the directory the link points to.
    std::fs::remove_dir_all(v(2)).unwrap();
    std::fs::create_dir(v(2)).unwrap();
    write(&v(2), "p.yaml", &policy(64111, 7003));
    j.wait_generation(3);
    assert!(live_allows(&bins, &j, 64111, 7003), "after rm and recreate");

    // 3. Rename a new directory into place (the old one moved aside).
    std::fs::create_dir(v(3)).unwrap();
    write(&v(3), "p.yaml", &policy(64111, 7004));
    std::fs::rename(v(2), root.path().join("old")).unwrap();
    std::fs::rename(v(3), v(2)).unwrap();
    j.wait_generation(4);
    assert!(live_allows(&bins, &j, 64111, 7004), "after the rename");
    // The directory moved aside is no longer watched.
    write(&root.path().join("old"), "p.yaml", &policy(64111, 7005));
    // A window in which nothing may happen: a reload of the old directory would show within it.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        loaded_lines(&j).len(),
        4,
        "a change in the old directory reloads nothing"
    );
}

#[test]
fn a_file_rewritten_in_place_is_never_applied_half_written() {
    if !privileged("a_file_rewritten_in_place_is_never_applied_half_written") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let dir = tempfile::tempdir().unwrap();
    let allow = "defaults:\n  egress: deny\nrules:\n  - name: grant\n    users: [\"*\"]\n    allow: [{to: [198.51.100.0/24], ports: [22]}]\n";
    let deny = "rules:\n  - name: block\n    users: [64121]\n    deny: [{to: [198.51.100.10]}]\n";
    write(dir.path(), "10-allow.yaml", allow);
    write(dir.path(), "20-deny.yaml", deny);
    let j = Jumpd::start(&bins, dir.path(), &cg.path, &[]).expect("jumpd");
    // An editor's in-place save: truncate, pause, write half, pause, write the rest. Meanwhile
    // SIGHUP asks for reloads as fast as they come.
    let path = dir.path().join("20-deny.yaml");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hups = {
        let stop = stop.clone();
        let pid = j.pid();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP);
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    for _ in 0..5 {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (a, b) = deny.split_at(deny.len() / 2);
        f.write_all(a.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        f.write_all(b.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGHUPs go on once the file is whole: those reloads apply it (while it was being
    // written, reloads waited for it or were refused as "kept changing"). Wait for two of them.
    poll_until(
        Duration::from_secs(10),
        "two reloads that read the whole file",
        || {
            let unchanged = j
                .lines()
                .into_iter()
                .filter(|l| l["jump_policy_unchanged"] == true)
                .count();
            (unchanged >= 2).then_some(())
        },
    )
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hups.join().unwrap();
    // The file ends as it began, so a reload that read it whole changes nothing: any
    // generation after the first applied a half-written file.
    let unchanged = j
        .lines()
        .into_iter()
        .filter(|l| l["jump_policy_unchanged"] == true)
        .count();
    assert!(unchanged >= 2, "the SIGHUPs did reload: {unchanged}");
    let loaded = loaded_lines(&j);
    assert_eq!(
        loaded.len(),
        1,
        "a half-written deny file was applied: {loaded:#?}"
    );
    assert!(
        !live_allows(&bins, &j, 64121, 22),
        "the deny holds at the end"
    );
}

#[test]
fn a_deleted_account_loses_its_grants_in_the_next_generation() {
    if !privileged("a_deleted_account_loses_its_grants_in_the_next_generation") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let user = TestUser::new(64131).expect("test user");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.yaml",
        &format!(
            "defaults:\n  egress: deny\nrules:\n  - name: named\n    users: [{}]\n    allow: [{{to: [198.51.100.10], ports: [22]}}]\n",
            user.name
        ),
    );
    let j = Jumpd::start(&bins, dir.path(), &cg.path, &[]).expect("jumpd");
    assert!(
        live_allows(&bins, &j, 64131, 22),
        "granted while the account exists"
    );
    let name = user.name.clone();
    drop(user); // userdel: /etc/passwd is rewritten, the watch reloads
    j.wait_generation(2);
    assert!(
        !live_allows(&bins, &j, 64131, 22),
        "a uid recycled for the next account must not inherit the grant"
    );
    j.wait_line("the warning about the vanished account", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("user `{name}` no longer exists")))
    });
    // Reloads are not frozen by the name: the next one still succeeds (the policy compiles
    // as before, so it keeps generation 2 rather than being rejected).
    j.signal(Signal::SIGHUP);
    j.wait_line("the SIGHUP reload succeeding", |l| {
        l["jump_policy_unchanged"] == true && l["jump_policy_generation"] == 2
    });
    let (code, _, err) = jumpctl(
        &bins,
        j.socket(),
        &["validate", &dir.path().display().to_string()],
    );
    assert_eq!(code, 1, "validate still calls it an error");
    assert!(err.contains(&format!("unknown user `{name}`")), "{err}");
}

#[test]
fn control_connections_are_capped_and_idle_ones_closed() {
    if !privileged("control_connections_are_capped_and_idle_ones_closed") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", &policy(64141, 7000));
    let j = Jumpd::start(&bins, dir.path(), &cg.path, &[]).expect("jumpd");
    // 1,100 idle connections, as in the report that exhausted jumpd's descriptors.
    let idle: Vec<UnixStream> = (0..1100)
        .filter_map(|_| UnixStream::connect(j.socket()).ok())
        .collect();
    assert!(idle.len() > 64, "connections were made: {}", idle.len());
    // Reloads still work: they need descriptors for the policy files.
    write(dir.path(), "p.yaml", &policy(64141, 7001));
    j.wait_generation(2);
    let errors: Vec<Value> = j
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("Too many open files"))
        })
        .collect();
    assert!(errors.is_empty(), "no descriptor exhaustion: {errors:#?}");
    // A request beyond the cap is told so at once, it does not hang.
    let t = Instant::now();
    let (code, out, err) = jumpctl(&bins, j.socket(), &["status"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "status answered promptly"
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("busy"), "the refusal says why: {err}{out}");
    // The idle connections are closed after the idle timeout, and status works again.
    poll_until(
        Duration::from_secs(30),
        "status answers once idle connections are closed",
        || (jumpctl(&bins, j.socket(), &["status"]).0 == 0).then_some(()),
    )
    .unwrap();
    drop(idle);
}

#[test]
fn a_stream_of_changes_does_not_postpone_a_reload_beyond_the_maximum_delay() {
    if !privileged("a_stream_of_changes_does_not_postpone_a_reload_beyond_the_maximum_delay") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "10-grant.yaml", &policy(64151, 7000));
    write(
        dir.path(),
        "00-other.yaml",
        "zones:\n  z: [198.51.100.0/24]\n",
    );
    let j = Jumpd::start(&bins, dir.path(), &cg.path, &[]).expect("jumpd");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Churn: a relevant change every 100 ms, forever (as `chfn` in a loop rewrites /etc/passwd;
    // here a file of the policy directory, so the test never touches the host's accounts).
    let churn = {
        let stop = stop.clone();
        let other: PathBuf = dir.path().join("00-other.yaml");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let f = std::fs::File::options().append(true).open(&other).unwrap();
                f.set_modified(std::time::SystemTime::now()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let revoked_at = Instant::now();
    write(dir.path(), "10-grant.yaml", &policy(64151, 7001));
    poll_until(
        Duration::from_secs(10),
        "the revocation is loaded despite the churn",
        || (!live_allows(&bins, &j, 64151, 7000)).then_some(()),
    )
    .unwrap();
    let took = revoked_at.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert!(
        took < Duration::from_secs(5),
        "reloaded {took:?} after the change, while changes kept coming (maximum delay 2 s)"
    );
}

/// Every TCP and UDP socket's record is charged to jumpd's memory cgroup (the map's creator),
/// not to the user holding the socket: under a limit there, a user's sockets can push jumpd
/// over it and get it killed at its next allocation. jumpd says so at start, naming the limit;
/// without one it says nothing.
#[test]
fn a_memory_limit_that_users_sockets_can_fill_is_warned_about() {
    if !privileged("a_memory_limit_that_users_sockets_can_fill_is_warned_about") {
        return;
    }
    let bins = Bins::from_env();
    let mem = MemoryCgroup::new()
        .expect("memory cgroup")
        .expect("a memory controller (cgroup v1 `memory`, or cgroup2 handing it to children)");
    let cg = TestCgroup::new().expect("cgroup");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", &policy(64161, 7000));
    let prefix = mem.enter_prefix();
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let warned = |j: &Jumpd| {
        j.lines().into_iter().find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("limits jumpd's memory cgroup"))
        })
    };

    let j = Jumpd::start_prefixed(&bins, &prefix, dir.path(), &cg.path, &[]).expect("jumpd");
    assert_eq!(warned(&j), None, "no limit, no warning");
    let before = mem.usage();
    let flood = Lingering::start({
        let mut c = Command::new(&bins.probe);
        c.arg("--cgroup")
            .arg(&cg.path)
            .args(["--uid", "64161", "--gid", "64161", "--linger"])
            .args(["tcp-flood", "15000"]);
        c
    });
    assert!(
        flood.allowed(),
        "the user holds 15,000 sockets: {}",
        flood.verdict
    );
    let charged = mem.usage().saturating_sub(before);
    drop(flood);
    // A record with the kernel's own bookkeeping is a few hundred bytes; 128 leaves room for
    // jumpd's own memory moving meanwhile.
    assert!(
        charged >= 15_000 * 128,
        "the user's sockets should be charged to jumpd's memory cgroup: {charged} bytes"
    );
    drop(j);

    mem.set_limit(1 << 30).expect("limit");
    let j = Jumpd::start_prefixed(&bins, &prefix, dir.path(), &cg.path, &[]).expect("jumpd");
    let w = warned(&j).expect("jumpd warns of the limit");
    let m = w["message"].as_str().unwrap();
    assert!(
        m.contains(&mem.limit_file().display().to_string()) && m.contains("1073741824"),
        "the warning names the file and the limit: {m}"
    );
}

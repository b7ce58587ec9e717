//! Who a decision is about, under attack (issue 11, items 4, 6 and 7), on the real kernel with
//! `policies/tests/enforcement/policy.yaml`:
//! - uid 64001 (A): tcp+udp 7000 and icmp to the internal host; may listen on 8000
//! - uid 64002 (B): nothing
//!
//! Each test proves the refusal with a listener on the far side that sees nothing arrive, and
//! the granted twin with an echo that comes back.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use jump_tests::{
    netns::{Topology, INTERNAL_V4, INTERNAL_V6, INTERNET_V4},
    privileged,
    probe::{self, FarSide, Lingering, Outcome, Placement},
    Bins,
};

const A: u32 = 64001;

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/enforcement")
}

/// A directory of this test's own files (the subordinate uid file), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(jump_tests::unique("jump-ident-"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// Replaces `name` by rename, as `usermod` replaces /etc/subuid.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let tmp = self.0.join(format!("{name}+"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.0.join(name)).expect("rename");
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if !std::thread::panicking() {
                panic!("failed to remove `{}`: {e}", self.0.display());
            }
        }
    }
}

/// The harness's world: echo servers on the internal and internet hosts (tcp and udp
/// 7000/7001), `policies/tests/enforcement/policy.yaml` copied into its policy directory, and
/// jumpd in the jump host's namespace.
struct World {
    base: jump_tests::world::World,
}

impl std::ops::Deref for World {
    type Target = jump_tests::world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    fn new(extra: &[&str]) -> Self {
        let policy = std::fs::read_to_string(policy_dir().join("policy.yaml"))
            .expect("the enforcement policy");
        let mut base = jump_tests::world::World::bare(&[("policy.yaml", &policy)]);
        let specs = |a4: &str, a6: &str| -> Vec<String> {
            [7000, 7001]
                .iter()
                .flat_map(|p| {
                    [
                        format!("tcp:{a4}:{p}"),
                        format!("tcp:[{a6}]:{p}"),
                        format!("udp:{a4}:{p}"),
                    ]
                })
                .collect()
        };
        base.serve(&base.topo.internal.path(), &specs(INTERNAL_V4, INTERNAL_V6));
        base.serve(
            &base.topo.internet.path(),
            &specs(INTERNET_V4, "2001:db8:ff::10"),
        );
        base.start_in_host(extra);
        World { base }
    }

    fn at(&self, uid: u32) -> Placement {
        Placement::user(uid, &self.cg.path, &self.topo.host.path())
    }

    fn run(&self, uid: u32, op: &str, target: &str) -> Outcome {
        probe::run(&self.bins, &self.at(uid), op, target)
    }

    fn ok(&self, uid: u32, op: &str, target: &str) {
        assert_eq!(
            self.run(uid, op, target),
            Outcome::Ok,
            "uid {uid} should be able to `{op} {target}`"
        );
    }

    fn refused(&self, uid: u32, op: &str, target: &str) {
        let got = self.run(uid, op, target);
        assert!(
            got.is_refused(),
            "uid {uid} should get EPERM from `{op} {target}`, got {got:?}"
        );
    }

    /// A TCP listener on `port` of the internal host, as root: the far side of a refused
    /// attempt. `FarSide::nothing_arrived` proves the attempt never reached it.
    fn far_side(&self, port: u16) -> FarSide {
        Self::far_side_in(&self.bins, &self.topo, port)
    }

    fn far_side_in(bins: &Bins, topo: &Topology, port: u16) -> FarSide {
        FarSide::start(bins, &topo.internal.path(), port, 3)
    }
}

/// Item 4: a uid from A's subordinate range — what `newuidmap` maps a user namespace's root to —
/// is decided and logged as A. The probe sets that uid directly as root, which gives the task
/// the same kernel uid a user namespace would.
#[test]
fn a_subordinate_uid_is_decided_and_logged_as_its_owner() {
    if !privileged("a_subordinate_uid_is_decided_and_logged_as_its_owner") {
        return;
    }
    let scratch = Scratch::new();
    // A range far from any account, at an odd start, as Debian's useradd gives (100000).
    const FIRST: u32 = 2_000_100_000;
    let sub = FIRST + 4242;
    let file = scratch.write("subuid", "# no ranges yet\n");
    let w = World::new(&["--subuid-file", file.to_str().expect("utf-8 path")]);

    // Without a range the uid is nobody in particular: the default refuses it.
    w.refused(sub, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.jumpd().wait_event("the bare uid's refusal", |e| {
        e["jump_uid"] == sub && e["jump_ns_uid"].is_null() && e["jump_verdict"] == "deny"
    });

    // The range appears (by rename, as usermod writes it): jumpd reloads on its own.
    scratch.write("subuid", &format!("{A}:{FIRST}:65536\n"));
    w.jumpd().wait_generation(2);

    // Granted twins: what A may do, the subordinate uid may do, and the echo comes back.
    w.ok(sub, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.ok(sub, "tcp", &format!("[{INTERNAL_V6}]:7000"));
    w.ok(sub, "udp", &format!("{INTERNAL_V4}:7000"));
    w.ok(sub, "listen", "8000");
    let allowed = w
        .jumpd()
        .wait_event("the subordinate uid's grant, logged as A", |e| {
            e["jump_uid"] == A
                && e["jump_ns_uid"] == sub
                && e["jump_verdict"] == "allow"
                && e["jump_hook"] == "connect4"
        });
    let message = allowed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("({A}) as {sub} -> {INTERNAL_V4}:7000/tcp")),
        "the message names the owner and the namespaced uid: {message}"
    );

    // What A is refused, the subordinate uid is refused; nothing reaches the far side.
    let far = w.far_side(7002);
    w.refused(sub, "tcp", &format!("{INTERNAL_V4}:7002"));
    w.refused(sub, "tcp", &format!("{INTERNET_V4}:7000"));
    w.refused(sub, "udp", &format!("{INTERNAL_V4}:7001"));
    w.refused(sub, "listen", "8001");
    far.nothing_arrived("a subordinate uid connecting where its owner may not");
    for (hook, port) in [("connect4", 7002), ("bind6", 8001)] {
        w.jumpd()
            .wait_event(&format!("the refusal at {hook}, logged as A"), |e| {
                e["jump_uid"] == A
                    && e["jump_ns_uid"] == sub
                    && e["jump_verdict"] == "deny"
                    && e["jump_hook"] == hook
                    && e["jump_dst_port"] == port
            });
    }

    // The range's edges: the uid after it is nobody's again.
    w.ok(FIRST + 65_535, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.refused(FIRST + 65_536, "tcp", &format!("{INTERNAL_V4}:7000"));
}

/// `bpftool ARGS…`, failing with its output.
fn bpftool(args: &[&str]) -> String {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .expect("bpftool (installed by `cargo xtask setup`)");
    assert!(
        out.status.success(),
        "bpftool {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value bytes of `key` in a pinned map, as `bpftool -j map lookup` prints them.
fn map_value(map: &Path, key: &[u8]) -> Vec<u8> {
    let mut args = vec![
        "-j",
        "map",
        "lookup",
        "pinned",
        map.to_str().expect("utf-8"),
        "key",
    ];
    let key: Vec<String> = key.iter().map(|b| b.to_string()).collect();
    args.extend(key.iter().map(String::as_str));
    let v: serde_json::Value = serde_json::from_str(&bpftool(&args)).expect("bpftool JSON");
    v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no raw value in {v}"))
        .iter()
        .map(|b| {
            u8::from_str_radix(b.as_str().unwrap_or("").trim_start_matches("0x"), 16)
                .expect("hex byte")
        })
        .collect()
}

/// `bpftool map update pinned MAP key … value …`, as root on the host would.
fn map_update(map: &Path, key: &[u8], value: &[u8]) {
    let mut args: Vec<String> = [
        "map",
        "update",
        "pinned",
        map.to_str().expect("utf-8"),
        "key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(key.iter().map(|b| b.to_string()));
    args.push("value".into());
    args.extend(value.iter().map(|b| b.to_string()));
    bpftool(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The MESSAGE_ID of jumpd's alarm that its maps were rewritten.
const TAMPERED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80a";

/// Waits for jumpd's tampering alarm whose `JUMP_TAMPERED` names `what`, and returns it.
fn tamper_alarm(w: &World, name: &str, what: &str) -> serde_json::Value {
    w.jumpd().wait_line(name, |l| {
        l["message_id"] == TAMPERED
            && l["jump_tampered"]
                .as_str()
                .is_some_and(|t| t.contains(what))
    })
}

fn jumpctl_status(w: &World) -> serde_json::Value {
    let out = Command::new(&w.bins.jumpctl)
        .args(["status", "--json"])
        .env("JUMP_SOCKET", w.jumpd().socket())
        .output()
        .expect("jumpctl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "jumpctl status printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Item 6: root rewrites pinned map values while jumpd runs — the active slot's default action
/// and log mode (open everything, log nothing), then a user's entry (in the index array the
/// programs read, then in `JUMP_USERS`). jumpd notices within its
/// check period, says so at once as a crit alarm with its own MESSAGE_ID, shows it in
/// `jumpctl status`, and writes its image back, after which the refusals hold again.
#[test]
fn rewritten_maps_are_detected_reported_and_restored() {
    if !privileged("rewritten_maps_are_detected_reported_and_restored") {
        return;
    }
    const B: u32 = 64002;
    let w = World::new(&[]);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&w.cg.path).expect("cgroup"));
    let maps = w.jumpd().pin_root.join(format!("v6/cgroup-{ino}/maps"));
    w.refused(B, "tcp", &format!("{INTERNET_V4}:7000"));
    w.ok(A, "tcp", &format!("{INTERNAL_V4}:7000"));

    // 1. The slot settings: default allow, log nothing.
    let slot = map_value(&maps.join("JUMP_ACTIVE"), &[0, 0, 0, 0]);
    assert_eq!(slot.len(), 4);
    let mut config = map_value(&maps.join("JUMP_SLOTS"), &slot);
    assert_eq!(
        (config.len(), config[8], config[9]),
        (16, 0, 2),
        "generation, then default action deny and log mode all"
    );
    config[8] = 1;
    config[9] = 0;
    map_update(&maps.join("JUMP_SLOTS"), &slot, &config);
    let alarm = tamper_alarm(&w, "the tampering alarm", "JUMP_SLOTS");
    assert_eq!(
        alarm["level"], "ERROR",
        "journald PRIORITY 2 under journald: {alarm}"
    );
    assert_eq!(alarm["jump_restored"], true, "{alarm}");
    assert!(
        alarm["message"].as_str().is_some_and(|m| m.contains(
            "default action 1, log mode 0; jumpd wrote generation 1, default action 0, log mode 2"
        )),
        "the alarm says what was rewritten: {alarm}"
    );
    let status = jumpctl_status(&w);
    assert_eq!(status["counters"]["maps_tampered"], 1, "{status}");
    assert_eq!(
        status["integrity"]["last_tampering"]["restored"], true,
        "{status}"
    );

    // Restored: the default refuses and logs again; nothing reaches the far side.
    assert_eq!(map_value(&maps.join("JUMP_SLOTS"), &slot)[8..10], [0, 2]);
    let far = w.far_side(7002);
    w.refused(B, "tcp", &format!("{INTERNAL_V4}:7002"));
    w.refused(B, "tcp", &format!("{INTERNET_V4}:7000"));
    far.nothing_arrived("a refusal after the restore");
    w.jumpd().wait_event("the refusal, logged again", |e| {
        e["jump_uid"] == B && e["jump_verdict"] == "deny" && e["jump_dst_port"] == 7002
    });
    w.ok(A, "tcp", &format!("{INTERNAL_V4}:7000"));

    // 2. A user's entry where the programs read it (uids below 65,536: the index array): B
    // takes A's profile (A's grants).
    let slot_no = u32::from_ne_bytes(slot[..4].try_into().expect("4 bytes"));
    let index_of = |uid: u32| (slot_no * 65_536 + uid).to_ne_bytes();
    let a_entry = map_value(&maps.join("JUMP_UID_INDEX"), &index_of(A));
    assert_ne!(a_entry, [0; 8], "A is listed in the index");
    map_update(&maps.join("JUMP_UID_INDEX"), &index_of(B), &a_entry);
    tamper_alarm(
        &w,
        "the second alarm",
        "JUMP_UID_INDEX: 0 changed, 0 removed, 1 added",
    );
    assert_eq!(jumpctl_status(&w)["counters"]["maps_tampered"], 2);
    assert_eq!(
        map_value(&maps.join("JUMP_UID_INDEX"), &index_of(B)),
        [0; 8],
        "B's entry is unlisted again"
    );
    w.refused(B, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.ok(A, "tcp", &format!("{INTERNAL_V4}:7000"));

    // The same in `JUMP_USERS`, which keeps every listed uid: noticed and removed as well.
    let key_of = |uid: u32| [&slot[..], &uid.to_ne_bytes()[..]].concat();
    let a_profile = map_value(&maps.join("JUMP_USERS"), &key_of(A));
    map_update(&maps.join("JUMP_USERS"), &key_of(B), &a_profile);
    tamper_alarm(
        &w,
        "the users alarm",
        "JUMP_USERS: 0 changed, 0 removed, 1 added",
    );
    assert_eq!(jumpctl_status(&w)["counters"]["maps_tampered"], 3);
    w.refused(B, "tcp", &format!("{INTERNAL_V4}:7000"));
    w.ok(A, "tcp", &format!("{INTERNAL_V4}:7000"));

    // 3. The source check's list of local addresses: a spoofable source slipped in.
    let spoofed: Vec<u8> = "::ffff:203.0.113.99"
        .parse::<std::net::Ipv6Addr>()
        .expect("address")
        .octets()
        .to_vec();
    let addrs = maps.join("JUMP_LOCAL_ADDRS");
    map_update(&addrs, &spoofed, &2u32.to_ne_bytes());
    tamper_alarm(
        &w,
        "the third alarm",
        "JUMP_LOCAL_ADDRS: 0 changed, 0 removed, 1 added",
    );
    let mut lookup = vec![
        "map",
        "lookup",
        "pinned",
        addrs.to_str().expect("utf-8"),
        "key",
    ];
    let key: Vec<String> = spoofed.iter().map(|b| b.to_string()).collect();
    lookup.extend(key.iter().map(String::as_str));
    let gone = Command::new("bpftool")
        .args(&lookup)
        .output()
        .expect("bpftool");
    assert!(
        !gone.status.success(),
        "the slipped-in address should be removed again"
    );
}

/// Item 6 under a real journald: the tampering alarm is an entry of PRIORITY 2 (crit) with its
/// own MESSAGE_ID, while jumpd's other errors keep PRIORITY 3.
#[test]
fn the_tampering_alarm_is_a_crit_journal_entry() {
    use jump_tests::{
        child::Guarded,
        journal::{self, Journald},
    };
    if !privileged("the_tampering_alarm_is_a_crit_journal_entry") {
        return;
    }
    if let Some(why) = journal::unavailable() {
        panic!("the_tampering_alarm_is_a_crit_journal_entry cannot run: {why}");
    }
    let policy =
        std::fs::read_to_string(policy_dir().join("policy.yaml")).expect("the enforcement policy");
    // The harness's world for the cgroup and the policy directory; jumpd is this test's own,
    // logging to the journal.
    let w = jump_tests::world::World::bare(&[("policy.yaml", &policy)]);
    let journal = Journald::start().expect("journald");
    let scratch = Scratch::new();
    // The harness sweeps `jt<pid>x<n>` pin roots of dead test processes.
    let pin_root = PathBuf::from("/sys/fs/bpf").join(jump_tests::unique("jt"));
    struct Pins<'a>(&'a Path, &'a Path, &'a Bins);
    impl Drop for Pins<'_> {
        fn drop(&mut self) {
            let _ = Command::new(&self.2.jumpd)
                .arg("--cgroup")
                .arg(self.1)
                .arg("--pin-dir")
                .arg(self.0)
                .args(["--log-format", "json", "--detach"])
                .stdout(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _pins = Pins(&pin_root, &w.cg.path, &w.bins);
    let mut jumpd = Guarded::new(
        journal
            .command(&w.bins.jumpd)
            .arg("--policy-dir")
            .arg(w.policy.path())
            .arg("--cgroup")
            .arg(&w.cg.path)
            .arg("--pin-dir")
            .arg(&pin_root)
            .arg("--control-socket")
            .arg(scratch.0.join("jumpd.sock"))
            .args(["--log-format", "journald"])
            .spawn()
            .expect("start jumpd"),
    );
    let text = |e: &serde_json::Value, k: &str| e[k].as_str().map(String::from);
    journal.wait_entry("jumpd ready", |e| {
        text(e, "MESSAGE").is_some_and(|m| m.starts_with("jumpd ready"))
    });
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&w.cg.path).expect("cgroup"));
    let maps = pin_root.join(format!("v6/cgroup-{ino}/maps"));
    let slot = map_value(&maps.join("JUMP_ACTIVE"), &[0, 0, 0, 0]);
    let mut config = map_value(&maps.join("JUMP_SLOTS"), &slot);
    config[8] = 1;
    map_update(&maps.join("JUMP_SLOTS"), &slot, &config);
    let alarm = journal.wait_entry("the tampering alarm", |e| {
        text(e, "MESSAGE_ID").as_deref() == Some(TAMPERED)
    });
    assert_eq!(
        text(&alarm, "PRIORITY").as_deref(),
        Some("2"),
        "crit: {alarm}"
    );
    assert_eq!(
        text(&alarm, "JUMP_RESTORED").as_deref(),
        Some("true"),
        "{alarm}"
    );
    let alarms = journal
        .jumpd_entries()
        .into_iter()
        .filter(|e| text(e, "MESSAGE_ID") == text(&alarm, "MESSAGE_ID"))
        .count();
    assert_eq!(
        alarms, 1,
        "the alarm is written once, by the crit layer only"
    );
    jumpd.stop();
}

/// Item 7: a login uid names the person only when a privileged process opened its audit
/// session (as `pam_loginuid` in sshd, login and cron). A process of A whose login uid is unset
/// sets it to B — the kernel lets any process do that once — and its decisions are logged with
/// `login=?B (untrusted)` and `JUMP_LOGIN_TRUSTED=0`; the same login uid set by a root process
/// that stays root (the opener) while A works below it is reported as B.
#[test]
fn a_forged_login_uid_is_reported_as_untrusted() {
    if !privileged("a_forged_login_uid_is_reported_as_untrusted") {
        return;
    }
    const B: u32 = 64002;
    let w = World::new(&[]);
    let probe = |args: &[&str]| {
        let mut cmd = Command::new(&w.bins.probe);
        cmd.arg("--cgroup")
            .arg(&w.cg.path)
            .arg("--netns")
            .arg(w.topo.host.path())
            .args(["--uid", &A.to_string(), "--gid", &A.to_string()])
            .args(["--forge-loginuid", &B.to_string(), "--linger"])
            .args(args);
        Lingering::start(cmd)
    };
    let event = |pid: u32, verdict: &str| {
        w.jumpd()
            .wait_event(&format!("pid {pid}'s {verdict}"), |e| {
                e["jump_pid"] == pid && e["jump_verdict"] == verdict
            })
    };

    // Forged: granted and refused connects alike carry the claim, marked untrusted.
    let granted = probe(&["tcp", &format!("{INTERNAL_V4}:7000")]);
    assert_eq!(
        granted.verdict["ok"], true,
        "A's grant still works: {}",
        granted.verdict
    );
    let e = event(granted.pid(), "allow");
    assert_eq!(
        (&e["jump_login_uid"], &e["jump_login_trusted"]),
        (&B.into(), &0.into()),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(" login=?{B}({B}) (untrusted)"))),
        "the message marks the claim: {e}"
    );
    let far = w.far_side(7002);
    let refused = probe(&["tcp", &format!("{INTERNAL_V4}:7002")]);
    assert_eq!(refused.verdict["errno"], 1, "{}", refused.verdict);
    far.nothing_arrived("A's refused connect under a forged login uid");
    let e = event(refused.pid(), "deny");
    assert_eq!(
        (&e["jump_login_uid"], &e["jump_login_trusted"]),
        (&B.into(), &0.into()),
        "{e}"
    );
    drop((granted, refused));

    // Trusted twin: a root shell sets the login uid and stays, as sshd's privileged child does;
    // A's connect below it names B as the person.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!(
            "echo {B} > /proc/self/loginuid && \"$0\" --cgroup \"$1\" --netns \"$2\" --uid {A} --gid {A} tcp {INTERNAL_V4}:7000 && read _"
        ))
        .arg(&w.bins.probe)
        .arg(&w.cg.path)
        .arg(w.topo.host.path());
    let opened = Lingering::start(sh);
    assert_eq!(opened.verdict["ok"], true, "{}", opened.verdict);
    let e = w
        .jumpd()
        .wait_event("A's connect in a session root opened", |e| {
            e["jump_uid"] == A && e["jump_login_uid"] == B && e["jump_login_trusted"] == 1
        });
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(" login={B}({B})"))),
        "a trusted login uid is shown as is: {e}"
    );
}

/// Item 4 as an attacker does it: a real account, whose subordinate range `useradd` put in
/// /etc/subuid, enters a user namespace through `newuidmap` (`unshare --map-users`) and
/// connects as the namespace's root — the kernel sees the first subordinate uid. jumpd reads the
/// real /etc/subuid and decides and logs that connection as the account.
#[test]
fn a_user_namespace_of_a_real_account_is_decided_as_that_account() {
    use jump_tests::accounts::Accounts;
    if !privileged("a_user_namespace_of_a_real_account_is_decided_as_that_account") {
        return;
    }
    let mut accounts = Accounts::new().expect("accounts");
    let alice = accounts.user("alice", &[]).expect("useradd");
    let subuid = std::fs::read_to_string("/etc/subuid").expect("/etc/subuid");
    let Some(first) = subuid.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&alice.name.as_str())).then(|| f[1].parse::<u32>().ok())?
    }) else {
        panic!("useradd gave {} no subordinate uids: {subuid}", alice.name);
    };
    let policy = format!(
        "defaults: {{egress: deny, log: all, loopback: allow}}\nrules:\n  - name: alice-internal\n    users: [{}]\n    allow:\n      - {{to: [{INTERNAL_V4}], ports: [7000], proto: [tcp]}}\n",
        alice.name
    );
    let mut w = jump_tests::world::World::new(&[7000], &[("policy.yaml", &policy)]);
    w.start_in_host(&[]);
    let (bins, topo, cg, jumpd) = (&w.bins, &w.topo, &w.cg, w.jumpd());
    // Joins the cgroup and the jump host's namespace as root, then becomes alice, who maps
    // her subordinate range with newuidmap and runs the probe as the namespace's root.
    let as_namespace_root = |target: &str| -> serde_json::Value {
        let uid = alice.uid.to_string();
        let out = Command::new("sh")
            .arg("-c")
            .arg(
                "echo $$ > \"$1/cgroup.procs\" && exec nsenter --net=\"$2\" -- \
                 setpriv --reuid \"$3\" --regid \"$3\" --init-groups -- \
                 unshare --user --map-users=\"$4,0,65536\" --setuid 0 -- \"$0\" tcp \"$5\"",
            )
            .arg(&bins.probe)
            .arg(&cg.path)
            .arg(topo.host.path())
            .arg(&uid)
            .arg(first.to_string())
            .arg(target)
            .output()
            .expect("sh");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "no verdict from the namespaced probe: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let granted = as_namespace_root(&format!("{INTERNAL_V4}:7000"));
    assert_eq!(
        granted["ok"], true,
        "alice's grant holds in her namespace: {granted}"
    );
    jumpd.wait_event("the namespaced connect, as alice", |e| {
        e["jump_uid"] == alice.uid
            && e["jump_ns_uid"] == first
            && e["jump_user"] == alice.name.as_str()
            && e["jump_verdict"] == "allow"
    });
    let far = World::far_side_in(bins, topo, 7002);
    let refused = as_namespace_root(&format!("{INTERNAL_V4}:7002"));
    assert_eq!(
        refused["errno"], 1,
        "what alice may not, her namespace may not: {refused}"
    );
    far.nothing_arrived("a connect from alice's user namespace");
    jumpd.wait_event("the namespaced refusal, as alice", |e| {
        e["jump_uid"] == alice.uid && e["jump_ns_uid"] == first && e["jump_verdict"] == "deny"
    });
}

/// A user's own user and network namespace chooses how the kernel's socket-uid helper names
/// the owner of the user's sockets (`unshare -Urn` maps the user to 0): a listener that never
/// bound answers a connect with a SYN-ACK that has no record, which egress refuses. The event
/// (and the rate limit's budget it spends) must name the user, never root or anyone the
/// mapping picks.
#[test]
fn a_users_own_namespace_cannot_make_an_egress_event_name_root() {
    use jump_tests::accounts::TestUser;
    if !privileged("a_users_own_namespace_cannot_make_an_egress_event_name_root") {
        return;
    }
    let user = TestUser::new(64432).expect("user");
    let policy = "defaults: {egress: deny, log: all, loopback: allow}\nrules:\n  - name: root-internal\n    users: [0]\n    allow:\n      - {to: [198.51.100.0/24]}\n";
    let mut w = jump_tests::world::World::new(&[7000], &[("policy.yaml", policy)]);
    w.start_in_host(&[]);
    let (bins, cg, jumpd) = (&w.bins, &w.cg, w.jumpd());
    let src = "198.51.100.99";
    // Joins the cgroup as root, becomes the user, who makes a user and network namespace of
    // their own (mapped to its root) with SRC on its loopback device.
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "echo $$ > \"$1/cgroup.procs\" && exec setpriv --reuid \"$2\" --regid \"$2\" \
             --clear-groups -- unshare -Urn -- sh -c 'ip link set lo up && \
             ip addr add \"$1/32\" dev lo && exec \"$0\" self-connect \"$1\"' \"$0\" \"$3\"",
        )
        .arg(&bins.probe)
        .arg(&cg.path)
        .arg(user.uid.to_string())
        .arg(src)
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no verdict from the namespaced probe: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        verdict["ok"], false,
        "the SYN-ACK to {src} is refused, so the connect times out: {verdict}"
    );
    let e = jumpd.wait_event("the refused SYN-ACK", |e| {
        e["jump_hook"] == "egress" && e["jump_dst_addr"] == src
    });
    assert_eq!(
        (&e["jump_uid"], &e["jump_verdict"]),
        (&serde_json::json!(user.uid), &serde_json::json!("deny")),
        "named as the user, who has no grant to {src} (root has one): {e}"
    );
}

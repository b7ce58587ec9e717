//! `cargo xtask run`: a jump host in a box. Builds the test topology under fixed names
//! (`jdemo-*` namespaces, among them an admin workstation `jdemo-ws`; the `jump-demo` cgroup),
//! creates the example users with SSH keys, starts a real sshd on the jump host inside the
//! enforced cgroup and a target sshd plus echo services on the internal network, and runs jumpd
//! in the foreground on that cgroup with `policies/`. Ctrl-C stops jumpd and removes everything
//! it created: processes, namespaces, cgroups, users, keys.
//!
//! `jump-demo run POLICY_DIR` is that demo, `jump-demo shell USER` is `cargo xtask shell USER`;
//! the binaries it runs come from `JUMPD_BIN`/`JUMPCTL_BIN`/`JUMP_PROBE_BIN`, as the tests'.
//! A binary of the test harness's crate because it is built from the harness's guards.
#![forbid(unsafe_code)]

use std::{
    path::Path,
    process::{Command, ExitCode},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use anyhow::Context;
use jump_tests::{
    accounts::Accounts,
    cgroup::TestCgroup,
    netns::{Topology, INTERNAL_V4, INTERNAL_V6, JUMP_V4},
    probe::Servers,
    ssh::{SshDir, Sshd, SshdSpec},
    Bins,
};

const NETNS: &str = "jdemo";
const CGROUP: &str = "jump-demo";
/// Where the target sshd runs: a cgroup of its own, not enforced (it is another machine).
const TARGET_CGROUP: &str = "jump-demo-target";
/// Keys, sshd configurations and the client's `ssh_config`.
const SSH_DIR: &str = "/tmp/jump-demo";
/// The example policy's principals: alice in group `ops`, bob with no grant, carol a
/// contractor.
const USERS: &[(&str, &[&str])] = &[("alice", &["ops"]), ("bob", &[]), ("carol", &[])];

/// The example policy's accounts; those the demo created (and only those) are removed on drop.
fn accounts() -> anyhow::Result<Accounts> {
    let mut acc = Accounts::fixed("jump demo");
    acc.ensure_group("ops")?;
    for (user, groups) in USERS {
        acc.ensure_user(user, groups)?;
    }
    Ok(acc)
}

fn instructions(ssh: &Path, policies: &Path, cg: &Path, jumpctl: &Path) -> String {
    let cfg = ssh.join("ssh_config");
    format!(
        "\n\
jump demo: a jump host in a box
  workstation  {NETNS}-ws    192.0.2.10      where you type ssh
  jump host    {NETNS}-host  {JUMP_V4}       sshd :22 in cgroup {cg}, enforced by jumpd
  internal     {NETNS}-int   {INTERNAL_V4}   sshd `target` :22; echo :53 :443 :3306 :5432
                            198.51.100.130  the `db` zone: echo :5432
  internet     {NETNS}-inet  203.0.113.10    echo :80 :443
  users alice (group ops), bob (no grant), carol (contractor hours); keys in {ssh}

In another terminal, define this alias, then try the commands below:

  alias jssh='ip netns exec {NETNS}-ws ssh -F {cfg}'

  jssh -J alice@jump alice@target id          # allowed: rule ops-ssh (alice is in ops)
  jssh -J bob@jump bob@target id              # refused: bob has no grant (see the deny line here)
  jssh alice@jump 'exec 3<>/dev/tcp/203.0.113.10/80'   # refused: the internet is closed
  jssh root@jump 'exec 3<>/dev/tcp/203.0.113.10/80'    # refused for root too
  jssh alice@jump 'exec 3<>/dev/tcp/198.51.100.130/5432 && echo db reachable'  # allowed: rule dba
  jssh -N -L 15432:198.51.100.130:5432 alice@jump      # a local forward; bob's would be refused

Each decision appears below as one line: verdict, user(uid) -> destination, the deciding rule
and its file:line:col. Change the policy: edit {policies}/20-access.yaml (e.g. add `users: [bob]`
to rule ops-ssh) and save: the watcher reloads it (or `kill -HUP <jumpd pid>`, not both); retry bob.
A shell on the jump host without ssh: `cargo xtask shell alice`. jumpctl is {jumpctl}.
Ctrl-C here stops everything and removes the namespaces, cgroups, users and keys.
",
        cg = cg.display(),
        cfg = cfg.display(),
        ssh = ssh.display(),
        policies = policies.display(),
        jumpctl = jumpctl.display(),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["run", policies] => run(&Bins::from_env(), Path::new(policies)),
        ["shell", user] => shell(user),
        _ => Err(anyhow::anyhow!(
            "usage: jump-demo run POLICY_DIR | jump-demo shell USER \
             (`cargo xtask run`, `cargo xtask shell USER`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(bins: &Bins, policies: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "the demo needs root (namespaces, cgroups, BPF): run `cargo xtask run` as root"
    );
    anyhow::ensure!(
        jump_tests::ssh::available(),
        "OpenSSH is missing: `cargo xtask setup` installs openssh-server and openssh-client"
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C reaches jumpd too (same process group); we only note it and clean up after.
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("failed to handle Ctrl-C")?;
    }
    // Locals drop in reverse order: sshds and their sessions, services, cgroups, users, keys,
    // namespaces.
    let topo = Topology::named_with_workstation(NETNS)?;
    let ssh = SshDir::at(Path::new(SSH_DIR))?;
    let _accounts = accounts()?;
    for user in USERS.iter().map(|u| u.0).chain(["root"]) {
        ssh.authorize(user)?;
    }
    ssh.write_client_config(&[
        ("jump", JUMP_V4),
        ("target", INTERNAL_V4),
        ("db", "198.51.100.130"),
    ])?;
    let cg = TestCgroup::named(CGROUP)?;
    let target_cg = TestCgroup::named(TARGET_CGROUP)?;
    let services = |ports: &[u16], a4: &str, a6: &str| -> Vec<String> {
        ports
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
    let _internal = Servers::start(
        bins,
        &topo.internal.path(),
        &services(&[53, 443, 3306, 5432], INTERNAL_V4, INTERNAL_V6),
    )?;
    // The database of the example policy's `db` zone (198.51.100.128/25).
    topo.internal
        .ip(&["addr", "add", "198.51.100.130/24", "dev", "int0"])?;
    topo.internal.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::130/64",
        "dev",
        "int0",
        "nodad",
    ])?;
    let _db = Servers::start(
        bins,
        &topo.internal.path(),
        &services(&[5432], "198.51.100.130", "2001:db8:1::130"),
    )?;
    let _internet = Servers::start(
        bins,
        &topo.internet.path(),
        &services(&[80, 443], "203.0.113.10", "2001:db8:ff::10"),
    )?;
    let users: Vec<&str> = USERS.iter().map(|u| u.0).collect();
    let _target_sshd = Sshd::start(
        &ssh,
        &SshdSpec {
            label: "target",
            netns: &topo.internal.path(),
            cgroup: &target_cg.path,
            listen: &[INTERNAL_V4],
            port: 22,
            users: &users,
            log_level: "VERBOSE",
        },
    )?;
    let mut jump_users = users.clone();
    jump_users.push("root");
    // Started before jumpd attaches: its listening socket predates enforcement, while every
    // session it forks (running as the user) creates its sockets under jumpd's programs.
    let _jump_sshd = Sshd::start(
        &ssh,
        &SshdSpec {
            label: "jump",
            netns: &topo.host.path(),
            cgroup: &cg.path,
            listen: &[JUMP_V4],
            port: 22,
            users: &jump_users,
            log_level: "VERBOSE",
        },
    )?;
    // The demo's own pin root, so its detach can never touch a real deployment's state.
    let pins = std::path::PathBuf::from("/sys/fs/bpf/jump-demo");
    println!(
        "{}",
        instructions(&ssh.path, policies, &cg.path, &bins.jumpctl)
    );
    // In the jump host's namespace, where the sockets it may have to revoke live.
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", topo.host.path().display()))
        .arg("--")
        .arg(&bins.jumpd)
        .arg("--policy-dir")
        .arg(policies)
        .arg("--cgroup")
        .arg(&cg.path)
        .arg("--pin-dir")
        .arg(&pins)
        .args(["--log-format", "text"])
        .spawn()
        .context("failed to start jumpd")?;
    println!("jumpd pid {}", child.id());
    let status = child.wait()?;
    // jumpd leaves its programs pinned and enforcing when it stops; the demo removes them.
    let detached = Command::new(&bins.jumpd)
        .arg("--cgroup")
        .arg(&cg.path)
        .arg("--pin-dir")
        .arg(&pins)
        .args(["--log-format", "text", "--detach"])
        .status();
    let _ = std::fs::remove_dir_all(&pins);
    if !stop.load(Ordering::SeqCst) && !status.success() {
        anyhow::bail!("jumpd exited with {status}");
    }
    anyhow::ensure!(detached?.success(), "jumpd --detach failed");
    println!("demo: cleaning up");
    Ok(())
}

/// `cargo xtask shell USER`: a login-like shell as USER in the demo's cgroup and namespace.
/// The cgroup is joined first, then the namespace: `ip netns exec` would remount /sys and hide
/// the cgroup2 mount.
fn shell(user: &str) -> anyhow::Result<()> {
    let cg = jump_tests::cgroup::cgroup2_root()
        .context("no cgroup2 mount")?
        .join(CGROUP);
    anyhow::ensure!(
        cg.exists(),
        "the demo is not running (no cgroup `{}`); start it with `cargo xtask run` (as root)",
        cg.display()
    );
    let probe = "probe() { timeout 3 bash -c \"exec 3<>/dev/tcp/$1/$2\" && echo \"$1:$2 reachable\"; }; export -f probe";
    let script = format!(
        "echo $$ > {cg}/cgroup.procs && exec nsenter --net=/run/netns/{NETNS}-host \
         setpriv --reuid={user} --regid={user} --init-groups \
         env -i HOME=/tmp USER={user} PATH=/usr/local/bin:/usr/bin:/bin TERM=\"$TERM\" \
         PS1='{user}@jump-demo:\\w\\$ ' bash --norc -c '{probe}; exec bash --norc -i'",
        cg = cg.display()
    );
    let status = Command::new("sh").arg("-c").arg(script).status()?;
    anyhow::ensure!(
        status.success() || status.code().is_some(),
        "shell ended with {status}"
    );
    Ok(())
}

//! `cargo xtask run`: a jump host in a box. Builds the test topology under fixed names
//! (`jdemo-*` namespaces, the `jump-demo` cgroup), creates the example users, starts echo
//! services standing in for internal servers and the internet, and runs jumpd in the foreground
//! on the demo cgroup with `policies/`. Ctrl-C stops jumpd and removes everything it created.

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use anyhow::Context;
use jump_tests::{cgroup::TestCgroup, netns::Topology, probe::Servers, sh, Bins};

use crate::workspace_root;

const NETNS: &str = "jdemo";
const CGROUP: &str = "jump-demo";
/// The example policy's principals: alice and bob in group `ops`, carol a contractor.
const USERS: &[(&str, &[&str])] = &[("alice", &["ops"]), ("bob", &[]), ("carol", &[])];

/// Users and groups the demo created (and so removes), in creation order.
#[derive(Default)]
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    fn ensure() -> anyhow::Result<Self> {
        let mut acc = Accounts::default();
        let exists = |db: &str, name: &str| {
            Command::new("getent")
                .args([db, name])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for group in ["ops"] {
            if !exists("group", group) {
                sh(&["groupadd", group])?;
                acc.groups.push(group.into());
            }
        }
        for (user, groups) in USERS {
            if !exists("passwd", user) {
                let mut args = vec![
                    "useradd",
                    "--no-create-home",
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                ];
                let list = groups.join(",");
                if !groups.is_empty() {
                    args.extend(["--groups", &list]);
                }
                args.push(user);
                sh(&args)?;
                acc.users.push(user.to_string());
            }
        }
        Ok(acc)
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in self.users.iter().rev() {
            let _ = sh(&["userdel", u]);
        }
        for g in self.groups.iter().rev() {
            let _ = sh(&["groupdel", g]);
        }
    }
}

pub fn run(bins: &Bins, args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        // A real deployment: jumpd with the operator's arguments, nothing else.
        let status = Command::new(&bins.jumpd).args(args).status()?;
        anyhow::ensure!(status.success(), "jumpd exited with {status}");
        return Ok(());
    }
    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "the demo needs root (namespaces, cgroups, BPF): run `sudo cargo xtask run`"
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C reaches jumpd too (same process group); we only note it and clean up after.
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("failed to handle Ctrl-C")?;
    }
    let topo = Topology::named(NETNS)?;
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
        &services(
            &[22, 53, 443, 3306, 5432],
            "198.51.100.10",
            "2001:db8:1::10",
        ),
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
    let _accounts = Accounts::ensure()?;
    let cg = TestCgroup::named(CGROUP)?;
    let policies = workspace_root().join("policies");
    println!(
        "\njump demo: a jump host in network namespace `{NETNS}-host`, enforced on cgroup `{}`.\n\
         internal servers: 198.51.100.10 and 198.51.100.130 (ports 22 53 443 3306 5432), the \"internet\": 203.0.113.10 (80 443)\n\n\
         In another terminal, open a shell on the jump host as a user:\n\
         \x20   sudo cargo xtask shell alice     (group ops: ssh to the DMZ, the database)\n\
         \x20   sudo cargo xtask shell bob       (no grants)\n\
         and try, for example:\n\
         \x20   probe 198.51.100.10 22           (alice: allowed; bob: Operation not permitted)\n\
         \x20   probe 198.51.100.130 5432        (alice: allowed by rule dba)\n\
         \x20   probe 203.0.113.10 80            (everyone: refused, the internet is closed)\n\
         \x20   probe 203.0.113.10 443           (alice: passes, logged \"would-deny\" by the audit rule rollout)\n\
         Edit a file in {} and send SIGHUP to jumpd (pid below) to reload.\n\
         Ctrl-C here stops jumpd and removes the namespaces, the cgroup and the demo users.\n",
        cg.path.display(),
        policies.display(),
    );
    let mut child = Command::new(&bins.jumpd)
        .arg("--policy-dir")
        .arg(&policies)
        .arg("--cgroup")
        .arg(&cg.path)
        .args(["--log-format", "text"])
        .spawn()
        .context("failed to start jumpd")?;
    println!("jumpd pid {}", child.id());
    let status = child.wait()?;
    if !stop.load(Ordering::SeqCst) && !status.success() {
        anyhow::bail!("jumpd exited with {status}");
    }
    println!("demo: cleaning up");
    Ok(())
}

/// `cargo xtask shell USER`: a login-like shell as USER in the demo's cgroup and namespace.
/// The cgroup is joined first, then the namespace: `ip netns exec` would remount /sys and hide
/// the cgroup2 mount.
pub fn shell(user: &str) -> anyhow::Result<()> {
    let cg = jump_tests::cgroup::cgroup2_root()
        .context("no cgroup2 mount")?
        .join(CGROUP);
    anyhow::ensure!(
        cg.exists(),
        "the demo is not running (no cgroup `{}`); start it with `sudo cargo xtask run`",
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

//! End to end with the real OpenSSH: what an administrator types (`ssh -J jump target`, `-L`,
//! `-D`, `-R`, a shell on the jump host), decided by the kernel programs on the cgroup the jump
//! host's sshd runs in, each decision checked against the event jumpd logged for it.
//!
//! ```text
//!   workstation ──ssh──▶ jump host: sshd (in the enforced cgroup; its sessions run as the user)
//!   (ssh clients)            │ forwarding sockets and shells, decided per user
//!                            ├──▶ internal: sshd `target` :22, echo :7000 (granted) :7001
//!                            └──▶ internet: echo :7000, never granted
//! ```
//!
//! The policy is `policies/tests/ssh/`, with the test's account names filled in: alice (group
//! ops) may reach the internal ssh port (rule `ops-ssh`) and port 7000 (`alice-service`), bob
//! has no grant, root only listens on 22. Both users may log in and forward (sshd allows it):
//! every refusal below comes from the kernel, shown by `Operation not permitted` and by a deny
//! event naming the user.

use std::{
    fs,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use jump_tests::{
    accounts::{Accounts, User},
    cgroup::TestCgroup,
    daemon::Jumpd,
    netns::{
        in_netns, Topology, INTERNAL_V4, INTERNAL_V6, INTERNET_V4, INTERNET_V6, JUMP_V4,
        WORKSTATION_V4,
    },
    privileged,
    probe::Servers,
    ssh::{self, echo, socks5_echo, wait_listening, Finished, SshDir, Sshd, SshdSpec},
    Bins,
};
use nix::sys::signal::Signal;

/// Bound on every ssh command the tests run to completion.
const RUN: Duration = Duration::from_secs(20);
const REFUSED: &str = "Operation not permitted";

/// The jump host in a box. Fields drop in declaration order: the servers (and every session
/// left in their cgroups) first, then jumpd, the cgroups, the accounts, keys and namespaces.
struct Bastion {
    jump_sshd: Sshd,
    _target_sshd: Sshd,
    _internal: Servers,
    _internet: Servers,
    jumpd: Jumpd,
    _enforced: TestCgroup,
    _target_cg: TestCgroup,
    alice: User,
    bob: User,
    root: User,
    _accounts: Accounts,
    policy: PathBuf,
    ssh: SshDir,
    topo: Topology,
    bins: Bins,
}

fn template_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/tests/ssh")
}

/// Copies the policy template into `to`, naming the test's accounts.
fn write_policy(to: &Path, names: &[(&str, &str)]) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(template_dir()).expect("policies/tests/ssh") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let mut text = fs::read_to_string(&path).unwrap();
            for (var, name) in names {
                text = text.replace(var, name);
            }
            fs::write(to.join(path.file_name().unwrap()), text).unwrap();
        }
    }
}

impl Bastion {
    fn up(test: &str) -> Option<Self> {
        if !privileged(test) {
            return None;
        }
        if !ssh::available() {
            let msg = format!("SKIPPED {test}: OpenSSH is not installed (run `cargo xtask setup`)");
            assert!(std::env::var_os("JUMP_TESTS_REQUIRED").is_none(), "{msg}");
            eprintln!("{msg}");
            return None;
        }
        let bins = Bins::from_env();
        let topo = Topology::with_workstation().expect("topology");
        let ssh = SshDir::new().expect("ssh directory");
        let mut accounts = Accounts::new().expect("accounts");
        let ops = accounts.group("ops").expect("group ops");
        let alice = accounts.user("alice", &[&ops]).expect("user alice");
        let bob = accounts.user("bob", &[]).expect("user bob");
        let root = User {
            name: "root".into(),
            uid: 0,
            gid: 0,
        };
        for u in [&alice, &bob, &root] {
            ssh.authorize(&u.name).expect("keys");
        }
        ssh.write_client_config(&[("jump", JUMP_V4), ("target", INTERNAL_V4)])
            .expect("client config");
        let policy = ssh.path.join("policies");
        write_policy(
            &policy,
            &[("$alice", &alice.name), ("$bob", &bob.name), ("$ops", &ops)],
        );
        let enforced = TestCgroup::new().expect("enforced cgroup");
        let target_cg = TestCgroup::new().expect("target cgroup");
        // In the jump host's namespace: revocation closes the sockets of jumpd's namespace.
        let jumpd = Jumpd::start_in(&bins, Some(&topo.host.path()), &policy, &enforced.path, &[])
            .expect("jumpd");
        let echo_specs = |a4: &str, a6: &str, ports: &[u16]| -> Vec<String> {
            ports
                .iter()
                .flat_map(|p| [format!("tcp:{a4}:{p}"), format!("tcp:[{a6}]:{p}")])
                .collect()
        };
        let internal = Servers::start(
            &bins,
            &topo.internal.path(),
            &echo_specs(INTERNAL_V4, INTERNAL_V6, &[7000, 7001]),
        )
        .expect("internal services");
        let internet = Servers::start(
            &bins,
            &topo.internet.path(),
            &echo_specs(INTERNET_V4, INTERNET_V6, &[7000, 22]),
        )
        .expect("internet services");
        let target_sshd = Sshd::start(
            &ssh,
            &SshdSpec {
                label: "target",
                netns: &topo.internal.path(),
                cgroup: &target_cg.path,
                listen: &[INTERNAL_V4],
                port: 22,
                users: &[&alice.name, &bob.name],
                log_level: "VERBOSE",
            },
        )
        .expect("target sshd");
        let jump_sshd = Sshd::start(
            &ssh,
            &SshdSpec {
                label: "jump",
                netns: &topo.host.path(),
                cgroup: &enforced.path,
                listen: &[JUMP_V4],
                port: 22,
                users: &[&alice.name, &bob.name, "root"],
                log_level: "DEBUG1",
            },
        )
        .expect("jump sshd");
        Some(Self {
            jump_sshd,
            _target_sshd: target_sshd,
            _internal: internal,
            _internet: internet,
            jumpd,
            _enforced: enforced,
            _target_cg: target_cg,
            alice,
            bob,
            root,
            _accounts: accounts,
            policy,
            ssh,
            topo,
            bins,
        })
    }

    /// Asserts that the jump host's sshd tried to connect to `addr:port` and the kernel
    /// refused it: sshd config allowed the channel (`connect failed` reaches the client, not
    /// `administratively prohibited`), and connect(2) returned EPERM (sshd's debug log).
    fn expect_sshd_refused(&self, addr: &str, port: u16, client_stderr: &str) {
        assert!(
            client_stderr.contains("open failed: connect failed"),
            "sshd should accept the channel and fail to connect: {client_stderr}"
        );
        // debug1: connect_next: host 198.51.100.10 ([198.51.100.10]:22): Operation not permitted
        let needle = format!("[{addr}]:{port}): {REFUSED}");
        let log = self.jump_sshd.log();
        assert!(
            log.iter().any(|l| l.contains(&needle)),
            "the jump host's sshd should log EPERM from connect to {addr}:{port}: {log:#?}"
        );
    }

    fn ws(&self) -> PathBuf {
        self.topo.ws().path()
    }

    /// `ssh ARGS…` from the workstation, to completion.
    fn run(&self, args: &[&str]) -> Finished {
        self.ssh.run(&self.ws(), args, RUN)
    }

    /// The event of `who`'s TCP connection to `addr:port`: asserts its verdict, user name and
    /// rule (`default`, or the rule's name with its location in the test's policy directory).
    fn expect_event(&self, who: &User, addr: &str, port: u16, verdict: &str, rule: &str) {
        let what = format!("{} (uid {}) -> {addr}:{port}/tcp", who.name, who.uid);
        let e = self.jumpd.wait_event(&what, |e| {
            e["jump_uid"] == who.uid
                && e["jump_dst_addr"] == addr
                && e["jump_dst_port"] == port
                && e["jump_proto"] == "tcp"
        });
        assert_eq!(e["jump_verdict"], verdict, "verdict of {what}: {e:#}");
        assert_eq!(
            e["jump_user"],
            who.name.as_str(),
            "the event of {what} names the user: {e:#}"
        );
        let got = e["jump_rule"].as_str().unwrap_or_default();
        if rule == "default" {
            assert_eq!(got, "default", "{what} is decided by no rule: {e:#}");
        } else {
            let prefix = format!("{rule} ({}/", self.policy.display());
            assert!(
                got.starts_with(&prefix),
                "{what} should be decided by rule `{rule}` with its file:line:col, got `{got}`"
            );
        }
    }
}

fn user_at(u: &User, host: &str) -> String {
    format!("{}@{host}", u.name)
}

#[test]
fn proxy_jump_reaches_a_granted_target_and_the_kernel_refuses_a_user_without_grant() {
    let Some(b) = Bastion::up(
        "proxy_jump_reaches_a_granted_target_and_the_kernel_refuses_a_user_without_grant",
    ) else {
        return;
    };
    let (alice, bob) = (&b.alice, &b.bob);

    let ok = b.run(&[
        "-J",
        &user_at(alice, "jump"),
        &user_at(alice, "target"),
        "echo hello from $(id -un)",
    ]);
    assert_eq!(
        (ok.status, ok.stdout.trim()),
        (Some(0), format!("hello from {}", alice.name).as_str()),
        "alice (group ops) should reach the internal sshd through the jump host: {ok:?}"
    );
    b.expect_event(alice, INTERNAL_V4, 22, "allow", "ops-ssh");

    // bob may log in and forward (sshd allows both): the refusal is the kernel's.
    let shell = b.run(&[&user_at(bob, "jump"), "true"]);
    assert_eq!(
        shell.status,
        Some(0),
        "bob can log in to the jump host: {shell:?}"
    );
    let no = b.run(&[
        "-J",
        &user_at(bob, "jump"),
        &user_at(bob, "target"),
        "echo should not run",
    ]);
    assert!(
        no.status.is_some_and(|s| s != 0) && !no.stdout.contains("should not run"),
        "bob has no grant: ssh -J should fail, promptly: {no:?}"
    );
    b.expect_sshd_refused(INTERNAL_V4, 22, &no.stderr);
    b.expect_event(bob, INTERNAL_V4, 22, "deny", "default");
}

#[test]
fn local_and_socks_forwards_reach_granted_ports_only() {
    let Some(b) = Bastion::up("local_and_socks_forwards_reach_granted_ports_only") else {
        return;
    };
    let ws = b.ws();
    let (alice, bob) = (&b.alice, &b.bob);
    let forwards = [
        (17000, format!("{INTERNAL_V4}:7000")),
        (17001, format!("{INTERNAL_V4}:7001")),
        (17002, format!("[{INTERNAL_V6}]:7000")),
        (17003, format!("{INTERNET_V4}:7000")),
        (17004, format!("[{INTERNET_V6}]:7000")),
    ];
    let mut args = vec![
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-D",
        "127.0.0.1:11080",
    ];
    let specs: Vec<String> = forwards
        .iter()
        .map(|(l, to)| format!("127.0.0.1:{l}:{to}"))
        .collect();
    for s in &specs {
        args.extend(["-L", s]);
    }
    let alice_at = user_at(alice, "jump");
    args.push(&alice_at);
    let mut client = b.ssh.ssh(&ws, &args).expect("ssh -L/-D");
    for port in forwards.iter().map(|f| f.0).chain([11080]) {
        assert!(
            wait_listening(&ws, port, Duration::from_secs(10)),
            "ssh should listen on 127.0.0.1:{port} on the workstation; stderr: {}",
            client.stderr()
        );
    }
    let local = |port: u16| {
        in_netns(&ws, || {
            let to: SocketAddr = ([127, 0, 0, 1], port).into();
            TcpStream::connect_timeout(&to, Duration::from_secs(3)).and_then(echo)
        })
    };
    let socks = |to: &str| {
        let to: SocketAddr = to.parse().unwrap();
        in_netns(&ws, || socks5_echo(([127, 0, 0, 1], 11080).into(), to))
    };

    // -L
    assert!(local(17000).is_ok(), "-L to a granted port should echo");
    b.expect_event(alice, INTERNAL_V4, 7000, "allow", "alice-service");
    assert!(
        local(17002).is_ok(),
        "-L to a granted port over IPv6 should echo"
    );
    b.expect_event(alice, INTERNAL_V6, 7000, "allow", "alice-service");
    for (port, addr, what) in [
        (17001, INTERNAL_V4, "an ungranted internal port"),
        (17003, INTERNET_V4, "the internet"),
        (17004, INTERNET_V6, "the internet over IPv6"),
    ] {
        assert!(local(port).is_err(), "-L to {what} should fail");
        let p = if port == 17001 { 7001 } else { 7000 };
        b.expect_event(alice, addr, p, "deny", "default");
    }

    // -D: the same destinations through the SOCKS proxy. The events are the ones asserted
    // above (same user and destination); what matters here is the outcome.
    assert!(
        socks(&format!("{INTERNAL_V4}:7000")).is_ok(),
        "-D to a granted port should echo"
    );
    for to in [
        format!("{INTERNAL_V4}:7001"),
        format!("{INTERNET_V4}:7000"),
        format!("[{INTERNET_V6}]:7000"),
        format!("{INTERNET_V4}:22"),
    ] {
        assert!(socks(&to).is_err(), "-D to {to} should fail");
    }
    b.expect_event(alice, INTERNET_V4, 22, "deny", "default");
    assert!(
        client.wait(Duration::ZERO).is_none(),
        "refused channels must not end alice's ssh session: {}",
        client.stderr()
    );
    drop(client);

    // bob: the same forward that works for alice.
    let bob_at = user_at(bob, "jump");
    let mut bob_fwd = b
        .ssh
        .ssh(
            &ws,
            &[
                "-N",
                "-L",
                &format!("127.0.0.1:18000:{INTERNAL_V4}:7000"),
                &bob_at,
            ],
        )
        .expect("ssh -L for bob");
    assert!(
        wait_listening(&ws, 18000, Duration::from_secs(10)),
        "bob's ssh -L should listen; stderr: {}",
        bob_fwd.stderr()
    );
    assert!(
        local(18000).is_err(),
        "bob has no grant: his -L should fail"
    );
    b.expect_event(bob, INTERNAL_V4, 7000, "deny", "default");
    bob_fwd.kill();
    b.expect_sshd_refused(INTERNAL_V4, 7000, &bob_fwd.stderr());
}

#[test]
fn from_a_shell_on_the_jump_host_the_internet_is_closed_to_everyone_root_included() {
    let Some(b) = Bastion::up(
        "from_a_shell_on_the_jump_host_the_internet_is_closed_to_everyone_root_included",
    ) else {
        return;
    };
    // Outside the enforced cgroup the jump host does reach the internet: each refusal below
    // is the kernel program's, not a missing route.
    in_netns(&b.topo.host.path(), || {
        let to: SocketAddr = format!("{INTERNET_V4}:7000").parse().unwrap();
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).and_then(echo)
    })
    .expect("the internet is reachable from the jump host's namespace when not enforced");

    let tcp = |u: &User, host: &str, port: u16| -> Finished {
        b.run(&[
            &user_at(u, "jump"),
            &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}' && echo reachable"),
        ])
    };
    let reachable = |u: &User, host: &str, port: u16| {
        let r = tcp(u, host, port);
        assert_eq!(
            (r.status, r.stdout.trim()),
            (Some(0), "reachable"),
            "{} should reach {host}:{port} from a shell on the jump host: {r:?}",
            u.name
        );
    };
    let refused = |u: &User, host: &str, port: u16| {
        let r = tcp(u, host, port);
        assert!(
            r.status.is_some_and(|s| s != 0)
                && !r.stdout.contains("reachable")
                && r.stderr.contains(REFUSED),
            "{} should be refused (EPERM) on {host}:{port} from a shell on the jump host: {r:?}",
            u.name
        );
    };
    let (alice, bob, root) = (&b.alice, &b.bob, &b.root);
    for u in [alice, bob, root] {
        refused(u, INTERNET_V4, 7000);
        b.expect_event(u, INTERNET_V4, 7000, "deny", "default");
        refused(u, INTERNET_V6, 7000);
        b.expect_event(u, INTERNET_V6, 7000, "deny", "default");
    }
    reachable(alice, INTERNAL_V4, 7000);
    b.expect_event(alice, INTERNAL_V4, 7000, "allow", "alice-service");
    refused(alice, INTERNAL_V4, 7001);
    b.expect_event(alice, INTERNAL_V4, 7001, "deny", "default");
    for u in [bob, root] {
        refused(u, INTERNAL_V4, 7000);
        b.expect_event(u, INTERNAL_V4, 7000, "deny", "default");
    }
}

/// The event of a refused listener of `who` on `port`, however the bind hook names its port.
fn expect_listen_refused(b: &Bastion, who: &User, port: u16) {
    let e = b
        .jumpd
        .wait_event(&format!("{} listening on {port}", who.name), |e| {
            e["jump_uid"] == who.uid
                && e["jump_hook"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("bind"))
                && ["jump_dst_port", "jump_src_port", "jump_local_port"]
                    .iter()
                    .any(|f| e[f] == port)
        });
    assert_eq!(e["jump_verdict"], "deny", "{e:#}");
    assert_eq!(e["jump_user"], who.name.as_str(), "{e:#}");
}

#[test]
fn remote_forward_listens_on_the_jump_host_only_with_a_listen_grant() {
    let Some(b) = Bastion::up("remote_forward_listens_on_the_jump_host_only_with_a_listen_grant")
    else {
        return;
    };
    let ws = b.ws();
    let host = b.topo.host.path();
    let _back = Servers::start(&b.bins, &ws, &["tcp:127.0.0.1:7100".into()]).expect("echo");
    let remote = |u: &User, port: u16| {
        b.ssh
            .ssh(
                &ws,
                &[
                    "-N",
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-R",
                    &format!("127.0.0.1:{port}:127.0.0.1:7100"),
                    &user_at(u, "jump"),
                ],
            )
            .expect("ssh -R")
    };

    // Granted (`alice-reverse`): the listener works, back through the tunnel.
    let mut granted = remote(&b.alice, 9000);
    assert!(
        wait_listening(&host, 9000, Duration::from_secs(10)),
        "alice's -R 9000 should listen on the jump host: {}",
        granted.stderr()
    );
    in_netns(&host, || {
        TcpStream::connect_timeout(&"127.0.0.1:9000".parse().unwrap(), Duration::from_secs(3))
            .and_then(echo)
    })
    .expect("the granted remote forward carries traffic back to the workstation");
    assert!(
        granted.wait(Duration::ZERO).is_none(),
        "{}",
        granted.stderr()
    );
    granted.kill();

    // Not granted: sshd's bind is refused, ssh exits (ExitOnForwardFailure).
    for (u, port) in [(&b.alice, 9001), (&b.bob, 9000)] {
        let mut c = remote(u, port);
        let status = c.wait(RUN);
        assert!(
            status.is_some_and(|s| !s.success())
                && c.stderr()
                    .contains(&format!("port forwarding failed for listen port {port}")),
            "{}'s -R {port} should be refused: status {status:?}, stderr {}",
            u.name,
            c.stderr()
        );
        expect_listen_refused(&b, u, port);
    }
}

#[test]
fn removing_a_grant_cuts_an_established_proxy_jump_session() {
    let Some(b) = Bastion::up("removing_a_grant_cuts_an_established_proxy_jump_session") else {
        return;
    };
    let alice = &b.alice;
    let mut session = b
        .ssh
        .ssh(
            &b.ws(),
            &[
                "-J",
                &user_at(alice, "jump"),
                &user_at(alice, "target"),
                "echo connected; exec sleep 120",
            ],
        )
        .expect("ssh -J");
    assert!(
        session.wait_stdout("connected", RUN),
        "alice's session should be up: {}",
        session.stderr()
    );
    b.expect_event(alice, INTERNAL_V4, 22, "allow", "ops-ssh");

    // The policy edit: the grant's file goes, and jumpd reloads on SIGHUP.
    fs::remove_file(b.policy.join("20-ops-ssh.yaml")).unwrap();
    let cut_from = Instant::now();
    b.jumpd.signal(Signal::SIGHUP);
    b.jumpd.wait_generation(2);
    // Promptly: before the ssh keepalives (2 s x 3 on client and servers) would notice a
    // connection whose packets the egress backstop merely drops.
    let status = session.wait(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| !s.success()),
        "alice's forwarded session should be cut at once when her grant is gone, still \
         {status:?} after {:?}: {}",
        cut_from.elapsed(),
        session.stderr()
    );

    // And a new one is refused by the kernel.
    let again = b.run(&[
        "-J",
        &user_at(alice, "jump"),
        &user_at(alice, "target"),
        "true",
    ]);
    assert!(
        again.status.is_some_and(|s| s != 0),
        "without the grant ssh -J should be refused: {again:?}"
    );
    b.expect_sshd_refused(INTERNAL_V4, 22, &again.stderr);
    b.jumpd
        .wait_event("alice's refused ssh -J after the revocation", |e| {
            e["jump_uid"] == alice.uid
                && e["jump_dst_addr"] == INTERNAL_V4
                && e["jump_dst_port"] == 22
                && e["jump_verdict"] == "deny"
                && e["jump_rule"] == "default"
        });
}

/// The value of `NAME=value` in a line of the remote script's output.
fn said<'a>(out: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the shell should print {name}=…: {out:?}"))
}

#[test]
fn a_login_shells_refused_connection_names_the_sessions_ssh_client_not_the_users_claim() {
    let Some(b) = Bastion::up(
        "a_login_shells_refused_connection_names_the_sessions_ssh_client_not_the_users_claim",
    ) else {
        return;
    };
    let alice = &b.alice;
    // sshd execs alice's login shell (`bash -c`), which connects itself (`:` is a builtin, so
    // the redirection's connect is the shell's own) and stays alive, so its /proc entry can be
    // compared with the event. Then a child claims another client in its environment.
    let script = format!(
        "echo SSH_CONNECTION=$SSH_CONNECTION; echo PID=$$; \
         : 3<>/dev/tcp/{INTERNET_V4}/7000; echo REFUSED=$?; \
         SSH_CONNECTION='203.0.113.66 4444 203.0.113.1 22' SSH_CLIENT='203.0.113.66 4444 22' \
         bash -c ': 3<>/dev/tcp/{INTERNET_V4}/22'; echo FORGED=$?; sleep 20; echo done"
    );
    let mut session = b
        .ssh
        .ssh(&b.ws(), &[&user_at(alice, "jump"), &script])
        .expect("ssh");
    assert!(
        session.wait_stdout("FORGED=", RUN),
        "alice's shell should run: {} {}",
        session.stdout(),
        session.stderr()
    );
    let out = session.stdout();
    assert_ne!(
        said(&out, "REFUSED"),
        "0",
        "the kernel refuses the internet"
    );
    assert!(session.stderr().contains(REFUSED), "{}", session.stderr());
    // sshd's own view of the connection, as it told the shell: client, port, server, port.
    let conn: Vec<&str> = said(&out, "SSH_CONNECTION").split(' ').collect();
    assert_eq!(
        (conn.len(), conn[0], conn[2], conn[3]),
        (4, WORKSTATION_V4, JUMP_V4, "22"),
        "sshd's SSH_CONNECTION: {out}"
    );
    let pid: u32 = said(&out, "PID").parse().unwrap();
    let proc_of = |file: &str| {
        fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{file} of alice's shell: {e}"))
    };
    let session_id = proc_of("sessionid");
    assert_ne!(
        session_id, "4294967295",
        "pam_loginuid gives the login an audit session"
    );
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();

    let e = b.jumpd.wait_event("alice's shell -> internet:7000", |e| {
        e["jump_uid"] == alice.uid
            && e["jump_dst_addr"] == INTERNET_V4
            && e["jump_dst_port"] == 7000
    });
    assert_eq!(e["jump_verdict"], "deny", "{e:#}");
    assert_eq!(
        e["jump_pid"], pid,
        "the login shell itself connected: {e:#}"
    );
    assert_eq!(e["jump_comm"], "bash", "{e:#}");
    assert_eq!(
        e["jump_exe"],
        exe.to_str().unwrap(),
        "the shell's executable: {e:#}"
    );
    assert_eq!(e["jump_login_uid"], alice.uid, "{e:#}");
    assert_eq!(
        e["jump_session_id"].to_string(),
        session_id.trim(),
        "the shell's audit session: {e:#}"
    );
    assert_eq!(
        (
            e["jump_ssh_client"].as_str(),
            e["jump_ssh_client_port"].to_string(),
            e["jump_ssh_server"].as_str(),
            e["jump_ssh_server_port"].to_string(),
        ),
        (
            Some(WORKSTATION_V4),
            conn[1].to_string(),
            Some(JUMP_V4),
            "22".to_string()
        ),
        "the session's TCP connection as the jump host's sshd holds it: {e:#}"
    );

    // The child's environment names 203.0.113.66: the event still names the real client.
    let forged = b.jumpd.wait_event("alice's child -> internet:22", |e| {
        e["jump_uid"] == alice.uid && e["jump_dst_addr"] == INTERNET_V4 && e["jump_dst_port"] == 22
    });
    assert_eq!(
        (
            forged["jump_ssh_client"].as_str(),
            forged["jump_ssh_client_port"].to_string()
        ),
        (Some(WORKSTATION_V4), conn[1].to_string()),
        "SSH_CONNECTION in the environment is the user's word, not the session's client: {forged:#}"
    );
    assert_eq!(
        forged["jump_session_id"], e["jump_session_id"],
        "{forged:#}"
    );
    session.kill();
}

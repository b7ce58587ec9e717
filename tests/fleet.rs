//! A fleet of jump hosts on one policy in etcd (issue 17), against a real etcd started by the
//! test on loopback (temporary data directory, free ports) and three jumpd, each enforcing on
//! a child cgroup of its own whose probes run in a network namespace of its own:
//! - `push` reaches every host within 2 s and each enforces it (probes in each namespace);
//! - an invalid push is refused and changes nothing; an invalid policy written with `etcdctl`
//!   is rejected by every host, which keep the old one, and `fleet` exits 1 saying why;
//! - etcd killed: enforcement unchanged, `status` says since when etcd is unreachable; a jumpd
//!   restarted meanwhile enforces its cached revision (not its fallback directory); etcd back:
//!   every host catches up on a push made meanwhile; a host that dies leaves `fleet`'s list;
//! - mutual TLS with certificates the test makes (openssl): a client without a certificate is
//!   refused, jumpd and jumpctl with one work.
//!
//! uid 64601 is the test user (no account needed: the policies name it by number).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use jump_tests::{
    cgroup::TestCgroup,
    child::Guarded,
    daemon::Jumpd,
    netns::{Topology, INTERNAL_V4},
    privileged,
    probe::{self, Outcome, Placement, Servers},
    unique, Bins,
};

const U: u32 = 64601;
const UNREACHABLE_ID: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f821";

/// A policy allowing uid `U` tcp to the internal host on `ports`, nothing else.
fn policy(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!(
        "zones:\n  internal: [198.51.100.0/24]\nrules:\n  - name: fleet-test\n    users: [\"{U}\"]\n    allow: [{{to: internal, ports: [{}]}}]\n",
        ports.join(", ")
    )
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let p = std::env::temp_dir().join(unique(&format!("jump-fleet-{what}")));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    /// A policy directory holding `files`.
    fn policy(what: &str, files: &[(&str, &str)]) -> Self {
        let d = Self::new(what);
        for (n, t) in files {
            std::fs::write(d.0.join(n), t).expect("write policy");
        }
        d
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The harness's `poll_until`, in seconds, panicking on a timeout.
fn poll_until<T>(secs: f64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    jump_tests::poll_until(Duration::from_secs_f64(secs), what, f).unwrap_or_else(|e| panic!("{e}"))
}

/// TLS material for etcd: paths of the CA, the server's and a client's certificate and key.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

/// etcd on loopback, killed (by pid) and its data removed on drop.
struct Etcd {
    child: Option<Guarded>,
    data: TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<Pki>,
}

impl Etcd {
    fn start(tls: Option<Pki>) -> Self {
        let mut e = Etcd {
            child: None,
            data: TempDir::new("etcd"),
            client_port: free_port(),
            peer_port: free_port(),
            tls,
        };
        e.run();
        e
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Starts etcd (again, on the same data) and waits until it answers.
    fn run(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "jt", "--data-dir"])
            .arg(self.data.0.join("data"))
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("jt={peer}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data.0.join("etcd.log")).expect("log"));
        if let Some(p) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&p.server.0)
                .arg("--key-file")
                .arg(&p.server.1)
                .arg("--trusted-ca-file")
                .arg(&p.ca)
                .arg("--client-cert-auth");
        }
        self.child = Some(Guarded::new(
            cmd.spawn()
                .expect("etcd (apt etcd-server; `cargo xtask setup`)"),
        ));
        poll_until(20.0, "etcd to answer", || {
            self.ctl(&["endpoint", "health"])
                .status
                .success()
                .then_some(())
        });
    }

    /// SIGKILL, as a crash or a partition would look to the hosts.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.url())
            .args(["--command-timeout", "3s"]);
        if let Some(p) = &self.tls {
            cmd.arg("--cacert")
                .arg(&p.ca)
                .arg("--cert")
                .arg(&p.client.0)
                .arg("--key")
                .arg(&p.client.1);
        }
        cmd.args(args).output().expect("etcdctl (apt etcd-client)")
    }

    /// `etcdctl ARGS -w json`, which must succeed; the revision it reports.
    fn write(&self, args: &[&str]) -> i64 {
        let mut all = args.to_vec();
        all.extend(["-w", "json"]);
        let out = self.ctl(&all);
        assert!(out.status.success(), "etcdctl {args:?}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
        v["header"]["revision"].as_i64().expect("revision")
    }

    /// The policy keys under `prefix` with their mod revisions.
    fn policy_keys(&self, prefix: &str) -> Vec<(String, i64)> {
        let out = self.ctl(&[
            "get",
            &format!("{prefix}policies/"),
            "--prefix",
            "-w",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
        v["kvs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap_or_default().to_string(),
                    kv["mod_revision"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One jump host: its namespaces (with an echo server on the internal host's 7000 and 7001),
/// its cgroup, its state directory and its jumpd.
struct Host {
    // Drop order: jumpd, then cgroup, servers, namespaces, state.
    jumpd: Jumpd,
    cg: TestCgroup,
    _servers: Servers,
    topo: Topology,
    node: String,
    _state: TempDir,
}

/// A jumpd on the etcd source, with `fallback` as its policy directory.
fn start_host(bins: &Bins, etcd: &Etcd, prefix: &str, fallback: &Path, extra: &[String]) -> Host {
    let topo = Topology::new().expect("topology");
    let servers = Servers::start(
        bins,
        &topo.internal.path(),
        &[
            format!("tcp:{INTERNAL_V4}:7000"),
            format!("tcp:{INTERNAL_V4}:7001"),
        ],
    )
    .expect("echo servers");
    let cg = TestCgroup::new().expect("cgroup");
    let state = TempDir::new("state");
    let node = unique("node");
    let url = etcd.url();
    let state_dir = state.0.display().to_string();
    let mut args: Vec<&str> = vec![
        "--policy-etcd",
        &url,
        "--etcd-prefix",
        prefix,
        "--node-name",
        &node,
        "--state-dir",
        &state_dir,
        "--no-watch",
    ];
    args.extend(extra.iter().map(String::as_str));
    let jumpd = Jumpd::start(bins, fallback, &cg.path, &args).expect("jumpd");
    Host {
        jumpd,
        cg,
        _servers: servers,
        topo,
        node,
        _state: state,
    }
}

impl Host {
    fn connects(&self, bins: &Bins, port: u16) -> bool {
        let at = Placement::user(U, &self.cg.path, &self.topo.host.path());
        match probe::run(bins, &at, "tcp", &format!("{INTERNAL_V4}:{port}")) {
            Outcome::Ok => true,
            o if o.is_refused() => false,
            o => panic!("probe to port {port} neither connected nor was refused: {o:?}"),
        }
    }

    /// Asserts the host enforces exactly `allowed` among ports 7000 and 7001.
    fn enforces(&self, bins: &Bins, allowed: &[u16], when: &str) {
        for port in [7000, 7001] {
            assert_eq!(
                self.connects(bins, port),
                allowed.contains(&port),
                "{when}: on {}, uid {U} to port {port} should be {}",
                self.node,
                if allowed.contains(&port) {
                    "allowed"
                } else {
                    "refused"
                }
            );
        }
    }

    fn status(&self, bins: &Bins) -> String {
        let out = Command::new(&bins.jumpctl)
            .arg("status")
            .arg("--socket")
            .arg(self.jumpd.socket())
            .output()
            .expect("jumpctl status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn jumpctl(bins: &Bins, args: &[&str]) -> Output {
    Command::new(&bins.jumpctl)
        .args(args)
        .output()
        .expect("jumpctl")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `jumpctl push`; returns the revision it printed.
fn push(bins: &Bins, dir: &Path, etcd: &str, prefix: &str, extra: &[String]) -> i64 {
    let mut args = vec![
        "push",
        dir.to_str().unwrap(),
        "--etcd",
        etcd,
        "--prefix",
        prefix,
    ];
    args.extend(extra.iter().map(String::as_str));
    let out = jumpctl(bins, &args);
    assert!(out.status.success(), "push should succeed: {}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim()
        .rsplit(' ')
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in `{line}`"))
}

/// `jumpctl fleet --json`: (exit code, report).
fn fleet(bins: &Bins, etcd: &str, prefix: &str, extra: &[String]) -> (i32, serde_json::Value) {
    let mut args = vec!["fleet", "--etcd", etcd, "--prefix", prefix, "--json"];
    args.extend(extra.iter().map(String::as_str));
    let out = jumpctl(bins, &args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("fleet json: {}", text(&out)));
    (out.status.code().unwrap_or(-1), v)
}

/// Waits until every one of `hosts` reports `revision` applied, and `fleet` exits 0.
fn all_applied(
    bins: &Bins,
    etcd: &str,
    prefix: &str,
    extra: &[String],
    hosts: usize,
    revision: i64,
    secs: f64,
) {
    poll_until(
        secs,
        &format!("all {hosts} hosts to apply revision {revision}"),
        || {
            let (code, v) = fleet(bins, etcd, prefix, extra);
            let list = v["hosts"].as_array().cloned().unwrap_or_default();
            (code == 0
                && list.len() == hosts
                && list.iter().all(|h| h["status"]["revision"] == revision))
            .then_some(())
        },
    );
}

#[test]
fn three_hosts_follow_one_policy_through_etcd_and_its_outages() {
    if !privileged("three_hosts_follow_one_policy_through_etcd_and_its_outages") {
        return;
    }
    let bins = Bins::from_env();
    let mut etcd = Etcd::start(None);
    let url = etcd.url();
    let prefix = format!("/{}/", unique("jt"));
    let v1 = TempDir::policy("v1", &[("10-access.yaml", &policy(&[7000]))]);
    let v2 = TempDir::policy("v2", &[("10-access.yaml", &policy(&[7001]))]);
    // The fallback directory allows nothing: a host that used it would be seen at once.
    let fallback = TempDir::policy("fallback", &[("10-access.yaml", "rules: []\n")]);
    let r1 = push(&bins, &v1.0, &url, &prefix, &[]);
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut hosts: Vec<Host> = (0..3)
        .map(|i| {
            let extra = if i == 0 {
                vec!["--metrics-listen".to_string(), metrics.clone()]
            } else {
                vec![]
            };
            start_host(&bins, &etcd, &prefix, &fallback.0, &extra)
        })
        .collect();
    all_applied(&bins, &url, &prefix, &[], 3, r1, 10.0);
    for h in &hosts {
        h.enforces(&bins, &[7000], "revision 1 from etcd");
    }

    // A push reaches every host within 2 s.
    let pushed = Instant::now();
    let r2 = push(&bins, &v2.0, &url, &prefix, &[]);
    all_applied(&bins, &url, &prefix, &[], 3, r2, 2.0);
    eprintln!("push to 3 hosts applied in {:?}", pushed.elapsed());
    for h in &hosts {
        h.enforces(&bins, &[7001], "after the push");
    }

    // An invalid push is refused before anything is written.
    let bad = TempDir::policy(
        "bad",
        &[("10-access.yaml", &policy(&[7001])), ("20-bad.yaml", "rules:\n  - name: x\n    users: [\"64601\"]\n    allow: [{to: 198.51.100.0/24, ports: [\"90-80\"]}]\n")],
    );
    let before = etcd.policy_keys(&prefix);
    let out = jumpctl(
        &bins,
        &[
            "push",
            bad.0.to_str().unwrap(),
            "--etcd",
            &url,
            "--prefix",
            &prefix,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an invalid push exits 1: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("20-bad.yaml:4:") && err.contains("invalid port range `90-80`"),
        "the push names the error's file:line:col: {err}"
    );
    assert_eq!(
        etcd.policy_keys(&prefix),
        before,
        "nothing was written to etcd"
    );

    // An invalid policy written around jumpctl is rejected by every host; the old one stays.
    let bad_key = format!("{prefix}policies/30-direct.yaml");
    let r3 = etcd.write(&["put", &bad_key, "rules:\n  - name: y\n    users: [\"64601\"]\n    allow: [{to: 198.51.100.0/24, ports: [\"90-80\"]}]\n"]);
    let report = poll_until(5.0, "every host to reject the direct write", || {
        let (code, v) = fleet(&bins, &url, &prefix, &[]);
        let list = v["hosts"].as_array().cloned().unwrap_or_default();
        (list.len() == 3
            && list.iter().all(|h| {
                h["status"]["attempted_revision"] == r3 && h["status"]["result"] == "rejected"
            }))
        .then_some((code, v))
    });
    assert_eq!(
        report.0, 1,
        "fleet exits 1 while hosts reject the latest revision"
    );
    assert_eq!(report.1["latest_revision"], r3);
    for h in report.1["hosts"].as_array().unwrap() {
        assert_eq!(
            h["status"]["revision"], r2,
            "the old revision stays in force"
        );
        let problem = h["problem"].as_str().unwrap_or_default();
        assert!(
            problem.starts_with(&format!("rejected revision {r3}: {bad_key}:4:"))
                && problem.contains("invalid port range `90-80`"),
            "fleet says why, with the key as file name: {problem}"
        );
    }
    let out = jumpctl(&bins, &["fleet", "--etcd", &url, "--prefix", &prefix]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("invalid port range"),
        "{}",
        text(&out)
    );
    for h in &hosts {
        h.enforces(&bins, &[7001], "after a rejected revision");
    }
    etcd.write(&["del", &bad_key]);

    // A key no directory entry could be named like (here reaching for the status keys) is
    // refused by every host as such, never read as a file elsewhere.
    let odd_key = format!("{prefix}policies/x/../../status/evil.yaml");
    let r_odd = etcd.write(&["put", &odd_key, "rules: []\n"]);
    let report = poll_until(5.0, "every host to reject the odd key", || {
        let (_, v) = fleet(&bins, &url, &prefix, &[]);
        let list = v["hosts"].as_array().cloned().unwrap_or_default();
        (list.len() == 3
            && list
                .iter()
                .all(|h| h["status"]["attempted_revision"] == r_odd))
        .then_some(v)
    });
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["status"]["result"], "rejected", "{h}");
        assert!(
            h["problem"].as_str().unwrap_or_default().contains(&format!(
                "{odd_key}: not a policy file name: a file name cannot hold `/`"
            )),
            "{h}"
        );
    }
    let r4 = etcd.write(&["del", &odd_key]);
    all_applied(&bins, &url, &prefix, &[], 3, r4, 5.0);
    for h in &hosts {
        h.enforces(&bins, &[7001], "after the odd key");
    }

    // etcd away: nothing changes in the kernel; each host says so.
    etcd.kill();
    for h in &hosts {
        h.jumpd.wait_line("etcd unreachable", |l| {
            l["MESSAGE_ID"] == UNREACHABLE_ID || l["message_id"] == UNREACHABLE_ID
        });
        let s = poll_until(5.0, "status to show etcd unreachable", || {
            let s = h.status(&bins);
            s.contains("etcd unreachable since").then_some(s)
        });
        assert!(s.contains(&format!("enforcing revision {r4}")), "{s}");
        h.enforces(&bins, &[7001], "with etcd unreachable");
    }

    let scrape = get_metrics(&metrics);
    assert!(scrape.contains("\njump_etcd_reachable 0\n"), "{scrape}");
    assert!(
        scrape.contains(&format!("\njump_etcd_revision {r4}\n")),
        "{scrape}"
    );
    let since = scrape
        .lines()
        .find_map(|l| l.strip_prefix("jump_etcd_unreachable_since_seconds "))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(
        since > 1_700_000_000,
        "the metrics say since when etcd is away: {scrape}"
    );

    // A host restarted while etcd is away enforces its cached revision, not its fallback.
    hosts[2].jumpd.kill();
    hosts[2].jumpd.restart().expect("restart without etcd");
    let s = hosts[2].status(&bins);
    assert!(
        s.contains(&format!("revision {r4} in force (from cache)")),
        "{s}"
    );
    hosts[2].enforces(&bins, &[7001], "restarted from the cache");

    // etcd back: a push made meanwhile reaches every host.
    etcd.run();
    let v3 = TempDir::policy("v3", &[("10-access.yaml", &policy(&[7000, 7001]))]);
    let r5 = push(&bins, &v3.0, &url, &prefix, &[]);
    all_applied(&bins, &url, &prefix, &[], 3, r5, 20.0);
    for h in &hosts {
        h.enforces(&bins, &[7000, 7001], "caught up after the outage");
        let s = h.status(&bins);
        assert!(!s.contains("unreachable since"), "{s}");
    }

    // A host that dies leaves the list when its status lease runs out (10 s).
    let dead = hosts[0].node.clone();
    hosts[0].jumpd.kill();
    poll_until(16.0, "the dead host's status entry to expire", || {
        let (_, v) = fleet(&bins, &url, &prefix, &[]);
        let list = v["hosts"].as_array().cloned().unwrap_or_default();
        (list.len() == 2 && list.iter().all(|h| h["node"] != dead.as_str())).then_some(())
    });
}

/// `GET /metrics` from jumpd's metrics endpoint.
fn get_metrics(addr: &str) -> String {
    let addr = addr.parse().expect("the metrics address");
    jump_tests::metrics::get(addr, "/metrics")
        .expect("an answer from the metrics endpoint")
        .1
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with openssl.
fn make_pki(dir: &Path) -> Pki {
    let p = |n: &str| dir.join(n);
    let ossl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=jump test CA",
    ]);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(p(&format!("{name}.ext")), ext).unwrap();
        ossl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
    Pki {
        ca: p("ca.pem"),
        server: (p("server.pem"), p("server.key")),
        client: (p("client.pem"), p("client.key")),
    }
}

#[test]
fn mutual_tls_keeps_out_clients_without_a_certificate() {
    if !privileged("mutual_tls_keeps_out_clients_without_a_certificate") {
        return;
    }
    let bins = Bins::from_env();
    // A node name is part of a key: one reaching for another key is refused before anything.
    let out = Command::new(&bins.jumpd)
        .args([
            "--cgroup",
            "/nonexistent",
            "--policy-etcd",
            "http://127.0.0.1:1",
            "--node-name",
            "../policies/x.yaml",
        ])
        .output()
        .expect("jumpd");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid node name `../policies/x.yaml`"),
        "{}",
        text(&out)
    );
    let pki_dir = TempDir::new("pki");
    let pki = make_pki(&pki_dir.0);
    let ca = pki.ca.display().to_string();
    let with_cert = vec![
        "--etcd-ca".to_string(),
        ca.clone(),
        "--etcd-cert".into(),
        pki.client.0.display().to_string(),
        "--etcd-key".into(),
        pki.client.1.display().to_string(),
    ];
    let etcd = Etcd::start(Some(pki));
    let url = etcd.url();
    let prefix = format!("/{}/", unique("jt"));
    let v1 = TempDir::policy("v1", &[("10-access.yaml", &policy(&[7000]))]);
    let fallback = TempDir::policy("fallback", &[("10-access.yaml", "rules: []\n")]);

    // TLS without a client certificate: etcd refuses the handshake, nothing is pushed.
    let no_cert = ["--etcd-ca".to_string(), ca.clone()];
    let mut args = vec![
        "push",
        v1.0.to_str().unwrap(),
        "--etcd",
        &url,
        "--prefix",
        &prefix,
    ];
    args.extend(no_cert.iter().map(String::as_str));
    let out = jumpctl(&bins, &args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "push without a client certificate fails: {}",
        text(&out)
    );
    // Nor over plain HTTP.
    let plain = url.replace("https://", "http://");
    let out = jumpctl(
        &bins,
        &[
            "push",
            v1.0.to_str().unwrap(),
            "--etcd",
            &plain,
            "--prefix",
            &prefix,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "push over plain http fails: {}",
        text(&out)
    );

    let r1 = push(&bins, &v1.0, &url, &prefix, &with_cert);
    let host = start_host(&bins, &etcd, &prefix, &fallback.0, &with_cert);
    all_applied(&bins, &url, &prefix, &with_cert, 1, r1, 10.0);
    host.enforces(&bins, &[7000], "policy over mutual TLS");
    // jumpd without a client certificate gets nothing from etcd: it falls back.
    let state = TempDir::new("state");
    let cg = TestCgroup::new().expect("cgroup");
    let node = unique("node");
    let state_dir = state.0.display().to_string();
    let lonely = Jumpd::start(
        &bins,
        &fallback.0,
        &cg.path,
        &[
            "--policy-etcd",
            &url,
            "--etcd-prefix",
            &prefix,
            "--node-name",
            &node,
            "--state-dir",
            &state_dir,
            "--no-watch",
            "--etcd-ca",
            &ca,
        ],
    )
    .expect("jumpd with the fallback directory");
    lonely.wait_line("the fallback warning", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("enforcing the policy directory"))
    });
    let (code, v) = fleet(&bins, &url, &prefix, &with_cert);
    assert_eq!(
        code, 0,
        "only the host with a certificate is in the fleet: {v}"
    );
    assert_eq!(v["hosts"].as_array().map(Vec::len), Some(1));
    drop(lonely);
    drop(cg);
}

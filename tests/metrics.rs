//! jumpd's Prometheus endpoint against the real kernel: the real `promtool check metrics`
//! accepts what it serves, a denied connection moves the deny counters, a reload neither resets
//! nor double-counts them, and a local user who floods the endpoint with idle connections
//! neither stops jumpd nor keeps the endpoint closed.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
};

use jump_tests::{
    metrics::{self, sample},
    privileged,
    probe::Outcome,
    world::World,
};

/// Granted tcp/7000 on the internal host.
const A: u32 = 64501;
/// Granted nothing.
const B: u32 = 64502;

const POLICY: &str = "\
defaults:
  egress: deny
  log: all
  loopback: allow
rules:
  - name: a-internal
    users: [64501]
    allow:
      - {to: [198.51.100.10], ports: [7000], proto: [tcp]}
";

/// The harness's world, enforcing with jumpd's metrics endpoint on `addr`.
struct Fixture {
    world: World,
    addr: SocketAddr,
}

impl std::ops::Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Fixture {
    fn new() -> Self {
        let mut world = World::new(&[7000], &[("10-a.yaml", POLICY)]);
        // Port 0: the kernel picks a free one, which jumpd logs.
        let line = world.start(&["--metrics-listen", "127.0.0.1:0"]).wait_line(
            "the metrics address",
            |l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("metrics at http://"))
            },
        );
        let addr = line["message"]
            .as_str()
            .unwrap()
            .trim_start_matches("metrics at http://")
            .trim_end_matches("/metrics")
            .parse()
            .expect("a socket address in the log line");
        Self { world, addr }
    }

    fn probe(&self, uid: u32) -> Outcome {
        self.tcp(uid, 7000)
    }

    fn try_get(&self, path: &str) -> Result<(String, String), String> {
        metrics::get(self.addr, path)
    }

    fn get(&self, path: &str) -> (String, String) {
        self.try_get(path)
            .expect("an answer from the metrics endpoint")
    }

    fn scrape(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        body
    }

    fn wait_sample(&self, series: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
        metrics::wait_sample(self.addr, series, what, ok)
    }
}

/// `promtool check metrics` on `text`: the real Prometheus parser and linter.
fn promtool(text: &str) -> (bool, String) {
    let promtool =
        which("promtool").expect("promtool (Debian package `prometheus`; `cargo xtask setup`)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}

const DENY: &str = "jump_decisions_total{verdict=\"deny\"}";
const DEFAULT_DENY: &str = "jump_rule_hits_total{rule=\"default\",verdict=\"deny\"}";
const A_ALLOW: &str = "jump_rule_hits_total{rule=\"a-internal\",verdict=\"allow\"}";

#[test]
fn promtool_accepts_the_metrics_and_a_denied_probe_moves_the_deny_counter() {
    if !privileged("promtool_accepts_the_metrics_and_a_denied_probe_moves_the_deny_counter") {
        return;
    }
    let f = Fixture::new();
    f.jumpd().wait_generation(1);
    let text = f.scrape();
    let (ok, out) = promtool(&text);
    assert!(
        ok,
        "promtool check metrics rejected /metrics: {out}\n{text}"
    );
    for series in [
        "jump_policy_generation 1",
        "jump_policy_rules 2",
        "jump_policy_users 1",
        "jump_reloads_total{result=\"applied\"} 1",
    ] {
        assert!(text.lines().any(|l| l == series), "`{series}` in:\n{text}");
    }
    let before = sample(&text, DENY).unwrap_or(0.0);
    let rule_before = sample(&text, DEFAULT_DENY).unwrap_or(0.0);

    assert!(f.probe(B).is_refused(), "uid {B} has no grant");
    let after = f.wait_sample(DENY, "larger after a denied probe", |v| v > before);
    let rule_after = sample(&f.scrape(), DEFAULT_DENY).unwrap_or(0.0);
    assert!(
        rule_after > rule_before,
        "the default rule's deny hits should grow with the denied probe: {rule_before} then {rule_after}"
    );
    assert_eq!(f.probe(A), Outcome::Ok, "the granted twin still connects");
    let allowed = f.wait_sample(A_ALLOW, "at least 1", |v| v >= 1.0);

    // A reload moves the active rules to the other kernel slot, whose hits start at zero; two
    // more recycle the first slot: the counters must neither drop nor jump.
    for g in 2..=4u64 {
        f.write("10-a.yaml", &format!("# edit {g}\n{POLICY}"));
        f.jumpd().wait_generation(g);
    }
    f.wait_sample("jump_policy_generation", "4", |v| v == 4.0);
    let text = f.scrape();
    assert_eq!(
        sample(&text, DENY),
        Some(after),
        "reloads keep the deny total:\n{text}"
    );
    assert_eq!(
        sample(&text, A_ALLOW),
        Some(allowed),
        "and the rule's hits:\n{text}"
    );
    assert_eq!(
        sample(&text, "jump_reloads_total{result=\"applied\"}"),
        Some(4.0),
        "{text}"
    );
    assert!(
        sample(&text, "jump_last_successful_reload_timestamp_seconds").unwrap_or(0.0) > 1.7e9,
        "{text}"
    );
    let (ok, out) = promtool(&text);
    assert!(ok, "promtool, after reloads: {out}");

    assert!(f.probe(B).is_refused(), "still no grant after the reloads");
    f.wait_sample(DENY, "larger after another denied probe", |v| v > after);
}

#[test]
fn idle_connections_neither_stop_jumpd_nor_keep_the_endpoint_closed() {
    if !privileged("idle_connections_neither_stop_jumpd_nor_keep_the_endpoint_closed") {
        return;
    }
    let f = Fixture::new();
    f.jumpd().wait_generation(1);
    let (status, _) = f.get("/");
    assert!(
        status.contains(" 404 "),
        "only /metrics is served: {status}"
    );
    // An unprivileged user opens many connections and sends nothing (slowloris).
    let idle: Vec<TcpStream> = (0..64)
        .filter_map(|_| TcpStream::connect(f.addr).ok())
        .collect();
    assert!(!idle.is_empty());
    assert!(
        f.probe(B).is_refused(),
        "enforcement goes on while the endpoint is flooded"
    );
    assert_eq!(f.probe(A), Outcome::Ok, "and the granted twin connects");
    // Idle clients are closed after the header timeout (5 s): the endpoint answers again.
    f.wait_sample(
        "jump_policy_generation",
        "1 once the idle clients are gone",
        |v| v == 1.0,
    );
    drop(idle);
}

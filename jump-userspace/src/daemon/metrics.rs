//! jumpd's Prometheus metrics (`--metrics-listen`, config `metrics.listen`; off by default):
//! what jumpd and the kernel counted, served as Prometheus text (version 0.0.4) at `/metrics`.
//!
//! This module owns the registry and the bookkeeping that keeps every counter monotonic for
//! jumpd's life: the kernel's per-rule hits live in per-slot maps that a reload recycles, and
//! pinned counters may restart with new maps, so each counter advances by the *increase* of its
//! source (`Deltas`), never by setting it.
//!
//! Other parts of jumpd add their own metrics to `Metrics::registry` (before or after the
//! server starts: scrapes lock it); keep their labels bounded as these are.
//!
//! # Cost and exposure
//! A scrape asks the main loop to read the kernel's counters, at most once per `MIN_REFRESH`
//! (a flood of scrapes costs jumpd no more than one read a second), serves at most
//! `MAX_CONNECTIONS` clients at once, and closes a client that sends no request headers
//! within `HEADER_TIMEOUT`. Label sets are bounded (`MAX_RULE_SERIES`, `MAX_UID_SERIES`): what
//! goes beyond is summed under `rule="(other)"` / `uid="(other)"`. The endpoint has no
//! authentication and names rules and uids: bind it to loopback (README "Metrics").
//!
//! (Over 500 lines: one metric family per counter, each a few lines of registration and
//! bookkeeping; the tests are a fifth.)

use std::{
    collections::{BTreeSet, HashMap},
    convert::Infallible,
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::verdict::Verdict;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, Method, Request, Response, StatusCode};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::{mpsc, watch, Semaphore};

/// The kernel's counters are read at most this often, however often `/metrics` is scraped.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Clients served at once; more are closed at once (each holds one of jumpd's descriptors).
pub const MAX_CONNECTIONS: usize = 8;
/// A client that sends no complete request headers within this long is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may stay open, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Rules with a series of their own; the rest are summed under `rule="(other)"`. Rules are
/// the administrator's, but a generated policy may hold 100,000 of them.
pub const MAX_RULE_SERIES: usize = 500;
/// Uids with held-back-event series of their own; the rest under `uid="(other)"`. Any local
/// user (with subordinate uids, many of them) can get events held back, so this bound is what
/// keeps them from growing the scrape.
pub const MAX_UID_SERIES: usize = 100;
pub const OTHER: &str = "(other)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeldLabels {
    uid: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabels {
    program: String,
}

/// Verdict label by `jump_common::action` index.
const VERDICTS: [&str; 3] = [
    Verdict::from_action(0).metric_label(),
    Verdict::from_action(1).metric_label(),
    Verdict::from_action(2).metric_label(),
];

/// Turns readings of a source that only grows (but may restart from zero) into increments.
#[derive(Debug, Default)]
pub struct Deltas(HashMap<String, u64>);

impl Deltas {
    /// How much `key` grew since the last reading. The first reading counts whole; a reading
    /// below the last means the source restarted (new maps, a new program), and counts whole.
    pub fn advance(&mut self, key: &str, raw: u64) -> u64 {
        match self.0.insert(key.to_string(), raw) {
            Some(last) if raw >= last => raw - last,
            _ => raw,
        }
    }
}

/// One reading of what the kernel and the active policy hold (`refresh`).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Indexed by `jump_common::counter`.
    pub counters: [u64; jump_common::counter::LEN as usize],
    /// Hits over jumpd's life by rule name and action, active rules first in id order.
    pub hits: Vec<(String, [u64; 3])>,
    pub generation: u64,
    pub rules: usize,
    pub users: usize,
    pub profiles: usize,
    pub maps_tampered: u64,
    /// (program, runs, run time) when `kernel.bpf_stats_enabled` is on.
    pub programs: Vec<(String, u64, Duration)>,
}

pub struct Metrics {
    /// Shared with the HTTP server; others register their metrics here.
    pub registry: Arc<Mutex<Registry>>,
    decisions: Family<VerdictLabels, Counter>,
    rule_hits: Family<RuleLabels, Counter>,
    events: Family<OutcomeLabels, Counter>,
    held: Family<HeldLabels, Counter>,
    revocations: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    maps_tampered: Counter,
    generation: Gauge,
    last_reload: Gauge<f64, AtomicU64>,
    policy_rules: Gauge,
    policy_users: Gauge,
    policy_profiles: Gauge,
    program_runs: Family<ProgramLabels, Counter>,
    program_seconds: Family<ProgramLabels, Counter<f64, AtomicU64>>,
    deltas: Deltas,
    rule_series: BTreeSet<String>,
    uid_series: BTreeSet<u32>,
    /// Scrapes ask for a refresh here; the main loop answers by bumping `refreshed`.
    refresh_rx: mpsc::Receiver<()>,
    refresh_tx: mpsc::Sender<()>,
    refreshed: watch::Sender<u64>,
    last_refresh: Option<Instant>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("jump");
        let decisions = Family::<VerdictLabels, Counter>::default();
        r.register(
            "decisions",
            "Connection decisions made by the kernel programs, by verdict",
            decisions.clone(),
        );
        let rule_hits = Family::<RuleLabels, Counter>::default();
        r.register(
            "rule_hits",
            "Decisions by the rule that made them and verdict (at most 500 rules, the rest as rule=\"(other)\")",
            rule_hits.clone(),
        );
        let events = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "events",
            "Decision events by outcome: sent to jumpd, suppressed as repeats, over a uid's budget, dropped (ring buffer full), untracked (lost beyond the per-uid table), unsent (received by jumpd, not taken by journald)",
            events.clone(),
        );
        let held = Family::<HeldLabels, Counter>::default();
        r.register(
            "user_events_held",
            "Events held back per uid, by reason (at most 100 uids, the rest as uid=\"(other)\")",
            held.clone(),
        );
        let revocations = Family::<ResultLabels, Counter>::default();
        r.register(
            "revocations",
            "Connections closed because the policy no longer allows them (result closed), or that could not be (failed)",
            revocations.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        r.register(
            "reloads",
            "Policy reloads by result: applied, unchanged, rejected",
            reloads.clone(),
        );
        let maps_tampered = Counter::default();
        r.register(
            "maps_tampered",
            "Times the kernel maps were found rewritten behind jumpd's back (and restored)",
            maps_tampered.clone(),
        );
        let generation = Gauge::default();
        r.register(
            "policy_generation",
            "The policy generation in force",
            generation.clone(),
        );
        let last_reload = Gauge::<f64, AtomicU64>::default();
        r.register(
            "last_successful_reload_timestamp_seconds",
            "When a policy was last applied (or found unchanged), Unix time",
            last_reload.clone(),
        );
        let policy_rules = Gauge::default();
        r.register(
            "policy_rules",
            "Rules of the policy in force",
            policy_rules.clone(),
        );
        let policy_users = Gauge::default();
        r.register(
            "policy_users",
            "Users (uids) the policy in force names",
            policy_users.clone(),
        );
        let policy_profiles = Gauge::default();
        r.register(
            "policy_profiles",
            "Distinct rule sets (profiles) among the users of the policy in force",
            policy_profiles.clone(),
        );
        let program_runs = Family::<ProgramLabels, Counter>::default();
        r.register(
            "program_runs",
            "Runs of each kernel program (only while kernel.bpf_stats_enabled is 1)",
            program_runs.clone(),
        );
        let program_seconds = Family::<ProgramLabels, Counter<f64, AtomicU64>>::default();
        r.register(
            "program_run_seconds",
            "Time spent in each kernel program (only while kernel.bpf_stats_enabled is 1)",
            program_seconds.clone(),
        );
        let (refresh_tx, refresh_rx) = mpsc::channel(1);
        Self {
            registry: Arc::new(Mutex::new(r)),
            decisions,
            rule_hits,
            events,
            held,
            revocations,
            reloads,
            maps_tampered,
            generation,
            last_reload,
            policy_rules,
            policy_users,
            policy_profiles,
            program_runs,
            program_seconds,
            deltas: Deltas::default(),
            rule_series: BTreeSet::new(),
            uid_series: BTreeSet::new(),
            refresh_rx,
            refresh_tx,
            refreshed: watch::Sender::new(0),
            last_refresh: None,
        }
    }

    /// Counts a reload's outcome; `applied` false with `ok` is an unchanged policy.
    pub fn reloaded(&self, ok: bool, changed: bool) {
        let result = match (ok, changed) {
            (true, true) => "applied",
            (true, false) => "unchanged",
            (false, _) => "rejected",
        };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
        if ok {
            let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
            self.last_reload.set(now);
        }
    }

    pub fn revoked(&self, closed: usize, failed: usize) {
        for (result, n) in [("closed", closed), ("failed", failed)] {
            self.revocations
                .get_or_create(&ResultLabels { result })
                .inc_by(n as u64);
        }
    }

    /// Counts one uid's held-back events as reported (each report is an increment).
    pub fn held(&mut self, uid: u32, over_budget: u64, similar: u64, lost: u64) {
        let label = if self.uid_series.contains(&uid) || self.uid_series.len() < MAX_UID_SERIES {
            self.uid_series.insert(uid);
            uid.to_string()
        } else {
            OTHER.to_string()
        };
        for (reason, n) in [
            ("over_budget", over_budget),
            ("similar", similar),
            ("lost", lost),
        ] {
            self.held
                .get_or_create(&HeldLabels {
                    uid: label.clone(),
                    reason,
                })
                .inc_by(n);
        }
    }

    /// Counts events jumpd received but journald did not take (lost after the kernel).
    pub fn unsent(&self, n: u64) {
        if n > 0 {
            self.events
                .get_or_create(&OutcomeLabels { outcome: "unsent" })
                .inc_by(n);
        }
    }

    /// Brings the counters up to a reading. Pure but for the registry's atomics.
    pub fn update(&mut self, s: &Snapshot) {
        use jump_common::counter as c;
        let mut totals = [0u64; 3];
        for (name, hits) in &s.hits {
            let label =
                if self.rule_series.contains(name) || self.rule_series.len() < MAX_RULE_SERIES {
                    self.rule_series.insert(name.clone());
                    name.clone()
                } else {
                    OTHER.to_string()
                };
            for (act, verdict) in VERDICTS.iter().enumerate() {
                totals[act] += hits[act];
                let d = self
                    .deltas
                    .advance(&format!("hit\0{name}\0{act}"), hits[act]);
                if d > 0 || label != OTHER {
                    self.rule_hits
                        .get_or_create(&RuleLabels {
                            rule: label.clone(),
                            verdict,
                        })
                        .inc_by(d);
                }
            }
        }
        for (act, verdict) in VERDICTS.iter().enumerate() {
            let d = self
                .deltas
                .advance(&format!("decisions\0{act}"), totals[act]);
            self.decisions
                .get_or_create(&VerdictLabels { verdict })
                .inc_by(d);
        }
        for (outcome, index) in [
            ("sent", c::EVENTS_SENT),
            ("suppressed", c::EVENTS_SUPPRESSED),
            ("over_budget", c::EVENTS_OVER_BUDGET),
            ("dropped", c::EVENTS_DROPPED),
            ("untracked", c::EVENTS_UNTRACKED),
        ] {
            let d = self
                .deltas
                .advance(&format!("counter\0{index}"), s.counters[index as usize]);
            self.events
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(d);
        }
        self.maps_tampered
            .inc_by(self.deltas.advance("maps_tampered", s.maps_tampered));
        self.generation.set(s.generation as i64);
        self.policy_rules.set(s.rules as i64);
        self.policy_users.set(s.users as i64);
        self.policy_profiles.set(s.profiles as i64);
        for (program, runs, time) in &s.programs {
            let labels = ProgramLabels {
                program: program.clone(),
            };
            let d = self.deltas.advance(&format!("runs\0{program}"), *runs);
            self.program_runs.get_or_create(&labels).inc_by(d);
            let ns = self
                .deltas
                .advance(&format!("ns\0{program}"), time.as_nanos() as u64);
            self.program_seconds
                .get_or_create(&labels)
                .inc_by(ns as f64 / 1e9);
        }
    }

    /// The next scrape's request for a refresh (the main loop's `select!` arm).
    pub async fn wanted(&mut self) -> Option<()> {
        self.refresh_rx.recv().await
    }

    /// Whether a refresh is due (not within `MIN_REFRESH` of the last one).
    pub fn due(&self) -> bool {
        self.last_refresh.is_none_or(|t| t.elapsed() >= MIN_REFRESH)
    }

    /// Tells waiting scrapes the counters are current.
    pub fn refreshed(&mut self, did: bool) {
        if did {
            self.last_refresh = Some(Instant::now());
        }
        self.refreshed.send_modify(|n| *n += 1);
    }

    /// The text a scrape returns now.
    pub fn encode(registry: &Mutex<Registry>) -> String {
        let mut out = String::new();
        let r = registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &r);
        out
    }
}

/// Reads what the kernel and the active policy hold into the metrics, unless a scrape did so
/// within `MIN_REFRESH`; then wakes the scrapes waiting for it.
pub(super) fn refresh(dp: &dyn crate::datapath::Live, st: &mut super::State) {
    if !st.metrics.due() {
        st.metrics.refreshed(false);
        return;
    }
    let status = super::status_counts(st);
    let snapshot = Snapshot {
        counters: dp.counters().unwrap_or_default(),
        hits: super::hits_by_name(dp, st).unwrap_or_else(|e| {
            tracing::warn!("metrics: failed to read the rule counters: {e:#}");
            Vec::new()
        }),
        generation: st.generation,
        rules: status.0,
        users: status.1,
        profiles: status.2,
        maps_tampered: st.maps_tampered,
        programs: program_stats(dp),
    };
    st.metrics.update(&snapshot);
    st.metrics.refreshed(true);
}

/// Per-program runs and run time. The kernel counts them only while `kernel.bpf_stats_enabled`
/// is 1 (it costs every run two clock reads, so it is the administrator's choice, not jumpd's).
/// jumpd may not see that sysctl (the unit's `ProcSubset=pid` hides /proc/sys): a program is
/// reported once the kernel has counted a run of it, and the counts stay for jumpd's life.
fn program_stats(dp: &dyn crate::datapath::Live) -> Vec<(String, u64, Duration)> {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .map(|s| s.trim() == "1")
        .unwrap_or(true);
    if !enabled {
        return Vec::new();
    }
    dp.program_stats()
        .into_iter()
        .filter(|(_, runs, _)| *runs > 0)
        .collect()
}

/// Binds the metrics address (before jumpd drops its capabilities: a port below 1024 needs
/// CAP_NET_BIND_SERVICE). Warns when it is not loopback: the endpoint has no authentication.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("failed to listen for metrics on `{addr}`"))?;
    l.set_nonblocking(true)?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "metrics listen on `{addr}`, not loopback: anyone who can reach it reads rule names and uids"
        );
    }
    Ok(l)
}

/// Serves `/metrics` on `listener` until jumpd exits.
pub fn serve(listener: std::net::TcpListener, m: &Metrics) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let shared = Arc::new(Shared {
        registry: m.registry.clone(),
        refresh: m.refresh_tx.clone(),
        refreshed: m.refreshed.subscribe(),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and the like: a moment for descriptors to come back. Why the pause:
                // such errors persist and `accept` fails again at once, so retrying straight
                // away would spin a core; 100 ms is short next to a scraper's timeout.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(respond(&shared, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(io, service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(slot);
            });
        }
    });
    Ok(())
}

struct Shared {
    registry: Arc<Mutex<Registry>>,
    refresh: mpsc::Sender<()>,
    refreshed: watch::Receiver<u64>,
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: &str| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    // Ask the main loop for current counters; a busy loop answers late, then these are a
    // little older (never wrong).
    let mut refreshed = shared.refreshed.clone();
    refreshed.mark_unchanged();
    let asked = match shared.refresh.try_send(()) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(())) => true,
        Err(mpsc::error::TrySendError::Closed(())) => false,
    };
    if asked {
        let _ = tokio::time::timeout(Duration::from_secs(2), refreshed.changed()).await;
    }
    let mut r = Response::new(Full::new(Bytes::from(Metrics::encode(&shared.registry))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_source_that_restarts_never_moves_a_counter_back() {
        let mut d = Deltas::default();
        assert_eq!(d.advance("x", 5), 5, "the first reading counts whole");
        assert_eq!(d.advance("x", 7), 2);
        assert_eq!(d.advance("x", 3), 3, "a restarted source counts from zero");
        assert_eq!(d.advance("x", 3), 0);
    }

    #[test]
    fn rule_hits_stay_monotonic_across_a_reload_and_sum_into_decisions() {
        let mut m = Metrics::new();
        let mut s = Snapshot {
            hits: vec![("ssh".into(), [1, 4, 0]), ("default".into(), [2, 0, 0])],
            ..Default::default()
        };
        m.update(&s);
        // The next generation's slot starts at zero for `ssh`: the life totals jumpd computes
        // keep growing, and a reading that went down must not take the counter with it.
        s.hits = vec![("ssh".into(), [1, 3, 0]), ("default".into(), [5, 0, 0])];
        m.update(&s);
        let text = Metrics::encode(&m.registry);
        assert_eq!(
            sample(
                &text,
                "jump_rule_hits_total{rule=\"default\",verdict=\"deny\"}"
            ),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                "jump_rule_hits_total{rule=\"ssh\",verdict=\"allow\"}"
            ),
            Some(7.0),
            "4, then a restarted reading of 3: never less than before"
        );
        assert_eq!(
            sample(&text, "jump_decisions_total{verdict=\"deny\"}"),
            Some(6.0)
        );
    }

    #[test]
    fn rule_and_uid_labels_are_bounded() {
        let mut m = Metrics::new();
        let s = Snapshot {
            hits: (0..MAX_RULE_SERIES + 50)
                .map(|i| (format!("r{i}"), [1, 0, 0]))
                .collect(),
            ..Default::default()
        };
        m.update(&s);
        for uid in 0..(MAX_UID_SERIES as u32 + 1000) {
            m.held(uid, 1, 0, 0);
        }
        let text = Metrics::encode(&m.registry);
        let rules: BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("jump_rule_hits_total{"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert_eq!(rules.len(), MAX_RULE_SERIES + 1, "500 rules and (other)");
        assert_eq!(
            sample(
                &text,
                "jump_rule_hits_total{rule=\"(other)\",verdict=\"deny\"}"
            ),
            Some(50.0)
        );
        let uids: BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("jump_user_events_held_total{"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert_eq!(uids.len(), MAX_UID_SERIES + 1);
        assert_eq!(
            sample(
                &text,
                "jump_user_events_held_total{uid=\"(other)\",reason=\"over_budget\"}"
            ),
            Some(1000.0)
        );
    }

    #[test]
    fn reloads_count_by_result() {
        let m = Metrics::new();
        m.reloaded(true, true);
        m.reloaded(true, false);
        m.reloaded(false, false);
        m.reloaded(false, true);
        let text = Metrics::encode(&m.registry);
        assert_eq!(
            sample(&text, "jump_reloads_total{result=\"applied\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "jump_reloads_total{result=\"unchanged\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "jump_reloads_total{result=\"rejected\"}"),
            Some(2.0)
        );
        assert!(sample(&text, "jump_last_successful_reload_timestamp_seconds").unwrap() > 1.7e9);
    }
}

//! jumpd's etcd policy source: boots from the cached last good revision (or etcd, or the
//! policy directory as a fallback), then a task watches `PREFIX policies/`, reads every policy
//! key at the revision of each change and hands it to the main loop, which applies it through
//! the same reload path as a directory (`reload_with`); the task publishes the outcome at
//! `PREFIX status/NODE` under a lease. etcd being away changes nothing that is enforced: it is
//! logged once (`ETCD_UNREACHABLE`), shown by `jumpctl status`, and the task reconnects with
//! backoff and catches up on the newest revision.
//!
//! (Over 500 lines: the watch task, the status lease and the boot order share one connection
//! state and are tested together; about a quarter is tests.)

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use etcd_client::WatchOptions;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch as tw};

use super::{message_id, Datapath, Options, Plan, State};
use crate::{
    fleet::{self, client, Connection, EtcdView, NodeStatus},
    policy::{self, Named, PolicyErrors},
};

/// The status entry's lease: a host gone this long has no entry any more.
pub const LEASE_TTL: i64 = 10;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Reconnecting never waits longer than this: etcd back means caught up within seconds.
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// The cache file is at most this large: every file at its limit, escaped as JSON.
const MAX_CACHE_BYTES: u64 = 2 * policy::MAX_TOTAL_BYTES + (1 << 20);

/// What the etcd task tells the main loop.
pub enum Msg {
    Up,
    Down(String),
    /// The policy keys as of `revision` (the revision of the newest change to them).
    Policy {
        revision: i64,
        files: Result<Vec<Named>, PolicyErrors>,
    },
}

/// Where the policy in force at start came from.
pub struct Boot {
    revision: i64,
    files: Option<Vec<Named>>,
    source: &'static str,
}

/// The etcd link's state in `State`.
pub struct Link {
    conn: Connection,
    node: String,
    cache: PathBuf,
    view: EtcdView,
    /// The newest revision read and its files: what a SIGHUP or a schedule compiles again.
    current: Option<(i64, Result<Vec<Named>, PolicyErrors>)>,
    status: NodeStatus,
    publish: tw::Sender<NodeStatus>,
    gauges: Gauges,
}

/// The link's metrics (`jump_etcd_*`), registered with jumpd's (`daemon::metrics`).
#[derive(Clone, Default)]
struct Gauges {
    reachable: Gauge,
    unreachable_since: Gauge,
    revision: Gauge,
}

impl Gauges {
    fn register(&self, m: &super::metrics::Metrics) {
        let Ok(mut r) = m.registry.lock() else { return };
        r.register(
            "etcd_reachable",
            "1 while jumpd is connected to etcd (its policy source), 0 while it is not",
            self.reachable.clone(),
        );
        r.register(
            "etcd_unreachable_since_seconds",
            "Since when (Unix time) etcd has been unreachable; 0 while it is reachable",
            self.unreachable_since.clone(),
        );
        r.register(
            "etcd_revision",
            "The etcd revision of the policy in force (0: none from etcd yet)",
            self.revision.clone(),
        );
    }

    fn set(&self, v: &EtcdView, since: Option<jiff::Timestamp>) {
        self.reachable.set(i64::from(v.reachable));
        if let Some(t) = since {
            self.unreachable_since.set(t.as_second());
        } else if v.unreachable_since.is_none() {
            self.unreachable_since.set(0);
        }
        self.revision.set(v.revision);
    }
}

impl Link {
    pub fn view(&self) -> EtcdView {
        self.view.clone()
    }

    pub fn has_policy(&self) -> bool {
        self.current.is_some()
    }
}

/// `PREFIX` as the origin of errors about the whole set.
fn origin(conn: &Connection) -> String {
    format!("etcd prefix `{}`", fleet::policies_key(&conn.prefix))
}

pub fn cache_file(state_dir: &Path) -> PathBuf {
    state_dir.join("etcd").join("policy.json")
}

fn plan_named(
    files: Vec<Named>,
    origin: &str,
    known: &crate::resolve::Principals,
    opts: &Options,
) -> anyhow::Result<Plan> {
    let loaded = policy::load_named(files, origin).map_err(|e| anyhow::anyhow!("{e}"))?;
    super::plan_loaded(loaded, known, &opts.subuid_file)
}

/// The cached revision: the files of the last revision applied, in one file written
/// atomically.
#[derive(Serialize, Deserialize)]
struct Cache {
    prefix: String,
    revision: i64,
    files: Vec<CachedFile>,
}

#[derive(Serialize, Deserialize)]
struct CachedFile {
    key: String,
    name: String,
    text: String,
}

fn read_cache(path: &Path, prefix: &str) -> Result<Option<(i64, Vec<Named>)>, String> {
    if !path.exists() {
        return Ok(None);
    }
    // Whoever could write it would decide the policy at the next boot.
    policy::check_config_file(path)?;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_CACHE_BYTES + 1), &mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_CACHE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_CACHE_BYTES} bytes",
            path.display()
        ));
    }
    let c: Cache = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: unreadable: {e}", path.display()))?;
    if c.prefix != prefix {
        return Err(format!(
            "{}: the cached policy is of prefix `{}`, not `{prefix}`",
            path.display(),
            crate::escape::escape(&c.prefix)
        ));
    }
    let files = c
        .files
        .into_iter()
        .map(|f| Named {
            shown: f.key,
            name: f.name,
            bytes: f.text.into_bytes(),
        })
        .collect();
    Ok(Some((c.revision, files)))
}

/// Writes the cache atomically: a new file beside it, synced, renamed over it.
fn write_cache(path: &Path, prefix: &str, revision: i64, files: &[Named]) -> anyhow::Result<()> {
    let dir = path.parent().context("the cache has no directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let cache = Cache {
        prefix: prefix.to_string(),
        revision,
        files: files
            .iter()
            .map(|f| CachedFile {
                key: f.shown.clone(),
                name: f.name.clone(),
                text: String::from_utf8_lossy(&f.bytes).into_owned(),
            })
            .collect(),
    };
    let tmp = dir.join(format!(".policy.json.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(&cache)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("failed to write the policy cache `{}`", path.display()))
}

/// The first policy: the cached last good revision at once; else etcd's newest; else the
/// policy directory if one was given; else an error (jumpd never enforces nothing).
pub fn first_plan(opts: &Options, conn: &Connection) -> anyhow::Result<(Plan, Boot)> {
    let none = Default::default();
    let cache = cache_file(&opts.state_dir);
    let mut why = Vec::new();
    match read_cache(&cache, &conn.prefix) {
        Ok(Some((revision, files))) => {
            match plan_named(files.clone(), &origin(conn), &none, opts) {
                Ok(p) => {
                    let boot = Boot {
                        revision,
                        files: Some(files),
                        source: "cache",
                    };
                    return Ok((p, boot));
                }
                Err(e) => why.push(format!("the cached revision {revision} is rejected: {e:#}")),
            }
        }
        Ok(None) => why.push(format!("no cached policy at `{}`", cache.display())),
        Err(e) => why.push(e),
    }
    match fetch_once(conn) {
        Ok((revision, Ok(files))) => match plan_named(files.clone(), &origin(conn), &none, opts) {
            Ok(p) => {
                let boot = Boot {
                    revision,
                    files: Some(files),
                    source: "etcd",
                };
                return Ok((p, boot));
            }
            Err(e) => why.push(format!("etcd revision {revision} is rejected: {e:#}")),
        },
        Ok((revision, Err(e))) => why.push(format!("etcd revision {revision} is rejected: {e}")),
        Err(e) => why.push(format!("etcd is unreachable: {e}")),
    }
    if opts.policy_dir_given {
        tracing::warn!(
            "no policy from etcd ({}): enforcing the policy directory `{}` until etcd answers",
            why.join("; "),
            opts.policy_dir.display()
        );
        let p = super::plan(
            &opts.policy_dir,
            &none,
            &opts.subuid_file,
            &mut Default::default(),
        )
        .with_context(|| format!("policy `{}` rejected", opts.policy_dir.display()))?;
        return Ok((
            p,
            Boot {
                revision: 0,
                files: None,
                source: "policy-dir",
            },
        ));
    }
    anyhow::bail!(
        "no policy to enforce: {}; pass --policy-dir as a fallback for a host with neither (jumpd does not start enforcing nothing)",
        why.join("; ")
    )
}

/// One read of etcd's newest policy, on a runtime of its own in a thread that ends before
/// jumpd drops its capabilities (INVARIANT (single thread at drop): a resolver thread started
/// here would keep them).
fn fetch_once(conn: &Connection) -> Result<(i64, Result<Vec<Named>, PolicyErrors>), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let c = client::connect(conn).await?;
                let snap = client::read_policy(&c, &conn.prefix, None).await?;
                Ok((snap.newest, snap.files))
            })
        })
        .join()
        .map_err(|_| "the etcd reader panicked".to_string())?
    })
}

/// Starts the link after the first policy is installed and capabilities are dropped.
pub fn start(st: &mut State, opts: &Options, conn: Connection, boot: Boot) -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::channel(8);
    let (publish, status_rx) = tw::channel(NodeStatus::default());
    let cache = cache_file(&opts.state_dir);
    let mut link = Link {
        view: EtcdView {
            endpoints: conn.endpoints.clone(),
            prefix: conn.prefix.clone(),
            node: opts.node_name.clone(),
            revision: boot.revision,
            source: boot.source.to_string(),
            reachable: false,
            unreachable_since: None,
            last_error: None,
        },
        node: opts.node_name.clone(),
        conn: conn.clone(),
        cache,
        current: boot.files.map(|f| (boot.revision, Ok(f))),
        status: NodeStatus::default(),
        publish,
        gauges: Gauges::default(),
    };
    link.gauges.register(&st.metrics);
    link.gauges.set(&link.view, None);
    if boot.source == "etcd" {
        if let Some((r, Ok(files))) = &link.current {
            if let Err(e) = write_cache(&link.cache, &conn.prefix, *r, files) {
                tracing::error!("{e:#}");
            }
        }
    }
    let ok = st.last_reload.as_ref().is_none_or(|r| r.ok);
    link.status = node_status(st, &link, boot.revision, ok, Vec::new());
    link.publish.send_replace(link.status.clone());
    st.etcd = Some(link);
    tokio::spawn(run_task(conn, tx, status_rx));
    rx
}

fn node_status(
    st: &State,
    link: &Link,
    attempted: i64,
    ok: bool,
    errors: Vec<String>,
) -> NodeStatus {
    let now = jiff::Timestamp::now().to_string();
    NodeStatus {
        node: link.node.clone(),
        revision: link.view.revision,
        generation: st.generation,
        sha256: st
            .active
            .as_ref()
            .map(|a| a.sha256.clone())
            .unwrap_or_default(),
        result: if ok { "applied" } else { "rejected" }.to_string(),
        attempted_revision: attempted,
        errors,
        at: st
            .last_reload
            .as_ref()
            .map(|r| r.at.clone())
            .unwrap_or_else(|| now.clone()),
        published_at: now,
        version: env!("CARGO_PKG_VERSION").to_string(),
        source: link.view.source.clone(),
    }
}

/// The main loop's side: one message of the task.
pub fn on_message(dp: &mut dyn Datapath, st: &mut State, opts: &Options, msg: Msg) {
    let Some(link) = st.etcd.as_mut() else { return };
    match msg {
        Msg::Up => {
            if let Some(since) = link.view.unreachable_since.take() {
                tracing::info!(
                    message_id = message_id::ETCD_REACHABLE,
                    jump_etcd_endpoints = %link.view.endpoints.join(","),
                    "etcd at {} reachable again (unreachable since {since})",
                    link.view.endpoints.join(",")
                );
            }
            link.view.reachable = true;
            link.view.last_error = None;
            link.gauges.set(&link.view, None);
        }
        Msg::Down(e) => {
            let mut began = None;
            if link.view.unreachable_since.is_none() {
                let now = jiff::Timestamp::now();
                began = Some(now);
                let since = now.to_string();
                tracing::error!(
                    message_id = message_id::ETCD_UNREACHABLE,
                    jump_etcd_endpoints = %link.view.endpoints.join(","),
                    jump_etcd_error = %e,
                    jump_etcd_revision = link.view.revision,
                    jump_policy_generation = st.generation,
                    "etcd at {} unreachable: {}; revision {} (generation {}) stays enforced, reconnecting",
                    link.view.endpoints.join(","),
                    crate::escape::escape(&e),
                    link.view.revision,
                    st.generation
                );
                link.view.unreachable_since = Some(since);
            } else {
                tracing::debug!("etcd still unreachable: {e}");
            }
            link.view.reachable = false;
            link.view.last_error = Some(e);
            link.gauges.set(&link.view, began);
        }
        Msg::Policy { revision, files } => {
            // A reconnect reads the revision in force again: nothing to do.
            if link
                .current
                .as_ref()
                .is_some_and(|(r, f)| *r == revision && *f == files)
                && link.status.attempted_revision == revision
            {
                // Booted from the cache, and etcd holds the same revision: it is etcd's now.
                if link.view.source == "cache" && link.status.result == "applied" {
                    link.view.source = "etcd".into();
                    link.status.source = "etcd".into();
                    link.status.published_at = jiff::Timestamp::now().to_string();
                    link.publish.send_replace(link.status.clone());
                }
                return;
            }
            link.current = Some((revision, files));
            attempt(dp, st, opts, &format!("etcd revision {revision}"));
        }
    }
}

/// `reload` with an etcd source: compiles the newest revision read again (accounts or
/// schedules changed, SIGHUP, `jumpctl reload`).
pub fn reload(dp: &mut dyn Datapath, st: &mut State, opts: &Options, trigger: &str) {
    super::systemd::reloading();
    attempt(dp, st, opts, trigger);
    super::systemd::ready(&super::status_line(st, opts));
}

fn attempt(dp: &mut dyn Datapath, st: &mut State, opts: &Options, trigger: &str) {
    let Some(link) = st.etcd.as_ref() else { return };
    let Some((revision, files)) = link.current.clone() else {
        return;
    };
    let origin = origin(&link.conn);
    let known = st
        .active
        .as_ref()
        .map(|a| a.compiled.rules.principals.clone())
        .unwrap_or_default();
    let kept_files = files.as_ref().ok().cloned();
    let planned = files
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|f| plan_named(f, &origin, &known, opts));
    // Just-in-time grants go into every generation, whatever the policy's source.
    let planned = super::grants::with_grants(planned, &st.grants);
    super::reload_with(dp, st, opts, trigger, planned);
    let (ok, errors) = match &st.last_reload {
        Some(r) if !r.ok => (
            false,
            r.error
                .as_deref()
                .unwrap_or("")
                .lines()
                .map(str::to_string)
                .collect(),
        ),
        _ => (true, Vec::new()),
    };
    if ok {
        warn_if_cut_off(st);
    }
    let Some(link) = st.etcd.as_mut() else { return };
    if ok {
        let changed = link.view.revision != revision || link.view.source != "etcd";
        link.view.revision = revision;
        link.view.source = "etcd".into();
        if changed {
            if let Some(files) = &kept_files {
                if let Err(e) = write_cache(&link.cache, &link.conn.prefix, revision, files) {
                    tracing::error!("{e:#}");
                }
            }
        }
    }
    let status = {
        let link = st.etcd.as_ref().expect("checked above");
        node_status(st, link, revision, ok, errors)
    };
    if let Some(link) = st.etcd.as_mut() {
        link.status = status.clone();
        link.publish.send_replace(status);
        link.gauges.set(&link.view, None);
    }
}

/// jumpd runs under the policy it enforces: one that does not let root reach etcd would be the
/// last revision this host ever gets. Said loudly (endpoints given by address only; a name
/// would need a lookup here).
fn warn_if_cut_off(st: &State) {
    let (Some(link), Some(active)) = (&st.etcd, &st.active) else {
        return;
    };
    for e in &link.conn.endpoints {
        let hostport = e.split("://").last().unwrap_or(e).trim_end_matches('/');
        let Ok(dest) = crate::explain::parse_dest(hostport) else {
            continue;
        };
        let allowed =
            crate::explain::check(&active.compiled, "root", 0, dest, jiff::Timestamp::now())
                .map(|r| r.allowed)
                .unwrap_or(true);
        if !allowed {
            tracing::warn!(
                jump_policy_generation = st.generation,
                "the policy in force does not let root (jumpd) connect to etcd at `{hostport}`: where jumpd runs under it (the cgroup v2 root), this host gets no further revision until it does"
            );
        }
    }
}

/// The task: sessions with etcd, reconnecting with backoff until jumpd stops.
async fn run_task(conn: Connection, tx: mpsc::Sender<Msg>, mut status: tw::Receiver<NodeStatus>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut connected = false;
        let e = match session(&conn, &tx, &mut status, &mut connected).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if tx.send(Msg::Down(e)).await.is_err() {
            return;
        }
        if connected {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: lease, read, watch, publish; returns why it ended (`Ok`: jumpd stops).
async fn session(
    conn: &Connection,
    tx: &mpsc::Sender<Msg>,
    status: &mut tw::Receiver<NodeStatus>,
    connected: &mut bool,
) -> Result<(), String> {
    let c = client::connect(conn).await?;
    let mut leases = c.lease_client();
    let lease = client::call("granting the status lease", leases.grant(LEASE_TTL, None))
        .await?
        .id();
    *connected = true;
    if tx.send(Msg::Up).await.is_err() {
        return Ok(());
    }
    let (mut keeper, mut alive) =
        client::call("keeping the status lease", leases.keep_alive(lease)).await?;
    let snap = client::read_policy(&c, &conn.prefix, None).await?;
    let mut seen = snap.newest;
    // From the revision after the newest policy key: a deletion since then is replayed at
    // once, so the revision applied is that of the policy's last change, the same on every host.
    let mut watches = c.watch_client();
    let key = fleet::policies_key(&conn.prefix);
    let mut stream = client::call(
        "watching the policy keys",
        watches.watch(
            key.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(snap.newest + 1),
            ),
        ),
    )
    .await?;
    if tx
        .send(Msg::Policy {
            revision: snap.newest,
            files: snap.files,
        })
        .await
        .is_err()
    {
        return Ok(());
    }
    let first = status.borrow_and_update().clone();
    if !first.node.is_empty() {
        client::put_status(&c, &conn.prefix, lease, &first).await?;
    }
    let mut keep = tokio::time::interval(Duration::from_secs(LEASE_TTL as u64 / 3));
    keep.tick().await;
    loop {
        tokio::select! {
            m = stream.message() => {
                let resp = m
                    .map_err(|e| format!("the watch failed: {}", client::describe(&e)))?
                    .ok_or("the watch ended")?;
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        // Compacted past where the watch began: watch from what is kept.
                        stream = client::call(
                            "watching the policy keys",
                            watches.watch(
                                key.clone(),
                                Some(WatchOptions::new().with_prefix().with_start_revision(resp.compact_revision())),
                            ),
                        )
                        .await?;
                        continue;
                    }
                    return Err(format!("the watch was canceled: {}", resp.cancel_reason()));
                }
                let newest = resp.events().iter().filter_map(|e| e.kv()).map(|k| k.mod_revision()).max();
                if let Some(rev) = newest.filter(|r| *r > seen) {
                    seen = rev;
                    let snap = client::read_policy(&c, &conn.prefix, Some(rev)).await?;
                    if tx.send(Msg::Policy { revision: rev, files: snap.files }).await.is_err() {
                        return Ok(());
                    }
                }
            }
            _ = keep.tick() => {
                client::call("renewing the status lease", keeper.keep_alive()).await?;
                let r = client::call("renewing the status lease", alive.message())
                    .await?
                    .ok_or("the lease stream ended")?;
                if r.ttl() <= 0 {
                    return Err("the status lease expired".into());
                }
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let s = status.borrow_and_update().clone();
                client::put_status(&c, &conn.prefix, lease, &s).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, text: &str) -> Named {
        Named {
            shown: format!("/jump/policies/{name}"),
            name: name.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    const GOOD: &str =
        "rules:\n  - name: a\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [22]}]\n";
    const OTHER: &str =
        "rules:\n  - name: a\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [23]}]\n";
    const BAD: &str = "rules:\n  - name: a\n    users: [64001]\n    allow: [{to: 198.51.100.10, ports: [90-80]}]\n";

    #[test]
    fn a_rejected_revision_keeps_the_policy_the_cache_and_says_why() {
        let state = tempfile::tempdir().unwrap();
        let mut o = super::super::tests::opts(state.path(), super::super::Mode::Enforce);
        o.state_dir = state.path().to_path_buf();
        let conn = Connection {
            endpoints: vec!["http://127.0.0.1:1".into()],
            prefix: "/jump/".into(),
            tls: None,
        };
        let (mut dp, mut st) = (crate::datapath::Fake::default(), State::new());
        let (publish, status) = tw::channel(NodeStatus::default());
        st.etcd = Some(Link {
            conn: conn.clone(),
            node: "n1".into(),
            cache: cache_file(state.path()),
            view: EtcdView::default(),
            current: None,
            status: NodeStatus::default(),
            publish,
            gauges: Gauges::default(),
        });
        let policy = |revision, text| Msg::Policy {
            revision,
            files: Ok(vec![named("a.yaml", text)]),
        };
        on_message(&mut dp, &mut st, &o, policy(5, GOOD));
        assert_eq!(st.generation(), 1);
        assert_eq!(status.borrow().revision, 5);
        assert_eq!(status.borrow().result, "applied");
        assert_eq!(
            read_cache(&cache_file(state.path()), "/jump/")
                .unwrap()
                .unwrap()
                .0,
            5
        );

        on_message(&mut dp, &mut st, &o, policy(6, BAD));
        assert_eq!(st.generation(), 1, "a rejected revision installs nothing");
        let s = status.borrow().clone();
        assert_eq!(
            (s.revision, s.attempted_revision, s.result.as_str()),
            (5, 6, "rejected")
        );
        assert!(
            s.errors[0].starts_with("/jump/policies/a.yaml:4:"),
            "{:?}",
            s.errors
        );
        assert_eq!(
            read_cache(&cache_file(state.path()), "/jump/")
                .unwrap()
                .unwrap()
                .0,
            5,
            "the cache keeps the last good revision"
        );
        // An unchanged revision read again after a reconnect is no new attempt.
        on_message(&mut dp, &mut st, &o, policy(6, BAD));
        assert_eq!(status.borrow().attempted_revision, 6);

        on_message(&mut dp, &mut st, &o, policy(7, OTHER));
        assert_eq!(st.generation(), 2);
        assert_eq!(status.borrow().revision, 7);
        on_message(&mut dp, &mut st, &o, Msg::Down("connection refused".into()));
        let v = st.etcd.as_ref().unwrap().view();
        assert!(v.unreachable_since.is_some() && !v.reachable);
        assert_eq!(st.generation(), 2, "etcd away changes nothing enforced");
        let g = &st.etcd.as_ref().unwrap().gauges;
        assert_eq!((g.reachable.get(), g.revision.get()), (0, 7));
        assert!(
            g.unreachable_since.get() > 1_700_000_000,
            "metrics say since when"
        );
        on_message(&mut dp, &mut st, &o, Msg::Up);
        assert!(st.etcd.as_ref().unwrap().view().unreachable_since.is_none());
        assert_eq!(st.etcd.as_ref().unwrap().gauges.unreachable_since.get(), 0);
    }

    #[test]
    fn the_cache_round_trips_and_refuses_another_prefix() {
        let dir = std::env::temp_dir().join(format!("jump-etcd-cache-{}", std::process::id()));
        let path = cache_file(&dir);
        let files = vec![Named {
            shown: "/jump/policies/a.yaml".into(),
            name: "a.yaml".into(),
            bytes: b"{}\n".to_vec(),
        }];
        write_cache(&path, "/jump/", 42, &files).unwrap();
        let back = read_cache(&path, "/jump/");
        let other = read_cache(&path, "/other/");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.unwrap(), Some((42, files)));
        assert!(other
            .unwrap_err()
            .ends_with("the cached policy is of prefix `/jump/`, not `/other/`"));
        assert_eq!(read_cache(&path, "/jump/"), Ok(None));
    }
}

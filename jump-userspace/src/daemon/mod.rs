//! `jumpd`: loads the policy directory, keeps the kernel's maps in step with it and turns the
//! kernel's decision events into log records. The policy work is plan/apply: `plan` (parse and
//! compile) is pure and may fail without touching the kernel; `Datapath::apply` is the one write.

pub mod addrs;
pub mod audit;
pub mod config;
pub mod control;
pub mod diff;
pub mod etcd;
pub mod grants;
pub mod metrics;
pub mod privileges;
pub mod show;
pub mod systemd;
pub mod watch;

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

pub use config::{Mode, Settings as Options};
use control::{Bus, Call, ErrorKind, ReloadOutcome, Reply};

use jump_common::SockRecord;

use crate::{
    compile::{
        self,
        image::{MapImage, RuleInfo},
        Compiled,
    },
    datapath::{pins, revoke, Datapath, Fake, Kernel, KernelOptions},
    events::{decode::decode, sink, Enricher},
    policy,
};

/// MESSAGE_IDs of the daemon's own life, fixed so operators can filter on them.
/// Events handled per ring-buffer wake-up before the loop looks at its other sources.
const EVENT_BATCH: usize = 512;
/// How often the ring buffer is drained without a wake-up: the kernel wakes jumpd only when
/// events pile up (jump-ebpf `emit.rs`, `WAKE_BYTES`), so this bounds an event's delay.
const EVENTS_TICK: std::time::Duration = std::time::Duration::from_millis(50);

pub mod message_id {
    pub const STARTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f801";
    pub const POLICY_LOADED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f802";
    pub const RELOAD_REJECTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f803";
    pub const DETACHED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f804";
    pub const STOPPED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f805";
    pub const EVENTS_LOST: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f806";
    pub const REVOKED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f807";
    // …f808 was "N similar events suppressed", now part of the per-uid summaries (…f809):
    // retired, never to be reused with another meaning.
    pub const EVENTS_HELD: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f809";
    /// The kernel maps were rewritten behind jumpd's back (journald PRIORITY 2).
    pub const MAPS_TAMPERED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80a";
    /// etcd (the policy source) cannot be reached; enforcement is unchanged (`daemon::etcd`).
    pub const ETCD_UNREACHABLE: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f821";
    /// etcd reachable again after `ETCD_UNREACHABLE`.
    pub const ETCD_REACHABLE: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f822";
}

/// How often jumpd reads its maps back to find rewrites (`check_integrity`), at the least.
pub const VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A compiled policy, ready to apply.
pub struct Plan {
    /// The policy as written; audit mode is applied at install time (`audit::audit_only`).
    pub image: MapImage,
    /// The resolved rules, for `jumpctl check` against the live policy.
    pub rules: compile::RuleSet,
    pub sha256: String,
    pub warnings: Vec<String>,
    /// Schedules are expanded a few days ahead: the policy must be compiled again before this.
    pub recompile_by: Option<jiff::Timestamp>,
}

/// How jumpd reads its policy: only root may write it, a file being written is not applied,
/// and nothing from a file an admin could not read reaches the log or `jumpctl status`.
pub const READ: policy::ReadOptions = policy::ReadOptions {
    ownership: policy::Ownership::Refuse,
    until_stable: true,
    redact_private: true,
};

/// Parse and compile the policy directory against the host's accounts and `subuid` file. Pure
/// with respect to the kernel. `known`: the principals the active policy resolved, which may
/// have been deleted since (their grants go, with a warning).
pub fn plan(
    dir: &std::path::Path,
    known: &std::collections::BTreeSet<String>,
    subuid: &std::path::Path,
) -> anyhow::Result<Plan> {
    let loaded = policy::load_dir_with(dir, READ).map_err(|e| anyhow::anyhow!("{e}"))?;
    plan_loaded(loaded, known, subuid)
}

/// `plan` of a policy already read (a directory, or etcd's keys).
pub fn plan_loaded(
    loaded: policy::Loaded,
    known: &std::collections::BTreeSet<String>,
    subuid: &std::path::Path,
) -> anyhow::Result<Plan> {
    let now = jiff::Timestamp::now();
    let directory = compile::Accounts::host(subuid);
    let compiled = compile::compile_with(
        &loaded.policy,
        &directory,
        now,
        compile::Vanished::Warn(known),
    )
    .map_err(|mut e| {
        policy::redact(&mut e.errors, &loaded.private);
        anyhow::anyhow!("{e}")
    })?;
    let mut compiled = compiled;
    policy::redact(&mut compiled.warnings, &loaded.private);
    let recompile_by = compile::time::recompile_by(&compiled.rules, now);
    let mut warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    warnings.extend(compiled.warnings.iter().map(|w| w.to_string()));
    Ok(Plan {
        image: compiled.image,
        rules: compiled.rules,
        sha256: loaded.sha256,
        warnings,
        recompile_by,
    })
}

/// What the kernel reports besides accepting images; `Kernel` and `Fake` both have it, so the
/// control requests are served the same way in tests without root.
pub trait Live: Datapath {
    /// Indexed by `jump_common::counter`.
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]>;
    /// (rule id, action, hits) of the active generation.
    fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>>;
    /// The same for the previous generation (the inactive slot).
    fn previous_rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>>;
    fn hooks(&self) -> Vec<String>;
    /// Every uid's held-back events (`Kernel::take_held`).
    fn take_held(&mut self) -> anyhow::Result<Vec<crate::datapath::HeldSnapshot>>;
    fn mark_reported(&mut self, uid: u32, counts: jump_common::UidHeld) -> anyhow::Result<()>;
    fn tai_offset_ns(&self) -> i64;
    /// How the maps differ from what jumpd wrote, one line per map (`datapath::integrity`).
    fn verify(&self) -> anyhow::Result<Vec<String>>;
    /// Writes back what jumpd wrote.
    fn restore(&mut self) -> anyhow::Result<()>;
    /// (program, runs, run time) of each attached program (`metrics`).
    fn program_stats(&self) -> Vec<(String, u64, std::time::Duration)> {
        Vec::new()
    }
}

impl Live for Kernel {
    fn program_stats(&self) -> Vec<(String, u64, std::time::Duration)> {
        Kernel::program_stats(self)
    }
    fn verify(&self) -> anyhow::Result<Vec<String>> {
        Kernel::verify(self)
    }
    fn restore(&mut self) -> anyhow::Result<()> {
        Kernel::restore(self)
    }
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]> {
        Kernel::counters(self)
    }
    fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Kernel::rule_hits(self, rules)
    }
    fn previous_rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Kernel::previous_rule_hits(self, rules)
    }
    fn hooks(&self) -> Vec<String> {
        self.attached().iter().map(|(n, _)| n.clone()).collect()
    }
    fn take_held(&mut self) -> anyhow::Result<Vec<crate::datapath::HeldSnapshot>> {
        Kernel::take_held(self)
    }
    fn mark_reported(&mut self, uid: u32, counts: jump_common::UidHeld) -> anyhow::Result<()> {
        Kernel::mark_reported(self, uid, counts)
    }
    fn tai_offset_ns(&self) -> i64 {
        Kernel::tai_offset_ns(self)
    }
}

impl Live for Fake {
    fn verify(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.tampered.clone())
    }
    fn restore(&mut self) -> anyhow::Result<()> {
        self.tampered.clear();
        Ok(())
    }
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]> {
        Ok(Default::default())
    }
    fn rule_hits(&self, _rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Ok(Vec::new())
    }
    fn previous_rule_hits(&self, _rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Ok(Vec::new())
    }
    fn hooks(&self) -> Vec<String> {
        Vec::new()
    }
    fn take_held(&mut self) -> anyhow::Result<Vec<crate::datapath::HeldSnapshot>> {
        Ok(Vec::new())
    }
    fn mark_reported(&mut self, _uid: u32, _counts: jump_common::UidHeld) -> anyhow::Result<()> {
        Ok(())
    }
    fn tai_offset_ns(&self) -> i64 {
        0
    }
}

/// The policy in force.
struct Active {
    /// As written (before audit mode), with its rules: what `check` explains.
    compiled: Compiled,
    sha256: String,
}

pub struct State {
    generation: u64,
    enricher: Enricher,
    /// Rule hits of generations whose counts the kernel no longer holds, by rule name and
    /// action (allow, deny, audit): with the live slots', `jumpctl stats` never goes down.
    retired_hits: std::collections::HashMap<String, [u64; 3]>,
    /// Rule tables of the active generation and the one before (the kernel's two slots).
    tables: Vec<(u64, Vec<crate::compile::image::RuleInfo>)>,
    /// `counter::EVENTS_UNTRACKED` as last reported.
    last_untracked: u64,
    active: Option<Active>,
    last_reload: Option<ReloadOutcome>,
    started: Instant,
    started_at: jiff::Timestamp,
    watching: Vec<String>,
    capabilities: Vec<String>,
    bus: Arc<Bus>,
    /// Closes connections the policy no longer allows (absent until the programs are attached,
    /// and with the fake datapath).
    revoker: Option<revoke::Worker>,
    /// The image as installed (audit mode applied): what revocation and window edges judge by.
    installed: Option<Arc<MapImage>>,
    /// Rule tables of recent generations, newest last, so a revocation can name the rule that
    /// allowed a connection under an older generation.
    past_rules: std::collections::VecDeque<(u64, Vec<RuleInfo>)>,
    recompile_by: Option<jiff::Timestamp>,
    integrity: control::Integrity,
    maps_tampered: u64,
    next_verify: Instant,
    /// Just-in-time grants in force (`grants`).
    grants: grants::Store,
    pub metrics: metrics::Metrics,
    /// The etcd policy source, when jumpd has one.
    etcd: Option<etcd::Link>,
}

/// How many generations' rule tables are kept for naming rules in revocation records.
const PAST_RULES: usize = 16;

impl State {
    pub fn new() -> Self {
        Self {
            generation: 0,
            enricher: Enricher::new(),
            last_untracked: 0,
            retired_hits: Default::default(),
            tables: Vec::new(),
            active: None,
            last_reload: None,
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            watching: Vec::new(),
            capabilities: Vec::new(),
            bus: Arc::new(Bus::new()),
            revoker: None,
            installed: None,
            past_rules: std::collections::VecDeque::new(),
            recompile_by: None,
            integrity: control::Integrity::default(),
            maps_tampered: 0,
            next_verify: Instant::now() + VERIFY_EVERY,
            grants: grants::Store::in_memory(),
            metrics: metrics::Metrics::new(),
            etcd: None,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn last_reload(&self) -> Option<&ReloadOutcome> {
        self.last_reload.as_ref()
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

fn now_ns() -> u64 {
    jiff::Timestamp::now().as_nanosecond().max(0) as u64
}

/// How far back a window edge still gets its own revocation pass when the run loop reaches it
/// late.
const EDGE_CATCH_UP_NS: u64 = 10_000_000_000;

/// Asks for a revocation pass over the installed image.
fn request_revocation(st: &State, trigger: revoke::Trigger) {
    if let (Some(worker), Some(image)) = (&st.revoker, &st.installed) {
        worker.submit(revoke::Job {
            image: image.clone(),
            trigger,
            now_ns: now_ns(),
        });
    }
}

/// Logs what a revocation pass closed, and what it failed to.
fn log_revocations(st: &State, trigger: &revoke::Trigger, outcome: revoke::Outcome) {
    for e in &outcome.failures {
        tracing::error!("revocation: {e}");
    }
    st.metrics
        .revoked(outcome.revoked.len(), outcome.failures.len());
    for r in outcome.revoked {
        let rec = &r.record;
        let (rule, location) = st.rule_name(rec.generation, rec.rule_id);
        let reason = match trigger {
            revoke::Trigger::Reload(g) => format!("reload to generation {g}"),
            revoke::Trigger::Edge(at) => st.edge_reason(rec, *at),
        };
        let user = user_name(rec.uid);
        let comm = String::from_utf8_lossy(&rec.comm);
        let comm = comm.trim_end_matches('\0');
        tracing::warn!(
            message_id = message_id::REVOKED,
            jump_uid = rec.uid,
            jump_user = user.as_deref().unwrap_or(""),
            jump_login_uid = rec.login_uid,
            jump_pid = rec.pid,
            jump_comm = comm,
            jump_proto = revoke::proto_name(r.proto),
            jump_dst_addr = %r.peer.ip(),
            jump_dst_port = r.peer.port(),
            jump_src_addr = %r.local.ip(),
            jump_src_port = r.local.port(),
            jump_rule = %rule,
            jump_rule_location = %location,
            jump_policy_generation = rec.generation,
            jump_revoke_reason = %reason,
            jump_netns = r.netns,
            "revoked {} {} -> {} of uid {}{} (allowed by rule `{rule}`): {reason}",
            revoke::proto_name(r.proto),
            r.local,
            r.peer,
            rec.uid,
            user.as_deref().map(|u| format!(" ({u})")).unwrap_or_default(),
        );
    }
}

impl State {
    /// The name and location of rule `id` of `generation`, as far as it is remembered.
    fn rule_name(&self, generation: u64, id: u32) -> (String, String) {
        let table = if generation == self.generation {
            self.active.as_ref().map(|a| &a.compiled.image.rules)
        } else {
            self.past_rules
                .iter()
                .find(|(g, _)| *g == generation)
                .map(|(_, r)| r)
        };
        match table.and_then(|t| t.get(id as usize)) {
            Some(r) => (r.name.clone(), r.location.clone()),
            None => (format!("#{id} of generation {generation}"), String::new()),
        }
    }

    /// Why the window edge at `at` (Unix ns) ends a connection allowed by `rec`'s rule.
    fn edge_reason(&self, rec: &SockRecord, at: u64) -> String {
        let (name, _) = self.rule_name(rec.generation, rec.rule_id);
        let rule = (rec.generation == self.generation)
            .then(|| self.active.as_ref()?.compiled.rules.rule(rec.rule_id))
            .flatten();
        let at_ts = jiff::Timestamp::from_nanosecond(i128::from(at)).unwrap_or_default();
        match rule {
            Some(r) if r.expires.is_some_and(|e| e <= at_ts) => format!("rule `{name}` expired"),
            Some(r) if r.schedule.is_some() => format!("schedule of `{name}` ended"),
            _ => format!("a time window of the policy closed (rule `{name}`)"),
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Applies a plan as the next generation; returns what changed.
fn install(
    dp: &mut dyn Datapath,
    st: &mut State,
    plan: Plan,
    mode: Mode,
    trigger: &str,
) -> anyhow::Result<diff::Diff> {
    let generation = st.generation + 1;
    let mut image = plan.image.clone();
    if mode == Mode::Audit {
        audit::audit_only(&mut image);
    }
    dp.apply(&image, generation)?;
    for (g, hits) in dp.take_retired_hits() {
        if let Some((_, table)) = st.tables.iter().find(|(t, _)| *t == g) {
            for (rule, act, n) in hits {
                if let (Some(r), true) = (table.get(rule as usize), act < 3) {
                    st.retired_hits.entry(r.name.clone()).or_default()[act as usize] += n;
                }
            }
        }
    }
    st.tables.push((generation, plan.image.rules.clone()));
    if st.tables.len() > 2 {
        st.tables.remove(0);
    }
    st.generation = generation;
    st.recompile_by = plan.recompile_by;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let changes = diff::diff(st.active.as_ref().map(|a| &a.compiled.image), &plan.image);
    let summary = changes.summary(user_name);
    tracing::info!(
        message_id = message_id::POLICY_LOADED,
        jump_policy_generation = generation,
        jump_policy_sha256 = %plan.sha256,
        jump_reload_trigger = trigger,
        jump_mode = mode.name(),
        jump_rules = plan.image.rules.len() - 1,
        jump_users = plan.image.users.len(),
        jump_changes = %summary,
        "policy generation {generation} loaded ({} rules, sha256 {}, {}): {summary}",
        plan.image.rules.len() - 1,
        &plan.sha256[..plan.sha256.len().min(12)],
        trigger,
    );
    // Audit mode revokes nothing, as its image refuses nothing.
    st.installed = Some(Arc::new(image));
    request_revocation(st, revoke::Trigger::Reload(generation));
    if let Some(a) = &st.active {
        st.past_rules
            .push_back((generation - 1, a.compiled.image.rules.clone()));
        if st.past_rules.len() > PAST_RULES {
            st.past_rules.pop_front();
        }
    }
    let table = crate::datapath::RuleTable {
        generation,
        sha256: plan.sha256.clone(),
        rules: plan.image.rules.clone(),
    };
    match serde_json::to_vec(&table).map_err(anyhow::Error::from) {
        Ok(json) => {
            if let Err(e) = dp.keep_rule_table(&json) {
                tracing::warn!("{e:#}");
            }
        }
        Err(e) => tracing::warn!("failed to encode the rule table: {e}"),
    }
    if let Err(e) = dp.clear_previous() {
        tracing::error!("failed to empty the previous generation's slot: {e:#}");
    }
    st.enricher
        .set_generation(generation, plan.image.rules.clone(), plan.sha256.clone());
    st.active = Some(Active {
        compiled: Compiled {
            image: plan.image,
            rules: plan.rules,
            warnings: Vec::new(),
        },
        sha256: plan.sha256,
    });
    Ok(changes)
}

/// Wraps a BPF ring buffer for readiness polling. tokio deprecates the safe constructor in favour
/// of an `unsafe` one whose contract (the fd stays open for the wrapper's life) these owners
/// uphold by construction: the ring buffer owns its map fd.
#[expect(
    deprecated,
    reason = "the safe constructor is sound for fd owners; the crate forbids unsafe"
)]
fn async_fd<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(inner, tokio::io::Interest::READABLE)
}

/// Up to `EVENT_BATCH` events from the ring buffer to the sinks and the bus; how many.
fn drain(rb: &mut aya::maps::RingBuf<aya::maps::MapData>, st: &mut State) -> usize {
    let mut handled = 0;
    while handled < EVENT_BATCH {
        let Some(item) = rb.next() else { break };
        handled += 1;
        match decode(&item) {
            Some(e) => {
                let record = st.enricher.record(&e);
                sink::emit(&record);
                st.bus.publish(record);
            }
            None => tracing::error!("malformed event of {} bytes from the kernel", item.len()),
        }
    }
    handled
}

/// How the main loop ended.
enum Exit {
    Stop,
    /// `jumpctl detach`, answered once the programs are gone.
    Detach(tokio::sync::oneshot::Sender<Reply>),
}

/// Runs jumpd. INVARIANT (single thread at drop): call it on tokio's current-thread runtime;
/// see `privileges`.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    // Handlers first: a SIGHUP right after "ready" (READY=1) must reload, not kill.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (first, etcd_boot) = match &opts.etcd {
        Some(conn) => etcd::first_plan(&opts, conn).map(|(p, b)| (p, Some((conn.clone(), b))))?,
        None => (
            plan(&opts.policy_dir, &Default::default(), &opts.subuid_file)
                .with_context(|| format!("policy `{}` rejected", opts.policy_dir.display()))?,
            None,
        ),
    };
    pins::ensure_bpffs(&opts.pin_dir)?;
    let pin_dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    // INVARIANT (one daemon per cgroup): locked before any map is touched; held until exit.
    let _lock = pins::lock(&pin_dir, &opts.cgroup)?;
    let (mut kernel, logger) = Kernel::load(&KernelOptions {
        debug_log: opts.debug_kernel,
        limits: opts.rate_limit.limits(),
        pin_dir: pin_dir.clone(),
    })?;
    if let Some(logger) = logger {
        let mut logger = async_fd(logger)?;
        tokio::spawn(async move {
            loop {
                let Ok(mut guard) = logger.readable_mut().await else {
                    break;
                };
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
        });
    }
    let mut st = State::new();
    st.enricher.set_tai_offset(kernel.tai_offset_ns());
    // Adopting pinned state: continue its generation numbering, and name the rules of the
    // events its generations decided (pending in the ring buffer) with their kept tables.
    st.generation = kernel.generation()?;
    let mut kept: Vec<crate::datapath::RuleTable> = kernel
        .rule_tables()
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    kept.sort_by_key(|t| t.generation);
    for t in kept {
        st.enricher.set_generation(t.generation, t.rules, t.sha256);
    }
    // Pinned counters outlive a daemon, which reported them up to its exit: report from here.
    // (Per-uid held counts need no such care: what was reported is pinned too.)
    if let Ok(c) = kernel.counters() {
        st.last_untracked = c[jump_common::counter::EVENTS_UNTRACKED as usize];
    }
    // Grants kept from before: those that ended while jumpd was down are logged as expired
    // (the kernel ended them on time), the rest go into the first generation.
    st.grants = grants::Store::open(&opts.state_dir)?;
    for g in st.grants.prune(jiff::Timestamp::now())? {
        tracing::info!(
            message_id = grants::message_id::EXPIRED,
            jump_grant_id = g.id,
            "grant {} expired at {} while jumpd was not running",
            g.id,
            g.until
        );
    }
    // INVARIANT (fail closed): the maps hold a policy before any program is attached.
    let first = grants::with_grants(Ok(first), &st.grants);
    reload_with(&mut kernel, &mut st, &opts, "start", first);
    if let Some(ReloadOutcome {
        ok: false,
        error: Some(e),
        ..
    }) = &st.last_reload
    {
        anyhow::bail!("failed to install the first policy: {e}");
    }
    // INVARIANT (local sources): the host's addresses are in the map before egress is attached,
    // and kept current while jumpd runs.
    kernel.measure_netns()?;
    let addr_watch = async_fd(addrs::watch()?)?;
    kernel.set_local_addrs(&addrs::local()?)?;
    kernel.attach(&opts.cgroup)?;
    // Before the capability drop: the revocation thread keeps what entering namespaces needs.
    let (revoked_tx, mut revoked_rx) = mpsc::unbounded_channel();
    st.revoker = Some(
        revoke::Worker::start(kernel.socks_fd()?, opts.cgroup.clone(), revoked_tx)
            .context("failed to start the revocation thread")?,
    );
    // Connections an adopted generation (a restart) no longer allows.
    request_revocation(&st, revoke::Trigger::Reload(st.generation));
    let mut addr_watch = addr_watch;
    let mut events = async_fd(kernel.take_events()?)?;
    // Bound before the capability drop: giving the socket to the admin group needs CAP_CHOWN.
    let listener = control::bind(&opts.control_socket, &opts.control_group)?;
    let _socket = control::SocketFile(opts.control_socket.clone());
    let metrics_listener = opts.metrics_listen.map(metrics::bind).transpose()?;
    let kept = privileges::drop_privileges().context("failed to drop capabilities")?;
    st.capabilities = privileges::names(&kept);
    // After the drop: threads the etcd client starts (name resolution) inherit the reduced sets.
    let (_no_etcd, mut etcd_rx) = mpsc::channel::<etcd::Msg>(1);
    if let Some((conn, boot)) = etcd_boot {
        etcd_rx = etcd::start(&mut st, &opts, conn, boot);
    }
    tracing::info!(
        "capabilities dropped; kept {} and set no-new-privileges",
        st.capabilities.join(",")
    );
    let (watch_tx, mut watch_rx) = mpsc::channel::<String>(4);
    if opts.watch {
        match watch::start(&opts.policy_dir, &opts.subuid_file, watch_tx) {
            Ok(w) => st.watching = w,
            Err(e) => tracing::error!("automatic reload disabled: {e:#}"),
        }
    }
    let (calls_tx, mut calls) = mpsc::channel::<Call>(16);
    control::serve(
        listener,
        opts.control_group.clone(),
        calls_tx,
        st.bus.clone(),
    );
    if let Some(l) = metrics_listener {
        let addr = l.local_addr()?;
        metrics::serve(l, &st.metrics)?;
        tracing::info!("metrics at http://{addr}/metrics");
    }
    let hooks = kernel.hooks().join(",");
    tracing::info!(
        message_id = message_id::STARTED,
        jump_cgroup = %opts.cgroup.display(),
        jump_mode = opts.mode.name(),
        "jumpd ready: enforcing on `{}` with hooks {hooks}{}; control socket `{}`",
        opts.cgroup.display(),
        if opts.mode == Mode::Audit { " in audit mode (nothing refused)" } else { "" },
        opts.control_socket.display(),
    );
    systemd::ready(&status_line(&st, &opts));

    let tick_every = systemd::watchdog_interval()
        .map(|w| w.min(std::time::Duration::from_secs(1)))
        .unwrap_or(std::time::Duration::from_secs(1));
    let watchdog = systemd::watchdog_interval().is_some();
    let mut tick = tokio::time::interval(tick_every);
    // Edges up to here have had their pass. Kept rather than read from the clock: a wake-up by
    // another branch (an event, often the very drop the edge caused) in the few ms between an
    // edge and its timer must not skip that edge's pass. Edges long past (a stalled loop, a
    // reload's image) are left to the reload's own pass.
    let mut edges_done = now_ns();
    let mut events_tick = tokio::time::interval(EVENTS_TICK);
    events_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let exit = loop {
        // The next edge of a time window: connections it ends are revoked right after it.
        let since = edges_done.max(now_ns().saturating_sub(EDGE_CATCH_UP_NS));
        let edge = st
            .installed
            .as_ref()
            .and_then(|i| revoke::next_edge(i, since));
        let until_edge = edge.map(|e| {
            // A few ms late, so the kernel's half-open window has surely closed.
            std::time::Duration::from_nanos(e.saturating_sub(now_ns()))
                + std::time::Duration::from_millis(5)
        });
        tokio::select! {
            _ = tokio::time::sleep(until_edge.unwrap_or_default()), if until_edge.is_some() => {
                let at = edge.unwrap_or_default();
                edges_done = at;
                request_revocation(&st, revoke::Trigger::Edge(at));
            }
            Some((trigger, outcome)) = revoked_rx.recv() => log_revocations(&st, &trigger, outcome),
            guard = events.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                // A bounded batch per wake-up: under an event flood, reloads, signals and the
                // control socket still get their turn (readiness stays set while items remain).
                let handled = sink::batch(|| drain(rb, &mut st));
                if handled < EVENT_BATCH {
                    guard.clear_ready();
                } else {
                    guard.retain_ready();
                    tokio::task::yield_now().await;
                }
            }
            _ = events_tick.tick() => {
                sink::batch(|| drain(events.get_mut(), &mut st));
            }
            guard = addr_watch.readable_mut() => {
                let mut guard = guard?;
                let changes = addrs::drain(guard.get_inner());
                guard.clear_ready();
                if changes.addresses || changes.links {
                    match addrs::local().and_then(|a| kernel.set_local_addrs(&a)) {
                        Ok(()) => tracing::debug!("local addresses updated"),
                        Err(e) => tracing::error!("failed to update the local addresses: {e:#}"),
                    }
                }
                // `via` names interfaces; their indexes are resolved when the policy compiles.
                let uses_via = st.active.as_ref().is_some_and(|a| !a.compiled.image.vias.is_empty());
                if changes.links && uses_via {
                    reload(&mut kernel, &mut st, &opts, "interfaces");
                }
            }
            Some(()) = st.metrics.wanted() => metrics::refresh(&kernel, &mut st),
            _ = hup.recv() => reload(&mut kernel, &mut st, &opts, "sighup"),
            Some(trigger) = watch_rx.recv() => reload(&mut kernel, &mut st, &opts, &trigger),
            Some(msg) = etcd_rx.recv() => etcd::on_message(&mut kernel, &mut st, &opts, msg),
            Some(call) = calls.recv() => {
                if let Some(exit) = handle(&mut kernel, &mut st, &opts, call) {
                    break exit;
                }
            }
            _ = tick.tick() => {
                report_held(&mut kernel, &mut st);
                grants::expire(&mut kernel, &mut st, &opts);
                if Instant::now() >= st.next_verify {
                    let started = Instant::now();
                    check_integrity(&mut kernel, &mut st);
                    // A huge image takes a while to read back: keep the check under 5% of a CPU.
                    st.next_verify = Instant::now() + VERIFY_EVERY.max(started.elapsed() * 20);
                }
                // Expanded schedule windows are running out: compile them afresh.
                if st.recompile_by.is_some_and(|by| jiff::Timestamp::now() >= by) {
                    reload(&mut kernel, &mut st, &opts, "schedule");
                }
                if watchdog {
                    systemd::watchdog();
                }
            }
            _ = term.recv() => break Exit::Stop,
            _ = int.recv() => break Exit::Stop,
        }
    };
    systemd::stopping();
    // The events since the last drain (the kernel wakes jumpd only for a pile, `EVENTS_TICK`),
    // before the held counts; bounded, as a storm may go on filling the ring meanwhile.
    for _ in 0..64 {
        if sink::batch(|| drain(events.get_mut(), &mut st)) < EVENT_BATCH {
            break;
        }
    }
    report_held(&mut kernel, &mut st);
    match exit {
        Exit::Stop => {
            drop(kernel);
            // Stopping is not opening: the pinned programs keep enforcing the last generation.
            tracing::info!(
                message_id = message_id::STOPPED,
                "jumpd stopped; generation {} stays enforced on `{}` (pinned at `{}`; `jumpd --detach` removes it)",
                st.generation,
                opts.cgroup.display(),
                pin_dir.display()
            );
        }
        Exit::Detach(reply) => {
            let hooks = kernel.hooks();
            // HOOK (jumpctl detach): the kernel object goes, then the pins, so nothing keeps
            // the programs attached.
            drop(kernel);
            let result = detach(&opts);
            let _ = reply.send(match &result {
                Ok(()) => Reply::ok(control::Detached {
                    cgroup: opts.cgroup.display().to_string(),
                    hooks,
                }),
                Err(e) => Reply::err(ErrorKind::Failed, format!("detach failed: {e:#}")),
            });
            // Let the connection task write the reply before the runtime goes.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            tracing::info!(
                message_id = message_id::STOPPED,
                "jumpd stopped after detaching"
            );
            result?;
        }
    }
    Ok(())
}

/// `jumpd --detach`: refused while a jumpd enforces on the cgroup (it holds the lock; use
/// `jumpctl detach`, which asks that jumpd).
pub fn detach_standalone(opts: &Options) -> anyhow::Result<()> {
    let dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    if !dir.exists() {
        return detach(opts);
    }
    let _lock = pins::lock(&dir, &opts.cgroup)?;
    detach(opts)
}

/// `jumpctl detach` (by the running jumpd, which holds the lock) and `detach_standalone`:
/// removes the pinned enforcement of `opts.cgroup`.
pub fn detach(opts: &Options) -> anyhow::Result<()> {
    let dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    let detached = pins::detach(&dir)?;
    // The layout and root directories too, once nothing else is pinned below them (removing a
    // directory that is not empty, or a mount point, fails and is left alone).
    if let Some(layout) = dir.parent() {
        let _ = std::fs::remove_dir(layout);
    }
    let _ = std::fs::remove_dir(&opts.pin_dir);
    let what = if detached.is_empty() {
        "nothing (no pinned state)".to_string()
    } else {
        detached.join(",")
    };
    tracing::info!(
        message_id = message_id::DETACHED,
        "detached {what} from `{}`",
        opts.cgroup.display()
    );
    Ok(())
}

/// One line for `systemctl status`.
pub(crate) fn status_line(st: &State, opts: &Options) -> String {
    let sha = st.active.as_ref().map(|a| a.sha256.as_str()).unwrap_or("");
    format!(
        "{} generation {} (sha256 {}){}",
        if opts.mode == Mode::Audit {
            "auditing"
        } else {
            "enforcing"
        },
        st.generation,
        &sha[..sha.len().min(12)],
        match &st.last_reload {
            Some(r) if !r.ok => "; last reload rejected",
            _ => "",
        }
    )
}

/// Re-reads the policy directory and the user database and applies the result. A policy that
/// does not compile, or that the kernel refuses, leaves the active generation in force.
pub fn reload(dp: &mut dyn Datapath, st: &mut State, opts: &Options, trigger: &str) {
    if st.etcd.as_ref().is_some_and(etcd::Link::has_policy) {
        return etcd::reload(dp, st, opts, trigger);
    }
    systemd::reloading();
    let known = st
        .active
        .as_ref()
        .map(|a| a.compiled.rules.principals.clone())
        .unwrap_or_default();
    let planned = grants::with_grants(
        plan(&opts.policy_dir, &known, &opts.subuid_file),
        &st.grants,
    );
    reload_with(dp, st, opts, trigger, planned);
    systemd::ready(&status_line(st, opts));
}

fn reload_with(
    dp: &mut dyn Datapath,
    st: &mut State,
    opts: &Options,
    trigger: &str,
    planned: anyhow::Result<Plan>,
) {
    let at = jiff::Timestamp::now().to_string();
    // A reload (any trigger: an edit, SIGHUP, jumpctl) that compiles to the very same policy
    // is not a new generation: nothing is written, nothing reset, the numbering stays.
    if let (Ok(p), Some(a)) = (&planned, &st.active) {
        if p.image == a.compiled.image && p.sha256 == a.sha256 {
            tracing::info!(
                jump_policy_generation = st.generation,
                jump_reload_trigger = trigger,
                jump_policy_unchanged = true,
                "reload ({trigger}): policy unchanged, generation {} stays",
                st.generation
            );
            // Still an attempt: `status` shows its state, not an older rejection, and says the
            // directory is what is enforced again.
            st.last_reload = Some(ReloadOutcome {
                ok: true,
                trigger: trigger.to_string(),
                at,
                generation: st.generation,
                error: None,
                changes: None,
                summary: format!(
                    "no change: the policy directory matches generation {}",
                    st.generation
                ),
            });
            st.metrics.reloaded(true, false);
            return;
        }
    }
    let result = planned.and_then(|p| install(dp, st, p, opts.mode, trigger));
    let outcome = match result {
        Ok(changes) => ReloadOutcome {
            ok: true,
            trigger: trigger.to_string(),
            at,
            generation: st.generation,
            error: None,
            summary: changes.summary(user_name),
            changes: Some(changes),
        },
        Err(e) => {
            tracing::error!(
                message_id = message_id::RELOAD_REJECTED,
                jump_policy_generation = st.generation,
                jump_reload_trigger = trigger,
                "reload ({trigger}) rejected, generation {} stays in force: {e:#}",
                st.generation
            );
            ReloadOutcome {
                ok: false,
                trigger: trigger.to_string(),
                at,
                generation: st.generation,
                error: Some(format!("{e:#}")),
                changes: None,
                summary: String::new(),
            }
        }
    };
    st.metrics.reloaded(outcome.ok, true);
    st.last_reload = Some(outcome);
}

/// Serves one control request; `Some` ends the main loop.
fn handle(dp: &mut dyn LiveDatapath, st: &mut State, opts: &Options, call: Call) -> Option<Exit> {
    let reply = match &call.request {
        control::Request::Status => Reply::ok(status(dp, st, opts)),
        control::Request::Reload => {
            reload(dp.as_datapath(), st, opts, "jumpctl");
            match st.last_reload.clone() {
                Some(r) if !r.ok => {
                    Reply::err_with(ErrorKind::Rejected, r.error.clone().unwrap_or_default(), r)
                }
                Some(r) => Reply::ok(r),
                None => Reply::err(ErrorKind::Failed, "no reload ran"),
            }
        }
        control::Request::Grant(req) => grants::grant(dp.as_datapath(), st, opts, &call.peer, req),
        control::Request::Grants => Reply::ok(st.grants.list()),
        control::Request::Revoke { id } => {
            grants::revoke(dp.as_datapath(), st, opts, &call.peer, *id)
        }
        control::Request::Stats => match stats(dp, st) {
            Ok(s) => Reply::ok(s),
            Err(e) => Reply::err(
                ErrorKind::Failed,
                format!("failed to read the rule counters: {e:#}"),
            ),
        },
        control::Request::Check {
            user,
            dest,
            at,
            login,
        } => check(st, opts, user, login.as_deref(), dest, at.as_deref()),
        control::Request::Show { user } => show::show(st, opts, user.as_deref()),
        control::Request::Detach => {
            tracing::warn!("detach requested by {}", call.peer);
            return Some(Exit::Detach(call.reply));
        }
        // Served by the connection itself (control::connection).
        control::Request::Events { .. } => Reply::err(ErrorKind::Invalid, "events are not a call"),
    };
    let _ = call.reply.send(reply);
    None
}

/// `Live` as a trait object that can also be used as a plain `Datapath`.
pub trait LiveDatapath: Live {
    fn as_datapath(&mut self) -> &mut dyn Datapath;
}

impl<T: Live> LiveDatapath for T {
    fn as_datapath(&mut self) -> &mut dyn Datapath {
        self
    }
}

/// (rules, users, profiles) of the policy in force.
fn status_counts(st: &State) -> (usize, usize, usize) {
    st.active
        .as_ref()
        .map(|a| {
            let i = &a.compiled.image;
            (
                i.rules.len().saturating_sub(1),
                i.users
                    .keys()
                    .filter(|&&u| u != jump_common::ANY_UID)
                    .count(),
                i.users
                    .values()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
            )
        })
        .unwrap_or_default()
}

pub fn status(dp: &dyn LiveDatapath, st: &State, opts: &Options) -> control::Status {
    use jump_common::counter;
    let c = dp.counters().unwrap_or_default();
    let (rules, users, profiles) = status_counts(st);
    control::Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        mode: opts.mode.name().to_string(),
        cgroup: opts.cgroup.display().to_string(),
        policy_dir: opts.policy_dir.display().to_string(),
        generation: st.generation,
        policy_sha256: st
            .active
            .as_ref()
            .map(|a| a.sha256.clone())
            .unwrap_or_default(),
        rules,
        users,
        profiles,
        hooks: dp.hooks(),
        started_at: st.started_at.to_string(),
        uptime_secs: st.started.elapsed().as_secs(),
        last_reload: st.last_reload.clone(),
        counters: control::Counters {
            decisions: c[counter::DECISIONS as usize],
            events_sent: c[counter::EVENTS_SENT as usize],
            events_suppressed: c[counter::EVENTS_SUPPRESSED as usize],
            events_over_budget: c[counter::EVENTS_OVER_BUDGET as usize],
            events_dropped: c[counter::EVENTS_DROPPED as usize],
            followers_dropped: st
                .bus
                .followers_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            maps_tampered: st.maps_tampered,
        },
        capabilities: st.capabilities.clone(),
        watching: st.watching.clone(),
        integrity: st.integrity.clone(),
        etcd: st.etcd.as_ref().map(etcd::Link::view),
    }
}

pub fn stats(dp: &dyn LiveDatapath, st: &State) -> anyhow::Result<control::Stats> {
    use jump_common::action;
    let Some(active) = &st.active else {
        return Ok(control::Stats {
            generation: st.generation,
            rules: Vec::new(),
        });
    };
    let infos = &active.compiled.image.rules;
    let by_name: std::collections::HashMap<String, [u64; 3]> =
        hits_by_name(dp, st)?.into_iter().collect();
    let mut rules: Vec<control::RuleStats> = infos
        .iter()
        .enumerate()
        .map(|(id, r)| control::RuleStats {
            id: id as u32,
            name: r.name.clone(),
            location: r.location.clone(),
            allow: 0,
            deny: 0,
            audit: 0,
        })
        .collect();
    for r in &mut rules {
        if let Some(h) = by_name.get(&r.name) {
            r.allow = h[action::ALLOW as usize];
            r.deny = h[action::DENY as usize];
            r.audit = h[action::AUDIT as usize];
        }
    }
    Ok(control::Stats {
        generation: st.generation,
        rules,
    })
}

/// Rule hits over jumpd's life by rule name and action: generations gone, the previous one
/// (its slot may still count in-flight decisions) and the active one. The active policy's
/// rules come first, in id order.
fn hits_by_name(dp: &dyn LiveDatapath, st: &State) -> anyhow::Result<Vec<(String, [u64; 3])>> {
    let mut by_name = st.retired_hits.clone();
    let previous = st.tables.iter().rev().nth(1);
    if let Some((_, table)) = previous {
        for (rule, act, n) in dp.previous_rule_hits(table.len())? {
            if let (Some(r), true) = (table.get(rule as usize), act < 3) {
                by_name.entry(r.name.clone()).or_default()[act as usize] += n;
            }
        }
    }
    let infos = st
        .active
        .as_ref()
        .map(|a| a.compiled.image.rules.as_slice())
        .unwrap_or_default();
    for (rule, act, n) in dp.rule_hits(infos.len())? {
        if let (Some(r), true) = (infos.get(rule as usize), act < 3) {
            by_name.entry(r.name.clone()).or_default()[act as usize] += n;
        }
    }
    let mut out = Vec::with_capacity(by_name.len());
    for r in infos {
        if let Some(h) = by_name.remove(&r.name) {
            out.push((r.name.clone(), h));
        }
    }
    let mut rest: Vec<_> = by_name.into_iter().collect();
    rest.sort();
    out.extend(rest);
    Ok(out)
}

/// `jumpctl check USER DEST` against the policy in force.
fn check(
    st: &State,
    opts: &Options,
    user: &str,
    login: Option<&str>,
    dest: &str,
    at: Option<&str>,
) -> Reply {
    let Some(active) = &st.active else {
        return Reply::err(ErrorKind::Failed, "no policy loaded");
    };
    let at_given = at;
    let result = (|| {
        let dest = crate::ctl::parse_dest(dest)?;
        let at = match at {
            Some(a) => crate::ctl::parse_time(a)?,
            None => jiff::Timestamp::now(),
        };
        let resolve = |user: &str| match user.parse::<u32>() {
            Ok(u) => Ok(u),
            Err(_) => nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
                .ok_or_else(|| format!("unknown user `{user}`")),
        };
        let uid = resolve(user)?;
        let login = login
            .map(|l| resolve(l).map(|u| (l.to_string(), u)))
            .transpose()?;
        // The active image holds its schedules expanded around the moment it was compiled; any
        // other moment is answered by the image jumpd would compile then from the same rules,
        // which is what the kernel would enforce at that moment.
        match at_given {
            None => crate::ctl::check_person(&active.compiled, user, uid, login, dest, at),
            Some(_) => {
                let (image, _) = compile::compile_rules(&active.compiled.rules, at)
                    .map_err(|e| e.to_string())?;
                let then = Compiled {
                    image,
                    rules: active.compiled.rules.clone(),
                    warnings: Vec::new(),
                };
                crate::ctl::check_person(&then, user, uid, login, dest, at)
            }
        }
    })();
    match result {
        Ok(report) => {
            let mut text = crate::ctl::render_check(&report);
            if opts.mode == Mode::Audit && !report.allowed {
                text.push_str("  jumpd runs in audit mode: this connection is allowed and logged as \"would deny\"\n");
            }
            Reply::ok(serde_json::json!({
                "generation": st.generation,
                "mode": opts.mode.name(),
                "allowed": report.allowed,
                "report": report,
                "text": text,
            }))
        }
        Err(e) => Reply::err(ErrorKind::Invalid, e),
    }
}

/// Reads the maps back; if they differ from what jumpd wrote (root rewrote a pinned map), says
/// so at once as a crit alarm with what differed, and restores them.
pub fn check_integrity(dp: &mut dyn LiveDatapath, st: &mut State) {
    let found = match dp.verify() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("failed to read the kernel maps back: {e:#}");
            return;
        }
    };
    let at = jiff::Timestamp::now().to_string();
    st.integrity.checks += 1;
    st.integrity.last_check_at = Some(at.clone());
    if found.is_empty() {
        return;
    }
    st.maps_tampered += 1;
    let restored = match dp.restore().and_then(|()| dp.verify()) {
        Ok(left) if left.is_empty() => Ok(()),
        Ok(left) => Err(anyhow::anyhow!("still differs: {}", left.join("; "))),
        Err(e) => Err(e),
    };
    let what = found.join("; ");
    let outcome = match &restored {
        Ok(()) => "restored".to_string(),
        Err(e) => format!("restoring failed: {e:#}"),
    };
    tracing::error!(
        target: crate::events::sink::ALARM_TARGET,
        message_id = message_id::MAPS_TAMPERED,
        jump_policy_generation = st.generation,
        jump_tampered = %what,
        jump_restored = restored.is_ok(),
        "the kernel maps of generation {} were rewritten behind jumpd's back: {what}; {outcome}",
        st.generation
    );
    st.integrity.last_tampering = Some(control::Tampering {
        at,
        generation: st.generation,
        what: found,
        restored: restored.is_ok(),
    });
}

/// Reports what the kernel held back instead of sending since the last report: one entry per
/// uid, naming it, with the counts by reason and verdict, the destinations estimate and the
/// time span — nothing anonymous, and nothing counted twice (what was reported is recorded in
/// a pinned map, so a restarted jumpd continues exactly there). Only events of uids beyond the
/// kernel's table (`UID_HELD_ENTRIES` uids) that were lost cannot be attributed; they get an
/// entry of their own.
fn report_held(kernel: &mut dyn Live, st: &mut State) {
    match kernel.take_held() {
        Ok(snaps) => {
            let offset = kernel.tai_offset_ns();
            for snap in &snaps {
                let Some(s) = crate::events::held::summarize(snap, offset) else {
                    continue;
                };
                let user = user_name(s.uid).unwrap_or_else(|| s.uid.to_string());
                tracing::warn!(
                    message_id = message_id::EVENTS_HELD,
                    jump_uid = s.uid,
                    jump_user = %user,
                    jump_events_held = s.total(),
                    jump_events_over_budget = s.over_budget,
                    jump_events_suppressed = s.similar,
                    jump_events_lost = s.lost,
                    jump_held_allow = s.allow,
                    jump_held_deny = s.deny,
                    jump_held_would_deny = s.would_deny,
                    jump_held_destinations = s.destinations,
                    jump_held_first = s.first.map(tracing::field::display),
                    jump_held_last = s.last.map(tracing::field::display),
                    "{}",
                    crate::events::held::message(&s, &user)
                );
                st.metrics.held(s.uid, s.over_budget, s.similar, s.lost);
                if let Err(e) = kernel.mark_reported(s.uid, s.counts) {
                    tracing::error!("uid {}: {e:#}", s.uid);
                }
            }
        }
        Err(e) => tracing::error!("failed to read the held-back event counts: {e:#}"),
    }
    let Ok(c) = kernel.counters() else { return };
    let untracked = c[jump_common::counter::EVENTS_UNTRACKED as usize];
    if untracked > st.last_untracked {
        let n = untracked - st.last_untracked;
        st.last_untracked = untracked;
        tracing::error!(
            message_id = message_id::EVENTS_LOST,
            jump_events_lost = n,
            "{n} events not logged of users beyond the kernel's table of {} users",
            jump_common::UID_HELD_ENTRIES
        );
    }
}

#[cfg(test)]
mod tests;

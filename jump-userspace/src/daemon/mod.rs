//! `jumpd`: loads the policy directory, keeps the kernel's maps in step with it and turns the
//! kernel's decision events into log records. The policy work is plan/apply: `plan` (parse and
//! compile) is pure and may fail without touching the kernel; `Datapath::apply` is the one write.

use std::path::PathBuf;

use anyhow::Context;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    compile::{self, image::MapImage},
    datapath::{pins, Datapath, Kernel, KernelOptions},
    events::{decode::decode, sink, Enricher},
    policy,
};

/// MESSAGE_IDs of the daemon's own life, fixed so operators can filter on them.
pub mod message_id {
    pub const STARTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f801";
    pub const POLICY_LOADED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f802";
    pub const RELOAD_REJECTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f803";
    pub const DETACHED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f804";
    pub const STOPPED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f805";
    pub const EVENTS_LOST: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f806";
    pub const REVOKED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f807";
}

#[derive(Clone, Debug)]
pub struct Options {
    pub policy_dir: PathBuf,
    pub cgroup: PathBuf,
    /// Root of the pinned state (`/sys/fs/bpf/jump`); each cgroup gets a directory below.
    pub pin_dir: PathBuf,
    pub debug_kernel: bool,
}

/// A compiled policy, ready to apply.
pub struct Plan {
    pub image: MapImage,
    pub sha256: String,
    pub warnings: Vec<String>,
    /// Schedules are expanded a few days ahead: the policy must be compiled again before this.
    pub recompile_by: Option<jiff::Timestamp>,
}

/// Parse and compile the policy directory. Pure with respect to the kernel.
pub fn plan(dir: &std::path::Path) -> anyhow::Result<Plan> {
    let loaded = policy::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = jiff::Timestamp::now();
    let compiled = compile::compile_full(&loaded.policy, &compile::SystemDirectory, now)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let recompile_by = compile::time::recompile_by(&compiled.rules, now);
    let warnings = loaded
        .warnings
        .iter()
        .chain(&compiled.warnings)
        .map(|w| w.to_string())
        .collect();
    Ok(Plan {
        image: compiled.image,
        sha256: loaded.sha256,
        warnings,
        recompile_by,
    })
}

struct State {
    generation: u64,
    enricher: Enricher,
    last_dropped: u64,
    /// The enforced cgroup relative to the cgroup2 mount, as `ss` names cgroups.
    cgroup_rel: String,
    recompile_by: Option<jiff::Timestamp>,
}

/// `path` relative to the cgroup2 mount (`/` for the root), from /proc/mounts.
fn cgroup_relative(path: &std::path::Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let root = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| std::path::PathBuf::from(f[1]))
    });
    let rel = root
        .and_then(|r| path.strip_prefix(r).ok().map(|p| p.display().to_string()))
        .unwrap_or_default();
    format!("/{rel}")
}

/// Closes the established connections the new image refuses (after a reload), logging each.
fn revoke(st: &State, image: &MapImage) {
    let now = jiff::Timestamp::now().as_nanosecond().max(0) as u64;
    match crate::datapath::revoke::revoke(image, &st.cgroup_rel, now) {
        Ok(closed) => {
            for c in closed {
                tracing::warn!(
                    message_id = message_id::REVOKED,
                    jump_uid = c.uid,
                    jump_dst_addr = %c.peer.ip(),
                    jump_dst_port = c.peer.port(),
                    jump_src_addr = %c.local.ip(),
                    jump_src_port = c.local.port(),
                    "revoked {} -> {} of uid {}: the policy no longer allows it",
                    c.local, c.peer, c.uid
                );
            }
        }
        Err(e) => tracing::error!("failed to revoke connections the new policy refuses: {e:#}"),
    }
}

fn install(dp: &mut dyn Datapath, st: &mut State, plan: Plan) -> anyhow::Result<()> {
    let generation = st.generation + 1;
    dp.apply(&plan.image, generation)?;
    st.generation = generation;
    st.recompile_by = plan.recompile_by;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        message_id = message_id::POLICY_LOADED,
        jump_policy_generation = generation,
        jump_policy_sha256 = %plan.sha256,
        rules = plan.image.rules.len() - 1,
        users = plan.image.users.len(),
        "policy generation {generation} loaded ({} rules, sha256 {})",
        plan.image.rules.len() - 1,
        &plan.sha256[..plan.sha256.len().min(12)],
    );
    if generation > 1 {
        revoke(st, &plan.image);
    }
    st.enricher
        .set_generation(generation, plan.image.rules, plan.sha256);
    Ok(())
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

pub async fn run(opts: Options) -> anyhow::Result<()> {
    // Handlers first: a SIGHUP right after "ready" must reload, not kill.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let first = plan(&opts.policy_dir)
        .with_context(|| format!("policy `{}` rejected", opts.policy_dir.display()))?;
    pins::ensure_bpffs(&opts.pin_dir)?;
    let pin_dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    let (mut kernel, logger) = Kernel::load(&KernelOptions {
        debug_log: opts.debug_kernel,
        limits: crate::datapath::DEFAULT_LIMITS,
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
    let mut st = State {
        generation: 0,
        enricher: Enricher::new(),
        last_dropped: 0,
        cgroup_rel: cgroup_relative(&opts.cgroup),
        recompile_by: None,
    };
    // Adopting pinned state: continue its generation numbering.
    st.generation = kernel.generation()?;
    // INVARIANT (fail closed): the maps hold a policy before any program is attached.
    install(&mut kernel, &mut st, first)?;
    kernel.attach(&opts.cgroup)?;
    let mut events = async_fd(kernel.take_events()?)?;
    tracing::info!(
        message_id = message_id::STARTED,
        cgroup = %opts.cgroup.display(),
        "jumpd ready: enforcing on `{}` with hooks {}",
        opts.cgroup.display(),
        kernel.attached().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(","),
    );

    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            guard = events.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    match decode(&item) {
                        Some(e) => sink::emit(&st.enricher.record(&e)),
                        None => tracing::error!("malformed event of {} bytes from the kernel", item.len()),
                    }
                }
                guard.clear_ready();
            }
            _ = hup.recv() => reload(&mut kernel, &mut st, &opts),
            _ = tick.tick() => {
                report_drops(&kernel, &mut st);
                // Expanded schedule windows are running out: compile them afresh.
                if st.recompile_by.is_some_and(|by| jiff::Timestamp::now() >= by) {
                    reload(&mut kernel, &mut st, &opts);
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    report_drops(&kernel, &mut st);
    drop(kernel);
    // Stopping is not opening: the pinned programs keep enforcing the last generation.
    tracing::info!(
        message_id = message_id::STOPPED,
        "jumpd stopped; generation {} stays enforced on `{}` (pinned at `{}`; `jumpd --detach` removes it)",
        st.generation,
        opts.cgroup.display(),
        pin_dir.display()
    );
    Ok(())
}

/// `jumpd --detach`: removes the pinned enforcement of `opts.cgroup`.
pub fn detach(opts: &Options) -> anyhow::Result<()> {
    let dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    let detached = pins::detach(&dir)?;
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

fn reload(dp: &mut dyn Datapath, st: &mut State, opts: &Options) {
    let result = plan(&opts.policy_dir).and_then(|p| install(dp, st, p));
    if let Err(e) = result {
        tracing::error!(
            message_id = message_id::RELOAD_REJECTED,
            jump_policy_generation = st.generation,
            "reload rejected, generation {} stays in force: {e:#}",
            st.generation
        );
    }
}

fn report_drops(kernel: &Kernel, st: &mut State) {
    let Ok(c) = kernel.counters() else { return };
    let dropped = c[jump_common::counter::EVENTS_DROPPED as usize];
    if dropped > st.last_dropped {
        let n = dropped - st.last_dropped;
        st.last_dropped = dropped;
        tracing::error!(
            message_id = message_id::EVENTS_LOST,
            jump_events_lost = n,
            "{n} events lost: the ring buffer was full"
        );
    }
}

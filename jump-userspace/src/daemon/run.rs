//! jumpd's life: start (attach, first load, control socket), the main loop over its event
//! sources (ring buffer, control calls, signals, watches, timers), and detaching.

use super::*;

/// Wraps a BPF ring buffer for readiness polling. tokio deprecates the safe constructor in favour
/// of an `unsafe` one whose contract (the fd stays open for the wrapper's life) these owners
/// uphold by construction: the ring buffer owns its map fd.
#[expect(
    deprecated,
    reason = "the safe constructor is sound for fd owners; the crate forbids unsafe"
)]
pub(super) fn async_fd<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(inner, tokio::io::Interest::READABLE)
}

/// Up to `EVENT_BATCH` events from the ring buffer to the sinks and the bus; how many.
pub(super) fn drain(rb: &mut aya::maps::RingBuf<aya::maps::MapData>, st: &mut State) -> usize {
    let mut handled = 0;
    st.enricher.new_batch();
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
pub(super) enum Exit {
    Stop,
    /// `jumpctl detach`, answered once the programs are gone; the receiver closes when the
    /// answer is written.
    Detach(
        tokio::sync::oneshot::Sender<Reply>,
        tokio::sync::oneshot::Receiver<()>,
    ),
}

/// Runs jumpd. INVARIANT (single thread at drop): call it on tokio's current-thread runtime;
/// see `privileges`.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    // Handlers first: a SIGHUP right after "ready" (READY=1) must reload, not kill.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut memo = crate::policy::Memo::default();
    let (first, etcd_boot) = match &opts.etcd {
        Some(conn) => etcd::first_plan(&opts, conn).map(|(p, b)| (p, Some((conn.clone(), b))))?,
        None => (
            plan(
                &opts.policy_dir,
                &Default::default(),
                &opts.subuid_file,
                &mut memo,
            )
            .with_context(|| format!("policy `{}` rejected", opts.policy_dir.display()))?,
            None,
        ),
    };
    pins::ensure_bpffs(&opts.pin_dir)?;
    let pin_dir = pins::dir_for(&opts.pin_dir, &opts.cgroup)?;
    crate::datapath::refuse_other_jump(&opts.cgroup, &pin_dir)?;
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
    st.memo = memo;
    st.enricher.set_tai_offset(kernel.tai_offset_ns());
    st.enricher.set_kernel_audit(kernel.reads_audit_ids());
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
    for g in st.grants.prune_other_boots(grants::boot_second())? {
        tracing::info!(
            message_id = grants::message_id::EXPIRED,
            jump_grant_id = g.id,
            jump_grant_session = g.session,
            "grant {} ended: it was for audit session {} of an earlier boot, and session ids \
             start again at every boot",
            g.id,
            g.session.unwrap_or_default(),
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
    // Every socket's record is charged to this process's memory cgroup from now on.
    memlimit::warn();
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
        message_id = message_id::READY,
        jump_cgroup = %opts.cgroup.display(),
        jump_mode = opts.mode.name(),
        "jumpd ready: enforcing on `{}` with hooks {hooks}{}; control socket `{}`",
        opts.cgroup.display(),
        if opts.mode == Mode::Audit { " in audit mode (nothing refused)" } else { "" },
        opts.control_socket.display(),
    );
    systemd::ready(&status_line(&st, &opts));
    // This thread drains the ring buffer into the sinks. Under an event storm, every entry it
    // sent woke journald and was preempted by it (on a shared CPU, a switch each way per entry:
    // `cargo xtask bench`, journald sink). Batch scheduling keeps its own wake-ups from
    // preempting journald, at no cost to its CPU share. What bounds the switches is journald's
    // queue (`net.unix.max_dgram_qlen`, 512 where systemd booted the host): with the kernel's
    // default of 10, the bench still saw a switch per entry in some storms.
    // Threads started above (revocation, etcd, watches) keep the default policy.
    if let Err(e) = jump_common::sys::batch_scheduling() {
        tracing::warn!("could not use batch scheduling for the event thread: {e}");
    }

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
        Exit::Detach(reply, written) => {
            let hooks = kernel.hooks();
            // HOOK (jumpctl detach): the kernel object goes, then the pins, so nothing keeps
            // the programs attached.
            drop(kernel);
            let result = detach(&opts);
            let _ = reply.send(match &result {
                Ok(()) => Reply::ok(protocol::Detached {
                    cgroup: opts.cgroup.display().to_string(),
                    hooks,
                }),
                Err(e) => Reply::err(ErrorKind::Failed, format!("detach failed: {e:#}")),
            });
            // The connection task writes the reply before the runtime goes (its write is
            // bounded by `WRITE_TIMEOUT`, so this wait is too).
            let _ = written.await;
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

/// Reports what the kernel held back instead of sending since the last report: one entry per
/// uid, naming it, with the counts by reason and verdict, the destinations estimate and the
/// time span — nothing anonymous, and nothing counted twice (what was reported is recorded in
/// a pinned map, so a restarted jumpd continues exactly there). Only events of uids beyond the
/// kernel's table (`UID_HELD_ENTRIES` uids) that were lost cannot be attributed; they get an
/// entry of their own.
///
/// With journald gone (its socket refusing), a summary would be lost like the entries it sums
/// up: the kernel's counts then stay unreported and jumpd's unsent ones kept, for the first
/// report journald takes. The metrics count unsent entries as they happen.
pub(super) fn report_held(kernel: &mut dyn Live, st: &mut State) {
    st.metrics.unsent(sink::take_unsent_count());
    if !sink::journal_reachable() {
        return;
    }
    let unsent = sink::take_unsent();
    let summaries = match kernel.take_held() {
        Ok(snaps) => {
            let offset = kernel.tai_offset_ns();
            snaps
                .iter()
                .filter_map(|snap| crate::events::held::summarize(snap, offset))
                .collect()
        }
        Err(e) => {
            tracing::error!("failed to read the held-back event counts: {e:#}");
            Vec::new()
        }
    };
    for s in crate::events::held::with_unsent(summaries, unsent.by_uid) {
        let user = user_name(s.uid).unwrap_or_else(|| s.uid.to_string());
        tracing::warn!(
            message_id = message_id::EVENTS_HELD,
            jump_uid = s.uid,
            jump_user = %user,
            jump_events_held = s.total(),
            jump_events_over_budget = s.over_budget,
            jump_events_suppressed = s.similar,
            jump_events_lost = s.lost,
            jump_events_unsent = (s.unsent > 0).then_some(s.unsent),
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
        if let Some(counts) = s.counts {
            if let Err(e) = kernel.mark_reported(s.uid, counts) {
                tracing::error!("uid {}: {e:#}", s.uid);
            }
        }
    }
    if unsent.beyond > 0 {
        tracing::error!(
            message_id = message_id::EVENTS_LOST,
            jump_events_lost = unsent.beyond,
            jump_events_unsent = unsent.beyond,
            "{} events not taken by journald, of users beyond the {} counted apart",
            unsent.beyond,
            sink::MAX_UNSENT_UIDS
        );
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

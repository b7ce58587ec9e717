//! `jumpd`: loads the policy directory, keeps the kernel's maps in step with it and turns the
//! kernel's decision events into log records. The policy work is plan/apply: `plan` (parse and
//! compile) is pure and may fail without touching the kernel; `Datapath::apply` is the one write.

pub mod addrs;
pub mod args;
pub mod audit;
pub mod config;
pub mod control;
pub mod diff;
pub mod etcd;
pub mod grants;
mod handlers;
pub mod memlimit;
pub mod message_id;
pub mod metrics;
pub mod plan;
pub mod privileges;
mod reload;
mod run;
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
use control::{Bus, Call};
pub use handlers::{check_integrity, stats, status};
use handlers::{handle, hits_by_name, status_counts};
pub use plan::{plan, plan_loaded, Plan, READ};
pub use reload::reload;
use reload::{
    log_revocations, now_ns, reload_with, request_revocation, user_name, EDGE_CATCH_UP_NS,
};
use run::{async_fd, status_line, Exit};
pub use run::{detach, detach_standalone, run};

use jump_common::SockRecord;

use crate::{
    compile::{
        self,
        image::{MapImage, RuleInfo},
        Compiled,
    },
    datapath::{pins, revoke, Datapath, Kernel, KernelOptions, Live},
    events::{decode::decode, sink, Enricher},
    explain, policy,
    protocol::{self, ErrorKind, ReloadOutcome, Reply},
};

/// Events handled per ring-buffer wake-up before the loop looks at its other sources.
const EVENT_BATCH: usize = 512;
/// How often the ring buffer is drained without a wake-up: the kernel wakes jumpd only when
/// events pile up (jump-ebpf `emit.rs`, `WAKE_BYTES`), so this bounds an event's delay.
const EVENTS_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// How often jumpd reads its maps back to find rewrites (`check_integrity`), at the least.
pub const VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The policy in force.
struct Active {
    /// As written (before audit mode), with its rules: what `check` explains.
    compiled: Compiled,
    sha256: String,
    /// How many of `compiled.rules.rules` are the policy's own (`Plan::policy_rules`).
    policy_rules: usize,
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
    integrity: protocol::Integrity,
    maps_tampered: u64,
    next_verify: Instant,
    /// Just-in-time grants in force (`grants`).
    grants: grants::Store,
    pub metrics: metrics::Metrics,
    /// The etcd policy source, when jumpd has one.
    etcd: Option<etcd::Link>,
    /// The policy files parsed by the last load (`plan`).
    memo: crate::policy::Memo,
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
            integrity: protocol::Integrity::default(),
            maps_tampered: 0,
            next_verify: Instant::now() + VERIFY_EVERY,
            grants: grants::Store::in_memory(),
            metrics: metrics::Metrics::new(),
            etcd: None,
            memo: Default::default(),
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

#[cfg(test)]
mod tests;

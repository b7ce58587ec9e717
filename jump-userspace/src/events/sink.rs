//! Where records go: journald (the default where its socket exists), JSON lines or text on
//! stdout. Every sink is a `tracing` layer, so decision events and the daemon's own messages
//! share one path; decision events use the target `jump::event` and levels chosen so journald's
//! PRIORITY reads 4 for deny, 5 for would-deny and 6 for allow. The exceptions are decision
//! events to journald and to JSON lines, which `journal` and `json` write themselves
//! (the same entries and lines, without `tracing`'s cost per entry).

use std::{
    cell::RefCell,
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::Path,
};

use tracing_subscriber::{filter::EnvFilter, prelude::*};

use super::{held::Unsent, journal, json, Record};
use crate::verdict::Verdict;

pub const EVENT_TARGET: &str = "jump::event";
/// The daemon's alarms (its maps were rewritten behind its back): journald PRIORITY 2 (crit),
/// which the `ERROR` level alone cannot express.
pub const ALARM_TARGET: &str = "jump::alarm";
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";
/// journald's `SYSLOG_IDENTIFIER` of every entry jumpd writes.
const IDENTIFIER: &str = "jumpd";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Journald,
    Json,
    Text,
}

impl LogFormat {
    /// journald when it listens on its socket, otherwise JSON lines.
    pub fn detect() -> Self {
        Self::detect_at(Path::new(JOURNALD_SOCKET)).0
    }

    /// journald when something listens on `socket`, else JSON lines, with a warning when the
    /// socket file exists but nobody listens (a stopped journald leaves it behind, and logging
    /// into it would lose every record).
    pub fn detect_at(socket: &Path) -> (Self, Option<String>) {
        if !socket.exists() {
            return (LogFormat::Json, None);
        }
        match journal::listening(socket) {
            Ok(()) => (LogFormat::Journald, None),
            Err(e) => (
                LogFormat::Json,
                Some(format!(
                    "journald's socket `{}` does not answer ({e}): logging JSON lines to stdout instead",
                    socket.display()
                )),
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Journald => "journald",
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` filters the daemon's own messages (default
/// `info`); decision events always pass, since the policy's `log:` already chose them.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info"))
            .add_directive(
                format!("{EVENT_TARGET}=trace")
                    .parse()
                    .expect("static directive"),
            )
    };
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Journald => {
            let writer = journal::Writer::new(JOURNALD_SOCKET, IDENTIFIER)?;
            JOURNAL.with(|j| *j.borrow_mut() = Some(writer));
            let layer = tracing_journald::layer()?
                .with_syslog_identifier(IDENTIFIER.into())
                // Field names are already namespaced (`jump_…`); journald upper-cases them.
                .with_field_prefix(None);
            let alarms = tracing_journald::layer()?
                .with_syslog_identifier(IDENTIFIER.into())
                .with_field_prefix(None)
                .with_priority_mappings(tracing_journald::PriorityMappings {
                    error: tracing_journald::Priority::Critical,
                    ..tracing_journald::PriorityMappings::new()
                });
            let others = filter().add_directive(
                format!("{ALARM_TARGET}=off")
                    .parse()
                    .expect("static directive"),
            );
            let only_alarms = tracing_subscriber::filter::Targets::new()
                .with_target(ALARM_TARGET, tracing::Level::ERROR);
            registry
                .with(layer.with_filter(others))
                .with(alarms.with_filter(only_alarms))
                .try_init()?;
        }
        LogFormat::Json => {
            JSON.with(|j| *j.borrow_mut() = Some(json::Lines::default()));
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(|| Batched);
            registry.with(layer.with_filter(filter())).try_init()?;
        }
        LogFormat::Text => {
            // One line per record: time, level and the message, which already says everything
            // a reader needs; the structured fields are for journald and JSON.
            let message_only = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                if field.name() == "message" {
                    write!(w, "{value:?}")
                } else {
                    Ok(())
                }
            });
            let layer = tracing_subscriber::fmt::layer()
                .with_target(false)
                .fmt_fields(message_only)
                .with_ansi(std::io::stdout().is_terminal())
                .with_writer(|| Batched);
            registry.with(layer.with_filter(filter())).try_init()?;
        }
    }
    Ok(())
}

thread_local! {
    /// The lines of the drain in progress on this thread (`batch`), `None` outside one.
    static BATCH: RefCell<(bool, Vec<u8>)> = const { RefCell::new((false, Vec::new())) };
    /// With the journald sink, decision events go to journald through this writer
    /// (`journal`), not through `tracing`; set by `init` on the thread that drains the ring
    /// buffer (jumpd has one).
    static JOURNAL: RefCell<Option<journal::Writer>> = const { RefCell::new(None) };
    /// With the JSON sink, decision events are written by `json` (the same lines `tracing`'s
    /// JSON layer writes for the daemon's own messages), set as `JOURNAL` is.
    static JSON: RefCell<Option<json::Lines>> = const { RefCell::new(None) };
    /// Decision entries journald did not take since the last `take_unsent`, per uid.
    static UNSENT: RefCell<Unsents> = const { RefCell::new(Unsents { by_uid: BTreeMap::new(), beyond: 0 }) };
    /// How many since the last `take_unsent_count` (for the metrics, which count them at once).
    static UNSENT_COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What `take_unsent` returns: per uid, and how many of uids beyond `MAX_UNSENT_UIDS`.
#[derive(Debug, Default)]
pub struct Unsents {
    pub by_uid: BTreeMap<u32, Unsent>,
    pub beyond: u64,
}

/// The most uids whose unsent entries are kept apart between two reports: a user with many
/// subordinate uids must not grow jumpd's memory while journald is away; the rest are counted
/// together.
pub const MAX_UNSENT_UIDS: usize = 4096;

/// The entries journald did not take since the last call (with the journald sink), for the
/// daemon to report as lost.
pub fn take_unsent() -> Unsents {
    UNSENT.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

/// How many entries journald did not take since the last call.
pub fn take_unsent_count() -> u64 {
    UNSENT_COUNT.with(|c| c.replace(0))
}

/// Whether an entry written now would reach journald: true but for the journald sink whose
/// socket refuses (journald gone, or restarting).
pub fn journal_reachable() -> bool {
    JOURNAL.with(|j| j.borrow().as_ref().is_none_or(journal::Writer::reachable))
}

/// Standard output for the JSON and text sinks: inside `batch`, lines are collected and
/// written together at its end; outside, each goes out at once (the daemon's own messages,
/// which the admin and the tests wait for).
struct Batched;

impl Write for Batched {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let collected = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            if b.0 {
                b.1.extend_from_slice(buf);
            }
            b.0
        });
        if collected {
            Ok(buf.len())
        } else {
            std::io::stdout().lock().write(buf)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// Runs `f` (one ring-buffer drain) with the records it emits to standard output written in
/// one `write` at its end instead of one per record, and those to journald sent at its end
/// (one datagram per record: journald's protocol has one entry per datagram).
pub fn batch<R>(f: impl FnOnce() -> R) -> R {
    BATCH.with(|b| b.borrow_mut().0 = true);
    let r = f();
    let mut lines = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.0 = false;
        std::mem::take(&mut b.1)
    });
    if !lines.is_empty() {
        // As tracing's own writer: a failed write to standard output is not the events' loss
        // to report anywhere else.
        let _ = std::io::stdout().lock().write_all(&lines);
    }
    lines.clear();
    // The buffer is kept for the next drain, up to a bound, so a drain allocates nothing.
    if lines.capacity() <= BATCH_KEEP_BYTES {
        BATCH.with(|b| b.borrow_mut().1 = lines);
    }
    flush_journal();
    r
}

/// Sends the journal entries collected so far. An entry journald does not take is counted
/// (`take_unsent`), so the daemon reports it with what the kernel lost.
fn flush_journal() {
    JOURNAL.with(|j| {
        if let Some(w) = j.borrow_mut().as_mut().filter(|w| w.pending()) {
            UNSENT.with(|u| {
                let u = &mut *u.borrow_mut();
                w.flush(|uid, verdict| {
                    UNSENT_COUNT.with(|c| c.set(c.get() + 1));
                    if u.by_uid.len() < MAX_UNSENT_UIDS || u.by_uid.contains_key(&uid) {
                        u.by_uid.entry(uid).or_default().add(verdict);
                    } else {
                        u.beyond += 1;
                    }
                });
            });
        }
    });
}

/// The largest line buffer kept between drains (a full drain of 512 records is ~600 KiB).
const BATCH_KEEP_BYTES: usize = 1 << 20;

/// MESSAGE_IDs of decision events, one per verdict, fixed forever so auditors can filter on them.
pub mod message_id {
    pub const ALLOW: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b21";
    pub const DENY: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b22";
    pub const WOULD_DENY: &str = "5a1d8e0f3b7c4e2a9d6b1c0e8f7a3b23";
}

macro_rules! emit_at {
    ($level:expr, $id:expr, $r:expr) => {
        tracing::event!(
            target: EVENT_TARGET,
            $level,
            message_id = $id,
            jump_time = %$r.time,
            jump_verdict = $r.verdict.as_str(),
            jump_uid = $r.uid,
            jump_user = %$r.user,
            jump_ns_uid = $r.ns_uid,
            jump_gid = $r.gid,
            jump_pid = $r.pid,
            jump_comm = %$r.comm,
            jump_exe = $r.exe.as_deref(),
            jump_login_uid = $r.login_uid,
            jump_login_trusted = $r.login_trusted.map(u8::from),
            jump_session_id = $r.session_id,
            jump_ssh_client = $r.ssh_client.map(display),
            jump_ssh_client_port = $r.ssh_client_port,
            jump_ssh_server = $r.ssh_server.map(display),
            jump_ssh_server_port = $r.ssh_server_port,
            jump_proto = $r.proto,
            jump_dst_addr = %$r.dst_addr,
            jump_dst_port = $r.dst_port,
            jump_src_addr = $r.src_addr.map(display),
            jump_src_port = $r.src_port,
            jump_rule = %$r.rule,
            jump_rule_name = %$r.rule_name,
            jump_rule_file = $r.rule_file.as_deref(),
            jump_rule_line = $r.rule_line,
            jump_hook = $r.hook,
            jump_decided_by = $r.decided_by,
            jump_grant_reason = $r.grant_reason.as_deref(),
            jump_option = $r.option,
            jump_policy_generation = $r.policy_generation,
            jump_policy_sha256 = %$r.policy_sha256,
            jump_suppressed = ($r.suppressed > 0).then_some($r.suppressed),
            "{}",
            $r.message()
        )
    };
}

/// Writes one decision. Fields that are not known (`None`) are left out of the entry rather
/// than written empty, so `journalctl JUMP_EXE=…` never matches a blank. (`display` in the
/// fields is the one `tracing::event!` brings into scope.)
pub fn emit(r: &Record) {
    let id = message_id_of(r.verdict);
    let code = (file!(), line!());
    let written = JOURNAL.with(|j| j.borrow_mut().as_mut().map(|w| w.push(r, id, code)));
    if written == Some(true) {
        if !BATCH.with(|b| b.borrow().0) {
            flush_journal();
        }
        return;
    }
    let written = JSON.with(|j| {
        j.borrow_mut().as_mut().map(|lines| {
            BATCH.with(|b| {
                let (batching, buf) = &mut *b.borrow_mut();
                lines.write(buf, r, id);
                if !*batching {
                    let _ = std::io::stdout().lock().write_all(buf);
                    buf.clear();
                }
            })
        })
    });
    if written.is_none() {
        // The text sink, and an entry too large for one journald datagram
        // (`tracing-journald` sends it in a memfd).
        emit_through_tracing(r);
    }
}

/// The MESSAGE_ID of a decision with verdict `v`.
pub fn message_id_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => message_id::ALLOW,
        Verdict::WouldDeny => message_id::WOULD_DENY,
        Verdict::Deny => message_id::DENY,
    }
}

/// Writes one decision through `tracing`, to whichever layers are installed.
pub(super) fn emit_through_tracing(r: &Record) {
    match r.verdict {
        Verdict::Allow => emit_at!(tracing::Level::DEBUG, message_id::ALLOW, r),
        Verdict::WouldDeny => emit_at!(tracing::Level::INFO, message_id::WOULD_DENY, r),
        Verdict::Deny => emit_at!(tracing::Level::WARN, message_id::DENY, r),
    }
}

#[cfg(test)]
mod detect_tests {
    use super::*;

    #[test]
    fn a_socket_file_nobody_listens_on_is_not_journald() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        assert_eq!(LogFormat::detect_at(&path), (LogFormat::Json, None));
        let live = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        assert_eq!(LogFormat::detect_at(&path), (LogFormat::Journald, None));
        drop(live);
        assert!(
            path.exists(),
            "the file stays, as journald's does when it stops"
        );
        let (format, warning) = LogFormat::detect_at(&path);
        assert_eq!(format, LogFormat::Json);
        let w = warning.unwrap();
        assert!(
            w.starts_with(&format!(
                "journald's socket `{}` does not answer (",
                path.display()
            )),
            "{w}"
        );
    }
}

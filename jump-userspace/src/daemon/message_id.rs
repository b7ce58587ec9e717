//! MESSAGE_IDs of the daemon's own life, fixed so operators can filter on them (README, "Logs");
//! grants have theirs in `daemon::grants::message_id`. Each kind of entry has its own; an id once
//! retired is never reused with another meaning.

/// jumpd ready: attached and serving (`JUMP_CGROUP`, `JUMP_MODE`).
pub const READY: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f801";
/// jumpd starting (version, log target, config file), before anything is attached.
pub const STARTING: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80e";
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

//! Ring buffer → decoded events → log records. `decode` turns the kernel's bytes into an
//! `Event` without `unsafe`; `enrich` names the person and the rule behind it (a `record`),
//! with what `proc` reads about the process (kept per live process by `pids`) and bounded
//! caches (`cache`); `sink::emit` hands the record to `journal` (journald), to `json` (JSON
//! lines) or to `tracing` (text; and the daemon's own messages to every sink); `held`
//! summarises, per uid, what the kernel held back.

pub mod cache;
pub mod decode;
pub mod enrich;
pub mod held;
pub mod journal;
pub mod json;
pub mod login;
pub mod pids;
pub mod proc;
pub mod record;
pub mod sink;

pub use enrich::Enricher;
pub use record::Record;

//! Ring buffer → decoded events → log records. `decode` turns the kernel's bytes into an
//! `Event` without `unsafe`; `record` names the person and the rule behind it; `emit` hands the
//! record to `tracing`, whose layers (see `sink`) write journald, JSON lines or text.

pub mod decode;
pub mod record;
pub mod sink;

pub use record::{Enricher, Record};

//! Ring buffer → decoded events → log sink.

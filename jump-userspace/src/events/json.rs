//! Decision events → JSON lines, written here rather than through `tracing`'s JSON layer: a
//! line is built straight into the drain's buffer, with no field visitor, no `fmt::Write`
//! adapter validating UTF-8 per write and no message formatted into a fresh `String` per
//! record (what `perf` showed of jumpd's time under an event storm). The lines are the ones
//! `tracing-subscriber` wrote (the same keys, values, order and timestamp form), so nothing
//! that reads them can tell; a test holds the two side by side.

use std::{
    io::Write,
    net::IpAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use super::Record;
use crate::verdict::Verdict;

/// Writes decision records as JSON lines. Keeps, from line to line, the message's buffer and
/// the timestamp's date and time to the second, so a line allocates nothing once warm.
#[derive(Default)]
pub struct Lines {
    message: String,
    /// The second `second_text` spells (`2026-12-01T21:29:04`).
    second: u64,
    second_text: String,
}

impl Lines {
    /// Appends `r` as one line to `out`, stamped now, with the `level` `sink::emit` gives its
    /// verdict and `message_id`.
    pub fn write(&mut self, out: &mut Vec<u8>, r: &Record, message_id: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.write_at(out, r, message_id, now.as_secs(), now.subsec_micros());
    }

    fn write_at(&mut self, out: &mut Vec<u8>, r: &Record, id: &str, secs: u64, micros: u32) {
        if self.second_text.is_empty() || self.second != secs {
            self.second = secs;
            self.second_text = i64::try_from(secs)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or_default()
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string();
        }
        self.message.clear();
        r.write_message(&mut self.message);
        let mut o = Obj(out, true);
        o.0.push(b'{');
        o.key("timestamp");
        // Writing into a Vec cannot fail.
        let _ = write!(o.0, "\"{}.{micros:06}Z\"", self.second_text);
        o.str("level", level(r.verdict));
        o.str("message", &self.message);
        o.str("message_id", id);
        o.display("jump_time", r.time);
        o.str("jump_verdict", r.verdict.as_str());
        o.num("jump_uid", r.uid);
        o.str("jump_user", &r.user);
        o.opt_num("jump_ns_uid", r.ns_uid);
        o.num("jump_gid", r.gid);
        o.num("jump_pid", r.pid);
        o.str("jump_comm", &r.comm);
        o.opt_str("jump_exe", r.exe.as_deref());
        o.opt_num("jump_login_uid", r.login_uid);
        o.opt_num("jump_login_trusted", r.login_trusted.map(u8::from));
        o.opt_num("jump_session_id", r.session_id);
        o.opt_addr("jump_ssh_client", r.ssh_client);
        o.opt_num("jump_ssh_client_port", r.ssh_client_port);
        o.opt_addr("jump_ssh_server", r.ssh_server);
        o.opt_num("jump_ssh_server_port", r.ssh_server_port);
        o.str("jump_proto", r.proto);
        o.display("jump_dst_addr", r.dst_addr);
        o.num("jump_dst_port", r.dst_port);
        o.opt_addr("jump_src_addr", r.src_addr);
        o.opt_num("jump_src_port", r.src_port);
        o.str("jump_rule", &r.rule);
        o.str("jump_rule_name", &r.rule_name);
        o.opt_str("jump_rule_file", r.rule_file.as_deref());
        o.opt_num("jump_rule_line", r.rule_line);
        o.str("jump_hook", r.hook);
        o.str("jump_decided_by", r.decided_by);
        o.opt_str("jump_grant_reason", r.grant_reason.as_deref());
        o.opt_str("jump_option", r.option);
        o.num("jump_policy_generation", r.policy_generation);
        o.str("jump_policy_sha256", &r.policy_sha256);
        o.opt_num(
            "jump_suppressed",
            (r.suppressed > 0).then_some(r.suppressed),
        );
        o.str("target", super::sink::EVENT_TARGET);
        o.0.extend_from_slice(b"}\n");
    }
}

/// The `tracing` level `sink::emit` gives each verdict, as `tracing`'s JSON spells it.
fn level(v: Verdict) -> &'static str {
    match v {
        Verdict::Deny => "WARN",
        Verdict::WouldDeny => "INFO",
        Verdict::Allow => "DEBUG",
    }
}

/// The object being written, and whether no member is written yet.
struct Obj<'a>(&'a mut Vec<u8>, bool);

impl Obj<'_> {
    fn key(&mut self, k: &str) {
        if !std::mem::take(&mut self.1) {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(k.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// A string, escaped as `serde_json` (which `tracing`'s JSON uses) escapes it.
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        // Serialising a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.0, v);
    }

    fn num(&mut self, k: &str, v: impl Into<u64>) {
        self.key(k);
        let _ = write!(self.0, "{}", v.into());
    }

    /// An unknown (`None`) value is left out, as `tracing` leaves out a `None`.
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    fn opt_num(&mut self, k: &str, v: Option<impl Into<u64>>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    /// A value whose text needs no escaping (an address, a time stamp), as a string.
    fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        let _ = write!(self.0, "\"{v}\"");
    }

    fn opt_addr(&mut self, k: &str, v: Option<IpAddr>) {
        if let Some(v) = v {
            self.display(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::events::{record::sample, sink};

    /// What `tracing`'s JSON layer, as jumpd configured it before this writer, writes for `r`.
    fn through_tracing(r: &Record) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(move || Shared(writer.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || sink::emit_through_tracing(r));
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn direct(r: &Record) -> String {
        let mut out = Vec::new();
        Lines::default().write(&mut out, r, sink::message_id_of(r.verdict));
        String::from_utf8(out).unwrap()
    }

    /// The two lines with their timestamps (when each was written) set aside.
    fn without_timestamp(line: &str) -> (String, String) {
        let (head, rest) = line.split_at(line.find(",\"level\"").expect("a level"));
        (head.to_string(), rest.to_string())
    }

    fn every_field_known() -> Record {
        Record {
            ns_uid: Some(165_536),
            exe: Some("/usr/bin/cu\"rl".into()),
            login_uid: Some(1000),
            login_user: Some("bob".into()),
            login_trusted: Some(false),
            ssh_client: Some("2001:db8::1".parse().unwrap()),
            ssh_client_port: Some(50_000),
            ssh_server: Some("192.0.2.1".parse().unwrap()),
            ssh_server_port: Some(22),
            src_addr: Some("192.0.2.1".parse().unwrap()),
            src_port: Some(40_000),
            rule_file: Some("policies/20-access.yaml".into()),
            rule_line: Some(7),
            grant_reason: Some("INC-1 \u{1b}[2K\n".into()),
            option: Some("IP_FREEBIND"),
            suppressed: 41,
            ..sample()
        }
    }

    #[test]
    fn lines_are_the_ones_tracing_wrote() {
        let mut hostile = sample();
        hostile.comm = "x\"\n\u{7f}\u{1}\\\u{202e}é".into();
        hostile.user = "ev il".into();
        let mut allow = every_field_known();
        allow.verdict = Verdict::Allow;
        let mut audit = sample();
        audit.verdict = Verdict::WouldDeny;
        audit.dst_addr = "2001:db8::7".parse().unwrap();
        for r in [sample(), every_field_known(), hostile, allow, audit] {
            let (ours, theirs) = (direct(&r), through_tracing(&r));
            assert_eq!(without_timestamp(&ours).1, without_timestamp(&theirs).1);
            let value: serde_json::Value = serde_json::from_str(&ours).unwrap();
            assert_eq!(value["message"], r.message());
            assert!(ours.ends_with("}\n") && ours.matches('\n').count() == 1);
        }
    }

    #[test]
    fn the_timestamp_has_tracings_form() {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        // 2026-12-01T21:29:04Z, then a later second: the cached text follows the clock.
        lines.write_at(&mut out, &sample(), "id", 1_796_160_544, 7);
        lines.write_at(&mut out, &sample(), "id", 1_796_160_545, 999_999);
        let text = String::from_utf8(out).unwrap();
        let stamps: Vec<_> = text
            .lines()
            .map(|l| without_timestamp(l).0)
            .collect::<Vec<_>>();
        assert_eq!(
            stamps,
            [
                r#"{"timestamp":"2026-12-01T21:29:04.000007Z""#,
                r#"{"timestamp":"2026-12-01T21:29:05.999999Z""#
            ]
        );
        let theirs = through_tracing(&sample());
        let theirs = without_timestamp(&theirs).0;
        let shape = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect::<String>()
        };
        assert_eq!(shape(&theirs), shape(&stamps[0]));
    }
}

//! Decision events → journald's native protocol, written here rather than through `tracing`:
//! the entries of one ring-buffer drain are built back to back in one buffer kept from drain to
//! drain, and sent when the drain ends. Under an event storm, going through `tracing` cost a
//! field visitor, a formatted value and a fresh buffer per entry, and a send between every two
//! records. The entries are the ones `tracing-journald` wrote (the same fields, names and
//! priorities), so nothing that reads the journal can tell.
//!
//! journald's protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL) takes one entry per datagram, so a
//! drain is still one datagram per entry. A field is `NAME=value\n`, as `sd_journal_send`
//! writes it; a value holding a newline is written length-prefixed instead (`NAME\n`, 64-bit
//! little-endian length, value, `\n`), so no value can end early and add fields.

use std::{
    io::{self, IoSlice, Write},
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    sys::socket::{sendmmsg, MsgFlags, MultiHeaders, UnixAddr},
};

use super::Record;
use crate::verdict::Verdict;

/// An entry larger than this is not written here (`push` says so), so that the caller sends it
/// the way that handles any size (`tracing-journald` passes a large entry in a memfd). A
/// decision's fields are bounded well below it; the bound only keeps a datagram within what
/// the socket takes.
pub const MAX_ENTRY_BYTES: usize = 64 << 10;

/// journald's send buffer: what systemd's own `sd_journal_send` asks for (8 MiB), so a
/// drain's entries queue in the kernel instead of each send waiting for journald.
const SEND_BUFFER_BYTES: usize = 8 << 20;

/// Whether something holds the journald socket at `path`: a datagram connect() to a socket file
/// nobody holds (a journald that is gone leaves it behind) fails with ECONNREFUSED.
pub fn listening(path: &Path) -> io::Result<()> {
    UnixDatagram::unbound()?.connect(path)
}

pub struct Writer {
    socket: UnixDatagram,
    /// Whether `socket` is connected to journald's socket: each send then skips the path lookup
    /// `send_to` makes per datagram (`perf`: an eighth of jumpd's CPU under an event storm).
    connected: bool,
    path: PathBuf,
    identifier: String,
    /// The message of the entry being written, kept from entry to entry.
    message: String,
    /// The entries of the drain in progress, back to back; `ends[i]` is where entry `i` ends,
    /// `whose[i]` its uid and verdict (what an entry journald does not take is counted under).
    buf: Vec<u8>,
    ends: Vec<usize>,
    whose: Vec<(u32, Verdict)>,
}

impl Writer {
    /// A writer to the journald socket at `path`, entries tagged `SYSLOG_IDENTIFIER=identifier`.
    pub fn new(path: impl Into<PathBuf>, identifier: &str) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        // Best effort: a smaller buffer only means sends wait for journald sooner.
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::SndBuf,
            &SEND_BUFFER_BYTES,
        );
        Ok(Self {
            socket,
            connected: false,
            path: path.into(),
            identifier: identifier.to_string(),
            message: String::new(),
            buf: Vec::new(),
            ends: Vec::new(),
            whose: Vec::new(),
        })
    }

    /// Adds `r` as an entry to the drain in progress; false (nothing added) when it would be
    /// larger than `MAX_ENTRY_BYTES`. `code` is the file and line the event is written from,
    /// `CODE_FILE` and `CODE_LINE` as `tracing-journald` gives them.
    pub fn push(&mut self, r: &Record, message_id: &str, code: (&str, u32)) -> bool {
        let start = self.buf.len();
        let b = &mut self.buf;
        // PRIORITY as `tracing-journald`'s default mapping of the levels `sink::emit` used:
        // deny WARN → 4, would-deny INFO → 5, allow DEBUG → 6.
        let priority = match r.verdict {
            Verdict::Deny => "4",
            Verdict::WouldDeny => "5",
            Verdict::Allow => "6",
        };
        field(b, "PRIORITY", priority);
        field(b, "TARGET", super::sink::EVENT_TARGET);
        field(b, "CODE_FILE", code.0);
        field(b, "CODE_LINE", code.1);
        field(b, "SYSLOG_IDENTIFIER", &self.identifier);
        field(b, "MESSAGE_ID", message_id);
        field(b, "JUMP_TIME", r.time);
        field(b, "JUMP_VERDICT", r.verdict.as_str());
        field(b, "JUMP_UID", r.uid);
        field(b, "JUMP_USER", &r.user);
        opt(b, "JUMP_NS_UID", r.ns_uid);
        field(b, "JUMP_GID", r.gid);
        field(b, "JUMP_PID", r.pid);
        field(b, "JUMP_COMM", r.comm);
        opt(b, "JUMP_EXE", r.exe.as_deref());
        opt(b, "JUMP_LOGIN_UID", r.login_uid);
        opt(b, "JUMP_LOGIN_TRUSTED", r.login_trusted.map(u8::from));
        opt(b, "JUMP_SESSION_ID", r.session_id);
        opt(b, "JUMP_SSH_CLIENT", r.ssh_client);
        opt(b, "JUMP_SSH_CLIENT_PORT", r.ssh_client_port);
        opt(b, "JUMP_SSH_SERVER", r.ssh_server);
        opt(b, "JUMP_SSH_SERVER_PORT", r.ssh_server_port);
        field(b, "JUMP_PROTO", r.proto);
        field(b, "JUMP_DST_ADDR", r.dst_addr);
        field(b, "JUMP_DST_PORT", r.dst_port);
        opt(b, "JUMP_SRC_ADDR", r.src_addr);
        opt(b, "JUMP_SRC_PORT", r.src_port);
        field(b, "JUMP_RULE", &r.rule);
        field(b, "JUMP_RULE_NAME", &r.rule_name);
        opt(b, "JUMP_RULE_FILE", r.rule_file.as_deref());
        opt(b, "JUMP_RULE_LINE", r.rule_line);
        field(b, "JUMP_HOOK", r.hook);
        field(b, "JUMP_DECIDED_BY", r.decided_by);
        opt(b, "JUMP_GRANT_REASON", r.grant_reason.as_deref());
        opt(b, "JUMP_OPTION", r.option);
        field(b, "JUMP_POLICY_GENERATION", r.policy_generation);
        field(b, "JUMP_POLICY_SHA256", &r.policy_sha256);
        opt(
            b,
            "JUMP_SUPPRESSED",
            (r.suppressed > 0).then_some(r.suppressed),
        );
        self.message.clear();
        r.write_message(&mut self.message);
        field(b, "MESSAGE", &self.message);
        if self.buf.len() - start > MAX_ENTRY_BYTES {
            self.buf.truncate(start);
            return false;
        }
        self.ends.push(self.buf.len());
        self.whose.push((r.uid, r.verdict));
        true
    }

    /// Whether journald's socket takes datagrams now (`listening`).
    pub fn reachable(&self) -> bool {
        listening(&self.path).is_ok()
    }

    /// Whether entries wait for `flush`.
    pub fn pending(&self) -> bool {
        !self.ends.is_empty()
    }

    /// Sends the entries of the drain, one datagram each, and empties the buffer (keeping its
    /// memory for the next drain). Each entry journald did not take is passed to `not_taken`
    /// (its uid and verdict), so it is counted as lost rather than dropped silently; returns
    /// how many. The socket blocks: journald's queue pushes back on jumpd, and the kernel's
    /// ring buffer holds (or counts as lost) what comes meanwhile, as with `tracing-journald`.
    pub fn flush(&mut self, mut not_taken: impl FnMut(u32, Verdict)) -> usize {
        let mut failed = 0;
        let mut next = 0;
        while next < self.ends.len() {
            let start = next.checked_sub(1).map_or(0, |i| self.ends[i]);
            let batch = &self.ends[next..self.ends.len().min(next + BATCH)];
            match send(
                &self.socket,
                &mut self.connected,
                &self.path,
                &self.buf,
                start,
                batch,
            ) {
                Ok(sent) => next += sent,
                Err(_) => {
                    let (uid, verdict) = self.whose[next];
                    failed += 1;
                    not_taken(uid, verdict);
                    next += 1;
                }
            }
        }
        self.buf.clear();
        self.ends.clear();
        self.whose.clear();
        failed
    }
}

/// Datagrams passed to one `sendmmsg` at most (the kernel's `UIO_MAXIOV`).
const BATCH: usize = 1024;

/// Sends datagrams to journald through `socket`, connected to `path` on first use: those of
/// `buf` from `start` to each of `ends` in turn, in one `sendmmsg`: one system call per drain
/// rather than per entry (it blocks while journald's queue is full, as `send` did). Returns
/// how many were sent, at least one; an error says
/// the first was not. A journald that restarted has a new socket at the same path, and the old
/// connection refuses: the socket is then connected anew, once per call, before the first
/// datagram counts as not taken.
fn send(
    socket: &UnixDatagram,
    connected: &mut bool,
    path: &Path,
    buf: &[u8],
    start: usize,
    ends: &[usize],
) -> io::Result<usize> {
    let datagrams: Vec<[IoSlice; 1]> = std::iter::once(start)
        .chain(ends.iter().copied())
        .zip(ends)
        .map(|(from, &to)| [IoSlice::new(&buf[from..to])])
        .collect();
    let to = vec![None::<UnixAddr>; datagrams.len()];
    let mut headers = MultiHeaders::preallocate(datagrams.len(), None);
    for _ in 0..2 {
        if !*connected {
            socket.connect(path)?;
            *connected = true;
        }
        match sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &datagrams,
            &to,
            [],
            MsgFlags::empty(),
        ) {
            Ok(sent) => return Ok(sent.count()),
            Err(Errno::ECONNREFUSED | Errno::ECONNRESET | Errno::ENOTCONN) => *connected = false,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::ErrorKind::ConnectionRefused.into())
}

/// One field: `NAME=value\n`, which journald takes in place, or, for a value holding a
/// newline, the length-prefixed form (which journald copies into an allocation of its own).
fn field(b: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    b.extend_from_slice(name.as_bytes());
    let eq = b.len();
    b.push(b'=');
    // Writing into a Vec cannot fail.
    let _ = write!(b, "{value}");
    if b[eq + 1..].contains(&b'\n') {
        // A newline would end the value early and let the rest read as fields of its own.
        let len = (b.len() - eq - 1) as u64;
        b[eq] = b'\n';
        b.splice(eq + 1..eq + 1, len.to_le_bytes());
    }
    b.push(b'\n');
}

/// A field that is left out when not known, as `tracing` leaves out a `None`.
fn opt(b: &mut Vec<u8>, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        field(b, name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses datagrams of the native protocol as journald does: `NAME=value\n`, or `NAME\n`
    /// with a 64-bit little-endian length, the value and `\n`.
    fn parse(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|&c| c == b'\n').expect("a line");
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|&c| c == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                d = &d[nl + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let value = &d[nl + 9..nl + 9 + len];
                assert_eq!(d[nl + 9 + len], b'\n', "a value ends with a newline");
                out.push((name, String::from_utf8(value.to_vec()).unwrap()));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }

    fn record() -> Record {
        Record {
            time: "2026-01-02T03:04:05.000000006Z".parse().unwrap(),
            comm: "cu\nrl".into(),
            exe: Some("/usr/bin/curl".into()),
            login_uid: None,
            login_user: None,
            login_trusted: None,
            session_id: Some(7),
            src_port: Some(40000),
            policy_generation: 3,
            policy_sha256: "ab".repeat(32).into(),
            ..crate::events::record::sample()
        }
    }

    /// A socket standing for journald's, in a directory kept while the test runs, and a writer
    /// to it.
    fn journald() -> (tempfile::TempDir, UnixDatagram, Writer) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let journald = UnixDatagram::bind(&path).unwrap();
        let w = Writer::new(&path, "jumpd").unwrap();
        (d, journald, w)
    }

    #[test]
    fn entries_carry_every_known_field_and_leave_out_the_unknown() {
        let (_d, journald, mut w) = journald();
        let r = record();
        assert!(w.push(&r, "id1", ("f.rs", 10)));
        let mut allow = record();
        allow.verdict = Verdict::Allow;
        allow.suppressed = 2;
        assert!(w.push(&allow, "id2", ("f.rs", 11)));
        assert!(w.pending());
        assert_eq!(w.flush(|_, _| panic!("journald took every entry")), 0);
        assert!(!w.pending());
        let mut buf = vec![0; 1 << 16];
        let n = journald.recv(&mut buf).unwrap();
        let fields = parse(&buf[..n]);
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRIORITY"), Some("4"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("jumpd"));
        assert_eq!(get("TARGET"), Some("jump::event"));
        assert_eq!(get("CODE_FILE"), Some("f.rs"));
        assert_eq!(get("CODE_LINE"), Some("10"));
        assert_eq!(get("MESSAGE_ID"), Some("id1"));
        assert_eq!(get("JUMP_UID"), Some("1001"));
        assert_eq!(
            get("JUMP_COMM"),
            Some("cu\nrl"),
            "a newline in a value survives"
        );
        assert_eq!(get("JUMP_EXE"), Some("/usr/bin/curl"));
        assert_eq!(get("JUMP_SESSION_ID"), Some("7"));
        assert_eq!(get("JUMP_DST_ADDR"), Some("203.0.113.7"));
        assert_eq!(get("JUMP_SRC_PORT"), Some("40000"));
        assert_eq!(get("MESSAGE"), Some(r.message().as_str()));
        for absent in [
            "JUMP_NS_UID",
            "JUMP_LOGIN_UID",
            "JUMP_RULE_FILE",
            "JUMP_SUPPRESSED",
        ] {
            assert_eq!(get(absent), None, "{absent} is not known and left out");
        }
        let n = journald.recv(&mut buf).unwrap();
        let second = parse(&buf[..n]);
        assert!(second.contains(&("PRIORITY".into(), "6".into())));
        assert!(second.contains(&("JUMP_SUPPRESSED".into(), "2".into())));
    }

    #[test]
    fn values_are_written_in_place_unless_a_newline_could_add_fields() {
        let (_d, journald, mut w) = journald();
        let mut r = record();
        r.comm = "x\nJUMP_VERDICT=allow\n".into();
        r.rule_name = "ssh=prod".into();
        assert!(w.push(&r, "id", ("f.rs", 1)));
        w.flush(|_, _| panic!("taken"));
        let mut buf = vec![0; 1 << 16];
        let n = journald.recv(&mut buf).unwrap();
        let d = &buf[..n];
        let has = |s: &[u8]| d.windows(s.len()).any(|w| w == s);
        assert!(
            has(b"\nJUMP_UID=1001\n"),
            "plain values in journald's own form"
        );
        assert!(
            has(b"\nJUMP_RULE_NAME=ssh=prod\n"),
            "only the first `=` separates"
        );
        assert!(
            has(b"\nJUMP_COMM\n"),
            "a value with a newline is length-prefixed"
        );
        let fields = parse(d);
        let all = |k: &str| {
            fields
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(all("JUMP_COMM"), ["x\nJUMP_VERDICT=allow\n"]);
        assert_eq!(all("JUMP_VERDICT"), ["deny"], "the newline added no field");
        assert_eq!(all("JUMP_RULE_NAME"), ["ssh=prod"]);
    }

    #[test]
    fn a_drain_larger_than_a_batch_arrives_whole_and_in_order() {
        let (_d, journald, mut w) = journald();
        let n = BATCH as u32 * 2 + 3;
        for line in 0..n {
            assert!(w.push(&record(), "id", ("f.rs", line)));
        }
        // journald's queue holds a few datagrams: the sends wait for this reader.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; 1 << 16];
            (0..n)
                .map(|_| {
                    let len = journald.recv(&mut buf).unwrap();
                    let fields = parse(&buf[..len]);
                    let line = fields.iter().find(|(k, _)| k == "CODE_LINE").unwrap();
                    line.1.parse::<u32>().unwrap()
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(w.flush(|_, _| panic!("taken")), 0);
        assert_eq!(reader.join().unwrap(), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn an_entry_too_large_is_refused_whole() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::new(d.path().join("socket"), "jumpd").unwrap();
        let mut r = record();
        r.grant_reason = Some("x".repeat(MAX_ENTRY_BYTES).into());
        assert!(!w.push(&r, "id", ("f.rs", 1)));
        assert!(!w.pending(), "nothing of it is left in the buffer");
        assert!(w.buf.is_empty());
    }

    #[test]
    fn journald_is_reachable_only_while_its_socket_is_bound() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let w = Writer::new(&path, "jumpd").unwrap();
        assert!(!w.reachable(), "no socket file");
        let journald = UnixDatagram::bind(&path).unwrap();
        assert!(w.reachable());
        drop(journald);
        assert!(
            path.exists(),
            "the socket file of a journald that is gone stays"
        );
        assert!(!w.reachable(), "and refuses");
    }

    #[test]
    fn a_journald_that_restarts_gets_the_entries_sent_after() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let mut w = Writer::new(&path, "jumpd").unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let first = UnixDatagram::bind(&path).unwrap();
        assert!(w.push(&record(), "id", ("f.rs", 1)));
        assert_eq!(w.flush(|_, _| panic!("taken")), 0);
        assert!(first.recv(&mut buf).unwrap() > 0);
        drop(first);
        assert!(w.push(&record(), "id", ("f.rs", 1)));
        assert_eq!(w.flush(|_, _| {}), 1, "nobody holds the socket: not taken");
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        assert!(w.push(&record(), "id", ("f.rs", 2)));
        assert_eq!(w.flush(|_, _| panic!("taken by the new journald")), 0);
        let n = second.recv(&mut buf).unwrap();
        assert!(parse(&buf[..n]).contains(&("CODE_LINE".into(), "2".into())));
    }

    #[test]
    fn journald_gone_counts_every_entry_not_taken() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::new(d.path().join("nobody"), "jumpd").unwrap();
        assert!(w.push(&record(), "id", ("f.rs", 1)));
        let mut bob = record();
        bob.uid = 1002;
        bob.verdict = Verdict::Allow;
        assert!(w.push(&bob, "id", ("f.rs", 1)));
        let mut lost = Vec::new();
        assert_eq!(w.flush(|uid, v| lost.push((uid, v))), 2);
        assert_eq!(
            lost,
            [(1001, Verdict::Deny), (1002, Verdict::Allow)],
            "each entry not taken is named by its uid and verdict, in order"
        );
        assert!(!w.pending());
        assert_eq!(w.flush(|_, _| panic!("nothing is left to send")), 0);
    }
}

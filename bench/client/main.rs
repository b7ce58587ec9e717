//! `jump-bench`: the benchmark's own programs, driven by `cargo xtask bench`. It first places
//! itself (`--cgroup`, `--netns`, `--uid`/`--gid`, see `jump_tests::place`) so that every
//! socket it creates is born in the enforced cgroup, then runs one operation and prints one JSON
//! line.
//!
//! Operations:
//! - `tcp N MAX_MS ADDR`: N times socket + connect + close, each timed; close sends RST
//!   (`SO_LINGER` 0) so no TIME_WAIT piles up and ports are never exhausted. Stops early after
//!   MAX_MS. Failed connects (EPERM) are timed and counted too: that is the denied-storm mode.
//! - `udp N MAX_MS ADDR`: N times `sendto` of 32 bytes from one unconnected socket, each timed.
//! - `serve tcp:ADDR|udp:ADDR…`: accept-and-drop TCP listeners and never-read UDP sockets until
//!   killed; prints
//!   `ready` once bound. Unlike `jump-probe serve` it spawns no thread per connection, which
//!   would make the server, not the filter, the thing measured.
//! - `exec PROG ARGS…`: replaces itself with PROG once placed (iperf3 as a granted user).
//! - `reference OBJECT CGROUP UID ADDR PORT…`: loads the reference programs (jump-ebpf's
//!   `reference.rs`), grants them UID's PORTs and ADDR, attaches them to CGROUP (one of the
//!   bench's own), prints `ready` and keeps them attached until stdin closes or it is killed;
//!   the kernel detaches them with its last file descriptor.
//! - `beside OBJECT CGROUP UID ADDR PORT…`: the same, with only the one-lookup programs (no
//!   socket storage), for a child of jump's cgroup or the parent of one: they and jump's
//!   programs run on the same calls.
//! - `journal N FILE`: N journal entries shaped as the one in FILE (`{"entry": …, "varying":
//!   […]}`: one of jumpd's entries, as `journalctl -o json` prints it, without the journal's
//!   own `_`/`__` fields, and the fields whose values differed among jumpd's entries), each
//!   with fresh values of those fields (`vary`), built before the clock starts and sent to
//!   journald's socket in its native protocol, one datagram each, the way jumpd sends them:
//!   the anchor of the journald sink's rate.
#![forbid(unsafe_code)]

use std::{
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::process::CommandExt,
    time::{Duration, Instant},
};

use nix::sys::socket::{setsockopt, sockopt};
use serde_json::json;

mod reference;

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("bad address `{s}`"))
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad {what} `{s}`"))
}

/// Per-iteration latencies and the errors seen, as one JSON line.
struct Loop {
    ns: Vec<u64>,
    errors: u64,
    errno: Option<i32>,
    error: Option<String>,
    elapsed: Duration,
}

impl Loop {
    fn run(n: usize, max: Duration, mut op: impl FnMut() -> std::io::Result<()>) -> Self {
        let mut l = Loop {
            ns: Vec::with_capacity(n),
            errors: 0,
            errno: None,
            error: None,
            elapsed: Duration::ZERO,
        };
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let r = op();
            l.ns.push(t.elapsed().as_nanos() as u64);
            if let Err(e) = r {
                l.errors += 1;
                if l.error.is_none() {
                    l.errno = e.raw_os_error();
                    l.error = Some(e.to_string());
                }
            }
            // Checking the clock every iteration would add to what is measured.
            if i % 64 == 63 && start.elapsed() > max {
                break;
            }
        }
        l.elapsed = start.elapsed();
        l
    }

    fn print(&self) {
        println!(
            "{}",
            json!({
                "ok": true,
                "n": self.ns.len(),
                "errors": self.errors,
                "errno": self.errno,
                "error": self.error,
                "elapsed_ns": self.elapsed.as_nanos() as u64,
                "ns": self.ns,
            })
        );
    }
}

fn tcp(n: usize, max: Duration, to: SocketAddr) -> Loop {
    let rst = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    Loop::run(n, max, || {
        let s = TcpStream::connect(to)?;
        setsockopt(&s, sockopt::Linger, &rst).map_err(std::io::Error::from)?;
        drop(s);
        Ok(())
    })
}

fn udp(n: usize, max: Duration, to: SocketAddr) -> Result<Loop, String> {
    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
    let payload = [0x6a_u8; 32];
    Ok(Loop::run(n, max, || s.send_to(&payload, to).map(drop)))
}

fn serve(specs: &[String]) -> Result<(), String> {
    let mut threads = Vec::new();
    for spec in specs {
        let (kind, a) = spec
            .split_once(':')
            .ok_or_else(|| format!("bad spec `{spec}`"))?;
        let a = addr(a)?;
        match kind {
            "tcp" => {
                let l = TcpListener::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
                threads.push(std::thread::spawn(move || {
                    // Accepted and dropped at once: the client resets anyway.
                    for c in l.incoming() {
                        drop(c);
                    }
                }));
            }
            "udp" => {
                // Bound and never read: once its buffer is full every datagram is dropped at
                // the socket, the same cheap path for every system, and no receiving thread
                // competes with the sender for the CPU.
                let s = UdpSocket::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
                threads.push(std::thread::spawn(move || {
                    let _bound = s;
                    loop {
                        std::thread::park();
                    }
                }));
            }
            _ => return Err(format!("unknown kind `{kind}`")),
        }
    }
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// journald's native protocol: `KEY=value\n` per field, or for a value holding a newline
/// `KEY\n`, its length as 64-bit little-endian, the bytes and `\n`.
fn journal_datagram<'a>(d: &mut Vec<u8>, entry: impl Iterator<Item = (&'a str, &'a str)>) {
    for (k, v) in entry {
        if k.starts_with('_') {
            continue;
        }
        if v.contains('\n') {
            d.extend_from_slice(k.as_bytes());
            d.push(b'\n');
            d.extend_from_slice(&(v.len() as u64).to_le_bytes());
        } else {
            d.extend_from_slice(k.as_bytes());
            d.push(b'=');
        }
        d.extend_from_slice(v.as_bytes());
        d.push(b'\n');
    }
}

/// Entry `i`'s value of a field that varies among jumpd's entries, in the form of `sample`:
/// a time `i` µs later, a number or address `i` further on (a port stays a port), and text
/// (the message) with the other varying values of the sample replaced by entry `i`'s, or else
/// numbered. Distinct values matter: journald stores each distinct field value once, so
/// copies of one entry cost it less than jumpd's entries do.
fn vary(sample: &str, key: &str, i: u64, others: &[(String, String)]) -> String {
    if let Ok(t) = sample.parse::<jiff::Timestamp>() {
        return t
            .checked_add(jiff::SignedDuration::from_micros(i as i64))
            .unwrap_or(t)
            .to_string();
    }
    if let Ok(n) = sample.parse::<u64>() {
        return if key.ends_with("_PORT") {
            ((n + i) % 65535 + 1).to_string()
        } else {
            (n + i).to_string()
        };
    }
    match sample.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            return std::net::Ipv4Addr::from(u32::from(a).wrapping_add(i as u32)).to_string()
        }
        Ok(std::net::IpAddr::V6(a)) => {
            return std::net::Ipv6Addr::from(u128::from(a).wrapping_add(i.into())).to_string()
        }
        Err(_) => {}
    }
    let mut out = sample.to_string();
    let mut replaced = false;
    for (from, to) in others {
        if !from.is_empty() && out.contains(from.as_str()) {
            out = out.replacen(from.as_str(), to, 1);
            replaced = true;
        }
    }
    if !replaced {
        out.push_str(&format!(" #{i}"));
    }
    out
}

fn journal(n: usize, file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let shape: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let entry: Vec<(String, String)> = shape["entry"]
        .as_object()
        .ok_or_else(|| format!("{file}: no `entry` object"))?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let varying: Vec<&str> = shape["varying"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str())
        .collect();
    // Every datagram built first, back to back, so the clock measures journald alone.
    let mut buf = Vec::new();
    let mut ends = Vec::with_capacity(n);
    for i in 0..n as u64 {
        // Scalar fields first, so the text ones can name their new values.
        let mut fresh: Vec<(String, String)> = Vec::new();
        for (k, v) in &entry {
            if varying.contains(&k.as_str()) && k != "MESSAGE" {
                fresh.push((v.clone(), vary(v, k, i, &[])));
            }
        }
        let values: Vec<(&str, String)> = entry
            .iter()
            .map(|(k, v)| {
                let v = if varying.contains(&k.as_str()) {
                    match fresh.iter().find(|(from, _)| from == v) {
                        Some((_, to)) if k != "MESSAGE" => to.clone(),
                        _ => vary(v, k, i, &fresh),
                    }
                } else {
                    v.clone()
                };
                (k.as_str(), v)
            })
            .collect();
        journal_datagram(&mut buf, values.iter().map(|(k, v)| (*k, v.as_str())));
        ends.push(buf.len());
    }
    let s = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
    // The send buffer jumpd's writer asks for (`events::journal`), so the two queue alike.
    let _ = setsockopt(&s, sockopt::SndBuf, &(8usize << 20));
    let socket = "/run/systemd/journal/socket";
    let start = Instant::now();
    let mut from = 0;
    for &end in &ends {
        // Blocking, as jumpd's: journald's queue pushes back, nothing is dropped.
        s.send_to(&buf[from..end], socket)
            .map_err(|e| format!("{socket}: {e}"))?;
        from = end;
    }
    let elapsed = start.elapsed();
    println!(
        "{}",
        json!({"ok": true, "n": n, "bytes": buf.len(), "varying": varying, "elapsed_ns": elapsed.as_nanos() as u64})
    );
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = jump_tests::place::place_self(&mut args) {
        eprintln!("jump-bench: {e}");
        std::process::exit(2);
    }
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["tcp", n, max, to] => (|| {
            tcp(
                num(n, "count")?,
                Duration::from_millis(num(max, "time")?),
                addr(to)?,
            )
            .print();
            Ok(())
        })(),
        ["udp", n, max, to] => (|| {
            udp(
                num(n, "count")?,
                Duration::from_millis(num(max, "time")?),
                addr(to)?,
            )?
            .print();
            Ok(())
        })(),
        ["serve", ..] => serve(&args[1..]),
        [cmd @ ("reference" | "beside"), object, cgroup, uid, to, ..] => (|| {
            let ports = args[6..]
                .iter()
                .map(|p| num::<u16>(p, "port"))
                .collect::<Result<Vec<_>, _>>()?;
            let to: std::net::Ipv4Addr = num(to, "IPv4 address")?;
            let set = if cmd == "beside" {
                reference::Set::Lookups
            } else {
                reference::Set::All
            };
            reference::serve(object, cgroup, num(uid, "uid")?, to, &ports, set)
        })(),
        ["journal", n, file] => num(n, "count").and_then(|n| journal(n, file)),
        ["exec", prog, ..] => Err(format!(
            "exec {prog}: {}",
            std::process::Command::new(prog).args(&args[2..]).exec()
        )),
        _ => Err(
            "usage: jump-bench [--cgroup DIR] [--netns FILE] [--uid U] [--gid G] \
                  (tcp N MAX_MS ADDR | udp N MAX_MS ADDR | serve SPEC… | exec PROG ARGS… | \
                  reference|beside OBJECT CGROUP UID ADDR PORT… | journal N FILE)"
                .into(),
        ),
    };
    if let Err(e) = result {
        // Read by the driver like a result line, so a failure carries its reason.
        println!("{}", json!({"ok": false, "error": e}));
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::vary;

    #[test]
    fn varied_values_keep_their_form_and_differ_per_entry() {
        assert_eq!(
            vary("2026-01-02T03:04:05.000000006Z", "JUMP_TIME", 2, &[]),
            "2026-01-02T03:04:05.000002006Z"
        );
        assert_eq!(vary("4711", "JUMP_PID", 3, &[]), "4714");
        assert_eq!(
            vary("65535", "JUMP_DST_PORT", 1, &[]),
            "2",
            "a port stays a port"
        );
        assert_eq!(vary("203.0.113.7", "JUMP_DST_ADDR", 1, &[]), "203.0.113.8");
        assert_eq!(
            vary("2001:db8::ff", "JUMP_DST_ADDR", 1, &[]),
            "2001:db8::100"
        );
        let fresh = [("4711".to_string(), "4714".to_string())];
        assert_eq!(
            vary(
                "deny alice(1001) -> 203.0.113.7:9/udp pid=4711",
                "MESSAGE",
                3,
                &fresh
            ),
            "deny alice(1001) -> 203.0.113.7:9/udp pid=4714"
        );
        assert_eq!(vary("text", "MESSAGE", 5, &[]), "text #5");
    }
}

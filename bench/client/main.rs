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
//! - `journal N FILE`: N journal entries, each the fields of the JSON object in FILE (one of
//!   jumpd's entries, as `journalctl -o json` prints it, without the journal's own `_`/`__`
//!   fields), sent to journald's socket in its native protocol, one datagram each, the way
//!   `tracing-journald` sends them: the anchor of the journald sink's rate.
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
fn journal_datagram(entry: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut d = Vec::new();
    for (k, v) in entry {
        let Some(v) = v.as_str() else { continue };
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
    d
}

fn journal(n: usize, file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let entry: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let datagram = journal_datagram(&entry);
    let s = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
    let socket = "/run/systemd/journal/socket";
    let start = Instant::now();
    for _ in 0..n {
        // Blocking, as tracing-journald's: journald's queue pushes back, nothing is dropped.
        s.send_to(&datagram, socket)
            .map_err(|e| format!("{socket}: {e}"))?;
    }
    println!(
        "{}",
        json!({"ok": true, "n": n, "bytes": datagram.len(), "elapsed_ns": start.elapsed().as_nanos() as u64})
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
        ["reference", object, cgroup, uid, to, ..] => (|| {
            let ports = args[6..]
                .iter()
                .map(|p| num::<u16>(p, "port"))
                .collect::<Result<Vec<_>, _>>()?;
            let to: std::net::Ipv4Addr = num(to, "IPv4 address")?;
            reference::serve(object, cgroup, num(uid, "uid")?, to, &ports)
        })(),
        ["journal", n, file] => num(n, "count").and_then(|n| journal(n, file)),
        ["exec", prog, ..] => Err(format!(
            "exec {prog}: {}",
            std::process::Command::new(prog).args(&args[2..]).exec()
        )),
        _ => Err(
            "usage: jump-bench [--cgroup DIR] [--netns FILE] [--uid U] [--gid G] \
                  (tcp N MAX_MS ADDR | udp N MAX_MS ADDR | serve SPEC… | exec PROG ARGS… | \
                  journal N FILE)"
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

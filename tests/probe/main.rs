//! `jump-probe`: the harness's client and server. It first places itself where the test says —
//! `--cgroup` (joined before any socket exists, since hooks follow the cgroup a socket was
//! created in), `--netns`, then `--uid/--gid` — and then performs one operation, printing one
//! JSON line: `{"ok":true}` or `{"ok":false,"errno":1,"error":"…"}`.
//!
//! Operations: `tcp ADDR` (connect, echo a line), `udp ADDR` (connect + send, wait for echo),
//! `serve tcp:ADDR|udp:ADDR…` (echo servers until killed; prints `ready` once listening).
#![forbid(unsafe_code)]

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use nix::{
    sched::{setns, CloneFlags},
    unistd::{setgid, setgroups, setuid, Gid, Uid},
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn place(args: &mut Vec<String>) -> Result<(), String> {
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let cgroup = take("--cgroup");
    let netns = take("--netns");
    let uid = take("--uid");
    let gid = take("--gid");
    if let Some(cg) = cgroup {
        std::fs::write(format!("{cg}/cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("join cgroup {cg}: {e}"))?;
    }
    if let Some(ns) = netns {
        let f = File::open(&ns).map_err(|e| format!("open {ns}: {e}"))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {ns}: {e}"))?;
    }
    if let Some(gid) = gid {
        let gid = Gid::from_raw(gid.parse().map_err(|_| "bad --gid")?);
        setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
        setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    }
    if let Some(uid) = uid {
        setuid(Uid::from_raw(uid.parse().map_err(|_| "bad --uid")?))
            .map_err(|e| format!("setuid: {e}"))?;
    }
    Ok(())
}

fn report(r: std::io::Result<()>) -> ! {
    match r {
        Ok(()) => println!("{}", serde_json::json!({"ok": true})),
        Err(e) => println!(
            "{}",
            serde_json::json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()})
        ),
    }
    std::process::exit(0)
}

fn addr(s: &str) -> std::io::Result<SocketAddr> {
    s.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad address `{s}`"),
        )
    })
}

fn tcp(target: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr(target)?, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"ping")?;
    let mut buf = [0; 4];
    s.read_exact(&mut buf)?;
    Ok(())
}

fn udp(target: &str) -> std::io::Result<()> {
    let to = addr(target)?;
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(local)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.connect(to)?;
    s.send(b"ping")?;
    let mut buf = [0; 16];
    s.recv(&mut buf)?;
    Ok(())
}

fn serve(specs: &[String]) -> std::io::Result<()> {
    let mut threads = Vec::new();
    for spec in specs {
        let (kind, a) = spec
            .split_once(':')
            .ok_or_else(|| std::io::Error::other(format!("bad spec `{spec}`")))?;
        let a = addr(a)?;
        match kind {
            "tcp" => {
                let l = TcpListener::bind(a)?;
                threads.push(std::thread::spawn(move || {
                    for mut c in l.incoming().flatten() {
                        std::thread::spawn(move || {
                            let mut buf = [0; 4096];
                            while let Ok(n @ 1..) = c.read(&mut buf) {
                                if c.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                }));
            }
            "udp" => {
                let s = UdpSocket::bind(a)?;
                threads.push(std::thread::spawn(move || {
                    let mut buf = [0; 65536];
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }));
            }
            _ => return Err(std::io::Error::other(format!("unknown kind `{kind}`"))),
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = place(&mut args) {
        eprintln!("jump-probe: {e}");
        std::process::exit(2);
    }
    match args.first().map(String::as_str) {
        Some("tcp") if args.len() == 2 => report(tcp(&args[1])),
        Some("udp") if args.len() == 2 => report(udp(&args[1])),
        Some("serve") => {
            if let Err(e) = serve(&args[1..]) {
                eprintln!("jump-probe: serve: {e}");
                std::process::exit(2);
            }
        }
        _ => {
            eprintln!("usage: jump-probe [--cgroup DIR] [--netns FILE] [--uid U] [--gid G] (tcp ADDR | udp ADDR | serve SPEC…)");
            std::process::exit(2);
        }
    }
}

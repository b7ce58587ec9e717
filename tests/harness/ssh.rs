//! Real OpenSSH for the end-to-end tests and the demo: Debian's `sshd` started with its own
//! configuration, host key, port and pid file (never the machine's `/etc/ssh`), placed in a
//! cgroup and a network namespace; key-based logins for test accounts; `ssh` clients in the
//! admin workstation namespace; and a SOCKS5 client for `ssh -D`.
//!
//! Everything lives in one directory ([`SshDir`], removed on drop):
//!
//! ```text
//!   host_ed25519          the servers' host key
//!   authorized/<user>     AuthorizedKeysFile of each sshd (%u)
//!   keys/<user>           the client's private key of each user (IdentityFile %r)
//!   known_hosts           `* <host key>`: the client checks host keys strictly
//!   ssh_config            the client configuration (`ssh -F`), host aliases `jump`, `target`
//!   sshd-<label>.conf     one per sshd
//! ```
//!
//! The client uses a configuration file rather than `-F /dev/null -i KEY`: with `ssh -J` the
//! jump host's connection is made by a second `ssh` that inherits `-F` but no `-i` or `-o`.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::{child::Guarded, owner_alive, poll_until, sh, unique};

const PREFIX: &str = "jt";
const SSHD: &str = "/usr/sbin/sshd";

/// Whether OpenSSH's server and client are installed (`cargo xtask setup` installs them).
pub fn available() -> bool {
    Path::new(SSHD).exists() && Path::new("/usr/bin/ssh").exists()
}

/// Ends every process still in `cgroup`, by pid: the caller created the cgroup and started
/// every process in it (sshd, its sessions, their shells), so all of them are its own.
pub fn end_cgroup_processes(cgroup: &Path) {
    let procs = |_: ()| -> Vec<i32> {
        fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        for pid in procs(()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
        // Those left after SIGTERM get SIGKILL.
        let _ = poll_until(
            Duration::from_secs(2),
            "the cgroup's processes to end",
            || procs(()).is_empty().then_some(()),
        );
    }
}

/// The directory holding keys and configurations, removed on drop.
pub struct SshDir {
    pub path: PathBuf,
    owned: bool,
}

impl SshDir {
    /// A fresh `/tmp/jt<pid>x<n>-ssh`.
    pub fn new() -> anyhow::Result<Self> {
        sweep();
        Self::at(&std::env::temp_dir().join(format!("{}-ssh", unique(PREFIX))))
    }

    /// A directory at a fixed path (the demo's), replacing a stale one.
    pub fn at(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            fs::remove_dir_all(path)?;
        }
        for sub in ["", "authorized", "keys"] {
            let d = path.join(sub);
            fs::create_dir_all(&d)?;
            // sshd reads authorized keys as the user logging in: every user must be able to
            // traverse the directory.
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        }
        let dir = Self {
            path: path.to_path_buf(),
            owned: true,
        };
        let host_key = dir.path.join("host_ed25519");
        keygen(&host_key, "host")?;
        // Every sshd started from here has this key: the client checks it strictly.
        let public = fs::read_to_string(host_key.with_extension("pub"))?;
        fs::write(dir.path.join("known_hosts"), format!("* {public}"))?;
        Ok(dir)
    }

    pub fn key(&self, user: &str) -> PathBuf {
        self.path.join("keys").join(user)
    }

    /// Generates a key pair for `user` and authorizes it on every sshd started from here.
    pub fn authorize(&self, user: &str) -> anyhow::Result<()> {
        let key = self.key(user);
        keygen(&key, user)?;
        let auth = self.path.join("authorized").join(user);
        fs::copy(key.with_extension("pub"), &auth)?;
        fs::set_permissions(&auth, fs::Permissions::from_mode(0o644))?;
        Ok(())
    }

    pub fn client_config(&self) -> PathBuf {
        self.path.join("ssh_config")
    }

    /// Writes the client configuration: the given host aliases, every user's key by remote
    /// user name, the servers' known host key, no prompts, bounded connection setup. The log
    /// level is INFO, which shows why a channel failed (`open failed: connect failed: …`).
    pub fn write_client_config(&self, hosts: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut s = String::new();
        for (alias, addr) in hosts {
            s += &format!("Host {alias}\n    HostName {addr}\n");
        }
        s += &format!(
            "Host *\n\
             \x20   IdentityFile {keys}/%r\n\
             \x20   IdentitiesOnly yes\n\
             \x20   StrictHostKeyChecking yes\n\
             \x20   UserKnownHostsFile {dir}/known_hosts\n\
             \x20   GlobalKnownHostsFile /dev/null\n\
             \x20   CheckHostIP no\n\
             \x20   LogLevel INFO\n\
             \x20   BatchMode yes\n\
             \x20   ConnectTimeout 5\n\
             \x20   ServerAliveInterval 2\n\
             \x20   ServerAliveCountMax 3\n\
             \x20   ControlMaster no\n\
             \x20   UpdateHostKeys no\n",
            keys = self.path.join("keys").display(),
            dir = self.path.display(),
        );
        fs::write(self.client_config(), s)?;
        Ok(())
    }

    /// Starts `ssh -F ssh_config ARGS…` as root in the network namespace `netns` (outside every
    /// enforced cgroup: the workstation is not the jump host).
    pub fn ssh(&self, netns: &Path, args: &[&str]) -> anyhow::Result<SshClient> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .arg("ssh")
            .arg("-F")
            .arg(self.client_config())
            .args(args)
            .stdin(Stdio::null());
        SshClient::spawn(cmd)
    }

    /// Runs `ssh ARGS…` to completion, killed after `timeout`.
    pub fn run(&self, netns: &Path, args: &[&str], timeout: Duration) -> Finished {
        let mut c = self
            .ssh(netns, args)
            .unwrap_or_else(|e| panic!("failed to start ssh {args:?}: {e}"));
        let status = c.wait(timeout);
        if status.is_none() {
            c.kill();
        }
        Finished {
            status: status.and_then(|s| s.code()),
            stdout: c.stdout(),
            stderr: c.stderr(),
        }
    }
}

impl Drop for SshDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes test directories of test processes that no longer exist.
fn sweep() {
    let Ok(dir) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix("-ssh") {
            if base.starts_with(PREFIX)
                && base[PREFIX.len()..].starts_with(|c: char| c.is_ascii_digit())
                && !owner_alive(base, PREFIX)
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        comment,
        "-f",
        &path.to_string_lossy(),
    ])?;
    Ok(())
}

/// A finished (or timed out: `status` None) client.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// One `ssh` client process, ended (by pid) on drop: SIGTERM, then SIGKILL after 2 s.
pub struct SshClient {
    child: Guarded,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl SshClient {
    fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        fn collect(mut from: impl Read + Send + 'static, to: Arc<Mutex<Vec<u8>>>) {
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    to.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        collect(child.stdout.take().expect("piped"), out.clone());
        collect(child.stderr.take().expect("piped"), err.clone());
        Ok(Self {
            child: Guarded::with_grace(child, Duration::from_secs(2)),
            out,
            err,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits up to `timeout` for the client to exit; None when it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let s = self.child.wait_exit(timeout)?;
        // Let the readers drain what the process wrote last.
        std::thread::sleep(Duration::from_millis(50));
        Some(s)
    }

    /// Waits up to `timeout` until stdout contains `text`; false if it never does.
    pub fn wait_stdout(&mut self, text: &str, timeout: Duration) -> bool {
        poll_until(timeout, text, || {
            if self.stdout().contains(text) {
                return Some(true);
            }
            if self.child.exited().is_some() {
                // Let the readers drain what the process wrote last.
                std::thread::sleep(Duration::from_millis(50));
                return Some(self.stdout().contains(text));
            }
            None
        })
        .unwrap_or(false)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    pub fn kill(&mut self) {
        self.child.stop();
    }
}

/// Where and how an sshd runs.
pub struct SshdSpec<'a> {
    /// Names the configuration and pid files: `sshd-<label>.conf`.
    pub label: &'a str,
    pub netns: &'a Path,
    /// The cgroup it is started in (its sessions inherit it). Every process left in it is
    /// ended when the sshd stops, so it must be a cgroup the caller created.
    pub cgroup: &'a Path,
    /// `ADDR` or `[ADDR6]`, each on `port`.
    pub listen: &'a [&'a str],
    pub port: u16,
    /// `AllowUsers`.
    pub users: &'a [&'a str],
    /// sshd's `LogLevel`: `DEBUG1` shows why an outgoing connection failed (`connect_next:
    /// host … Operation not permitted`), which no higher level does.
    pub log_level: &'a str,
}

/// A running sshd, stopped on drop together with every process left in its cgroup.
pub struct Sshd {
    child: Guarded,
    cgroup: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sshd {
    pub fn start(dir: &SshDir, spec: &SshdSpec) -> anyhow::Result<Self> {
        // Debian's sshd refuses to start without its privilege separation directory, which
        // systemd creates for the machine's own sshd; create it when there is none (empty,
        // root's, 0755, as the package's service would).
        let privsep = Path::new("/run/sshd");
        if !privsep.exists() {
            fs::create_dir_all(privsep)?;
            fs::set_permissions(privsep, fs::Permissions::from_mode(0o755))?;
        }
        let config = dir.path.join(format!("sshd-{}.conf", spec.label));
        let mut c = format!("Port {}\n", spec.port);
        for a in spec.listen {
            c += &format!("ListenAddress {a}\n");
        }
        // PAM as on a real jump host: `pam_loginuid` gives each login an audit session, which
        // jumpd's events carry and attribute to the session's SSH client.
        let d = dir.path.display();
        c += &format!(
            "HostKey {d}/host_ed25519\n\
             PidFile {d}/sshd-{label}.pid\n\
             AuthorizedKeysFile {d}/authorized/%u\n\
             AllowUsers {users}\n\
             UsePAM yes\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\n\
             AllowStreamLocalForwarding no\n\
             GatewayPorts no\n\
             X11Forwarding no\n\
             PermitTunnel no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             MaxStartups 100\n\
             MaxSessions 50\n\
             ClientAliveInterval 2\n\
             ClientAliveCountMax 3\n\
             LogLevel {level}\n",
            label = spec.label,
            level = spec.log_level,
            users = spec.users.join(" "),
        );
        fs::write(&config, c)?;
        // Check the configuration first: an error here is clearer than an sshd that exits.
        sh(&[SSHD, "-t", "-f", &config.to_string_lossy()])?;
        // Join the cgroup, then the namespace (`ip netns exec` would remount /sys and hide
        // the cgroup2 mount); `nsenter` execs sshd, so the child's pid is sshd's.
        let script = format!(
            "echo $$ > '{cg}/cgroup.procs' && exec nsenter --net='{ns}' {SSHD} -D -e -f '{cfg}'",
            cg = spec.cgroup.display(),
            ns = spec.netns.display(),
            cfg = config.display(),
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server listening on") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let sshd = Self {
            child: Guarded::with_grace(child, Duration::from_secs(5)),
            cgroup: spec.cgroup.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut listening = 0;
        while listening < spec.listen.len() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "sshd `{}` not listening after 10 s; its log: {:?}",
                spec.label,
                sshd.log()
            );
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                listening += 1;
            }
        }
        Ok(sshd)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// sshd's own log lines (`-e`: its stderr), for failure messages.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.child.stop();
        // Session processes run in sessions of their own and outlive the listener.
        end_cgroup_processes(&self.cgroup);
    }
}

/// Waits up to `timeout` until something listens on TCP `port` in `netns`.
pub fn wait_listening(netns: &Path, port: u16, timeout: Duration) -> bool {
    poll_until(timeout, "a listener", || {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["ss", "-Hltn", &format!("sport = :{port}")])
            .output();
        out.is_ok_and(|o| !o.stdout.is_empty()).then_some(())
    })
    .is_ok()
}

const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends a line over `s` and expects it echoed back.
pub fn echo(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(b"ping\n")?;
    let mut buf = [0; 5];
    s.read_exact(&mut buf)?;
    if &buf != b"ping\n" {
        return Err(std::io::Error::other("wrong echo"));
    }
    Ok(())
}

/// Connects to `target` through the SOCKS5 proxy at `proxy` (no authentication, RFC 1928) and
/// checks an echo round trip. OpenSSH's `-D` answers "succeeded" before it has asked the server
/// to connect, so only the round trip shows whether the far end was reached.
pub fn socks5_echo(proxy: SocketAddr, target: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&proxy, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(&[5, 1, 0])?;
    let mut choice = [0; 2];
    s.read_exact(&mut choice)?;
    if choice != [5, 0] {
        return Err(std::io::Error::other(format!(
            "SOCKS5 method refused: {choice:?}"
        )));
    }
    let mut req = vec![5, 1, 0];
    match target {
        SocketAddr::V4(a) => {
            req.push(1);
            req.extend(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            req.push(4);
            req.extend(a.ip().octets());
        }
    }
    req.extend(target.port().to_be_bytes());
    s.write_all(&req)?;
    let mut head = [0; 4];
    s.read_exact(&mut head)?;
    if head[1] != 0 {
        return Err(std::io::Error::other(format!(
            "SOCKS5 connect failed: reply {}",
            head[1]
        )));
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        t => return Err(std::io::Error::other(format!("SOCKS5 address type {t}"))),
    };
    let mut bound = vec![0; rest];
    s.read_exact(&mut bound)?;
    echo(s)
}

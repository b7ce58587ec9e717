//! jumpd's settings: the YAML config file (`--config`), the command-line flags, and their merge.
//! Every setting exists in both; a flag wins over the file, the file over the default. Pure
//! except for `load`, which reads the file; unknown keys are errors with `file:line:col`.
//!
//! (Over 500 lines, 215 of them tests: each setting is declared once for the file and once as a
//! flag, and merged in one place, so the precedence of every setting is read and tested here.)

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::events::sink::LogFormat;

pub const DEFAULT_CONFIG: &str = "/etc/jump/jumpd.yaml";
pub const DEFAULT_POLICY_DIR: &str = "/etc/jump/policies";
use crate::protocol::DEFAULT_SOCKET;
pub const DEFAULT_GROUP: &str = "jump-admin";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/jump";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/jump";

/// Enforce refuses what the policy denies; audit decides and logs the same way but never
/// refuses (every deny becomes a "would-deny"), for rolling out a new policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// The in-kernel event limits (`jump_common::Limits`): events with the same user,
/// destination, hook and verdict beyond `burst` within `window_ms` are counted, not sent; and
/// each uid may send `user_rate` events a second with bursts of `user_burst`, so one user
/// cannot fill the ring buffer. What either holds back is counted per uid and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub window_ms: u64,
    pub burst: u32,
    /// Events per second per uid; 0 disables the per-uid budget.
    pub user_rate: u32,
    pub user_burst: u32,
}

/// The largest `user_burst`: an eighth of the ring buffer's events, so that a single uid's
/// burst, even while jumpd is not reading, leaves room for everyone else's.
pub const MAX_USER_BURST: u32 =
    jump_common::EVENTS_BYTES / (core::mem::size_of::<jump_common::Event>() as u32 + 8) / 8;

impl Default for RateLimit {
    fn default() -> Self {
        let d = crate::datapath::DEFAULT_LIMITS;
        Self {
            window_ms: d.window_ns / 1_000_000,
            burst: d.burst,
            user_rate: (1_000_000_000 / d.uid_interval_ns) as u32,
            user_burst: d.uid_burst,
        }
    }
}

impl RateLimit {
    /// As the kernel's `JUMP_LIMITS` holds it.
    pub fn limits(self) -> jump_common::Limits {
        jump_common::Limits {
            window_ns: self.window_ms.saturating_mul(1_000_000),
            burst: self.burst,
            uid_burst: self.user_burst,
            uid_interval_ns: if self.user_rate == 0 {
                0
            } else {
                1_000_000_000 / u64::from(self.user_rate)
            },
        }
    }

    fn check(self) -> Result<Self, String> {
        if self.user_rate > 0 && !(1..=MAX_USER_BURST).contains(&self.user_burst) {
            return Err(format!(
                "invalid event user burst `{}`: must be 1..={MAX_USER_BURST} (an eighth of the ring buffer)",
                self.user_burst
            ));
        }
        Ok(self)
    }
}

/// The config file, as written. Every field optional: what is missing falls to the flag or
/// the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub policy_dir: Option<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub pin_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub mode: Option<Mode>,
    pub control: Option<ControlConfig>,
    pub events: Option<EventsConfig>,
    /// Reload on changes in the policy directory and in /etc/passwd and /etc/group.
    pub watch: Option<bool>,
    /// Subordinate uid ranges (subuid(5)).
    pub subuid_file: Option<PathBuf>,
    pub metrics: Option<MetricsConfig>,
    /// Where the policy comes from besides the directory: `{etcd: {...}}`.
    pub policy_source: Option<PolicySourceConfig>,
    /// This host's name in a fleet (etcd status key); default the host name.
    pub node_name: Option<String>,
    /// jumpd's state (the cached etcd revision below `etcd/`).
    pub state_dir: Option<PathBuf>,
    pub grants: Option<GrantsConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// The longest `jumpctl grant` (like `8h`; default `24h`).
    pub max_duration: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ADDR:PORT` to serve Prometheus metrics on; unset: no metrics.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySourceConfig {
    pub etcd: Option<EtcdConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub prefix: Option<String>,
    /// PEM CA certificate; with `cert` and `key`, mutual TLS.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    pub socket: Option<PathBuf>,
    pub group: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub rate_window_ms: Option<u64>,
    pub rate_burst: Option<u32>,
    pub user_rate: Option<u32>,
    pub user_burst: Option<u32>,
}

/// jumpd's command line. Each flag overrides the config file's setting of the same name.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Flags {
    /// YAML config file; default `/etc/jump/jumpd.yaml` when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of policy YAML files [default: /etc/jump/policies]
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// cgroup v2 directory to enforce on. On a jump host: the cgroup v2 root (the whole host).
    /// Required (here or in the config): attaching to the root of a machine that is not a jump
    /// host cuts its traffic
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// bpffs directory where programs, links and maps are pinned so enforcement survives a
    /// restart of jumpd [default: /sys/fs/bpf/jump]
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// Log sink; journald when it answers on its socket, otherwise JSON lines on stdout
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// `enforce` refuses what the policy denies; `audit` only logs it ("would-deny")
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Control socket for jumpctl [default: /run/jump/jumpd.sock]
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// Group (besides root) allowed to use the control socket [default: jump-admin]
    #[arg(long)]
    pub control_group: Option<String>,
    /// Event rate limit window in milliseconds; 0 disables the limit, and the per-uid budget
    /// too unless `--event-user-rate` is given [default: 1000]
    #[arg(long)]
    pub event_rate_window_ms: Option<u64>,
    /// Similar events (same user, destination, hook, verdict) sent per window [default: 5]
    #[arg(long)]
    pub event_rate_burst: Option<u32>,
    /// Events each uid may send per second beyond its burst; what it holds back is counted per
    /// uid and reported; 0 disables the per-uid budget [default: 100]
    #[arg(long)]
    pub event_user_rate: Option<u32>,
    /// Events each uid may send at once [default: 1024, at most 4096]
    #[arg(long)]
    pub event_user_burst: Option<u32>,
    /// Do not reload on changes to the policy directory, /etc/passwd and /etc/group
    #[arg(long)]
    pub no_watch: bool,
    /// Forward the kernel programs' own debug diagnostics (aya-log) at debug level
    #[arg(long)]
    pub debug_kernel: bool,
    /// Subordinate uid ranges: a uid a user namespace maps to is decided and logged as the user
    /// who owns it [default: /etc/subuid]
    #[arg(long)]
    pub subuid_file: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default). Unauthenticated
    /// and naming rules and uids: use a loopback address such as 127.0.0.1:9464
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Take the policy from etcd (`http(s)://host:port`, comma-separated): the keys
    /// `PREFIX policies/NAME.yaml`; --policy-dir, if given, is the fallback for a first start
    /// with neither etcd nor a cached revision
    #[arg(long, value_delimiter = ',', value_name = "URL[,URL…]")]
    pub policy_etcd: Vec<String>,
    /// Key prefix of the fleet in etcd [default: /jump/]
    #[arg(long)]
    pub etcd_prefix: Option<String>,
    /// PEM CA certificate that signed etcd's server certificate (TLS)
    #[arg(long)]
    pub etcd_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --etcd-key)
    #[arg(long)]
    pub etcd_cert: Option<PathBuf>,
    /// PEM private key of --etcd-cert
    #[arg(long)]
    pub etcd_key: Option<PathBuf>,
    /// This host's name in the fleet: its status key `PREFIX status/NODE` [default: the host name]
    #[arg(long)]
    pub node_name: Option<String>,
    /// jumpd's state directory; the cached etcd revision is kept in `etcd/` below it
    /// [default: /var/lib/jump]
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The longest just-in-time grant `jumpctl grant` may give, like `8h` [default: 24h]
    #[arg(long)]
    pub grant_max_duration: Option<String>,
}

/// The settings jumpd runs with: flags over file over defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The config file read, if any.
    pub config: Option<PathBuf>,
    pub policy_dir: PathBuf,
    pub cgroup: PathBuf,
    /// Root of the pinned state; each cgroup gets a directory below.
    pub pin_dir: PathBuf,
    /// `None`: detect (journald when it answers on its socket).
    pub log_format: Option<LogFormat>,
    pub mode: Mode,
    pub control_socket: PathBuf,
    pub control_group: String,
    pub rate_limit: RateLimit,
    pub watch: bool,
    pub debug_kernel: bool,
    pub subuid_file: PathBuf,
    /// The longest just-in-time grant.
    pub grant_max: jiff::SignedDuration,
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The etcd policy source, if any.
    pub etcd: Option<crate::fleet::Connection>,
    pub node_name: String,
    pub state_dir: PathBuf,
    /// Whether a policy directory was named (with etcd: the fallback), not only defaulted.
    pub policy_dir_given: bool,
}

/// The etcd source from flags over file, checked.
fn etcd_source(
    file: &FileConfig,
    flags: &Flags,
) -> Result<Option<crate::fleet::Connection>, String> {
    let conf = file
        .policy_source
        .as_ref()
        .and_then(|p| p.etcd.clone())
        .unwrap_or_default();
    let endpoints = if flags.policy_etcd.is_empty() {
        conf.endpoints.clone()
    } else {
        flags.policy_etcd.clone()
    };
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if endpoints.is_empty() {
        return Ok(None);
    }
    let prefix = crate::fleet::normalize_prefix(
        flags
            .etcd_prefix
            .as_deref()
            .or(conf.prefix.as_deref())
            .unwrap_or(crate::fleet::DEFAULT_PREFIX),
    )?;
    let ca = flags.etcd_ca.clone().or(conf.ca);
    let cert = flags.etcd_cert.clone().or(conf.cert);
    let key = flags.etcd_key.clone().or(conf.key);
    let tls = match (ca, &cert, &key) {
        (None, None, None) => None,
        (Some(ca), Some(_), Some(_)) | (Some(ca), None, None) => Some(crate::fleet::Tls {
            ca,
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, _, _) => return Err(
            "etcd TLS: a client certificate needs the CA (`ca` / --etcd-ca) to verify etcd with"
                .into(),
        ),
        _ => return Err("etcd TLS: give both a client certificate and its key, or neither".into()),
    };
    Ok(Some(crate::fleet::Connection {
        endpoints,
        prefix,
        tls,
    }))
}

/// `msg at line L column C` → (`msg`, L, C), as serde_yaml words its errors.
fn split_location(e: &serde_yaml::Error) -> (String, usize, usize) {
    let text = e.to_string();
    let msg = match text.rfind(" at line ") {
        Some(i) if e.location().is_some() => text[..i].to_string(),
        _ => text,
    };
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    (msg, line, col)
}

/// Parses a config file's text; `name` is how errors name the file.
pub fn parse(name: &str, text: &str) -> Result<FileConfig, String> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let (msg, line, col) = split_location(&e);
        if line == 0 {
            format!("{name}: {msg}")
        } else {
            format!("{name}:{line}:{col}: {msg}")
        }
    })
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    // It names the policy directory: whoever may write it decides the policy.
    crate::policy::check_config_file(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file `{}`: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Flags over file over defaults. Errors when no cgroup is given anywhere.
pub fn merge(
    file: &FileConfig,
    flags: &Flags,
    config: Option<PathBuf>,
) -> Result<Settings, String> {
    let control = file.control.clone().unwrap_or_default();
    let events = file.events.clone().unwrap_or_default();
    let default_rate = RateLimit::default();
    let cgroup = flags.cgroup.clone().or_else(|| file.cgroup.clone()).ok_or_else(|| {
        "no cgroup to enforce on: set `cgroup:` in the config file or pass `--cgroup` (on a jump host, the cgroup v2 root `/sys/fs/cgroup`)".to_string()
    })?;
    let etcd = etcd_source(file, flags)?;
    let node_name = flags
        .node_name
        .clone()
        .or_else(|| file.node_name.clone())
        .unwrap_or_else(crate::fleet::hostname);
    if etcd.is_some() {
        crate::fleet::check_node_name(&node_name)?;
    }
    Ok(Settings {
        config,
        etcd,
        node_name,
        state_dir: flags
            .state_dir
            .clone()
            .or_else(|| file.state_dir.clone())
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        policy_dir_given: flags.policy_dir.is_some() || file.policy_dir.is_some(),
        policy_dir: flags
            .policy_dir
            .clone()
            .or_else(|| file.policy_dir.clone())
            .unwrap_or_else(|| DEFAULT_POLICY_DIR.into()),
        cgroup,
        pin_dir: flags
            .pin_dir
            .clone()
            .or_else(|| file.pin_dir.clone())
            .unwrap_or_else(|| DEFAULT_PIN_DIR.into()),
        log_format: flags.log_format.or(file.log_format),
        mode: flags.mode.or(file.mode).unwrap_or_default(),
        control_socket: flags
            .control_socket
            .clone()
            .or(control.socket)
            .unwrap_or_else(|| DEFAULT_SOCKET.into()),
        control_group: flags
            .control_group
            .clone()
            .or(control.group)
            .unwrap_or_else(|| DEFAULT_GROUP.into()),
        rate_limit: RateLimit {
            window_ms: flags
                .event_rate_window_ms
                .or(events.rate_window_ms)
                .unwrap_or(default_rate.window_ms),
            burst: flags
                .event_rate_burst
                .or(events.rate_burst)
                .unwrap_or(default_rate.burst),
            // "No rate limit" (window 0) without a user rate of its own means none at all:
            // what benchmarks and tests that count every decision ask for.
            user_rate: flags.event_user_rate.or(events.user_rate).unwrap_or(
                if flags.event_rate_window_ms.or(events.rate_window_ms) == Some(0) {
                    0
                } else {
                    default_rate.user_rate
                },
            ),
            user_burst: flags
                .event_user_burst
                .or(events.user_burst)
                .unwrap_or(default_rate.user_burst),
        }
        .check()?,
        watch: !flags.no_watch && file.watch.unwrap_or(true),
        debug_kernel: flags.debug_kernel,
        subuid_file: flags
            .subuid_file
            .clone()
            .or_else(|| file.subuid_file.clone())
            .unwrap_or_else(|| crate::resolve::directory::SUBUID_FILE.into()),
        grant_max: match flags
            .grant_max_duration
            .clone()
            .or_else(|| file.grants.as_ref().and_then(|g| g.max_duration.clone()))
        {
            Some(d) => super::grants::parse_duration(&d)
                .map_err(|e| format!("grant maximum duration: {e}"))?,
            None => super::grants::DEFAULT_MAX_DURATION,
        },
        metrics_listen: flags
            .metrics_listen
            .or_else(|| file.metrics.as_ref().and_then(|m| m.listen)),
    })
}

/// The config file named by `--config`, else `/etc/jump/jumpd.yaml` if it exists, merged with
/// the flags.
pub fn resolve(flags: &Flags) -> Result<Settings, String> {
    let path = match &flags.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let file = match &path {
        Some(p) => load(p)?,
        None => FileConfig::default(),
    };
    merge(&file, flags, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
policy_dir: /srv/policies
cgroup: /sys/fs/cgroup
pin_dir: /sys/fs/bpf/jump
log_format: json
mode: audit
control:
  socket: /run/j/s.sock
  group: wheel
events:
  rate_window_ms: 500
  rate_burst: 3
  user_rate: 50
  user_burst: 200
watch: false
subuid_file: /srv/subuid
metrics:
  listen: 127.0.0.1:9464
policy_source:
  etcd:
    endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
    prefix: /fleet
    ca: /etc/jump/etcd/ca.pem
    cert: /etc/jump/etcd/jump1.pem
    key: /etc/jump/etcd/jump1.key
node_name: jump1
state_dir: /srv/state
grants:
  max_duration: 8h
";

    #[test]
    fn every_key_of_the_file_is_read() {
        let f = parse("jumpd.yaml", FULL).unwrap();
        let s = merge(&f, &Flags::default(), None).unwrap();
        assert_eq!(
            s,
            Settings {
                config: None,
                policy_dir: "/srv/policies".into(),
                cgroup: "/sys/fs/cgroup".into(),
                pin_dir: "/sys/fs/bpf/jump".into(),
                log_format: Some(LogFormat::Json),
                mode: Mode::Audit,
                control_socket: "/run/j/s.sock".into(),
                control_group: "wheel".into(),
                rate_limit: RateLimit {
                    window_ms: 500,
                    burst: 3,
                    user_rate: 50,
                    user_burst: 200,
                },
                watch: false,
                debug_kernel: false,
                subuid_file: "/srv/subuid".into(),
                grant_max: jiff::SignedDuration::from_hours(8),
                metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
                etcd: Some(crate::fleet::Connection {
                    endpoints: vec![
                        "https://10.0.0.1:2379".into(),
                        "https://10.0.0.2:2379".into()
                    ],
                    prefix: "/fleet/".into(),
                    tls: Some(crate::fleet::Tls {
                        ca: "/etc/jump/etcd/ca.pem".into(),
                        cert: Some("/etc/jump/etcd/jump1.pem".into()),
                        key: Some("/etc/jump/etcd/jump1.key".into()),
                    }),
                }),
                node_name: "jump1".into(),
                state_dir: "/srv/state".into(),
                policy_dir_given: true,
            }
        );
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let f = parse(
            "jumpd.yaml",
            "cgroup: /a\nmode: audit\ncontrol: {group: wheel}\n",
        )
        .unwrap();
        let flags = Flags {
            cgroup: Some("/b".into()),
            control_socket: Some("/tmp/x.sock".into()),
            event_rate_burst: Some(9),
            ..Flags::default()
        };
        let s = merge(&f, &flags, None).unwrap();
        assert_eq!(s.cgroup, PathBuf::from("/b"), "the flag wins");
        assert_eq!(s.mode, Mode::Audit, "the file wins over the default");
        assert_eq!(s.control_group, "wheel");
        assert_eq!(s.control_socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(s.policy_dir, PathBuf::from(DEFAULT_POLICY_DIR));
        assert_eq!(
            s.rate_limit,
            RateLimit {
                window_ms: 1000,
                burst: 9,
                user_rate: 100,
                user_burst: 1024,
            }
        );
        assert_eq!(
            s.rate_limit.limits(),
            jump_common::Limits {
                window_ns: 1_000_000_000,
                burst: 9,
                uid_burst: 1024,
                uid_interval_ns: 10_000_000,
            }
        );
        assert!(s.watch);
        let s = merge(
            &f,
            &Flags {
                no_watch: true,
                mode: Some(Mode::Enforce),
                ..Flags::default()
            },
            None,
        )
        .unwrap();
        assert_eq!((s.watch, s.mode), (false, Mode::Enforce));
    }

    #[test]
    fn a_user_burst_beyond_an_eighth_of_the_ring_buffer_is_refused() {
        assert_eq!(MAX_USER_BURST, 4096);
        let f = parse("j.yaml", "cgroup: /a\nevents: {user_burst: 5000}\n").unwrap();
        assert_eq!(
            merge(&f, &Flags::default(), None).unwrap_err(),
            "invalid event user burst `5000`: must be 1..=4096 (an eighth of the ring buffer)"
        );
        let off = Flags {
            event_user_rate: Some(0),
            ..Flags::default()
        };
        let s = merge(&f, &off, None).expect("no budget, no burst to check");
        assert_eq!(s.rate_limit.limits().uid_interval_ns, 0);
        let unlimited = Flags {
            event_rate_window_ms: Some(0),
            ..Flags::default()
        };
        let f = parse("j.yaml", "cgroup: /a\n").unwrap();
        let s = merge(&f, &unlimited, None).unwrap();
        assert_eq!(
            (s.rate_limit.limits().window_ns, s.rate_limit.user_rate),
            (0, 0),
            "window 0 alone turns every limit off"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_location() {
        let e = parse(
            "/etc/jump/jumpd.yaml",
            "cgroup: /a\ncontrol:\n  sokcet: /x\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "/etc/jump/jumpd.yaml:3:3: control: unknown field `sokcet`, expected `socket` or `group`"
        );
        let e = parse("j.yaml", "cgroups: /a\n").unwrap_err();
        assert!(
            e.starts_with("j.yaml:1:1: unknown field `cgroups`, expected one of"),
            "{e}"
        );
        let e = parse("j.yaml", "mode: strict\n").unwrap_err();
        assert!(
            e.starts_with("j.yaml:1:7: mode: unknown variant `strict`"),
            "{e}"
        );
    }

    #[test]
    fn an_etcd_source_needs_a_safe_node_name_and_whole_tls() {
        let f = parse("j.yaml", "cgroup: /a\n").unwrap();
        let flags = |node: &str| Flags {
            policy_etcd: vec!["http://127.0.0.1:2379".into()],
            node_name: Some(node.into()),
            ..Flags::default()
        };
        let s = merge(&f, &flags("jump1"), None).unwrap();
        assert_eq!(s.etcd.unwrap().prefix, "/jump/");
        assert!(!s.policy_dir_given);
        assert!(merge(&f, &flags("../policies/x"), None)
            .unwrap_err()
            .starts_with("invalid node name `../policies/x`"));
        let half = Flags {
            etcd_cert: Some("/c.pem".into()),
            etcd_ca: Some("/ca.pem".into()),
            ..flags("jump1")
        };
        assert_eq!(
            merge(&f, &half, None).unwrap_err(),
            "etcd TLS: give both a client certificate and its key, or neither"
        );
        assert!(merge(&f, &Flags::default(), None).unwrap().etcd.is_none());
    }

    #[test]
    fn a_missing_cgroup_is_an_error_and_an_empty_file_is_all_defaults() {
        let f = parse("j.yaml", "").unwrap();
        assert_eq!(f, FileConfig::default());
        assert!(merge(&f, &Flags::default(), None)
            .unwrap_err()
            .starts_with("no cgroup to enforce on"));
    }
}

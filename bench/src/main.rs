//! `jump-bench-run [--quick] [--json] [--out FILE]`, which `cargo xtask bench` builds and runs
//! (the binaries under test from `JUMPD_BIN`, `JUMPCTL_BIN`, `JUMP_PROBE_BIN`, else beside it):
//! what jump costs per connection, measured
//! side by side with what an admin would use instead (nftables sets, linear iptables owner
//! rules) and with no filter at all, in one run, so the ratios hold on a noisy machine.
//!
//! Layout of a run (all of it the bench's own, removed on exit and on Ctrl-C):
//! - three topologies (`jump_tests::netns`): one for the baseline and jump, one whose jump-host
//!   namespace carries the nftables ruleset, one with the iptables rules. Netfilter rules are
//!   only ever loaded inside those namespaces, and every system stays installed for a whole rule
//!   count, so alternating systems is just running the client elsewhere;
//! - five child cgroups of the cgroup2 root: unfiltered, jump with `log: deny` (filtering
//!   only, like the netfilter systems), jump with `log: all` (every decision an event, jump's
//!   audit use), the reference programs (the floor), and the one-lookup reference programs
//!   with a third jumpd on a child of it; and a child of jump's `log: deny` cgroup with the
//!   one-lookup reference programs. The two children run jump's programs and the reference's
//!   on the same calls, one in each order;
//! - the client (`jump-bench tcp|udp`) joins a cgroup, then the namespace, then becomes the
//!   granted uid, and only then creates its sockets.
//!
//! Modules: `rules` (the rule set, in each system's language), `stats`, `report` (tables, JSON,
//! targets), `env` (guards for processes, jumpd, bpf_stats), `journal` (the journald sink against
//! journald's own ingest). All but `env`, `journal` and this file are pure.
//! The programs it runs are this crate's other binaries: `jump-bench` (client/, the client,
//! servers and reference-program loader) and `policy-compile-time`.
//!
//! (Over 500 lines: the order of a run — sections, systems, repetitions — reads top to bottom
//! here; each section's measuring is a function of a few dozen lines.)
#![forbid(unsafe_code)]

pub mod env;
pub mod journal;
pub mod report;
pub mod rules;
pub mod stats;

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context};
use jump_tests::{cgroup::TestCgroup, netns::Topology, Bins};
use serde_json::Value;

use env::{Jumpd, Proc};
use report::{Added, Events, Latency, Op, Policy, ProgTime, Report, System, Teams, Throughput};
use rules::{CLIENT_UID, DENIED_PORT, IPERF_PORT, SERVER, SERVER6, TCP_PORT, UDP_PORT};
use stats::{Batch, Spread};

/// The options `cargo xtask bench` passes on.
#[derive(clap::Parser)]
struct Options {
    /// A short run (under two minutes): fewer sizes, repetitions and iterations.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of markdown tables.
    #[arg(long)]
    json: bool,
    /// Also write the markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let opts = <Options as clap::Parser>::parse();
    match run(&bins(), &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The binaries under test: from `JUMPD_BIN`/`JUMPCTL_BIN`/`JUMP_PROBE_BIN`, else beside this
/// program (cargo builds them all into one directory).
fn bins() -> Bins {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let pick = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(name))
    };
    Bins {
        jumpd: pick("JUMPD_BIN", "jumpd"),
        jumpctl: pick("JUMPCTL_BIN", "jumpctl"),
        probe: pick("JUMP_PROBE_BIN", "jump-probe"),
    }
}

/// How much of everything to do.
#[derive(Clone, Debug)]
struct Plan {
    sizes: Vec<usize>,
    warmup: usize,
    reps: usize,
    tcp_iters: usize,
    udp_iters: usize,
    /// Time cap of one client batch: linear iptables at 100,000 rules takes milliseconds per
    /// connect, and would otherwise take minutes.
    batch_ms: u64,
    reloads: usize,
    compile_reps: usize,
    storm: usize,
    iperf_secs: u32,
    iperf_reps: usize,
}

impl Plan {
    /// The plan of `--quick` or of the full run; `JUMP_BENCH_SIZES` (comma-separated rule
    /// counts, e.g. `100000`) replaces the rule counts, so one size can be measured alone
    /// with the full run's repetitions.
    fn new(quick: bool) -> anyhow::Result<Self> {
        let mut plan = Self::preset(quick);
        if let Ok(sizes) = std::env::var("JUMP_BENCH_SIZES") {
            if !sizes.trim().is_empty() {
                plan.sizes = sizes
                    .split(',')
                    .map(|n| {
                        n.trim().replace('_', "").parse().with_context(|| {
                            format!("JUMP_BENCH_SIZES: `{}` is not a rule count", n.trim())
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
        }
        Ok(plan)
    }

    fn preset(quick: bool) -> Self {
        if quick {
            Plan {
                sizes: vec![10, 10_000],
                warmup: 1,
                reps: 2,
                tcp_iters: 2_000,
                udp_iters: 5_000,
                batch_ms: 700,
                reloads: 2,
                compile_reps: 1,
                storm: 100_000,
                iperf_secs: 1,
                iperf_reps: 1,
            }
        } else {
            Plan {
                sizes: vec![10, 1_000, 10_000, 100_000],
                warmup: 1,
                reps: 5,
                tcp_iters: 20_000,
                udp_iters: 50_000,
                batch_ms: 3_000,
                reloads: 5,
                compile_reps: 3,
                storm: 300_000,
                iperf_secs: 5,
                iperf_reps: 5,
            }
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether a section of the bench runs: all of them unless `JUMP_BENCH_ONLY` names some
/// (comma-separated: `sizes`, `teams`, `events`, `journald`, and `grants`, which runs only
/// when named and the sizes did not include 100,000), so one engineer's
/// part can be measured alone on a shared machine. The report marks what did not run as not
/// measured.
fn section(name: &str) -> bool {
    match std::env::var("JUMP_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|s| s.trim() == name),
        _ => true,
    }
}

/// Whether `JUMP_BENCH_ONLY` names this section (one that only runs when asked for).
fn named(name: &str) -> bool {
    std::env::var("JUMP_BENCH_ONLY").is_ok_and(|only| only.split(',').any(|s| s.trim() == name))
}

/// Fails once Ctrl-C was pressed, so the guards unwind and remove everything.
fn check() -> anyhow::Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted; everything the bench created has been removed");
    }
    Ok(())
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// The bench's scratch directory (policies, rulesets, jumpd logs), removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("jump-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).with_context(|| format!("failed to create `{}`", p.display()))?;
        Ok(Self(p))
    }

    fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.0.join(name);
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p)?;
        Ok(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    for (name, text) in files {
        fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Where a system's client runs: (cgroup, network namespace).
struct Places {
    at: HashMap<&'static str, (PathBuf, PathBuf)>,
}

impl Places {
    fn of(&self, s: System) -> &(PathBuf, PathBuf) {
        &self.at[s.key()]
    }
}

/// One client batch's result.
struct ClientRun {
    ns: Vec<u64>,
    errors: u64,
    errno: Option<i64>,
    error: String,
    elapsed: Duration,
}

fn client(
    bins: &Bins,
    place: &(PathBuf, PathBuf),
    op: &str,
    n: usize,
    max_ms: u64,
    port: u16,
) -> anyhow::Result<ClientRun> {
    client_to(bins, place, op, n, max_ms, &format!("{SERVER}:{port}"))
}

fn client_to(
    bins: &Bins,
    place: &(PathBuf, PathBuf),
    op: &str,
    n: usize,
    max_ms: u64,
    to: &str,
) -> anyhow::Result<ClientRun> {
    let out = Command::new(env::bench_bin(bins))
        .arg("--cgroup")
        .arg(&place.0)
        .arg("--netns")
        .arg(&place.1)
        .args([
            "--uid",
            &CLIENT_UID.to_string(),
            "--gid",
            &CLIENT_UID.to_string(),
        ])
        .args([op, &n.to_string(), &max_ms.to_string(), to])
        .stderr(Stdio::inherit())
        .output()
        .context("failed to start jump-bench")?;
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "jump-bench {op} printed no result: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    ensure!(v["ok"] == true, "jump-bench {op}: {}", v["error"]);
    Ok(ClientRun {
        ns: v["ns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect(),
        errors: v["errors"].as_u64().unwrap_or(0),
        errno: v["errno"].as_i64(),
        error: v["error"].as_str().unwrap_or_default().to_string(),
        elapsed: Duration::from_nanos(v["elapsed_ns"].as_u64().unwrap_or(0)),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_ms(v: &Value) -> f64 {
    let ns: Vec<f64> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    Spread::of(&ns).map_or(f64::NAN, |s| s.median / 1e6)
}

/// Policy load and compile times in-process (the library jumpd uses, in a release build).
fn compile_times(bins: &Bins, dir: &Path, reps: usize) -> anyhow::Result<Policy> {
    let out = env::run(
        Command::new(env::compile_time_bin(bins))
            .arg(dir)
            .arg(reps.to_string()),
    )?;
    let v: Value = serde_json::from_str(&out).context("policy-compile-time")?;
    ensure!(v["ok"] == true, "policy-compile-time: {}", v["error"]);
    Ok(Policy {
        image: v["image"].clone(),
        load_ms: median_ms(&v["load_ns"]),
        compile_ms: median_ms(&v["compile_ns"]),
        ..Policy::default()
    })
}

/// Starts jumpd on a policy and measures start, reloads, memory.
fn jumpd_policy(
    bins: &Bins,
    dir: &Path,
    cgroup: &Path,
    log: PathBuf,
    reloads: usize,
    p: &mut Policy,
) -> anyhow::Result<Jumpd> {
    let mut d = Jumpd::start(bins, dir, cgroup, log, &[])?;
    p.start_ms = ms(d.start_time);
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reloads {
        check()?;
        let (wall, used) = d.reload_with_cpu()?;
        times.push(ms(wall));
        cpu.push(ms(used));
    }
    p.reload_ms = Spread::of(&times);
    p.reload_cpu_ms = Spread::of(&cpu);
    p.rss_kib = d.memory_kib().0;
    let progs = env::cgroup_progs(cgroup)?;
    p.maps_bytes = env::map_memory(&progs)?.iter().map(|(_, b)| b).sum();
    Ok(d)
}

/// The batches the programs' run time is measured in: (name, client op, destination). `bulk`
/// is iperf3 (TCP, as in the throughput table): almost all its packets are of an established
/// connection, the egress fast path.
fn prog_batches() -> [(&'static str, &'static str, String); 5] {
    [
        ("bulk", "iperf", String::new()),
        ("tcp", "tcp", format!("{SERVER}:{TCP_PORT}")),
        ("udp", "udp", format!("{SERVER}:{UDP_PORT}")),
        ("tcp6", "tcp", format!("[{SERVER6}]:{TCP_PORT}")),
        ("udp6", "udp", format!("[{SERVER6}]:{UDP_PORT}")),
    ]
}

/// Per-call run time of the programs on each system's cgroup, and all of them per operation:
/// one client batch of each kind per system and repetition with `kernel.bpf_stats_enabled` on,
/// the kernel's totals differenced around each batch. Each kind's batches of the systems run
/// back to back (in an order rotating with the repetition), so a program and the reference it
/// is divided by are measured seconds apart, under the same load; ratios are then taken within
/// each repetition (`ProgTime::per_rep`).
fn prog_times(
    bins: &Bins,
    plan: &Plan,
    places: &Places,
    systems: &[System],
    rules: usize,
) -> anyhow::Result<(Vec<ProgTime>, Vec<Added>)> {
    let _stats = env::BpfStats::enable()?;
    type Key = (System, &'static str, String);
    // (repetition, ns per call) of each repetition a program ran in, and its calls in all.
    type PerRep = Vec<(usize, f64)>;
    let mut per: Vec<(Key, PerRep, u64)> = Vec::new();
    let mut added: Vec<((System, &'static str), Vec<f64>)> = Vec::new();
    for rep in 0..plan.reps {
        for (batch, op, to) in prog_batches() {
            for system in stats::rotation(systems, rep) {
                let place = places.of(system);
                check()?;
                let iters = if op == "tcp" {
                    plan.tcp_iters
                } else {
                    plan.udp_iters
                };
                // On the same calls, one of the two is attached to the parent cgroup.
                let progs = |cg: &Path| {
                    if system.same_calls() {
                        env::effective_progs(cg)
                    } else {
                        env::cgroup_progs(cg)
                    }
                };
                let before = progs(&place.0)?;
                let ops = if op == "iperf" {
                    iperf(bins, place, plan.iperf_secs, false)?;
                    // Per second of transfer: the share of a bulk run the programs took, which
                    // the backstop target adds to the bare path.
                    plan.iperf_secs as usize
                } else {
                    let r = client_to(bins, place, op, iters, plan.batch_ms, &to)?;
                    ensure!(
                        r.errors == 0,
                        "{}: granted {op} to {to} failed: {}",
                        system.label(),
                        r.error
                    );
                    r.ns.len()
                };
                let mut total = 0u64;
                for a in progs(&place.0)? {
                    let Some(b) = before.iter().find(|b| b.id == a.id) else {
                        continue;
                    };
                    let calls = a.run_cnt.saturating_sub(b.run_cnt);
                    let time = a.run_time_ns.saturating_sub(b.run_time_ns);
                    total += time;
                    if calls == 0 {
                        continue;
                    }
                    let ns = time as f64 / calls as f64;
                    let key = (system, batch, a.name.clone());
                    match per.iter_mut().find(|(k, ..)| *k == key) {
                        Some((_, v, c)) => {
                            v.push((rep, ns));
                            *c += calls;
                        }
                        None => per.push((key, vec![(rep, ns)], calls)),
                    }
                }
                // On the same calls, the sum holds two systems' programs: not what either adds.
                if system.same_calls() {
                    continue;
                }
                let per_op = total as f64 / ops.max(1) as f64;
                match added.iter_mut().find(|(k, _)| *k == (system, batch)) {
                    Some((_, v)) => v.push(per_op),
                    None => added.push(((system, batch), vec![per_op])),
                }
            }
        }
    }
    let progs = per
        .into_iter()
        .filter_map(|((system, op, prog), per_rep, calls)| {
            let v: Vec<f64> = per_rep.iter().map(|&(_, ns)| ns).collect();
            Some(ProgTime {
                rules,
                system,
                op,
                prog,
                ns_per_call: Spread::of(&v)?,
                per_rep,
                calls,
            })
        })
        .collect();
    let added = added
        .into_iter()
        .filter_map(|((system, op), v)| {
            Some(Added {
                rules,
                system,
                op,
                ns_per_op: Spread::of(&v)?,
            })
        })
        .collect();
    Ok((progs, added))
}

const SYSTEMS: [System; 5] = [
    System::Baseline,
    System::Jump,
    System::JumpAudit,
    System::Nft,
    System::Iptables,
];

/// Connect and sendto latency of every system at one rule count, systems alternating.
fn latencies(
    bins: &Bins,
    plan: &Plan,
    places: &Places,
    rules: usize,
) -> anyhow::Result<Vec<Latency>> {
    let mut batches: HashMap<(&str, &str), Vec<Batch>> = HashMap::new();
    for rep in 0..plan.warmup + plan.reps {
        for sys in stats::rotation(&SYSTEMS, rep) {
            for (op, cmd, iters, port) in [
                (Op::Connect, "tcp", plan.tcp_iters, TCP_PORT),
                (Op::SendTo, "udp", plan.udp_iters, UDP_PORT),
            ] {
                check()?;
                let r = client(bins, places.of(sys), cmd, iters, plan.batch_ms, port)?;
                ensure!(
                    r.errors == 0,
                    "{} refused the granted client's {cmd} to {SERVER}:{port} ({} of {}): {}",
                    sys.label(),
                    r.errors,
                    r.ns.len(),
                    r.error
                );
                if rep >= plan.warmup {
                    batches
                        .entry((op.key(), sys.key()))
                        .or_default()
                        .push(Batch::of(&r.ns));
                }
            }
        }
    }
    let mut out = Vec::new();
    for op in [Op::Connect, Op::SendTo] {
        let base = batches[&(op.key(), System::Baseline.key())].clone();
        for sys in SYSTEMS {
            let b = &batches[&(op.key(), sys.key())];
            let med: Vec<f64> = b.iter().map(|x| x.median).collect();
            let p99: Vec<f64> = b.iter().map(|x| x.p99).collect();
            let ratio: Vec<f64> = b
                .iter()
                .zip(&base)
                .map(|(x, y)| x.median / y.median)
                .collect();
            out.push(Latency {
                rules,
                op,
                system: sys,
                median: Spread::of(&med).context("no repetitions")?,
                p99: Spread::of(&p99).context("no repetitions")?,
                ratio: (sys != System::Baseline)
                    .then(|| Spread::of(&ratio))
                    .flatten(),
                samples: b.iter().map(|x| x.n).min().unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// iperf3 as the granted client, placed like the latency client.
fn iperf(bins: &Bins, place: &(PathBuf, PathBuf), secs: u32, udp: bool) -> anyhow::Result<f64> {
    let mut cmd = Command::new(env::bench_bin(bins));
    cmd.arg("--cgroup")
        .arg(&place.0)
        .arg("--netns")
        .arg(&place.1)
        .args([
            "--uid",
            &CLIENT_UID.to_string(),
            "--gid",
            &CLIENT_UID.to_string(),
        ])
        .args(["exec", "iperf3", "-J", "-c", &SERVER.to_string()])
        .args(["-p", &IPERF_PORT.to_string(), "-t", &secs.to_string()]);
    if udp {
        cmd.args(["-u", "-b", "0", "-l", "64"]);
    }
    let out = cmd.output().context("failed to start iperf3")?;
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 printed no JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    if udp {
        let s = &v["end"]["sum"];
        let pkts = s["packets"].as_f64().context("iperf3: no packet count")?;
        let secs = s["seconds"].as_f64().context("iperf3: no duration")?;
        Ok(pkts / secs / 1000.0)
    } else {
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3: no throughput")?;
        Ok(bps / 1e9)
    }
}

fn throughput(
    bins: &Bins,
    plan: &Plan,
    places: &Places,
    rules: usize,
) -> anyhow::Result<Vec<Throughput>> {
    let systems = [
        System::Baseline,
        System::Jump,
        System::Nft,
        System::Iptables,
    ];
    let mut tcp: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut udp: HashMap<&str, Vec<f64>> = HashMap::new();
    // The systems' TCP runs back to back, then their UDP runs: a system's throughput is divided
    // by the baseline's of the same repetition, measured seconds away under the same load.
    for rep in 0..plan.iperf_reps {
        for (udp_run, into) in [(false, &mut tcp), (true, &mut udp)] {
            for sys in stats::rotation(&systems, rep) {
                check()?;
                let x = iperf(bins, places.of(sys), plan.iperf_secs, udp_run)?;
                into.entry(sys.key()).or_default().push(x);
            }
        }
    }
    let base = tcp[System::Baseline.key()].clone();
    Ok(systems
        .iter()
        .map(|&sys| {
            let t = &tcp[sys.key()];
            let ratio: Vec<f64> = t.iter().zip(&base).map(|(a, b)| a / b).collect();
            Throughput {
                rules,
                system: sys,
                tcp_gbps: Spread::of(t).unwrap_or(Spread {
                    median: f64::NAN,
                    min: f64::NAN,
                    max: f64::NAN,
                }),
                tcp_ratio: (sys != System::Baseline)
                    .then(|| Spread::of(&ratio))
                    .flatten(),
                udp_kpps: Spread::of(&udp[sys.key()]),
            }
        })
        .collect())
}

/// A storm of denied sendtos from the audit cgroup: events logged vs attempts, jumpd's CPU.
/// `sendto` on one unconnected UDP socket is the cheapest way to make the kernel decide (and
/// emit) again and again: a TCP connect storm tops out at ~40,000 attempts/s here, below the
/// rate the pipeline is meant to carry.
fn events(bins: &Bins, plan: &Plan, work: &WorkDir, places: &Places) -> anyhow::Result<Events> {
    let dir = work.dir("storm")?;
    write_files(&dir, &rules::jump_policy(&rules::grants(10), "all"))?;
    let place = places.of(System::JumpAudit);
    let log = work.0.join("storm.log");
    // Without the rate limit (by default 5 similar events a second): this measures how many
    // events the pipeline carries, not how well it suppresses a repetitive storm.
    let d = Jumpd::start(
        bins,
        &dir,
        &place.0,
        log.clone(),
        &["--event-rate-window-ms", "0"],
    )?;
    let cpu0 = d.cpu_time();
    let t0 = Instant::now();
    let r = client(bins, place, "udp", plan.storm, 60_000, DENIED_PORT)?;
    ensure!(
        r.errno == Some(1) && r.errors as usize == r.ns.len(),
        "the storm's sendtos should all be refused with EPERM, got {} errors of {} ({})",
        r.errors,
        r.ns.len(),
        r.error
    );
    // The sink is done when the log stops growing; when each length was reached is kept, to
    // find when the last decision event was written (a held-back summary may follow later).
    let mut grew = vec![(d.log_len(), Instant::now())];
    let mut last = grew[0];
    while last.1.elapsed() < Duration::from_millis(300) {
        check()?;
        std::thread::sleep(Duration::from_millis(2));
        let len = d.log_len();
        if len != last.0 {
            last = (len, Instant::now());
            grew.push(last);
        }
    }
    let cpu = d.cpu_time().saturating_sub(cpu0);
    let (rss, peak) = d.memory_kib();
    // Stopping jumpd makes it report the kernel's drop counter one last time.
    drop(d);
    let counts = env::event_counts(&log)?;
    let written = grew
        .iter()
        .find(|(len, _)| *len >= counts.last_event_end)
        .map_or(last.1, |g| g.1);
    let seconds = (written - t0).as_secs_f64().max(r.elapsed.as_secs_f64());
    Ok(Events {
        attempts: r.ns.len() as u64,
        attempts_per_second: r.ns.len() as f64 / r.elapsed.as_secs_f64(),
        events: counts.events,
        lost: counts.held,
        seconds,
        per_second: counts.events as f64 / seconds,
        cpu_percent: cpu.as_secs_f64() / seconds * 100.0,
        per_cpu_second: counts.events as f64 / cpu.as_secs_f64().max(0.01),
        rss_kib: rss,
        peak_rss_kib: peak,
    })
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {:.0} GiB RAM, Linux {}",
        mem_kib as f64 / (1024.0 * 1024.0),
        kernel.trim()
    )
}

fn run(bins: &Bins, opts: &Options) -> anyhow::Result<()> {
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "the bench needs root (namespaces, cgroups, BPF, netfilter): run `sudo cargo xtask bench`"
    );
    ensure!(
        jump_tests::cgroup::cgroup2_root().is_some(),
        "no cgroup2 mount in /proc/mounts"
    );
    ensure!(
        env::bench_bin(bins).exists(),
        "`{}` not built",
        env::bench_bin(bins).display()
    );
    // Ctrl-C reaches the children too (same process group); here it only stops the loop, and
    // the guards below undo everything on the way out.
    ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).context("failed to handle Ctrl-C")?;
    let plan = Plan::new(opts.quick)?;
    // Another jumpd (e.g. main's build) measured in place of this tree's, for a before/after
    // comparison against the same reference programs.
    let other;
    let bins = match std::env::var_os("JUMP_BENCH_JUMPD") {
        Some(p) => {
            progress(format!("jumpd: {}", Path::new(&p).display()));
            other = Bins {
                jumpd: p.into(),
                jumpctl: bins.jumpctl.clone(),
                probe: bins.probe.clone(),
            };
            &other
        }
        None => bins,
    };
    let started = Instant::now();
    let work = WorkDir::new()?;

    progress("namespaces, cgroups, servers");
    let topo_a = Topology::new()?;
    let topo_n = Topology::new()?;
    let topo_i = Topology::new()?;
    let specs = vec![
        format!("tcp:{SERVER}:{TCP_PORT}"),
        format!("udp:{SERVER}:{UDP_PORT}"),
        format!("tcp:[{SERVER6}]:{TCP_PORT}"),
        format!("udp:[{SERVER6}]:{UDP_PORT}"),
    ];
    let mut servers: Vec<Proc> = Vec::new();
    for t in [&topo_a, &topo_n, &topo_i] {
        servers.push(env::servers(bins, &t.internal.path(), &specs)?);
        servers.push(Proc::spawn(
            Command::new(env::bench_bin(bins))
                .arg("--netns")
                .arg(t.internal.path())
                .args(["exec", "iperf3", "-s", "-B", &SERVER.to_string()])
                .args(["-p", &IPERF_PORT.to_string()])
                .stdout(Stdio::null()),
            "iperf3 -s",
        )?);
    }
    let cg_plain = TestCgroup::new()?;
    let cg_jump = TestCgroup::new()?;
    let cg_audit = TestCgroup::new()?;
    let cg_ref = TestCgroup::new()?;
    let grants = [TCP_PORT, UDP_PORT, IPERF_PORT];
    let _reference = env::reference(bins, "reference", &cg_ref.path, CLIENT_UID, SERVER, &grants)?;
    // jump and the reference on the same calls, in both orders (`System::RefThenJump`,
    // `System::JumpThenRef`). The children are declared after their parents, so removed first.
    let cg_ref_jump = cg_jump.child("reference")?;
    let _ref_jump = env::reference(
        bins,
        "beside",
        &cg_ref_jump.path,
        CLIENT_UID,
        SERVER,
        &grants,
    )?;
    let cg_after = TestCgroup::new()?;
    let _after = env::reference(bins, "beside", &cg_after.path, CLIENT_UID, SERVER, &grants)?;
    let cg_jump_ref = cg_after.child("jump")?;
    let places = Places {
        at: HashMap::from([
            (
                System::Baseline.key(),
                (cg_plain.path.clone(), topo_a.host.path()),
            ),
            (
                System::Jump.key(),
                (cg_jump.path.clone(), topo_a.host.path()),
            ),
            (
                System::JumpAudit.key(),
                (cg_audit.path.clone(), topo_a.host.path()),
            ),
            (
                System::Reference.key(),
                (cg_ref.path.clone(), topo_a.host.path()),
            ),
            (
                System::RefThenJump.key(),
                (cg_ref_jump.path.clone(), topo_a.host.path()),
            ),
            (
                System::JumpThenRef.key(),
                (cg_jump_ref.path.clone(), topo_a.host.path()),
            ),
            (
                System::Nft.key(),
                (cg_plain.path.clone(), topo_n.host.path()),
            ),
            (
                System::Iptables.key(),
                (cg_plain.path.clone(), topo_i.host.path()),
            ),
        ]),
    };
    let mut report = Report {
        quick: opts.quick,
        machine: machine(),
        versions: vec![
            ("nftables".into(), first_line(Command::new("nft").arg("-v"))),
            (
                "iptables".into(),
                first_line(Command::new("iptables").arg("-V")),
            ),
            (
                "iperf3".into(),
                first_line(Command::new("iperf3").arg("--version")),
            ),
        ],
        ..Report::default()
    };

    let sizes: &[usize] = if section("sizes") { &plan.sizes } else { &[] };
    for (k, &n) in sizes.iter().enumerate() {
        check()?;
        progress(format!("{n} rules: generating and loading"));
        let grants = rules::grants(n);
        let dir_j = work.dir(&format!("{n}/jump"))?;
        let dir_a = work.dir(&format!("{n}/audit"))?;
        write_files(&dir_j, &rules::jump_policy(&grants, "deny"))?;
        write_files(&dir_a, &rules::jump_policy(&grants, "all"))?;
        let nft = work.0.join(format!("{n}/nft.conf"));
        fs::write(&nft, rules::nft_script(&grants))?;
        let ipt = work.0.join(format!("{n}/iptables.rules"));
        fs::write(&ipt, rules::iptables_script(&grants))?;

        let mut p = compile_times(bins, &dir_j, plan.compile_reps)?;
        p.rules = n;
        let t = Instant::now();
        env::run(
            env::in_netns(&topo_n.host.path(), "nft")
                .arg("-f")
                .arg(&nft),
        )?;
        p.nft_load_ms = ms(t.elapsed());
        let t = Instant::now();
        env::run(env::in_netns(&topo_i.host.path(), "iptables-restore").arg(&ipt))?;
        p.iptables_load_ms = ms(t.elapsed());
        let jump = jumpd_policy(
            bins,
            &dir_j,
            &cg_jump.path,
            work.0.join(format!("{n}/jumpd.log")),
            plan.reloads,
            &mut p,
        )?;
        // Every decision an event: without the per-destination rate limit and the per-uid
        // budget, each connect emits one (the emitting cost of issue 19).
        let audit = Jumpd::start(
            bins,
            &dir_a,
            &cg_audit.path,
            work.0.join(format!("{n}/audit.log")),
            &["--event-rate-window-ms", "0", "--event-user-rate", "0"],
        )?;
        // The same policy once more, on the child of the reference's cgroup: jump's programs
        // run first there (`System::JumpThenRef`).
        let jump_first = Jumpd::start(
            bins,
            &dir_j,
            &cg_jump_ref.path,
            work.0.join(format!("{n}/jump-first.log")),
            &[],
        )?;
        report.jump_hooks = jump.hooks.clone();
        report.policy.push(p);

        // jump really filters here: an ungranted port is refused.
        let r = client(bins, places.of(System::Jump), "tcp", 1, 1000, DENIED_PORT)?;
        ensure!(
            r.errno == Some(1),
            "jump should refuse the client's connect to port {DENIED_PORT}, got `{}`",
            r.error
        );

        progress(format!("{n} rules: connect and sendto latency"));
        report.latency.extend(latencies(bins, &plan, &places, n)?);
        progress(format!("{n} rules: programs' run time"));
        let (progs, added) = prog_times(
            bins,
            &plan,
            &places,
            &[
                System::Reference,
                System::Jump,
                System::JumpAudit,
                System::RefThenJump,
                System::JumpThenRef,
            ],
            n,
        )?;
        report.progs.extend(progs);
        report.added.extend(added);
        if k + 1 == plan.sizes.len() {
            progress(format!("{n} rules: throughput"));
            report.throughput = throughput(bins, &plan, &places, n)?;
        }
        drop((jump, audit, jump_first));
    }

    check()?;
    // 100,000 grants applied by jump and by `nft -f`, side by side, when the size loop did
    // not measure it already (the quick run, or this section alone).
    if named("grants") && !report.policy.iter().any(|p| p.rules == GRANTS) {
        report
            .policy
            .push(grants_apply(bins, &plan, &work, &cg_jump)?);
    }

    check()?;
    if section("teams") {
        report.teams = Some(teams(bins, &plan, &work, &cg_jump)?);
    }

    check()?;
    if section("events") {
        progress(format!("events: a storm of {} denied sendtos", plan.storm));
        report.events = Some(events(bins, &plan, &work, &places)?);
    }
    check()?;
    if section("journald") {
        report.journald = journal::journald_sink(bins, &plan, &work, &places)?;
    }

    report.seconds = started.elapsed().as_secs_f64();
    let md = report.markdown();
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        println!("{md}");
    }
    if let Some(out) = &opts.out {
        fs::write(out, &md).with_context(|| format!("failed to write `{}`", out.display()))?;
    }
    progress(format!(
        "done in {:.0} s; namespaces, cgroups and processes removed",
        report.seconds
    ));
    Ok(())
}

/// The grant count of the apply comparison with `nft -f`.
const GRANTS: usize = 100_000;

/// `GRANTS` grants applied by jump (start, reloads) and by `nft -f` (an atomic replace of the
/// same set, in a namespace of its own), with nothing else measured: the apply comparison
/// alone, for `JUMP_BENCH_ONLY=grants`.
fn grants_apply(
    bins: &Bins,
    plan: &Plan,
    work: &WorkDir,
    cg: &TestCgroup,
) -> anyhow::Result<Policy> {
    progress(format!("{GRANTS} grants: jump and nft -f apply"));
    let grants = rules::grants(GRANTS);
    let dir = work.dir("grants")?;
    write_files(&dir, &rules::jump_policy(&grants, "deny"))?;
    let nft = work.0.join("grants-nft.conf");
    fs::write(&nft, rules::nft_script(&grants))?;
    let topo = Topology::new()?;
    let mut p = compile_times(bins, &dir, plan.compile_reps)?;
    p.rules = GRANTS;
    // The first load creates the table, the timed one replaces it, as a reload does.
    env::run(env::in_netns(&topo.host.path(), "nft").arg("-f").arg(&nft))?;
    let t = Instant::now();
    env::run(env::in_netns(&topo.host.path(), "nft").arg("-f").arg(&nft))?;
    p.nft_load_ms = ms(t.elapsed());
    let d = jumpd_policy(
        bins,
        &dir,
        &cg.path,
        work.0.join("grants.log"),
        plan.reloads,
        &mut p,
    )?;
    drop(d);
    Ok(p)
}

/// The 10,000 users × 20 rules policy: compile and apply (SIGHUP to loaded).
fn teams(bins: &Bins, plan: &Plan, work: &WorkDir, cg: &TestCgroup) -> anyhow::Result<Teams> {
    progress("10,000 users × 20 rules: compile and apply");
    let dir = work.dir("teams")?;
    write_files(&dir, &rules::teams_policy(10_000, 20, 20))?;
    let mut p = compile_times(bins, &dir, plan.compile_reps)?;
    p.rules = 10_000;
    let d = jumpd_policy(
        bins,
        &dir,
        &cg.path,
        work.0.join("teams.log"),
        plan.reloads,
        &mut p,
    )?;
    drop(d);
    Ok(Teams {
        users: 10_000,
        rules_per_user: 20,
        policy: p,
    })
}

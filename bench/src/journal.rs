//! The journald sink against journald itself (issue 19): in a private journald
//! (`jump_tests::journal`, its own mount namespace, volatile storage, no rate limit), jumpd
//! logs a storm of denied sendtos with `--log-format journald`, and `jump-bench journal` sends
//! the same number of entries of the same record shape (every field jumpd wrote, the journal's
//! own `_` fields aside), each with fresh values of the fields that differed among jumpd's
//! entries (its time, and whatever else the storm varied), in the same protocol. The ratio of
//! the two rates says whether jumpd keeps up with what journald can take.
//!
//! Both rates are journald's own view: decision entries over the span of their receive times,
//! so neither side is charged for what precedes its first entry (the storm's client starting,
//! the sender building its datagrams). journald's rate varies by a third from one run to the
//! next on a shared machine, so both are measured in every repetition, in alternating order,
//! each into a fresh journald, and the ratio is judged by its median.
//!
//! "On one core": in both measurements the producer (jumpd, or the anchor's sender) and journald
//! share one CPU (`SINK_CPU`), and during jumpd's the storm's sender runs on another
//! (`STORM_CPU`), so the storm's own cost does not count against jumpd. On a machine with one
//! CPU nothing is pinned.

use std::{
    fs,
    io::{BufRead, Read},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use jump_tests::{journal::Journald, Bins};
use nix::{
    sched::{sched_getaffinity, sched_setaffinity, CpuSet},
    unistd::Pid,
};
use serde_json::Value;

use super::{
    check, client, env, progress,
    report::{JournalRep, JournalSink},
    rules,
    rules::DENIED_PORT,
    write_files, Places, Plan, System, WorkDir,
};

/// The CPU the producer and journald share in both measurements.
const SINK_CPU: usize = 0;
/// The CPU of the storm's sender while jumpd is measured.
const STORM_CPU: usize = 1;

fn one_cpu(cpu: usize) -> anyhow::Result<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    Ok(set)
}

/// Pins every thread of `pid` to `cpu` (threads it starts later inherit it).
fn pin(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let set = one_cpu(cpu)?;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid: i32 = task?.file_name().to_string_lossy().parse()?;
        sched_setaffinity(Pid::from_raw(tid), &set)
            .with_context(|| format!("failed to pin thread {tid} of {pid} to CPU {cpu}"))?;
    }
    Ok(())
}

/// While it lives, this thread (and so every process it spawns) runs on one CPU only; its
/// affinity before is restored when it goes.
struct OnCpu(CpuSet);

impl OnCpu {
    fn new(cpu: usize) -> anyhow::Result<Self> {
        let before = sched_getaffinity(Pid::from_raw(0))?;
        sched_setaffinity(Pid::from_raw(0), &one_cpu(cpu)?)?;
        Ok(Self(before))
    }
}

impl Drop for OnCpu {
    fn drop(&mut self) {
        let _ = sched_setaffinity(Pid::from_raw(0), &self.0);
    }
}

/// When journald took the first and the last decision entry of `journal` (its receive time,
/// `__REALTIME_TIMESTAMP`, µs), and how many decision entries lie between: the rate journald
/// ingested them at, measured the same way for jumpd and for the anchor (each measurement has
/// a journald of its own). Read without loading every entry: the last through `-n 1`, the
/// first as the first line of the whole listing, which is then closed.
fn ingest_span(journal: &Journald) -> anyhow::Result<(u64, u64)> {
    let dir = journal.root().join("run/log/journal");
    let listing = |extra: &[&str]| {
        let mut c = Command::new("journalctl");
        c.arg("--directory")
            .arg(&dir)
            .args([
                "-o",
                "json",
                "--no-pager",
                "-q",
                "--output-fields=JUMP_VERDICT",
            ])
            .args(extra)
            .arg("JUMP_VERDICT=deny");
        c
    };
    let stamp = |line: &str| -> anyhow::Result<u64> {
        let v: Value = serde_json::from_str(line).context("journalctl printed no JSON")?;
        field(&v, "__REALTIME_TIMESTAMP").context("an entry without __REALTIME_TIMESTAMP")
    };
    let out = listing(&["-n", "1"]).output()?;
    let last = stamp(String::from_utf8_lossy(&out.stdout).trim())?;
    let mut child = listing(&[]).stdout(Stdio::piped()).spawn()?;
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().context("journalctl's output")?)
        .read_line(&mut first)?;
    let _ = child.kill();
    let _ = child.wait();
    Ok((stamp(first.trim())?, last))
}

/// Entries per second over a span of receive times (µs) holding `n` entries.
fn per_second(n: u64, (first, last): (u64, u64)) -> f64 {
    n.saturating_sub(1) as f64 / (last.saturating_sub(first) as f64 / 1e6).max(1e-9)
}

/// CPU time per entry, µs.
fn per_entry(cpu: Duration, entries: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / entries.max(1) as f64
}

/// A journal entry's field as text (journalctl prints numbers as strings).
fn field(e: &Value, k: &str) -> Option<u64> {
    e[k].as_str()?.parse().ok()
}

pub(super) fn journald_sink(
    bins: &Bins,
    plan: &Plan,
    work: &WorkDir,
    places: &Places,
) -> anyhow::Result<Option<JournalSink>> {
    if let Some(why) = jump_tests::journal::unavailable() {
        progress(format!("journald sink: skipped, {why}"));
        return Ok(None);
    }
    let dir = work.dir("journald")?;
    write_files(&dir, &rules::jump_policy(&rules::grants(10), "all"))?;
    let pinned = std::thread::available_parallelism().map_or(1, |n| n.get()) > STORM_CPU;
    // The record shape, and how many entries the anchor sends: both from jumpd's entries (the
    // first storm's shape, the latest storm's count). journald's cost per entry is not the same
    // at every length of its journal file, so the anchor fills a fresh one as far as jumpd's
    // storm did (~50,000 entries), not with the storm's 300,000 attempts.
    let mut shape: Option<(Shape, usize)> = None;
    let mut reps = Vec::new();
    for rep in 0..plan.reps {
        check()?;
        // Each measurement gets a fresh journald: one that already holds the other side's
        // entries ingests markedly slower (measured in one journald: ×0.57–0.78 with the
        // anchor first, ×0.91–1.13 with jumpd first). The order still alternates, for drift.
        let fresh = || Journald::start().context("failed to start a private journald");
        let early = match (&shape, rep % 2 == 1) {
            (Some((s, n)), true) => Some(anchor(bins, &fresh()?, *n, s, pinned)?),
            _ => None,
        };
        let storm = storm(bins, plan, work, places, &dir, &fresh()?, pinned, rep)?;
        let n = storm.events as usize;
        let s = match shape.take() {
            Some((s, _)) => s,
            None => Shape::of(&storm.entries, work)?,
        };
        let anchor = match early {
            Some(a) => a,
            None => anchor(bins, &fresh()?, n, &s, pinned)?,
        };
        shape = Some((s, n));
        reps.push(JournalRep {
            attempts: storm.attempts,
            events: storm.events,
            held: storm.held,
            per_second: storm.per_second,
            cpu_percent: storm.cpu.as_secs_f64() / storm.seconds * 100.0,
            journald_cpu_percent: storm.journald_cpu.as_secs_f64() / storm.seconds * 100.0,
            anchor_entries: anchor.entries,
            anchor_per_second: anchor.per_second,
            anchor_cpu_percent: anchor.sender_cpu_percent,
            anchor_journald_cpu_percent: anchor.journald_cpu_percent,
            cpu_per_entry: per_entry(storm.cpu, storm.events),
            journald_cpu_per_entry: per_entry(storm.journald_cpu, storm.events),
            anchor_cpu_per_entry: per_entry(anchor.sender_cpu, anchor.entries),
            anchor_journald_cpu_per_entry: per_entry(anchor.journald_cpu, anchor.entries),
            ratio: storm.per_second / anchor.per_second,
            anchor_first: rep % 2 == 1,
        });
    }
    let Some((shape, _)) = shape else {
        return Ok(None);
    };
    Ok(Some(JournalSink {
        reps,
        fields: shape.fields,
        varying: shape.varying,
        pinned,
    }))
}

/// What one storm of denied sendtos left in the journal.
struct Storm {
    attempts: u64,
    /// Decision entries of this jumpd in the journal.
    events: u64,
    held: u64,
    /// Decision entries per second, as journald took them (`ingest_span`).
    per_second: f64,
    /// From the storm's start until jumpd was idle: the span its CPU shares are of.
    seconds: f64,
    cpu: Duration,
    /// journald's CPU time over the same span.
    journald_cpu: Duration,
    entries: Vec<Value>,
}

/// jumpd logs a storm of denied sendtos to `journal` (its CPU shared with journald's).
#[expect(
    clippy::too_many_arguments,
    reason = "the bench's shared state, passed as the other sections take it"
)]
fn storm(
    bins: &Bins,
    plan: &Plan,
    work: &WorkDir,
    places: &Places,
    dir: &std::path::Path,
    journal: &Journald,
    pinned: bool,
    rep: usize,
) -> anyhow::Result<Storm> {
    progress(format!(
        "journald sink, repetition {}: a storm of {} denied sendtos logged to a private journald",
        rep + 1,
        plan.storm
    ));
    let place = places.of(System::JumpAudit);
    let d = env::Jumpd::start_journald(
        bins,
        dir,
        &place.0,
        work.0.join(format!("journald-jumpd-{rep}.log")),
        journal,
        &["--event-rate-window-ms", "0"],
    )?;
    if pinned {
        pin(journal.pid(), SINK_CPU)?;
        pin(d.pid(), SINK_CPU)?;
    }
    let pid = d.pid().to_string();
    let n = plan.storm;
    let journald0 = env::cpu_time(journal.pid());
    let cpu0 = d.cpu_time();
    let t0 = Instant::now();
    let r = {
        let _storm_cpu = pinned.then(|| OnCpu::new(STORM_CPU)).transpose()?;
        client(bins, place, "udp", n, 60_000, DENIED_PORT)?
    };
    ensure!(
        r.errno == Some(1) && r.errors as usize == r.ns.len(),
        "the storm's sendtos should all be refused with EPERM, got {} errors of {} ({})",
        r.errors,
        r.ns.len(),
        r.error
    );
    // jumpd is done when its CPU time stops growing (it is idle: the ring buffer is empty).
    let mut last = (d.cpu_time(), Instant::now());
    while last.1.elapsed() < Duration::from_millis(400) {
        check()?;
        std::thread::sleep(Duration::from_millis(10));
        let cpu = d.cpu_time();
        if cpu != last.0 {
            last = (cpu, Instant::now());
        }
    }
    let seconds = (last.1 - t0).as_secs_f64().max(r.elapsed.as_secs_f64());
    let cpu = last.0.saturating_sub(cpu0);
    let journald_cpu = env::cpu_time(journal.pid()).saturating_sub(journald0);
    // Stopping jumpd makes it report what the kernel held back one last time.
    drop(d);
    // This jumpd's entries only: the anchor's carry jumpd's identifier too.
    let entries: Vec<Value> = journal
        .jumpd_entries()
        .into_iter()
        .filter(|e| e["_PID"] == pid.as_str())
        .collect();
    let held: u64 = entries
        .iter()
        .map(|e| {
            [
                "JUMP_EVENTS_LOST",
                "JUMP_EVENTS_OVER_BUDGET",
                "JUMP_EVENTS_SUPPRESSED",
            ]
            .iter()
            .filter_map(|k| field(e, k))
            .sum::<u64>()
        })
        .sum();
    let entries: Vec<Value> = entries
        .into_iter()
        .filter(|e| e["JUMP_VERDICT"].is_string())
        .collect();
    let events = entries.len() as u64;
    Ok(Storm {
        attempts: r.ns.len() as u64,
        events,
        per_second: per_second(events, ingest_span(journal)?),
        held,
        seconds,
        cpu,
        journald_cpu,
        entries,
    })
}

/// The record shape the anchor sends: jumpd's fields, and which of them it varies.
struct Shape {
    file: std::path::PathBuf,
    fields: usize,
    varying: Vec<String>,
}

impl Shape {
    fn of(events: &[Value], work: &WorkDir) -> anyhow::Result<Self> {
        let sample = events
            .first()
            .context("jumpd logged no event to journald")?;
        let shape: serde_json::Map<String, Value> = sample
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !k.starts_with('_') && v.is_string())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The fields that take a new value in most of jumpd's entries (the time, and whatever
        // else the storm varies that much): the anchor gives each of its entries fresh values
        // of these. A field with a few values among many entries (the executable's path, once
        // the sender has exited) costs journald about what a constant one does, and stays
        // constant.
        let varying: Vec<String> = shape
            .keys()
            .filter(|k| {
                let values: std::collections::HashSet<&Value> =
                    events.iter().filter_map(|e| e.get(k.as_str())).collect();
                values.len() > events.len() / 2
            })
            .cloned()
            .collect();
        let file = work.0.join("journald-entry.json");
        fs::write(
            &file,
            serde_json::to_vec(&serde_json::json!({"entry": shape, "varying": varying}))?,
        )?;
        Ok(Self {
            file,
            fields: shape.len(),
            varying,
        })
    }
}

/// journald's own ingest of `n` entries of `shape` from `jump-bench journal`.
struct Anchor {
    entries: u64,
    /// Entries per second, as journald took them (`ingest_span`).
    per_second: f64,
    /// CPU shares of the sender and of journald while it sent, in percent of its sending time.
    sender_cpu_percent: f64,
    journald_cpu_percent: f64,
    /// Their CPU times over the same span.
    sender_cpu: Duration,
    journald_cpu: Duration,
}

fn anchor(
    bins: &Bins,
    journal: &Journald,
    n: usize,
    shape: &Shape,
    pinned: bool,
) -> anyhow::Result<Anchor> {
    check()?;
    progress(format!(
        "journald sink: journald's own ingest of {n} such entries, varying {}",
        shape.varying.join(", ")
    ));
    if pinned {
        pin(journal.pid(), SINK_CPU)?;
    }
    let journald0 = env::cpu_time(journal.pid());
    let (stdout, sender_cpu) = {
        let _sink_cpu = pinned.then(|| OnCpu::new(SINK_CPU)).transpose()?;
        let mut child = journal
            .command(env::bench_bin(bins))
            .arg("journal")
            .arg(n.to_string())
            .arg(&shape.file)
            .stdout(Stdio::piped())
            .spawn()
            .context("failed to run jump-bench journal")?;
        let mut stdout = Vec::new();
        child
            .stdout
            .take()
            .context("jump-bench journal's output")?
            .read_to_end(&mut stdout)?;
        // Its output ends when it exits; until it is waited for, its CPU time stays readable.
        let cpu = env::cpu_time(child.id());
        child.wait()?;
        (stdout, cpu)
    };
    let journald_cpu = env::cpu_time(journal.pid()).saturating_sub(journald0);
    let v: Value = serde_json::from_slice(&stdout).with_context(|| {
        format!(
            "jump-bench journal printed no result: {}",
            String::from_utf8_lossy(&stdout)
        )
    })?;
    ensure!(v["ok"] == true, "jump-bench journal: {}", v["error"]);
    let seconds = (v["elapsed_ns"].as_u64().unwrap_or(0) as f64 / 1e9).max(1e-9);
    // The last few entries may still be in journald's queue when the sender is done.
    std::thread::sleep(Duration::from_millis(200));
    Ok(Anchor {
        entries: n as u64,
        per_second: per_second(n as u64, ingest_span(journal)?),
        sender_cpu_percent: sender_cpu.as_secs_f64() / seconds * 100.0,
        journald_cpu_percent: journald_cpu.as_secs_f64() / seconds * 100.0,
        sender_cpu,
        journald_cpu,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_count_the_gaps_between_receive_times() {
        assert_eq!(super::per_second(3, (1_000_000, 2_000_000)), 2.0);
        assert!(super::per_second(1, (5, 5)) == 0.0, "one entry has no rate");
    }

    #[test]
    fn journal_entries_numbers_are_read_from_text() {
        let e = serde_json::json!({"JUMP_EVENTS_LOST": "12", "JUMP_UID": 5});
        assert_eq!(super::field(&e, "JUMP_EVENTS_LOST"), Some(12));
        assert_eq!(super::field(&e, "JUMP_UID"), None, "journalctl prints text");
    }
}

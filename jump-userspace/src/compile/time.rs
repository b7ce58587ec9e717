//! `expires` and `schedule` → time windows: half-open intervals of Unix-time nanoseconds.

use jiff::{civil::Date, SignedDuration, Timestamp};
use jump_common::MAX_INTERVALS;

use super::image::Intervals;
use crate::policy::{Day, Schedule};

/// Schedules are expanded from a day before `now` (so a window just opened is whole) to this far
/// after it; the daemon recompiles well before the end, and past it a window is closed (fail
/// closed).
pub const HORIZON_BEFORE: SignedDuration = SignedDuration::from_hours(24);
pub const HORIZON_AFTER: SignedDuration = SignedDuration::from_hours(7 * 24);

pub fn ns(t: Timestamp) -> u64 {
    t.as_nanosecond().clamp(0, i128::from(u64::MAX)) as u64
}

/// The interval a schedule opens on local date `date` (the day it starts), by definition: from
/// `date` at `start` to `end` the same day, or the next day when `end <= start`, local times
/// read in the schedule's zone (a time skipped by a DST change is read as the time after it).
pub fn schedule_interval(s: &Schedule, date: Date) -> Option<(Timestamp, Timestamp)> {
    let at = |d: Date, minutes: u16| -> Option<Timestamp> {
        let (d, minutes) = if minutes >= 24 * 60 {
            (d.tomorrow().ok()?, minutes - 24 * 60)
        } else {
            (d, minutes)
        };
        let dt = d.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
        s.tz.to_timestamp(dt).ok()
    };
    let start = at(date, s.start)?;
    let end_day = if s.end <= s.start {
        date.tomorrow().ok()?
    } else {
        date
    };
    let end = at(end_day, s.end)?;
    (start < end).then_some((start, end))
}

/// Whether the schedule is open at `t` (the reference definition: some day's interval holds `t`).
pub fn schedule_open(s: &Schedule, t: Timestamp) -> bool {
    let today = t.to_zoned_datetime(s.tz.clone()).date();
    let Ok(yesterday) = today.yesterday() else {
        return false;
    };
    [yesterday, today].into_iter().any(|d| {
        s.days.contains(&Day::from_weekday(d.weekday()))
            && schedule_interval(s, d).is_some_and(|(a, b)| a <= t && t < b)
    })
}

/// Sorted, merged intervals of a schedule that overlap `[now - HORIZON_BEFORE, now + HORIZON_AFTER)`.
pub fn schedule_intervals(s: &Schedule, now: Timestamp) -> Intervals {
    let from = now.checked_sub(HORIZON_BEFORE).unwrap_or(now);
    let to = now.checked_add(HORIZON_AFTER).unwrap_or(now);
    let mut out = Vec::new();
    let Ok(mut d) = from.to_zoned_datetime(s.tz.clone()).date().yesterday() else {
        return out;
    };
    let last = to.to_zoned_datetime(s.tz.clone()).date();
    while d <= last {
        if s.days.contains(&Day::from_weekday(d.weekday())) {
            if let Some((a, b)) = schedule_interval(s, d) {
                if b > from && a < to {
                    out.push((ns(a), ns(b)));
                }
            }
        }
        let Ok(next) = d.tomorrow() else { break };
        d = next;
    }
    normalize(out)
}

/// Sorts and merges overlapping or touching intervals, dropping empty ones.
pub fn normalize(mut v: Intervals) -> Intervals {
    v.retain(|&(a, b)| a < b);
    v.sort();
    let mut out: Intervals = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

pub fn intersect(a: &Intervals, b: &Intervals) -> Intervals {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The rule's window: `None` when it is always open, else its intervals (possibly none: the rule
/// can never match in the horizon). Truncated to the `MAX_INTERVALS` earliest.
pub fn rule_window(
    expires: Option<Timestamp>,
    schedule: Option<&Schedule>,
    now: Timestamp,
) -> Option<Intervals> {
    let mut w = match (expires, schedule) {
        (None, None) => return None,
        (Some(e), None) => normalize(vec![(0, ns(e))]),
        (None, Some(s)) => schedule_intervals(s, now),
        (Some(e), Some(s)) => intersect(&schedule_intervals(s, now), &normalize(vec![(0, ns(e))])),
    };
    // Intervals over before the horizon can never open again.
    let from = ns(now.checked_sub(HORIZON_BEFORE).unwrap_or(now));
    w.retain(|&(_, end)| end > from);
    w.truncate(MAX_INTERVALS);
    Some(w)
}

/// When the daemon must recompile at the latest for the kernel to keep following the schedules:
/// a day before the compiled horizon ends, or before a window cut at `MAX_INTERVALS` runs out.
/// `None` when no rule has a schedule (expiry needs no recompiling: the kernel closes it).
pub fn recompile_by(rules: &crate::resolve::RuleSet, now: Timestamp) -> Option<Timestamp> {
    let mut by: Option<Timestamp> = None;
    for r in rules.rules.iter().filter(|r| r.schedule.is_some()) {
        let mut t = now
            .checked_add(HORIZON_AFTER)
            .and_then(|t| t.checked_sub(SignedDuration::from_hours(24)))
            .unwrap_or(now);
        if let Some(w) = rule_window(r.expires, r.schedule.as_ref(), now) {
            if w.len() == MAX_INTERVALS {
                if let Some(&(start, _)) = w.last() {
                    let last = Timestamp::from_nanosecond(i128::from(start)).unwrap_or(now);
                    t = t.min(last);
                }
            }
        }
        by = Some(by.map_or(t, |b| b.min(t)));
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(days: Vec<Day>, start: u16, end: u16, tz: &str) -> Schedule {
        Schedule {
            days,
            start,
            end,
            tz_name: tz.into(),
            tz: jiff::tz::TimeZone::get(tz).unwrap(),
            span: Default::default(),
        }
    }

    #[test]
    fn paris_office_hours_are_utc_shifted() {
        let s = sched(vec![Day::Mon], 8 * 60, 18 * 60, "Europe/Paris");
        // Monday 2026-11-23: Paris is UTC+1 in winter.
        let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        let iv = schedule_intervals(&s, now);
        let a: Timestamp = "2026-11-23T07:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-11-23T17:00:00Z".parse().unwrap();
        assert!(iv.contains(&(ns(a), ns(b))), "{iv:?}");
        assert!(schedule_open(&s, now));
        assert!(!schedule_open(&s, b));
    }

    #[test]
    fn overnight_hours_belong_to_the_start_day() {
        let s = sched(vec![Day::Fri], 22 * 60, 6 * 60, "UTC");
        // Saturday 2026-11-28 03:00 UTC is inside Friday's night.
        assert!(schedule_open(&s, "2026-11-28T03:00:00Z".parse().unwrap()));
        assert!(!schedule_open(&s, "2026-11-27T03:00:00Z".parse().unwrap()));
    }

    #[test]
    fn intersect_and_normalize() {
        assert_eq!(
            normalize(vec![(5, 9), (1, 3), (3, 4), (8, 8)]),
            vec![(1, 4), (5, 9)]
        );
        assert_eq!(
            intersect(&vec![(0, 10), (20, 30)], &vec![(5, 25)]),
            vec![(5, 10), (20, 25)]
        );
    }
}

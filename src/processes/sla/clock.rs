//! SLA clocks: what a clock's stored state means. A clock keeps its start, its
//! closed pauses, the start of an open pause and its stop; business time and
//! the due time follow from those and the SLA's calendar, so both can be
//! recomputed whenever the calendar or the target changes.

use chrono::{DateTime, Utc};
use entity::sla_clock;
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, Pause};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPause {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub fn stored_pauses(c: &sla_clock::Model) -> AppResult<Vec<StoredPause>> {
    serde_json::from_value(c.pauses.clone()).map_err(AppError::internal)
}

/// Closed pauses plus the open one, as the calendar wants them.
pub fn pauses_of(c: &sla_clock::Model) -> AppResult<Vec<Pause>> {
    let mut out: Vec<Pause> = stored_pauses(c)?
        .into_iter()
        .map(|p| Pause {
            start: p.start,
            end: Some(p.end),
        })
        .collect();
    if let Some(since) = c.paused_since {
        out.push(Pause {
            start: since,
            end: None,
        });
    }
    Ok(out)
}

/// Business seconds counted by the clock up to `at` (or its stop).
pub fn elapsed(cal: &Calendar, c: &sla_clock::Model, at: DateTime<Utc>) -> AppResult<i64> {
    let end = c.stopped_at.map_or(at, |s| s.min(at));
    Ok(cal.business_seconds(c.started_at, end, &pauses_of(c)?))
}

/// When the clock is due: `None` while paused before its due time.
pub fn due_at(cal: &Calendar, c: &sla_clock::Model) -> AppResult<Option<DateTime<Utc>>> {
    Ok(cal.due_at(c.started_at, c.target_seconds, &pauses_of(c)?))
}

/// Recomputes the stored due time and the worker's next check after a change.
pub fn refresh(cal: &Calendar, c: &mut sla_clock::Model, thresholds: &[u32]) -> AppResult<()> {
    c.due_at = due_at(cal, c)?;
    c.next_check_at = next_check(cal, c, thresholds)?;
    Ok(())
}

/// Business seconds after which the clock has something left to fire: the
/// lowest warning threshold above the one fired (`t` fires once
/// `elapsed * 100 >= target * t`), else the breach (`elapsed > target`);
/// `None` once the breach has fired.
pub fn next_event_seconds(c: &sla_clock::Model, thresholds: &[u32]) -> Option<i64> {
    if c.breach_fired_at.is_some() {
        return None;
    }
    let target = c.target_seconds.max(0);
    let warning = thresholds
        .iter()
        .map(|&t| i64::from(t))
        .filter(|&t| t > i64::from(c.warning_fired))
        .min()
        // The least whole `s` with `s * 100 >= target * t`.
        .map(|t| (target * t + 99) / 100);
    let breach = target + 1;
    Some(warning.map_or(breach, |w| w.min(breach)))
}

/// The earliest instant at which the breach worker may have something to fire
/// for the clock: when its business time reaches [`next_event_seconds`].
/// `None` when the clock is stopped or paused (a change of either recomputes
/// it), when nothing is left to fire, or when the calendar has no business
/// time ahead. Never before the event: the worker still checks the elapsed
/// time when it looks.
pub fn next_check(
    cal: &Calendar,
    c: &sla_clock::Model,
    thresholds: &[u32],
) -> AppResult<Option<DateTime<Utc>>> {
    if c.stopped_at.is_some() || c.paused_since.is_some() {
        return Ok(None);
    }
    let Some(seconds) = next_event_seconds(c, thresholds) else {
        return Ok(None);
    };
    Ok(cal.due_at(c.started_at, seconds, &pauses_of(c)?))
}

/// Pauses a running clock (the incident went on hold).
pub fn pause(
    cal: &Calendar,
    c: &mut sla_clock::Model,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<bool> {
    if c.stopped_at.is_some() || c.paused_since.is_some() {
        return Ok(false);
    }
    c.paused_since = Some(at);
    refresh(cal, c, thresholds)?;
    Ok(true)
}

/// Resumes a paused clock, closing its open pause.
pub fn resume(
    cal: &Calendar,
    c: &mut sla_clock::Model,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<bool> {
    let Some(since) = c.paused_since else {
        return Ok(false);
    };
    let mut pauses = stored_pauses(c)?;
    if at > since {
        pauses.push(StoredPause {
            start: since,
            end: at,
        });
    }
    c.pauses = serde_json::to_value(pauses).map_err(AppError::internal)?;
    c.paused_since = None;
    refresh(cal, c, thresholds)?;
    Ok(true)
}

/// Stops a clock: closes an open pause, records the stop and whether the target was met.
pub fn stop(
    cal: &Calendar,
    c: &mut sla_clock::Model,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<bool> {
    if c.stopped_at.is_some() {
        return Ok(false);
    }
    resume(cal, c, at, thresholds)?;
    c.stopped_at = Some(at);
    let counted = elapsed(cal, c, at)?;
    c.business_seconds = Some(counted);
    c.met = Some(counted <= c.target_seconds);
    refresh(cal, c, thresholds)?;
    Ok(true)
}

/// Restarts a stopped clock (the incident was reopened): the time it stood
/// stopped becomes a pause, so only time after the reopening counts again.
pub fn restart(
    cal: &Calendar,
    c: &mut sla_clock::Model,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<bool> {
    let Some(stopped) = c.stopped_at else {
        return Ok(false);
    };
    let mut pauses = stored_pauses(c)?;
    if at > stopped {
        pauses.push(StoredPause {
            start: stopped,
            end: at,
        });
    }
    c.pauses = serde_json::to_value(pauses).map_err(AppError::internal)?;
    c.stopped_at = None;
    c.met = None;
    c.business_seconds = None;
    refresh(cal, c, thresholds)?;
    Ok(true)
}

/// Gives a clock a new target (the priority changed); a stopped clock is re-judged.
pub fn retarget(
    cal: &Calendar,
    c: &mut sla_clock::Model,
    target: i64,
    thresholds: &[u32],
) -> AppResult<bool> {
    if c.target_seconds == target {
        return Ok(false);
    }
    c.target_seconds = target;
    if let Some(stop) = c.stopped_at {
        c.met = Some(elapsed(cal, c, stop)? <= target);
    }
    refresh(cal, c, thresholds)?;
    Ok(true)
}

/// Everything a portal shows about a clock at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    pub target_seconds: i64,
    pub due_at: Option<DateTime<Utc>>,
    pub elapsed_seconds: i64,
    /// Business seconds left; negative once breached.
    pub remaining_seconds: i64,
    pub paused: bool,
    pub stopped_at: Option<DateTime<Utc>>,
    /// The warning thresholds (percent) the clock has crossed.
    pub warnings_fired: Vec<u32>,
    /// When the clock went past its target, if it did.
    pub breached_at: Option<DateTime<Utc>>,
    /// Whether the target was met; null while running.
    pub met: Option<bool>,
}

pub fn read(
    cal: &Calendar,
    c: &sla_clock::Model,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<ClockReading> {
    let elapsed = elapsed(cal, c, at)?;
    let due = due_at(cal, c)?;
    let end = c.stopped_at.map_or(at, |s| s.min(at));
    let breached_at = due.filter(|d| elapsed > c.target_seconds && *d <= end);
    let warnings_fired = thresholds
        .iter()
        .copied()
        .filter(|t| elapsed * 100 >= c.target_seconds * i64::from(*t))
        .collect();
    Ok(ClockReading {
        target_seconds: c.target_seconds,
        due_at: due,
        elapsed_seconds: elapsed,
        remaining_seconds: c.target_seconds - elapsed,
        paused: c.paused_since.is_some(),
        stopped_at: c.stopped_at,
        warnings_fired,
        breached_at,
        met: c.met,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::enums::ClockKind;

    const T: [u32; 2] = [75, 90];

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn clock(start: &str, target: i64) -> sla_clock::Model {
        sla_clock::Model {
            id: 1,
            incident_id: 1,
            customer_id: 1,
            service_id: Some(1),
            priority: entity::enums::Priority::P3,
            sla_id: 1,
            kind: ClockKind::Resolve,
            target_seconds: target,
            started_at: utc(start),
            pauses: serde_json::json!([]),
            paused_since: None,
            stopped_at: None,
            due_at: None,
            met: None,
            business_seconds: None,
            warning_fired: 0,
            breach_fired_at: None,
            next_check_at: None,
            version: 1,
            created_at: utc(start),
            updated_at: utc(start),
        }
    }

    #[test]
    fn pause_resume_stop_restart() {
        let cal = Calendar::twenty_four_seven("UTC").unwrap();
        let mut c = clock("2026-03-02T00:00:00Z", 4 * 3600);
        refresh(&cal, &mut c, &T).unwrap();
        assert_eq!(c.due_at, Some(utc("2026-03-02T04:00:00Z")));
        pause(&cal, &mut c, utc("2026-03-02T01:00:00Z"), &T).unwrap();
        assert_eq!(c.due_at, None);
        let r = read(&cal, &c, utc("2026-03-02T05:00:00Z"), &[75, 90]).unwrap();
        assert!(r.paused);
        assert_eq!(r.elapsed_seconds, 3600);
        resume(&cal, &mut c, utc("2026-03-02T02:00:00Z"), &T).unwrap();
        assert_eq!(c.due_at, Some(utc("2026-03-02T05:00:00Z")));
        let r = read(&cal, &c, utc("2026-03-02T04:00:00Z"), &[75, 90]).unwrap();
        assert_eq!(r.elapsed_seconds, 3 * 3600);
        assert_eq!(r.warnings_fired, vec![75]);
        assert_eq!(r.breached_at, None);
        stop(&cal, &mut c, utc("2026-03-02T04:30:00Z"), &T).unwrap();
        assert_eq!(c.met, Some(true));
        // Reopened an hour later: the stopped hour does not count.
        restart(&cal, &mut c, utc("2026-03-02T05:30:00Z"), &T).unwrap();
        assert_eq!(c.met, None);
        assert_eq!(c.due_at, Some(utc("2026-03-02T06:00:00Z")));
        let r = read(&cal, &c, utc("2026-03-02T07:00:00Z"), &[75, 90]).unwrap();
        assert_eq!(r.elapsed_seconds, 5 * 3600);
        assert_eq!(r.remaining_seconds, -3600);
        assert_eq!(r.breached_at, Some(utc("2026-03-02T06:00:00Z")));
        assert_eq!(r.warnings_fired, vec![75, 90]);
        // A lower priority doubles the target: no longer breached.
        retarget(&cal, &mut c, 8 * 3600, &T).unwrap();
        let r = read(&cal, &c, utc("2026-03-02T07:00:00Z"), &[75, 90]).unwrap();
        assert_eq!(r.breached_at, None);
        assert_eq!(c.due_at, Some(utc("2026-03-02T10:00:00Z")));
    }

    /// Monday to Friday, 09:00-17:00 UTC.
    fn office() -> Calendar {
        use chrono::Weekday::*;
        let windows = [Mon, Tue, Wed, Thu, Fri]
            .into_iter()
            .map(|d| crate::processes::sla::calendar::Window::parse(d, "09:00", "17:00", false))
            .collect::<AppResult<Vec<_>>>()
            .unwrap();
        Calendar::new("UTC", windows, Vec::new()).unwrap()
    }

    #[test]
    fn next_check_follows_thresholds_then_breach_in_working_hours() {
        let cal = office();
        // Friday 2026-03-06 16:30, 4 business hours.
        let mut c = clock("2026-03-06T16:30:00Z", 4 * 3600);
        refresh(&cal, &mut c, &T).unwrap();
        // 75 % = 3 h: half an hour on Friday, 2.5 h on Monday.
        let at75 = c.next_check_at.unwrap();
        assert_eq!(at75, utc("2026-03-09T11:30:00Z"));
        assert!((9..17).contains(&chrono::Timelike::hour(&at75)));
        // The worker's rule holds at that instant and not a second before.
        let counted = |c: &sla_clock::Model, at| elapsed(&cal, c, at).unwrap();
        assert!(counted(&c, at75) * 100 >= c.target_seconds * 75);
        assert!(counted(&c, at75 - chrono::Duration::seconds(1)) * 100 < c.target_seconds * 75);
        // Once 75 % fired: 90 % (3 h 36 min).
        c.warning_fired = 75;
        refresh(&cal, &mut c, &T).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-09T12:06:00Z")));
        // Once 90 % fired: the first second past the target.
        c.warning_fired = 90;
        refresh(&cal, &mut c, &T).unwrap();
        let breach = c.next_check_at.unwrap();
        assert_eq!(breach, utc("2026-03-09T12:30:01Z"));
        assert!(counted(&c, breach) > c.target_seconds);
        assert!(counted(&c, breach - chrono::Duration::seconds(1)) <= c.target_seconds);
        // Nothing left once the breach fired.
        c.breach_fired_at = Some(breach);
        refresh(&cal, &mut c, &T).unwrap();
        assert_eq!(c.next_check_at, None);
    }

    #[test]
    fn next_check_is_none_while_paused_or_stopped_and_moves_with_pauses() {
        let cal = Calendar::twenty_four_seven("UTC").unwrap();
        let mut c = clock("2026-03-02T00:00:00Z", 4 * 3600);
        refresh(&cal, &mut c, &T).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T03:00:00Z")));
        pause(&cal, &mut c, utc("2026-03-02T01:00:00Z"), &T).unwrap();
        assert_eq!(c.next_check_at, None);
        // An hour on hold: every instant moves an hour later.
        resume(&cal, &mut c, utc("2026-03-02T02:00:00Z"), &T).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T04:00:00Z")));
        // A shorter target brings it forward.
        retarget(&cal, &mut c, 2 * 3600, &T).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T02:30:00Z")));
        stop(&cal, &mut c, utc("2026-03-02T02:10:00Z"), &T).unwrap();
        assert_eq!(c.next_check_at, None);
        // Reopened: counts again from the reopening.
        restart(&cal, &mut c, utc("2026-03-02T03:10:00Z"), &T).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T03:30:00Z")));
        // Other thresholds, other instants: 50 % was crossed before the
        // stop (the worker looks at once); none configured: the breach.
        refresh(&cal, &mut c, &[50]).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T01:00:00Z")));
        refresh(&cal, &mut c, &[]).unwrap();
        assert_eq!(c.next_check_at, Some(utc("2026-03-02T04:00:01Z")));
    }
}

//! Business-time arithmetic for SLA clocks: a calendar is an IANA time zone,
//! working windows per weekday (several a day, windows may run past midnight)
//! and holidays (yearly or one-off dates). 24x7 is a calendar too.
//!
//! Pure: no database, no clock. Business time is real (UTC) time spent inside
//! a working window, so a window that spans a daylight-saving change is an hour
//! shorter or longer in spring and autumn, as the people working it experience.
//!
//! Rules:
//! - A window belongs to the local date it starts on: a holiday suppresses the
//!   windows that start that day, including the part of an overnight window
//!   that runs into the next day.
//! - A window edge that falls in a daylight-saving gap (a local time that does
//!   not exist) moves to the end of the gap; an edge in the repeated hour of
//!   autumn takes its first occurrence.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use std::sync::Arc;

use crate::error::{AppError, AppResult};

pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// A working window on one weekday, in local minutes from midnight.
/// `end_minute` is after `start_minute` and at most a day later, so a value
/// above 1440 runs into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub weekday: Weekday,
    pub start_minute: u32,
    pub end_minute: u32,
}

impl Window {
    /// Parses `HH:MM` bounds. `end` may be `24:00`; with `ends_next_day` the
    /// window runs past midnight and ends at `end` on the following day.
    pub fn parse(weekday: Weekday, start: &str, end: &str, ends_next_day: bool) -> AppResult<Self> {
        let start_minute = parse_hhmm("start", start)?;
        let end_raw = parse_hhmm("end", end)?;
        if start_minute >= MINUTES_PER_DAY {
            return Err(AppError::invalid_field(
                "start",
                format!("window start {start} must be before 24:00"),
            ));
        }
        let end_minute = if ends_next_day {
            if end_raw > start_minute {
                return Err(AppError::invalid_field(
                    "end",
                    format!(
                        "a window from {start} ending at {end} the next day would last more than 24 hours"
                    ),
                ));
            }
            end_raw + MINUTES_PER_DAY
        } else {
            end_raw
        };
        if end_minute <= start_minute {
            return Err(AppError::invalid_field(
                "end",
                format!(
                    "window {start}-{end} on {weekday} is inverted: the end must be after the start (set endsNextDay for a window past midnight)"
                ),
            ));
        }
        Ok(Self {
            weekday,
            start_minute,
            end_minute,
        })
    }

    /// Minutes from Monday 00:00 at which the window starts.
    fn week_start(&self) -> u32 {
        self.weekday.num_days_from_monday() * MINUTES_PER_DAY + self.start_minute
    }
}

/// `HH:MM` with `00:00 ..= 24:00`.
pub fn parse_hhmm(field: &str, text: &str) -> AppResult<u32> {
    let bad = || {
        AppError::invalid_field(
            field,
            format!("{field} {text:?} is not a time of day HH:MM between 00:00 and 24:00"),
        )
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    if !(1..=2).contains(&h.len()) || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `HH:MM` of a minute of the day (1440 is `24:00`).
pub fn format_hhmm(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A day without business time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holiday {
    /// The same month and day every year (29 February only in leap years).
    Yearly {
        month: u32,
        day: u32,
    },
    Once(NaiveDate),
}

impl Holiday {
    fn covers(&self, date: NaiveDate) -> bool {
        match *self {
            Holiday::Yearly { month, day } => date.month() == month && date.day() == day,
            Holiday::Once(d) => d == date,
        }
    }
}

/// An interval during which a clock does not count; `end: None` is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// A validated business calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: Tz,
    /// Windows per weekday (Monday first), sorted by start.
    days: [Vec<Window>; 7],
    holidays: Vec<Holiday>,
    always: bool,
    /// Set by [`Calendar::tabulated`]: the business intervals of a span of
    /// days around that moment, computed once and read from then on.
    table: Option<Arc<Table>>,
}

/// Precomputed business intervals, exactly as the day walk yields them.
#[derive(Debug)]
struct Table {
    /// Intervals starting from this instant are read from `spans`.
    from: DateTime<Utc>,
    /// Sorted, disjoint; the walk resumes after the last one.
    spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// How many days before and after its creation a tabulated calendar keeps.
const TABLE_DAYS_BEFORE: i64 = 2 * 366;
const TABLE_DAYS_AFTER: i64 = 366;

/// How far ahead `due_at` searches before answering "never" (a calendar whose
/// every day is a holiday has no business time).
const SEARCH_DAYS: i64 = 366 * 5;

impl Calendar {
    /// Validates a calendar: a known IANA zone, no overlapping windows (also
    /// across midnight and from Sunday into Monday), at least one window.
    pub fn new(time_zone: &str, windows: Vec<Window>, holidays: Vec<Holiday>) -> AppResult<Self> {
        let tz = parse_time_zone(time_zone)?;
        if windows.is_empty() {
            return Err(AppError::invalid_field(
                "windows",
                "a calendar needs at least one working window",
            ));
        }
        for w in &windows {
            if w.end_minute <= w.start_minute || w.end_minute > w.start_minute + MINUTES_PER_DAY {
                return Err(AppError::invalid_field(
                    "windows",
                    format!(
                        "window {}-{} on {} is inverted",
                        format_hhmm(w.start_minute),
                        format_hhmm(w.end_minute % MINUTES_PER_DAY),
                        w.weekday
                    ),
                ));
            }
        }
        check_overlaps(&windows)?;
        for h in &holidays {
            if let Holiday::Yearly { month, day } = *h
                && NaiveDate::from_ymd_opt(2024, month, day).is_none()
            {
                return Err(AppError::invalid_field(
                    "holidays",
                    format!("{month:02}-{day:02} is not a day of the year"),
                ));
            }
        }
        let mut days: [Vec<Window>; 7] = Default::default();
        for w in windows {
            days[w.weekday.num_days_from_monday() as usize].push(w);
        }
        for d in &mut days {
            d.sort_by_key(|w| w.start_minute);
        }
        let always = holidays.is_empty()
            && days.iter().all(|d| {
                d.len() == 1 && d[0].start_minute == 0 && d[0].end_minute == MINUTES_PER_DAY
            });
        Ok(Self {
            tz,
            days,
            holidays,
            always,
            table: None,
        })
    }

    /// The same calendar, reading its intervals from a table of the two years
    /// before and the year after `now` (built here) instead of walking
    /// day by day: for a calendar read many times, such as one cached per
    /// stored version. Results are identical; instants outside the table
    /// fall back to the walk.
    pub fn tabulated(mut self, now: DateTime<Utc>) -> Self {
        if !self.always {
            let from = now - Duration::days(TABLE_DAYS_BEFORE);
            let until = now + Duration::days(TABLE_DAYS_AFTER);
            let spans = self
                .walk_from(from)
                .take_while(|(s, _)| *s < until)
                .collect();
            self.table = Some(Arc::new(Table { from, spans }));
        }
        self
    }

    /// Round the clock, every day, no holidays.
    pub fn twenty_four_seven(time_zone: &str) -> AppResult<Self> {
        let windows = ALL_WEEKDAYS
            .iter()
            .map(|&weekday| Window {
                weekday,
                start_minute: 0,
                end_minute: MINUTES_PER_DAY,
            })
            .collect();
        Self::new(time_zone, windows, Vec::new())
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn is_24x7(&self) -> bool {
        self.always
    }

    /// Business time in `[from, to)`, less the paused intervals.
    pub fn business_seconds(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        pauses: &[Pause],
    ) -> i64 {
        if to <= from {
            return 0;
        }
        let pauses = merge_pauses(pauses);
        let mut total = 0;
        for (s, e) in self.intervals_from(from) {
            if s >= to {
                break;
            }
            total += uncovered_seconds(s, e.min(to), &pauses);
        }
        total
    }

    /// When `target_seconds` of business time, counted from `start` and not
    /// counting the pauses, will have elapsed. `None` while an open pause holds
    /// the clock before it is due, or when the calendar has no business time ahead.
    pub fn due_at(
        &self,
        start: DateTime<Utc>,
        target_seconds: i64,
        pauses: &[Pause],
    ) -> Option<DateTime<Utc>> {
        let pauses = merge_pauses(pauses);
        let mut left = target_seconds.max(0);
        if left == 0 {
            return Some(start);
        }
        let limit = start + Duration::days(SEARCH_DAYS);
        for (s, e) in self.intervals_from(start) {
            if s > limit {
                return None;
            }
            // Walk the window, skipping paused stretches.
            let mut cursor = s;
            for &(ps, pe) in pauses.iter() {
                if cursor >= e {
                    break;
                }
                let pe_or_open = pe.unwrap_or(DateTime::<Utc>::MAX_UTC);
                if pe_or_open <= cursor || ps >= e {
                    continue;
                }
                if ps > cursor {
                    let span = (ps - cursor).num_seconds();
                    if span >= left {
                        return Some(cursor + Duration::seconds(left));
                    }
                    left -= span;
                }
                // An open pause holds the clock: the due time is unknown until it ends.
                cursor = cursor.max(pe?);
            }
            if cursor < e {
                let span = (e - cursor).num_seconds();
                if span >= left {
                    return Some(cursor + Duration::seconds(left));
                }
                left -= span;
            }
        }
        None
    }

    /// Business intervals in UTC, in order and disjoint, clipped to start at `from`.
    pub fn intervals_from(
        &self,
        from: DateTime<Utc>,
    ) -> Box<dyn Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_> {
        if let Some(table) = self.table.as_deref()
            && from >= table.from
            && let Some(&(_, last_end)) = table.spans.last()
            && from < last_end
        {
            let first = table.spans.partition_point(|&(_, e)| e <= from);
            let listed = table.spans[first..]
                .iter()
                .map(move |&(s, e)| (s.max(from), e));
            return Box::new(listed.chain(self.walk_from(last_end)));
        }
        self.walk_from(from)
    }

    /// The day walk behind [`Calendar::intervals_from`].
    fn walk_from(
        &self,
        from: DateTime<Utc>,
    ) -> Box<dyn Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_> {
        if self.always {
            // One endless interval: no per-day seams to walk.
            return Box::new(std::iter::once((
                from,
                from + Duration::days(SEARCH_DAYS + 1),
            )));
        }
        // An overnight window of the previous local day may still be open at `from`.
        let first_day = from.with_timezone(&self.tz).date_naive() - Duration::days(1);
        let mut last_end = from;
        let days = (0..SEARCH_DAYS + 2).map(move |i| first_day + Duration::days(i));
        Box::new(
            days.flat_map(move |date| self.day_intervals(date))
                .filter_map(move |(s, e)| {
                    let s = s.max(last_end);
                    if e <= s {
                        return None;
                    }
                    last_end = e;
                    Some((s, e))
                }),
        )
    }

    /// The windows that start on a local date, in UTC; none on a holiday.
    fn day_intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.iter().any(|h| h.covers(date)) {
            return Vec::new();
        }
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        self.days[date.weekday().num_days_from_monday() as usize]
            .iter()
            .filter_map(|w| {
                let s = self.to_utc(midnight + Duration::minutes(i64::from(w.start_minute)));
                let e = self.to_utc(midnight + Duration::minutes(i64::from(w.end_minute)));
                (e > s).then_some((s, e))
            })
            .collect()
    }

    /// A local wall-clock time as an instant: the first occurrence of a repeated
    /// time, the end of the gap for a time skipped by a daylight-saving change.
    fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        for _ in 0..=(MINUTES_PER_DAY) {
            match self.tz.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        Utc.from_utc_datetime(&local)
    }
}

pub const ALL_WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// An IANA time zone name such as `Europe/Berlin`.
pub fn parse_time_zone(name: &str) -> AppResult<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        AppError::invalid_field(
            "timeZone",
            format!("{name:?} is not a known IANA time zone such as Europe/Berlin"),
        )
    })
}

const WEEK: u32 = 7 * MINUTES_PER_DAY;

fn check_overlaps(windows: &[Window]) -> AppResult<()> {
    // On the weekly circle, so Sunday night into Monday morning counts too.
    let mut spans: Vec<(u32, u32, &Window)> = windows
        .iter()
        .map(|w| {
            let s = w.week_start();
            (s, s + (w.end_minute - w.start_minute), w)
        })
        .collect();
    spans.sort_by_key(|s| s.0);
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = |(s1, e1): (u32, u32), (s2, e2): (u32, u32)| s1 < e2 && s2 < e1;
            let (ra, rb) = ((a.0, a.1), (b.0, b.1));
            if overlap(ra, rb)
                || overlap((ra.0 + WEEK, ra.1 + WEEK), rb)
                || overlap(ra, (rb.0 + WEEK, rb.1 + WEEK))
            {
                let show = |w: &Window| {
                    format!(
                        "{} {}-{}",
                        w.weekday,
                        format_hhmm(w.start_minute),
                        format_hhmm(w.end_minute % MINUTES_PER_DAY)
                    )
                };
                return Err(AppError::invalid_field(
                    "windows",
                    format!("working windows overlap: {} and {}", show(a.2), show(b.2)),
                ));
            }
        }
    }
    Ok(())
}

/// Pauses sorted and merged; an open pause swallows everything after it.
fn merge_pauses(pauses: &[Pause]) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut sorted: Vec<_> = pauses
        .iter()
        .filter(|p| p.end.is_none_or(|e| e > p.start))
        .map(|p| (p.start, p.end))
        .collect();
    sorted.sort_by_key(|p| p.0);
    let mut out: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for (s, e) in sorted {
        match out.last_mut() {
            Some((_, last_end)) if last_end.is_none_or(|le| s <= le) => {
                *last_end = match (*last_end, e) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => out.push((s, e)),
        }
    }
    out
}

/// Seconds of `[s, e)` outside every pause.
fn uncovered_seconds(
    s: DateTime<Utc>,
    e: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
) -> i64 {
    if e <= s {
        return 0;
    }
    let mut total = (e - s).num_seconds();
    for &(ps, pe) in pauses {
        let pe = pe.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let (a, b) = (ps.max(s), pe.min(e));
        if b > a {
            total -= (b - a).num_seconds();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use Weekday::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn w(day: Weekday, start: &str, end: &str) -> Window {
        Window::parse(day, start, end, false).unwrap()
    }

    fn overnight(day: Weekday, start: &str, end: &str) -> Window {
        Window::parse(day, start, end, true).unwrap()
    }

    /// Monday to Friday 09:00-17:00.
    fn office(tz: &str, holidays: Vec<Holiday>) -> Calendar {
        let windows = [Mon, Tue, Wed, Thu, Fri]
            .into_iter()
            .map(|d| w(d, "09:00", "17:00"))
            .collect();
        Calendar::new(tz, windows, holidays).unwrap()
    }

    const H: i64 = 3600;

    #[test]
    fn office_hours_within_one_day() {
        let cal = office("UTC", vec![]);
        // Monday 2026-03-02.
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-02T10:00:00Z"),
                utc("2026-03-02T12:30:00Z"),
                &[]
            ),
            2 * H + 30 * 60
        );
        // Before opening until after closing: the whole day.
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-02T06:00:00Z"),
                utc("2026-03-02T20:00:00Z"),
                &[]
            ),
            8 * H
        );
        assert_eq!(
            cal.due_at(utc("2026-03-02T10:00:00Z"), 4 * H, &[]),
            Some(utc("2026-03-02T14:00:00Z"))
        );
    }

    #[test]
    fn due_at_rolls_over_nights_and_weekends() {
        let cal = office("UTC", vec![]);
        // Friday 2026-03-06 15:00 + 4h: 2h on Friday, 2h on Monday.
        assert_eq!(
            cal.due_at(utc("2026-03-06T15:00:00Z"), 4 * H, &[]),
            Some(utc("2026-03-09T11:00:00Z"))
        );
        // Raised on Saturday: counting starts Monday 09:00.
        assert_eq!(
            cal.due_at(utc("2026-03-07T12:00:00Z"), H, &[]),
            Some(utc("2026-03-09T10:00:00Z"))
        );
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-06T15:00:00Z"),
                utc("2026-03-09T11:00:00Z"),
                &[]
            ),
            4 * H
        );
        // A due time exactly at closing stays on that day.
        assert_eq!(
            cal.due_at(utc("2026-03-06T09:00:00Z"), 8 * H, &[]),
            Some(utc("2026-03-06T17:00:00Z"))
        );
    }

    #[test]
    fn time_zone_offsets_apply() {
        // 09:00-17:00 in New York in winter (UTC-5) is 14:00-22:00 UTC.
        let cal = office("America/New_York", vec![]);
        assert_eq!(
            cal.due_at(utc("2026-01-05T12:00:00Z"), H, &[]),
            Some(utc("2026-01-05T15:00:00Z"))
        );
    }

    #[test]
    fn dst_spring_forward_in_berlin() {
        // Europe/Berlin moves 02:00 CET -> 03:00 CEST on Sunday 2026-03-29.
        // 24x7: the local day is 23 hours long, and business time is real time.
        let cal = Calendar::twenty_four_seven("Europe/Berlin").unwrap();
        let from = utc("2026-03-28T23:00:00Z"); // 00:00 CET on the 29th
        let to = utc("2026-03-29T22:00:00Z"); // 00:00 CEST on the 30th
        assert_eq!(cal.business_seconds(from, to, &[]), 23 * H);

        // A Sunday night shift 00:00-06:00 local is only 5 real hours that night.
        let cal = Calendar::new("Europe/Berlin", vec![w(Sun, "00:00", "06:00")], vec![]).unwrap();
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-28T00:00:00Z"),
                utc("2026-03-30T00:00:00Z"),
                &[]
            ),
            5 * H
        );
        // 4 business hours from the start of the shift: 00:00 CET + 4h real = 05:00 CEST.
        assert_eq!(
            cal.due_at(utc("2026-03-28T23:00:00Z"), 4 * H, &[]),
            Some(utc("2026-03-29T03:00:00Z"))
        );

        // A window whose start lies in the gap (02:30 does not exist) starts at 03:00 CEST.
        let cal = Calendar::new("Europe/Berlin", vec![w(Sun, "02:30", "04:00")], vec![]).unwrap();
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-29T00:00:00Z"),
                utc("2026-03-29T06:00:00Z"),
                &[]
            ),
            H
        );
    }

    #[test]
    fn dst_fall_back_in_berlin() {
        // Europe/Berlin moves 03:00 CEST -> 02:00 CET on Sunday 2026-10-25: a 25-hour day.
        let cal = Calendar::twenty_four_seven("Europe/Berlin").unwrap();
        assert_eq!(
            cal.business_seconds(
                utc("2026-10-24T22:00:00Z"), // 00:00 CEST on the 25th
                utc("2026-10-25T23:00:00Z"), // 00:00 CET on the 26th
                &[]
            ),
            25 * H
        );
        // Office hours on the Friday before and Monday after keep their local times.
        let cal = office("Europe/Berlin", vec![]);
        // Friday 2026-10-23 16:00 CEST (14:00 UTC) + 2h: 1h Friday, 1h Monday from 09:00 CET (08:00 UTC).
        assert_eq!(
            cal.due_at(utc("2026-10-23T14:00:00Z"), 2 * H, &[]),
            Some(utc("2026-10-26T09:00:00Z"))
        );
        // A night shift Saturday 22:00 -> Sunday 06:00 spans the change: 9 real hours.
        let cal = Calendar::new(
            "Europe/Berlin",
            vec![overnight(Sat, "22:00", "06:00")],
            vec![],
        )
        .unwrap();
        assert_eq!(
            cal.business_seconds(
                utc("2026-10-24T00:00:00Z"),
                utc("2026-10-26T00:00:00Z"),
                &[]
            ),
            9 * H
        );
    }

    #[test]
    fn holidays_yearly_and_one_off() {
        // 2026-12-25 is a Friday, 2026-12-24 a Thursday.
        let cal = office(
            "Europe/Berlin",
            vec![
                Holiday::Yearly { month: 12, day: 25 },
                Holiday::Once(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()),
            ],
        );
        // Wednesday 2026-12-23 16:00 CET (15:00 UTC) + 2h: 1h Wednesday, then
        // Thursday and Friday are holidays, weekend, 1h Monday 28th (09:00 CET = 08:00 UTC).
        assert_eq!(
            cal.due_at(utc("2026-12-23T15:00:00Z"), 2 * H, &[]),
            Some(utc("2026-12-28T09:00:00Z"))
        );
        assert_eq!(
            cal.business_seconds(
                utc("2026-12-24T00:00:00Z"),
                utc("2026-12-27T00:00:00Z"),
                &[]
            ),
            0
        );
        // The yearly holiday recurs: 2027-12-25 is a Saturday anyway, 2028-12-25 a Monday.
        assert_eq!(
            cal.business_seconds(
                utc("2028-12-25T00:00:00Z"),
                utc("2028-12-26T00:00:00Z"),
                &[]
            ),
            0
        );
        // The one-off does not: 2027-12-24 is a Friday and a working day.
        assert_eq!(
            cal.business_seconds(
                utc("2027-12-24T00:00:00Z"),
                utc("2027-12-25T00:00:00Z"),
                &[]
            ),
            8 * H
        );
    }

    #[test]
    fn windows_across_midnight() {
        // Night desk: Monday to Friday 22:00 -> 06:00 the next morning, UTC.
        let windows = [Mon, Tue, Wed, Thu, Fri]
            .into_iter()
            .map(|d| overnight(d, "22:00", "06:00"))
            .collect();
        let cal = Calendar::new("UTC", windows, vec![]).unwrap();
        // Tuesday 2026-03-03 03:00 is inside Monday's shift: 3h left that night,
        // then Tuesday's shift from 22:00.
        assert_eq!(
            cal.due_at(utc("2026-03-03T03:00:00Z"), 5 * H, &[]),
            Some(utc("2026-03-04T00:00:00Z"))
        );
        // Friday night's shift runs into Saturday; nothing more until Monday 22:00.
        assert_eq!(
            cal.due_at(utc("2026-03-07T05:00:00Z"), 2 * H, &[]),
            Some(utc("2026-03-09T23:00:00Z"))
        );
        // A whole week holds 5 shifts of 8h.
        assert_eq!(
            cal.business_seconds(
                utc("2026-03-02T00:00:00Z"),
                utc("2026-03-09T00:00:00Z"),
                &[]
            ),
            40 * H
        );
    }

    #[test]
    fn several_windows_a_day() {
        let windows = vec![w(Mon, "08:00", "12:00"), w(Mon, "13:00", "17:00")];
        let cal = Calendar::new("UTC", windows, vec![]).unwrap();
        assert_eq!(
            cal.due_at(utc("2026-03-02T11:00:00Z"), 2 * H, &[]),
            Some(utc("2026-03-02T14:00:00Z"))
        );
        // Next Monday after the last window.
        assert_eq!(
            cal.due_at(utc("2026-03-02T16:00:00Z"), 2 * H, &[]),
            Some(utc("2026-03-09T09:00:00Z"))
        );
    }

    #[test]
    fn pauses_spanning_nights_and_weekends() {
        let cal = office("UTC", vec![]);
        let start = utc("2026-03-05T10:00:00Z"); // Thursday
        // On hold from Thursday 16:00 to Monday 10:00: only Thursday 16-17 and
        // Friday and Monday 09-10 are lost, nights and the weekend were not counted anyway.
        let pauses = [Pause {
            start: utc("2026-03-05T16:00:00Z"),
            end: Some(utc("2026-03-09T10:00:00Z")),
        }];
        assert_eq!(
            cal.business_seconds(start, utc("2026-03-09T12:00:00Z"), &pauses),
            6 * H + 2 * H
        );
        // 8h target: 6h on Thursday before the pause, 2h from Monday 10:00.
        assert_eq!(
            cal.due_at(start, 8 * H, &pauses),
            Some(utc("2026-03-09T12:00:00Z"))
        );
        // Overlapping and unsorted pauses are merged.
        let messy = [
            Pause {
                start: utc("2026-03-06T09:00:00Z"),
                end: Some(utc("2026-03-09T10:00:00Z")),
            },
            Pause {
                start: utc("2026-03-05T16:00:00Z"),
                end: Some(utc("2026-03-06T12:00:00Z")),
            },
        ];
        assert_eq!(
            cal.due_at(start, 8 * H, &messy),
            Some(utc("2026-03-09T12:00:00Z"))
        );
    }

    #[test]
    fn an_open_pause_holds_the_clock() {
        let cal = office("UTC", vec![]);
        let start = utc("2026-03-02T09:00:00Z");
        let pauses = [Pause {
            start: utc("2026-03-02T11:00:00Z"),
            end: None,
        }];
        // Due before the pause: known.
        assert_eq!(
            cal.due_at(start, H, &pauses),
            Some(utc("2026-03-02T10:00:00Z"))
        );
        // Due after it: unknown until it ends.
        assert_eq!(cal.due_at(start, 4 * H, &pauses), None);
        assert_eq!(
            cal.business_seconds(start, utc("2026-03-04T00:00:00Z"), &pauses),
            2 * H
        );
    }

    #[test]
    fn twenty_four_seven_is_plain_time() {
        let cal = Calendar::twenty_four_seven("UTC").unwrap();
        assert!(cal.is_24x7());
        let start = utc("2026-03-07T23:30:00Z");
        assert_eq!(
            cal.due_at(start, 4 * H, &[]),
            Some(utc("2026-03-08T03:30:00Z"))
        );
        let pauses = [Pause {
            start: utc("2026-03-08T00:00:00Z"),
            end: Some(utc("2026-03-08T01:00:00Z")),
        }];
        assert_eq!(
            cal.due_at(start, 4 * H, &pauses),
            Some(utc("2026-03-08T04:30:00Z"))
        );
        assert_eq!(
            cal.business_seconds(start, utc("2026-03-08T04:30:00Z"), &pauses),
            4 * H
        );
        // Long targets across months.
        assert_eq!(
            cal.due_at(start, 40 * 24 * H, &[]),
            Some(start + Duration::days(40))
        );
    }

    #[test]
    fn bad_calendars_are_refused() {
        let err =
            Calendar::new("Mars/Olympus", vec![w(Mon, "09:00", "17:00")], vec![]).unwrap_err();
        assert_eq!(err.code(), "VALIDATION");
        assert!(err.message().contains("Mars/Olympus"), "{}", err.message());

        let inverted = Window::parse(Mon, "17:00", "09:00", false).unwrap_err();
        assert!(
            inverted.message().contains("inverted"),
            "{}",
            inverted.message()
        );
        assert!(Window::parse(Mon, "09:00", "09:00", false).is_err());
        assert!(Window::parse(Mon, "09:00", "10:00", true).is_err());
        assert!(Window::parse(Mon, "9:00", "10:00", false).is_ok());
        assert!(Window::parse(Mon, "9am", "10:00", false).is_err());
        assert!(Window::parse(Mon, "09:0", "10:00", false).is_err());
        assert!(Window::parse(Mon, "09:00", "24:01", false).is_err());
        assert!(Window::parse(Mon, "00:00", "24:00", false).is_ok());

        let overlap = Calendar::new(
            "UTC",
            vec![w(Mon, "09:00", "12:00"), w(Mon, "11:00", "13:00")],
            vec![],
        )
        .unwrap_err();
        assert!(
            overlap.message().contains("overlap"),
            "{}",
            overlap.message()
        );
        // An overnight window into the next day's window.
        assert!(
            Calendar::new(
                "UTC",
                vec![overnight(Mon, "22:00", "06:00"), w(Tue, "05:00", "09:00")],
                vec![],
            )
            .is_err()
        );
        // Sunday night into Monday morning.
        assert!(
            Calendar::new(
                "UTC",
                vec![overnight(Sun, "22:00", "06:00"), w(Mon, "05:00", "09:00")],
                vec![],
            )
            .is_err()
        );
        // Touching windows are fine.
        assert!(
            Calendar::new(
                "UTC",
                vec![overnight(Sun, "22:00", "06:00"), w(Mon, "06:00", "09:00")],
                vec![],
            )
            .is_ok()
        );
        assert!(Calendar::new("UTC", vec![], vec![]).is_err());
        assert!(
            Calendar::new(
                "UTC",
                vec![w(Mon, "09:00", "17:00")],
                vec![Holiday::Yearly { month: 2, day: 30 }]
            )
            .is_err()
        );
    }

    #[test]
    fn a_calendar_of_holidays_only_is_never_due() {
        let all_days: Vec<Holiday> = (1..=12)
            .flat_map(|m| (1..=31).map(move |d| (m, d)))
            .filter(|&(m, d)| NaiveDate::from_ymd_opt(2024, m, d).is_some())
            .map(|(month, day)| Holiday::Yearly { month, day })
            .collect();
        let cal = Calendar::new("UTC", vec![w(Mon, "09:00", "17:00")], all_days).unwrap();
        assert_eq!(cal.due_at(utc("2026-03-02T09:00:00Z"), H, &[]), None);
    }

    /// A tabulated calendar answers exactly as the day walk does: inside the
    /// table, across both of its ends and outside it, with pauses (closed and
    /// open), overnight windows, daylight-saving changes and holidays.
    #[test]
    fn tabulated_calendars_answer_as_the_walk() {
        let shifts = Calendar::new(
            "America/New_York",
            vec![
                w(Mon, "08:00", "12:00"),
                w(Mon, "13:00", "17:30"),
                overnight(Fri, "22:00", "02:30"),
                w(Sun, "01:30", "03:00"),
            ],
            vec![
                Holiday::Yearly { month: 7, day: 4 },
                Holiday::Once(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            ],
        )
        .unwrap();
        let now = utc("2026-11-22T10:17:31.250Z");
        for plain in [
            office(
                "Europe/Berlin",
                vec![Holiday::Yearly { month: 12, day: 25 }],
            ),
            shifts,
        ] {
            let table = plain.clone().tabulated(now);
            let mut seed: i64 = 7;
            let mut next = |span_days: i64| {
                seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
                now - Duration::days(3 * 366)
                    + Duration::milliseconds(seed * 1_000 % (span_days * 86_400_000))
            };
            for _ in 0..150 {
                let from = next(5 * 366);
                let to = from
                    + Duration::seconds((next(400) - now + Duration::days(3 * 366)).num_seconds());
                let pauses = [
                    Pause {
                        start: from + Duration::hours(30),
                        end: Some(from + Duration::hours(50)),
                    },
                    Pause {
                        start: from + Duration::days(9),
                        end: None,
                    },
                ];
                for ps in [&pauses[..0], &pauses[..1], &pauses[..]] {
                    assert_eq!(
                        table.business_seconds(from, to, ps),
                        plain.business_seconds(from, to, ps),
                        "{from} .. {to}"
                    );
                    let target = (to - from).num_seconds() / 3;
                    assert_eq!(
                        table.due_at(from, target, ps),
                        plain.due_at(from, target, ps),
                        "{from} + {target}"
                    );
                }
            }
        }
    }
}

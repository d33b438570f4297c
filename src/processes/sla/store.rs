//! Service level management (ISO/IEC 20000-1 8.3.3): business calendars, SLAs
//! with targets per priority, the priority matrix, and SLA clocks.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use entity::{
    business_calendar,
    enums::{AgreementKind, AgreementStatus, ClockKind, Priority},
    organization, priority_rule, sla, sla_clock,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use super::calendar::{self, Calendar, Holiday, Window, format_hhmm, parse_time_zone};
use crate::processes::catalogue;
use crate::records::conflict_on_unique;
use crate::records::{
    Store, audit, check_version, clean_name, ensure_free, find_visible, now, save_versioned,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
};

// ---------------------------------------------------------------- calendars

/// A working window as stored in a calendar row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// `mon` .. `sun`.
    pub weekday: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub ends_next_day: bool,
}

/// A holiday as stored in a calendar row; a yearly holiday ignores the year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolidaySpec {
    pub date: NaiveDate,
    #[serde(default)]
    pub yearly: bool,
    #[serde(default)]
    pub name: Option<String>,
}

pub fn weekday_code(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn parse_weekday(code: &str) -> AppResult<Weekday> {
    calendar::ALL_WEEKDAYS
        .into_iter()
        .find(|d| weekday_code(*d) == code)
        .ok_or_else(|| AppError::invalid_field("weekday", format!("{code:?} is not a weekday")))
}

/// Builds and validates a calendar from its stored or submitted parts.
pub fn build_calendar(
    time_zone: &str,
    windows: &[WindowSpec],
    holidays: &[HolidaySpec],
) -> AppResult<Calendar> {
    let windows = windows
        .iter()
        .map(|w| {
            Window::parse(
                parse_weekday(&w.weekday)?,
                &w.start,
                &w.end,
                w.ends_next_day,
            )
        })
        .collect::<AppResult<Vec<_>>>()?;
    let holidays = holidays
        .iter()
        .map(|h| {
            if h.yearly {
                Holiday::Yearly {
                    month: h.date.month(),
                    day: h.date.day(),
                }
            } else {
                Holiday::Once(h.date)
            }
        })
        .collect();
    Calendar::new(time_zone, windows, holidays)
}

/// The calendar of a stored row. Rows are validated on write, so a failure here is internal.
pub fn calendar_of(row: &business_calendar::Model) -> AppResult<Calendar> {
    let (windows, holidays) = specs_of(row)?;
    build_calendar(&row.time_zone, &windows, &holidays).map_err(|e| {
        AppError::internal(std::io::Error::other(format!(
            "stored calendar {} is invalid: {}",
            row.id,
            e.message()
        )))
    })
}

/// Parsed calendars of stored rows, by id, version and update time (a row's
/// version changes with every update, so an entry never serves stale windows;
/// the update time tells apart rows of different databases that share an id
/// and version, as the tests' servers in one process do).
/// Tabulated once per day, so reading a clock that has run for months costs
/// a table scan rather than a walk over every day.
static CALENDARS: std::sync::LazyLock<std::sync::Mutex<CalendarCache>> =
    std::sync::LazyLock::new(Default::default);

/// A stored version of a calendar: (id, version, updated_at).
pub type CalendarKey = (i64, i32, DateTime<Utc>);

/// The calendar of a stored version and when it was tabulated.
type CalendarCache = HashMap<CalendarKey, (Arc<Calendar>, DateTime<Utc>)>;

/// How many calendar versions [`calendar_cached`] keeps before starting over.
const CACHED_CALENDARS: usize = 1024;

/// [`calendar_of`], parsed and tabulated once per stored version: for reads
/// (clock fields), which may come by the hundred per request.
pub fn calendar_cached(row: &business_calendar::Model) -> AppResult<Arc<Calendar>> {
    let key = (row.id, row.version, row.updated_at);
    if let Some(cal) = calendar_cached_by_key(key) {
        return Ok(cal);
    }
    let now = Utc::now();
    let cal = Arc::new(calendar_of(row)?.tabulated(now));
    let mut cache = CALENDARS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHED_CALENDARS {
        cache.clear();
    }
    cache.insert(key, (cal.clone(), now));
    Ok(cal)
}

/// The cached calendar of a stored version, if [`calendar_cached`] tabulated
/// it less than a day ago.
pub fn calendar_cached_by_key(key: CalendarKey) -> Option<Arc<Calendar>> {
    let cache = CALENDARS.lock().unwrap_or_else(|e| e.into_inner());
    let (cal, built) = cache.get(&key)?;
    (Utc::now() - *built < chrono::Duration::days(1)).then(|| cal.clone())
}

pub fn specs_of(row: &business_calendar::Model) -> AppResult<(Vec<WindowSpec>, Vec<HolidaySpec>)> {
    let windows: Vec<WindowSpec> =
        serde_json::from_value(row.windows.clone()).map_err(AppError::internal)?;
    let holidays: Vec<HolidaySpec> =
        serde_json::from_value(row.holidays.clone()).map_err(AppError::internal)?;
    Ok((windows, holidays))
}

/// Normalizes submitted windows (canonical `HH:MM`, sorted) once they are valid.
fn normalize(
    windows: &[WindowSpec],
    holidays: &[HolidaySpec],
) -> AppResult<(Vec<WindowSpec>, Vec<HolidaySpec>)> {
    let mut ws = Vec::new();
    for w in windows {
        let day = parse_weekday(&w.weekday)?;
        let parsed = Window::parse(day, &w.start, &w.end, w.ends_next_day)?;
        ws.push((
            day.num_days_from_monday(),
            parsed.start_minute,
            WindowSpec {
                weekday: weekday_code(day).into(),
                start: format_hhmm(parsed.start_minute),
                end: format_hhmm(if w.ends_next_day {
                    parsed.end_minute - calendar::MINUTES_PER_DAY
                } else {
                    parsed.end_minute
                }),
                ends_next_day: w.ends_next_day,
            },
        ));
    }
    ws.sort_by_key(|(d, s, _)| (*d, *s));
    let mut hs = Vec::new();
    for h in holidays {
        hs.push(HolidaySpec {
            date: h.date,
            yearly: h.yearly,
            name: crate::records::clean_text("name", h.name.clone(), 200)?,
        });
    }
    hs.sort_by_key(|h| h.date);
    Ok((ws.into_iter().map(|(_, _, w)| w).collect(), hs))
}

/// A calendar of an organization the caller may see, or `NOT_FOUND`.
pub async fn find_calendar<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<business_calendar::Model> {
    find_visible::<business_calendar::Entity, _>(db, p, id, "business calendar").await
}

pub struct NewCalendar {
    pub organization_id: Option<i64>,
    pub name: String,
    pub time_zone: String,
    pub windows: Vec<WindowSpec>,
    pub holidays: Vec<HolidaySpec>,
}

async fn ensure_free_calendar_name<C: ConnectionTrait>(
    db: &C,
    org: i64,
    key: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let clash = Condition::all()
        .add(business_calendar::Column::OrganizationId.eq(org))
        .add(business_calendar::Column::NameKey.eq(key));
    ensure_free::<business_calendar::Entity, _>(db, clash, except, |c| {
        format!("a calendar named {:?} already exists", c.name)
    })
    .await
}

const CALENDAR_NAME_TAKEN: &str = "a calendar with this name already exists";

pub async fn create_calendar(
    store: &Store,
    p: &Principal,
    input: NewCalendar,
) -> AppResult<business_calendar::Model> {
    let organization_id = input.organization_id.unwrap_or(p.organization_id);
    if !p.can_see(organization_id) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let tz = parse_time_zone(&input.time_zone)?;
    build_calendar(tz.name(), &input.windows, &input.holidays)?;
    let (windows, holidays) = normalize(&input.windows, &input.holidays)?;
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    ensure_free_calendar_name(&txn, organization_id, &name_key, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        business_calendar::ActiveModel {
            organization_id: Set(organization_id),
            name: Set(name),
            name_key: Set(name_key),
            time_zone: Set(tz.name().to_owned()),
            windows: Set(serde_json::to_value(&windows).map_err(AppError::internal)?),
            holidays: Set(serde_json::to_value(&holidays).map_err(AppError::internal)?),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, CALENDAR_NAME_TAKEN))?;
    txn.commit().await?;
    Ok(created)
}

pub struct CalendarPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub windows: Option<Vec<WindowSpec>>,
    pub holidays: Option<Vec<HolidaySpec>>,
}

/// Changes a calendar. Running clocks use it from then on: their due times are
/// recomputed on read and on their next change, and the breach worker looks
/// at each of them at its next pass.
pub async fn update_calendar(
    store: &Store,
    p: &Principal,
    input: CalendarPatch,
) -> AppResult<business_calendar::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_calendar(&txn, p, input.id).await?;
    check_version("business calendar", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        let (name, key) = clean_name("name", name, 200)?;
        ensure_free_calendar_name(&txn, before.organization_id, &key, Some(before.id)).await?;
        next.name = name;
        next.name_key = key;
    }
    if let Some(tz) = &input.time_zone {
        next.time_zone = parse_time_zone(tz)?.name().to_owned();
    }
    let (old_windows, old_holidays) = specs_of(&before)?;
    let windows = input.windows.unwrap_or(old_windows);
    let holidays = input.holidays.unwrap_or(old_holidays);
    build_calendar(&next.time_zone, &windows, &holidays)?;
    let (windows, holidays) = normalize(&windows, &holidays)?;
    next.windows = serde_json::to_value(&windows).map_err(AppError::internal)?;
    next.holidays = serde_json::to_value(&holidays).map_err(AppError::internal)?;
    let updated = save_versioned(&txn, p, &before, next)
        .await
        .map_err(|e| conflict_on_unique(e, CALENDAR_NAME_TAKEN))?;
    if (&updated.time_zone, &updated.windows, &updated.holidays)
        != (&before.time_zone, &before.windows, &before.holidays)
    {
        let agreements = sla::Entity::find()
            .select_only()
            .column(sla::Column::Id)
            .filter(sla::Column::CalendarId.eq(updated.id))
            .into_query();
        recheck_clocks(&txn, sla_clock::Column::SlaId.in_subquery(agreements)).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

/// Makes the running clocks that `filter` selects due for the breach worker
/// now: their calendar changed, so the instants stored with them may have
/// moved (the worker recomputes them).
async fn recheck_clocks<C: ConnectionTrait>(
    db: &C,
    filter: impl sea_orm::sea_query::IntoCondition,
) -> AppResult<()> {
    sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::NextCheckAt, Expr::value(now()))
        .filter(sla_clock::Column::StoppedAt.is_null())
        .filter(sla_clock::Column::PausedSince.is_null())
        .filter(sla_clock::Column::BreachFiredAt.is_null())
        .filter(filter)
        .exec(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- priority matrix

/// The priority of an impact and urgency (each 1 high .. 3 low) under the current matrix.
pub async fn priority_for<C: ConnectionTrait>(
    db: &C,
    impact: i32,
    urgency: i32,
) -> AppResult<Priority> {
    check_level("impact", impact)?;
    check_level("urgency", urgency)?;
    let rule = priority_rule::Entity::find()
        .filter(priority_rule::Column::Impact.eq(impact))
        .filter(priority_rule::Column::Urgency.eq(urgency))
        .one(db)
        .await?;
    Ok(rule.map(|r| r.priority).unwrap_or(Priority::P4))
}

pub fn check_level(field: &str, value: i32) -> AppResult<()> {
    if (1..=3).contains(&value) {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            field,
            format!("{field} must be 1 (high), 2 (medium) or 3 (low)"),
        ))
    }
}

/// The whole matrix, impact then urgency.
pub async fn priority_matrix<C: ConnectionTrait>(db: &C) -> AppResult<Vec<priority_rule::Model>> {
    Ok(priority_rule::Entity::find()
        .order_by_asc(priority_rule::Column::Impact)
        .order_by_asc(priority_rule::Column::Urgency)
        .all(db)
        .await?)
}

/// Changes cells of the matrix (admin). New incidents and later impact or
/// urgency changes use it; existing priorities are kept.
pub async fn set_priority_rules(
    store: &Store,
    p: &Principal,
    cells: Vec<(i32, i32, Priority)>,
) -> AppResult<Vec<priority_rule::Model>> {
    if cells.is_empty() {
        return Err(AppError::invalid_field("rules", "give at least one cell"));
    }
    for (impact, urgency, _) in &cells {
        check_level("impact", *impact)?;
        check_level("urgency", *urgency)?;
    }
    let txn = begin_write(&store.db).await?;
    for (impact, urgency, priority) in cells {
        let existing = priority_rule::Entity::find()
            .filter(priority_rule::Column::Impact.eq(impact))
            .filter(priority_rule::Column::Urgency.eq(urgency))
            .one(&txn)
            .await?;
        match existing {
            Some(before) => {
                let mut next = before.clone();
                next.priority = priority;
                save_versioned(&txn, p, &before, next).await?;
            }
            None => {
                let at = now();
                audit::insert(
                    &txn,
                    p,
                    priority_rule::ActiveModel {
                        impact: Set(impact),
                        urgency: Set(urgency),
                        priority: Set(priority),
                        version: Set(1),
                        created_at: Set(at),
                        updated_at: Set(at),
                        ..Default::default()
                    },
                )
                .await?;
            }
        }
    }
    let out = priority_matrix(&txn).await?;
    txn.commit().await?;
    Ok(out)
}

// ---------------------------------------------------------------- SLAs

/// Respond and resolve targets for one priority, in business seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub respond: i64,
    pub resolve: i64,
}

pub fn targets_of(s: &sla::Model, priority: Priority) -> Targets {
    let (respond, resolve) = match priority {
        Priority::P1 => (s.respond_p1, s.resolve_p1),
        Priority::P2 => (s.respond_p2, s.resolve_p2),
        Priority::P3 => (s.respond_p3, s.resolve_p3),
        Priority::P4 => (s.respond_p4, s.resolve_p4),
    };
    Targets { respond, resolve }
}

pub fn target_of(s: &sla::Model, priority: Priority, kind: ClockKind) -> i64 {
    let t = targets_of(s, priority);
    match kind {
        ClockKind::Respond => t.respond,
        ClockKind::Resolve => t.resolve,
    }
}

fn set_targets(s: &mut sla::Model, priority: Priority, t: Targets) {
    let (respond, resolve) = match priority {
        Priority::P1 => (&mut s.respond_p1, &mut s.resolve_p1),
        Priority::P2 => (&mut s.respond_p2, &mut s.resolve_p2),
        Priority::P3 => (&mut s.respond_p3, &mut s.resolve_p3),
        Priority::P4 => (&mut s.respond_p4, &mut s.resolve_p4),
    };
    *respond = t.respond;
    *resolve = t.resolve;
}

pub const PRIORITIES: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

/// Targets submitted in minutes per priority.
pub struct TargetInput {
    pub priority: Priority,
    pub respond_minutes: i64,
    pub resolve_minutes: i64,
}

fn apply_targets(s: &mut sla::Model, targets: &[TargetInput], all_required: bool) -> AppResult<()> {
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.priority == t.priority) {
            return Err(AppError::invalid_field(
                "targets",
                format!("{:?} is given twice", t.priority),
            ));
        }
        for (field, v) in [
            ("respondMinutes", t.respond_minutes),
            ("resolveMinutes", t.resolve_minutes),
        ] {
            if v <= 0 {
                return Err(AppError::invalid_field(
                    field,
                    format!("{field} for {:?} must be above zero, got {v}", t.priority),
                ));
            }
            if v > 60 * 24 * 366 {
                return Err(AppError::invalid_field(
                    field,
                    format!("{field} for {:?} must be at most a year", t.priority),
                ));
            }
        }
        set_targets(
            s,
            t.priority,
            Targets {
                respond: t.respond_minutes * 60,
                resolve: t.resolve_minutes * 60,
            },
        );
    }
    if all_required {
        for pr in PRIORITIES {
            if !targets.iter().any(|t| t.priority == pr) {
                return Err(AppError::invalid_field(
                    "targets",
                    format!("targets are needed for every priority P1-P4; {pr:?} is missing"),
                ));
            }
        }
    }
    Ok(())
}

/// An SLA whose customer the caller may see, or `NOT_FOUND`.
pub async fn find_sla<C: ConnectionTrait>(db: &C, p: &Principal, id: i64) -> AppResult<sla::Model> {
    find_visible::<sla::Entity, _>(db, p, id, "SLA").await
}

pub struct NewSla {
    pub name: String,
    pub kind: Option<AgreementKind>,
    pub status: Option<AgreementStatus>,
    pub customer_id: i64,
    pub service_id: i64,
    pub calendar_id: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
    pub targets: Vec<TargetInput>,
    pub availability_target: f64,
}

fn check_availability(v: f64) -> AppResult<()> {
    if v.is_finite() && v > 0.0 && v <= 100.0 {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            "availabilityTarget",
            "availabilityTarget must be a percentage above 0 and at most 100",
        ))
    }
}

fn check_period(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> AppResult<()> {
    match to {
        Some(to) if to <= from => Err(AppError::invalid_field(
            "validTo",
            "validTo must be after validFrom",
        )),
        _ => Ok(()),
    }
}

/// Two agreements of the same kind, customer and service may not be in force
/// over overlapping periods (retired ones do not count).
async fn ensure_no_overlap<C: ConnectionTrait>(db: &C, s: &sla::Model) -> AppResult<()> {
    if s.status == AgreementStatus::Retired {
        return Ok(());
    }
    let mut q = sla::Entity::find()
        .filter(sla::Column::CustomerId.eq(s.customer_id))
        .filter(sla::Column::ServiceId.eq(s.service_id))
        .filter(sla::Column::Kind.eq(s.kind))
        .filter(sla::Column::Status.ne(AgreementStatus::Retired))
        .filter(sla::Column::Id.ne(s.id))
        .filter(
            Condition::any()
                .add(sla::Column::ValidTo.is_null())
                .add(sla::Column::ValidTo.gt(s.valid_from)),
        );
    if let Some(to) = s.valid_to {
        q = q.filter(sla::Column::ValidFrom.lt(to));
    }
    if let Some(other) = q.one(db).await? {
        return Err(AppError::Conflict(format!(
            "this {} overlaps {:?} for the same customer and service (valid from {}{}); end or retire it first",
            if s.kind == AgreementKind::Sla {
                "SLA"
            } else {
                "OLA"
            },
            other.name,
            other.valid_from.format("%Y-%m-%d %H:%M UTC"),
            other
                .valid_to
                .map(|t| format!(" to {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

pub async fn create_sla(store: &Store, p: &Principal, input: NewSla) -> AppResult<sla::Model> {
    let (name, _) = clean_name("name", &input.name, 200)?;
    check_availability(input.availability_target)?;
    check_period(input.valid_from, input.valid_to)?;
    if !p.can_see(input.customer_id) {
        return Err(AppError::invalid_field(
            "customerId",
            "organization not found",
        ));
    }
    let status = input.status.unwrap_or(AgreementStatus::Active);
    if status == AgreementStatus::Retired {
        return Err(AppError::invalid_field(
            "status",
            "a new agreement starts as DRAFT or ACTIVE",
        ));
    }
    let at = now();
    let mut model = sla::Model {
        id: 0,
        name,
        kind: input.kind.unwrap_or(AgreementKind::Sla),
        status,
        customer_id: input.customer_id,
        service_id: input.service_id,
        calendar_id: input.calendar_id,
        valid_from: input.valid_from,
        valid_to: input.valid_to,
        respond_p1: 0,
        respond_p2: 0,
        respond_p3: 0,
        respond_p4: 0,
        resolve_p1: 0,
        resolve_p2: 0,
        resolve_p3: 0,
        resolve_p4: 0,
        availability_target: input.availability_target,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    apply_targets(&mut model, &input.targets, true)?;
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(input.customer_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("customerId", "organization not found"))?;
    catalogue::find_service(&txn, p, input.service_id)
        .await
        .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
    find_calendar(&txn, p, input.calendar_id)
        .await
        .map_err(|_| AppError::invalid_field("calendarId", "business calendar not found"))?;
    ensure_no_overlap(&txn, &model).await?;
    let mut active: sla::ActiveModel = model.into();
    active.id = sea_orm::NotSet;
    let created = audit::insert(&txn, p, active).await?;
    txn.commit().await?;
    Ok(created)
}

pub struct SlaPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub status: Option<AgreementStatus>,
    pub calendar_id: Option<i64>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<Option<DateTime<Utc>>>,
    pub targets: Vec<TargetInput>,
    pub availability_target: Option<f64>,
}

/// Changes an SLA. Clocks already attached keep their targets until the
/// incident's priority changes.
pub async fn update_sla(store: &Store, p: &Principal, input: SlaPatch) -> AppResult<sla::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_sla(&txn, p, input.id).await?;
    check_version("SLA", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        next.name = clean_name("name", name, 200)?.0;
    }
    if let Some(status) = input.status {
        use AgreementStatus::*;
        let ok = matches!(
            (before.status, status),
            (Draft, Active) | (Draft, Retired) | (Active, Retired)
        ) || before.status == status;
        if !ok {
            return Err(AppError::invalid_field(
                "status",
                "an agreement moves DRAFT -> ACTIVE -> RETIRED (or DRAFT -> RETIRED); RETIRED is final",
            ));
        }
        next.status = status;
    }
    if let Some(cal) = input.calendar_id {
        find_calendar(&txn, p, cal)
            .await
            .map_err(|_| AppError::invalid_field("calendarId", "business calendar not found"))?;
        next.calendar_id = cal;
    }
    if let Some(from) = input.valid_from {
        next.valid_from = from;
    }
    if let Some(to) = input.valid_to {
        next.valid_to = to;
    }
    check_period(next.valid_from, next.valid_to)?;
    if let Some(a) = input.availability_target {
        check_availability(a)?;
        next.availability_target = a;
    }
    apply_targets(&mut next, &input.targets, false)?;
    ensure_no_overlap(&txn, &next).await?;
    let updated = save_versioned(&txn, p, &before, next).await?;
    if updated.calendar_id != before.calendar_id {
        recheck_clocks(&txn, sla_clock::Column::SlaId.eq(updated.id)).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

/// The active SLA (not OLA) in force at `at` for a customer and service.
pub async fn matching_sla<C: ConnectionTrait>(
    db: &C,
    customer_id: i64,
    service_id: i64,
    at: DateTime<Utc>,
) -> AppResult<Option<sla::Model>> {
    Ok(sla::Entity::find()
        .filter(sla::Column::CustomerId.eq(customer_id))
        .filter(sla::Column::ServiceId.eq(service_id))
        .filter(sla::Column::Kind.eq(AgreementKind::Sla))
        .filter(sla::Column::Status.eq(AgreementStatus::Active))
        .filter(sla::Column::ValidFrom.lte(at))
        .filter(
            Condition::any()
                .add(sla::Column::ValidTo.is_null())
                .add(sla::Column::ValidTo.gt(at)),
        )
        .order_by_desc(sla::Column::ValidFrom)
        .one(db)
        .await?)
}

/// The calendar of an SLA.
pub async fn sla_calendar<C: ConnectionTrait>(db: &C, s: &sla::Model) -> AppResult<Calendar> {
    let row = business_calendar::Entity::find_by_id(s.calendar_id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("business calendar"))?;
    calendar_of(&row)
}

/// An agreement for a service that is not retired and not yet ended, if any:
/// such a service cannot be retired.
pub async fn open_agreement_for_service<C: ConnectionTrait>(
    db: &C,
    service_id: i64,
) -> AppResult<Option<sla::Model>> {
    Ok(sla::Entity::find()
        .filter(sla::Column::ServiceId.eq(service_id))
        .filter(sla::Column::Status.ne(AgreementStatus::Retired))
        .filter(
            Condition::any()
                .add(sla::Column::ValidTo.is_null())
                .add(sla::Column::ValidTo.gt(now())),
        )
        .one(db)
        .await?)
}

//! Service level management: business calendars, SLAs, the priority matrix,
//! SLA clocks as portals show them, and the `slaDueDates` dry run.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{business_calendar, enums, sla, sla_clock};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::auth::{Admin, Staff};
use crate::graphql::{
    args::maybe,
    context::{ContextExt, load},
    ids,
    loaders::CalendarKey,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::{catalogue::graphql::Service, directory::graphql::Organization};
use crate::records::scope_to;
use crate::{
    error::AppError,
    processes::sla::{self as domain, HolidaySpec, WindowSpec, calendar, clock},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::Priority")]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::AgreementKind")]
pub enum AgreementKind {
    /// A service level agreement with a customer.
    Sla,
    /// An operational level agreement between internal groups.
    Ola,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::AgreementStatus")]
pub enum AgreementStatus {
    Draft,
    /// In force during its validity period; only active SLAs attach to incidents.
    Active,
    /// Withdrawn; final.
    Retired,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ClockKind")]
pub enum ClockKind {
    /// Time to respond: stops at assignment or the first customer-visible agent comment.
    Respond,
    /// Time to resolve: stops at RESOLVED, resumes on reopening.
    Resolve,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

const WEEKDAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "mon"),
    (Weekday::Tuesday, "tue"),
    (Weekday::Wednesday, "wed"),
    (Weekday::Thursday, "thu"),
    (Weekday::Friday, "fri"),
    (Weekday::Saturday, "sat"),
    (Weekday::Sunday, "sun"),
];

fn weekday_code(d: Weekday) -> &'static str {
    WEEKDAYS
        .iter()
        .find(|(w, _)| *w == d)
        .map_or("mon", |x| x.1)
}

fn weekday_of(code: &str) -> Weekday {
    WEEKDAYS
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(Weekday::Monday, |x| x.0)
}

/// A working window; `end` is on the next day when `endsNextDay` is true.
#[derive(SimpleObject)]
pub struct WorkingWindow {
    pub weekday: Weekday,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM` (up to `24:00`), local time.
    pub end: String,
    pub ends_next_day: bool,
}

#[derive(SimpleObject)]
pub struct CalendarHoliday {
    pub date: NaiveDate,
    /// Recurs on the same month and day every year (the year is ignored).
    pub yearly: bool,
    pub name: Option<String>,
}

/// A business calendar: time zone, working windows, holidays.
pub struct BusinessCalendar(pub business_calendar::Model);

#[Object]
impl BusinessCalendar {
    pub async fn id(&self) -> ID {
        ids::encode("BusinessCalendar", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// IANA time zone name, e.g. `Europe/Berlin`.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    async fn windows(&self) -> async_graphql::Result<Vec<WorkingWindow>> {
        let (windows, _) = domain::specs_of(&self.0)?;
        Ok(windows
            .into_iter()
            .map(|w| WorkingWindow {
                weekday: weekday_of(&w.weekday),
                start: w.start,
                end: w.end,
                ends_next_day: w.ends_next_day,
            })
            .collect())
    }
    async fn holidays(&self) -> async_graphql::Result<Vec<CalendarHoliday>> {
        let (_, holidays) = domain::specs_of(&self.0)?;
        Ok(holidays
            .into_iter()
            .map(|h| CalendarHoliday {
                date: h.date,
                yearly: h.yearly,
                name: h.name,
            })
            .collect())
    }
    /// Round the clock every day without holidays.
    #[graphql(name = "is24x7")]
    async fn is_24x7(&self) -> async_graphql::Result<bool> {
        Ok(domain::calendar_of(&self.0)?.is_24x7())
    }
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Targets for one priority, in business minutes.
#[derive(SimpleObject)]
pub struct SlaTarget {
    pub priority: Priority,
    pub respond_minutes: i64,
    pub resolve_minutes: i64,
}

/// A service level agreement (or OLA) for one customer and service.
pub struct Sla(pub sla::Model);

#[Object]
impl Sla {
    pub async fn id(&self) -> ID {
        ids::encode("Sla", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> AgreementKind {
        self.0.kind.into()
    }
    async fn status(&self) -> AgreementStatus {
        self.0.status.into()
    }
    async fn valid_from(&self) -> DateTime<Utc> {
        self.0.valid_from
    }
    /// Exclusive end of validity; null when open-ended.
    async fn valid_to(&self) -> Option<DateTime<Utc>> {
        self.0.valid_to
    }
    /// Respond and resolve targets for P1 to P4.
    async fn targets(&self) -> Vec<SlaTarget> {
        domain::PRIORITIES
            .iter()
            .map(|p| {
                let t = domain::targets_of(&self.0, *p);
                SlaTarget {
                    priority: (*p).into(),
                    respond_minutes: t.respond / 60,
                    resolve_minutes: t.resolve / 60,
                }
            })
            .collect()
    }
    /// Agreed availability in percent.
    async fn availability_target(&self) -> f64 {
        self.0.availability_target
    }
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.customer_id)
            .await?
            .map(Organization))
    }
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        Ok(load(&ctx.loaders().service, self.0.service_id)
            .await?
            .map(Service))
    }
    async fn calendar(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<BusinessCalendar>> {
        Ok(load(&ctx.loaders().calendar, self.0.calendar_id)
            .await?
            .map(BusinessCalendar))
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One cell of the priority matrix.
#[derive(SimpleObject)]
pub struct PriorityRule {
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    pub priority: Priority,
}

impl From<entity::priority_rule::Model> for PriorityRule {
    fn from(m: entity::priority_rule::Model) -> Self {
        Self {
            impact: m.impact,
            urgency: m.urgency,
            priority: m.priority.into(),
        }
    }
}

/// An SLA clock of an incident, read at the moment of the request.
pub struct SlaClock(
    pub sla_clock::Model,
    tokio::sync::OnceCell<clock::ClockReading>,
    /// The stored version of its calendar, when the clock was loaded with it.
    Option<CalendarKey>,
);

impl SlaClock {
    pub fn new(model: sla_clock::Model) -> Self {
        Self(model, tokio::sync::OnceCell::new(), None)
    }

    /// A clock loaded with its calendar's key: read without fetching the
    /// calendar while that version is cached.
    pub fn with_calendar(model: sla_clock::Model, calendar: Option<CalendarKey>) -> Self {
        Self(model, tokio::sync::OnceCell::new(), calendar)
    }
}

#[Object]
impl SlaClock {
    async fn kind(&self) -> ClockKind {
        self.0.kind.into()
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// Business seconds allowed at the incident's current priority.
    async fn target_seconds(&self) -> i64 {
        self.0.target_seconds
    }
    /// When the target is reached in business time; null while paused.
    async fn due_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Ok(self.reading(ctx).await?.due_at)
    }
    /// Business seconds counted so far (not counting pauses and time outside the calendar).
    async fn business_elapsed_seconds(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.reading(ctx).await?.elapsed_seconds)
    }
    /// Business seconds left; negative once breached.
    async fn remaining_seconds(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.reading(ctx).await?.remaining_seconds)
    }
    /// Whether the clock is paused (the incident is on hold).
    async fn paused(&self) -> bool {
        self.0.paused_since.is_some()
    }
    /// When the clock stopped (response given, incident resolved); null while running.
    async fn stopped_at(&self) -> Option<DateTime<Utc>> {
        self.0.stopped_at
    }
    /// The warning thresholds (percent of the target) this clock has crossed.
    async fn warnings_fired(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<u32>> {
        Ok(self.reading(ctx).await?.warnings_fired.clone())
    }
    /// When the clock went past its target; null if it has not.
    async fn breached_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Ok(self.reading(ctx).await?.breached_at)
    }
    /// Whether the target was met; null while the clock runs.
    async fn met(&self) -> Option<bool> {
        self.0.met
    }
    async fn sla(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Sla>> {
        Ok(load(&ctx.loaders().sla, self.0.sla_id).await?.map(Sla))
    }
}

impl SlaClock {
    /// The clock read through its SLA's calendar (both batched through loaders),
    /// once per request however many of its fields are asked for.
    async fn reading(&self, ctx: &Context<'_>) -> async_graphql::Result<&clock::ClockReading> {
        self.1
            .get_or_try_init(|| async { self.compute(ctx).await })
            .await
    }

    async fn compute(&self, ctx: &Context<'_>) -> async_graphql::Result<clock::ClockReading> {
        let app = ctx.app();
        let cal = match self.2.and_then(domain::calendar_cached_by_key) {
            Some(cal) => cal,
            None => {
                let row = load(&ctx.loaders().calendar_by_sla, self.0.sla_id)
                    .await?
                    .ok_or_else(|| AppError::not_found("business calendar"))?;
                domain::calendar_cached(&row)?
            }
        };
        Ok(clock::read(
            &cal,
            &self.0,
            crate::records::now(),
            &app.sla.warning_thresholds,
        )?)
    }
}

/// When a clock would be due.
#[derive(SimpleObject)]
pub struct DueDate {
    pub target_minutes: i64,
    /// Null when an open pause holds the clock before it is due.
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct SlaDueDates {
    pub priority: Priority,
    pub start: DateTime<Utc>,
    pub respond: DueDate,
    pub resolve: DueDate,
}

#[derive(InputObject)]
pub struct PauseInput {
    pub start: DateTime<Utc>,
    /// Omit for a pause still running.
    pub end: Option<DateTime<Utc>>,
}

#[derive(InputObject, Default)]
pub struct SlaFilter {
    pub customer_id: Option<ID>,
    pub service_id: Option<ID>,
    pub status: Option<Vec<AgreementStatus>>,
    pub kind: Option<AgreementKind>,
}

#[derive(Default)]
pub struct SlaQuery;

#[Object]
impl SlaQuery {
    /// Business calendars of the organizations the caller may see, by name.
    async fn business_calendars(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<BusinessCalendar>> {
        let p = ctx.principal()?;
        let q = business_calendar::Entity::find()
            .filter(scope_to(p, business_calendar::Column::OrganizationId));
        let keyset = Keyset::by(
            business_calendar::Column::NameKey,
            |m: &business_calendar::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            BusinessCalendar,
        )
        .await
    }

    async fn business_calendar(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<BusinessCalendar> {
        let n = ids::expect(&id, "BusinessCalendar", "id")?;
        Ok(BusinessCalendar(
            domain::find_calendar(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// Agreements of the customers the caller may see, newest first.
    #[allow(clippy::too_many_arguments)]
    async fn slas(
        &self,
        ctx: &Context<'_>,
        filter: Option<SlaFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Sla>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = sla::Entity::find().filter(scope_to(p, sla::Column::CustomerId));
        if let Some(c) = &f.customer_id {
            q = q.filter(sla::Column::CustomerId.eq(ids::reference(
                c,
                "Organization",
                "customerId",
            )?));
        }
        if let Some(s) = &f.service_id {
            q = q.filter(sla::Column::ServiceId.eq(ids::reference(s, "Service", "serviceId")?));
        }
        if let Some(statuses) = f.status.filter(|s| !s.is_empty()) {
            q = q.filter(
                sla::Column::Status.is_in(statuses.into_iter().map(enums::AgreementStatus::from)),
            );
        }
        if let Some(kind) = f.kind {
            q = q.filter(sla::Column::Kind.eq(enums::AgreementKind::from(kind)));
        }
        let keyset = Keyset::<sla::Entity>::by_id(true);
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Sla,
        )
        .await
    }

    async fn sla(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Sla> {
        let n = ids::expect(&id, "Sla", "id")?;
        Ok(Sla(domain::find_sla(
            &ctx.app().store.db,
            ctx.principal()?,
            n,
        )
        .await?))
    }

    /// Impact x urgency -> priority, impact first.
    async fn priority_matrix(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PriorityRule>> {
        ctx.principal()?;
        Ok(domain::priority_matrix(&ctx.app().store.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Dry run: when would clocks of this SLA started at `start` at `priority`
    /// be due, given these pauses? Nothing is written.
    async fn sla_due_dates(
        &self,
        ctx: &Context<'_>,
        sla_id: ID,
        priority: Priority,
        start: DateTime<Utc>,
        pauses: Option<Vec<PauseInput>>,
    ) -> async_graphql::Result<SlaDueDates> {
        let p = ctx.principal()?;
        let db = &ctx.app().store.db;
        let pauses = pauses.unwrap_or_default();
        let n = ids::expect(&sla_id, "Sla", "slaId")?;
        let agreement = domain::find_sla(db, p, n).await?;
        let cal = domain::sla_calendar(db, &agreement).await?;
        for (i, pause) in pauses.iter().enumerate() {
            if pause.end.is_some_and(|e| e <= pause.start) {
                return Err(AppError::invalid_field(
                    "pauses",
                    format!("pause {} ends before it starts", i + 1),
                )
                .into());
            }
        }
        let pauses: Vec<calendar::Pause> = pauses
            .iter()
            .map(|x| calendar::Pause {
                start: x.start,
                end: x.end,
            })
            .collect();
        let targets = domain::targets_of(&agreement, priority.into());
        let due = |secs: i64| DueDate {
            target_minutes: secs / 60,
            due_at: cal.due_at(start, secs, &pauses),
        };
        Ok(SlaDueDates {
            priority,
            start,
            respond: due(targets.respond),
            resolve: due(targets.resolve),
        })
    }
}

#[derive(InputObject)]
pub struct WorkingWindowInput {
    pub weekday: Weekday,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM` (up to `24:00`); on the next day when `endsNextDay` is true.
    pub end: String,
    #[graphql(default)]
    pub ends_next_day: bool,
}

#[derive(InputObject)]
pub struct HolidayInput {
    pub date: NaiveDate,
    #[graphql(default)]
    pub yearly: bool,
    pub name: Option<String>,
}

fn window_specs(v: Vec<WorkingWindowInput>) -> Vec<WindowSpec> {
    v.into_iter()
        .map(|w| WindowSpec {
            weekday: weekday_code(w.weekday).into(),
            start: w.start,
            end: w.end,
            ends_next_day: w.ends_next_day,
        })
        .collect()
}

fn holiday_specs(v: Vec<HolidayInput>) -> Vec<HolidaySpec> {
    v.into_iter()
        .map(|h| HolidaySpec {
            date: h.date,
            yearly: h.yearly,
            name: h.name,
        })
        .collect()
}

#[derive(InputObject)]
pub struct CreateBusinessCalendarInput {
    pub name: String,
    /// IANA name such as `Europe/Berlin`.
    pub time_zone: String,
    /// Non-overlapping windows; several a day are fine.
    pub windows: Vec<WorkingWindowInput>,
    #[graphql(default)]
    pub holidays: Vec<HolidayInput>,
    /// Defaults to the caller's organization.
    pub organization_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateBusinessCalendarInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    /// Replaces all windows.
    pub windows: Option<Vec<WorkingWindowInput>>,
    /// Replaces all holidays.
    pub holidays: Option<Vec<HolidayInput>>,
}

#[derive(InputObject)]
pub struct SlaTargetInput {
    pub priority: Priority,
    /// Business minutes to respond; above zero.
    pub respond_minutes: i64,
    /// Business minutes to resolve; above zero.
    pub resolve_minutes: i64,
}

fn target_inputs(v: Vec<SlaTargetInput>) -> Vec<domain::TargetInput> {
    v.into_iter()
        .map(|t| domain::TargetInput {
            priority: t.priority.into(),
            respond_minutes: t.respond_minutes,
            resolve_minutes: t.resolve_minutes,
        })
        .collect()
}

#[derive(InputObject)]
pub struct CreateSlaInput {
    pub name: String,
    /// Defaults to SLA.
    pub kind: Option<AgreementKind>,
    /// DRAFT or ACTIVE (default).
    pub status: Option<AgreementStatus>,
    pub customer_id: ID,
    pub service_id: ID,
    pub calendar_id: ID,
    pub valid_from: DateTime<Utc>,
    /// Exclusive; omit for open-ended.
    pub valid_to: Option<DateTime<Utc>>,
    /// One entry for each of P1-P4.
    pub targets: Vec<SlaTargetInput>,
    /// Percent, e.g. 99.9.
    pub availability_target: f64,
}

#[derive(InputObject)]
pub struct UpdateSlaInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub status: Option<AgreementStatus>,
    pub calendar_id: Option<ID>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: MaybeUndefined<DateTime<Utc>>,
    /// Replaces the targets of the priorities given.
    #[graphql(default)]
    pub targets: Vec<SlaTargetInput>,
    pub availability_target: Option<f64>,
}

#[derive(InputObject)]
pub struct PriorityRuleInput {
    pub impact: i32,
    pub urgency: i32,
    pub priority: Priority,
}

#[derive(Default)]
pub struct SlaMutation;

#[Object]
impl SlaMutation {
    /// Adds a business calendar (agent or admin).
    #[graphql(guard = "Staff")]
    async fn create_business_calendar(
        &self,
        ctx: &Context<'_>,
        input: CreateBusinessCalendarInput,
    ) -> async_graphql::Result<BusinessCalendar> {
        let p = ctx.principal()?;
        let new = domain::NewCalendar {
            organization_id: input
                .organization_id
                .as_ref()
                .map(|id| ids::reference(id, "Organization", "organizationId"))
                .transpose()?,
            name: input.name,
            time_zone: input.time_zone,
            windows: window_specs(input.windows),
            holidays: holiday_specs(input.holidays),
        };
        Ok(BusinessCalendar(
            domain::create_calendar(&ctx.app().store, p, new).await?,
        ))
    }

    #[graphql(guard = "Staff")]
    async fn update_business_calendar(
        &self,
        ctx: &Context<'_>,
        input: UpdateBusinessCalendarInput,
    ) -> async_graphql::Result<BusinessCalendar> {
        let p = ctx.principal()?;
        let patch = domain::CalendarPatch {
            id: ids::expect(&input.id, "BusinessCalendar", "id")?,
            version: input.version,
            name: input.name,
            time_zone: input.time_zone,
            windows: input.windows.map(window_specs),
            holidays: input.holidays.map(holiday_specs),
        };
        Ok(BusinessCalendar(
            domain::update_calendar(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Adds an SLA or OLA (agent or admin). Refused when another agreement of
    /// the same kind covers the same customer, service and period.
    #[graphql(guard = "Staff")]
    async fn create_sla(
        &self,
        ctx: &Context<'_>,
        input: CreateSlaInput,
    ) -> async_graphql::Result<Sla> {
        let p = ctx.principal()?;
        let new = domain::NewSla {
            name: input.name,
            kind: input.kind.map(Into::into),
            status: input.status.map(Into::into),
            customer_id: ids::reference(&input.customer_id, "Organization", "customerId")?,
            service_id: ids::reference(&input.service_id, "Service", "serviceId")?,
            calendar_id: ids::reference(&input.calendar_id, "BusinessCalendar", "calendarId")?,
            valid_from: input.valid_from,
            valid_to: input.valid_to,
            targets: target_inputs(input.targets),
            availability_target: input.availability_target,
        };
        Ok(Sla(domain::create_sla(&ctx.app().store, p, new).await?))
    }

    #[graphql(guard = "Staff")]
    async fn update_sla(
        &self,
        ctx: &Context<'_>,
        input: UpdateSlaInput,
    ) -> async_graphql::Result<Sla> {
        let p = ctx.principal()?;
        let patch = domain::SlaPatch {
            id: ids::expect(&input.id, "Sla", "id")?,
            version: input.version,
            name: input.name,
            status: input.status.map(Into::into),
            calendar_id: input
                .calendar_id
                .as_ref()
                .map(|id| ids::reference(id, "BusinessCalendar", "calendarId"))
                .transpose()?,
            valid_from: input.valid_from,
            valid_to: maybe(input.valid_to),
            targets: target_inputs(input.targets),
            availability_target: input.availability_target,
        };
        Ok(Sla(domain::update_sla(&ctx.app().store, p, patch).await?))
    }

    /// Changes cells of the priority matrix (admin); returns the whole matrix.
    #[graphql(guard = "Admin")]
    async fn set_priority_rules(
        &self,
        ctx: &Context<'_>,
        rules: Vec<PriorityRuleInput>,
    ) -> async_graphql::Result<Vec<PriorityRule>> {
        let p = ctx.principal()?;
        let cells = rules
            .into_iter()
            .map(|r| (r.impact, r.urgency, r.priority.into()))
            .collect();
        Ok(domain::set_priority_rules(&ctx.app().store, p, cells)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SlaEventKind {
    /// The clock crossed a warning threshold (see `threshold`).
    Warning,
    /// The clock went past its target.
    Breached,
    /// The clock stopped within its target.
    Met,
}

impl From<crate::processes::sla::SlaEventKind> for SlaEventKind {
    fn from(k: crate::processes::sla::SlaEventKind) -> Self {
        match k {
            crate::processes::sla::SlaEventKind::Warning => Self::Warning,
            crate::processes::sla::SlaEventKind::Breached => Self::Breached,
            crate::processes::sla::SlaEventKind::Met => Self::Met,
        }
    }
}

/// Something an SLA clock did; each is fired once per clock and threshold.
#[derive(SimpleObject)]
pub struct SlaEvent {
    pub kind: SlaEventKind,
    /// Percent of the target, for WARNING.
    pub threshold: Option<u32>,
    pub at: DateTime<Utc>,
    pub clock: SlaClock,
    pub incident: crate::processes::incident::graphql::Incident,
}

#[derive(InputObject, Default)]
pub struct SlaEventFilter {
    pub customer_id: Option<ID>,
    pub service_id: Option<ID>,
    pub incident_id: Option<ID>,
    /// Any of these kinds.
    pub kinds: Option<Vec<SlaEventKind>>,
}

#[derive(Default)]
pub struct SlaSubscription;

#[async_graphql::Subscription]
impl SlaSubscription {
    /// Warnings, breaches and met targets of SLA clocks, for the incidents the
    /// caller may see (requesters: their own organization's).
    async fn sla_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<SlaEventFilter>,
    ) -> async_graphql::Result<impl futures_util::Stream<Item = SlaEvent> + use<>> {
        use futures_util::StreamExt;
        let p = ctx.principal()?.clone();
        let f = filter.unwrap_or_default();
        let opt = |v: &Option<ID>, kind: &str, field: &str| {
            v.as_ref()
                .map(|id| ids::reference(id, kind, field))
                .transpose()
        };
        let customer = opt(&f.customer_id, "Organization", "customerId")?;
        let service = opt(&f.service_id, "Service", "serviceId")?;
        let only = opt(&f.incident_id, "Incident", "incidentId")?;
        let kinds = f.kinds.filter(|k| !k.is_empty());
        let events = ctx.app().store.events.stream();
        Ok(events.filter_map(move |ev| {
            let out = match &*ev {
                crate::events::DomainEvent::SlaEvent(e)
                    if p.can_see(e.incident.customer_id)
                        && customer.is_none_or(|id| id == e.incident.customer_id)
                        && service.is_none_or(|id| Some(id) == e.incident.service_id)
                        && only.is_none_or(|id| id == e.incident.id)
                        && kinds
                            .as_ref()
                            .is_none_or(|k| k.contains(&SlaEventKind::from(e.kind))) =>
                {
                    Some(SlaEvent {
                        kind: e.kind.into(),
                        threshold: e.threshold,
                        at: e.at,
                        clock: SlaClock::new(e.clock.clone()),
                        incident: crate::processes::incident::graphql::Incident(e.incident.clone()),
                    })
                }
                _ => None,
            };
            futures_util::future::ready(out)
        }))
    }
}

#[derive(InputObject)]
pub struct ReportPeriod {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SlaReportGroupBy {
    Service,
    Customer,
    Priority,
}

/// Figures for one kind of clock.
#[derive(SimpleObject)]
pub struct ClockStatistics {
    /// Stopped within target.
    pub met: i64,
    /// Stopped over target, or running past its due time.
    pub breached: i64,
    /// Running and not yet due.
    pub in_progress: i64,
    /// met / (met + breached), in percent; null when none is decided.
    pub compliance_percent: Option<f64>,
    /// Mean business seconds of the stopped clocks.
    pub mean_seconds: Option<f64>,
    /// 90th percentile (nearest rank) of the stopped clocks' business seconds.
    pub p90_seconds: Option<i64>,
}

impl From<&domain::report::ClockStats> for ClockStatistics {
    fn from(s: &domain::report::ClockStats) -> Self {
        Self {
            met: s.met,
            breached: s.breached,
            in_progress: s.in_progress,
            compliance_percent: s.compliance_percent(),
            mean_seconds: s.mean_seconds,
            p90_seconds: s.p90_seconds,
        }
    }
}

/// One group of the report.
pub struct SlaReportRow {
    row: domain::report::ReportRow,
    group_by: SlaReportGroupBy,
}

#[Object]
impl SlaReportRow {
    /// The service or customer ID, or the priority.
    async fn key(&self) -> String {
        match self.group_by {
            SlaReportGroupBy::Service => ids::encode("Service", self.id()).0,
            SlaReportGroupBy::Customer => ids::encode("Organization", self.id()).0,
            SlaReportGroupBy::Priority => self.row.key.to_uppercase(),
        }
    }
    /// Set when grouped by SERVICE.
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        if self.group_by != SlaReportGroupBy::Service {
            return Ok(None);
        }
        Ok(load(&ctx.loaders().service, self.id()).await?.map(Service))
    }
    /// Set when grouped by CUSTOMER.
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        if self.group_by != SlaReportGroupBy::Customer {
            return Ok(None);
        }
        Ok(load(&ctx.loaders().organization, self.id())
            .await?
            .map(Organization))
    }
    /// Set when grouped by PRIORITY.
    async fn priority(&self) -> Option<Priority> {
        if self.group_by != SlaReportGroupBy::Priority {
            return None;
        }
        domain::PRIORITIES
            .iter()
            .find(|p| format!("{p:?}").eq_ignore_ascii_case(&self.row.key))
            .map(|p| (*p).into())
    }
    async fn respond(&self) -> ClockStatistics {
        (&self.row.respond).into()
    }
    async fn resolve(&self) -> ClockStatistics {
        (&self.row.resolve).into()
    }
}

impl SlaReportRow {
    fn id(&self) -> i64 {
        self.row.key.parse().unwrap_or_default()
    }
}

/// SLA compliance for clocks started in a period.
pub struct SlaReport {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    at: DateTime<Utc>,
    group_by: SlaReportGroupBy,
    report: domain::report::Report,
}

#[Object]
impl SlaReport {
    async fn from(&self) -> DateTime<Utc> {
        self.from
    }
    async fn to(&self) -> DateTime<Utc> {
        self.to
    }
    /// The moment running clocks were judged at.
    async fn generated_at(&self) -> DateTime<Utc> {
        self.at
    }
    async fn rows(&self) -> Vec<SlaReportRow> {
        self.report
            .rows
            .iter()
            .map(|r| SlaReportRow {
                row: r.clone(),
                group_by: self.group_by,
            })
            .collect()
    }
    /// Incidents with a breached clock started in the period, newest first.
    async fn breached_incidents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<crate::processes::incident::graphql::Incident>> {
        use entity::incident;
        let p = ctx.principal()?;
        // Between the lowest and highest breached incident the report found
        // (an empty range when there is none), on both sides of the semi join.
        let span = self.report.breached_span.unwrap_or((1, 0));
        let q = incident::Entity::find()
            .filter(scope_to(p, incident::Column::CustomerId))
            .filter(incident::Column::Id.between(span.0, span.1))
            .filter(
                incident::Column::Id.in_subquery(domain::report::breached_incidents(
                    self.from, self.to, self.at, span,
                )),
            );
        let keyset = Keyset::<incident::Entity>::by_id(true);
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            crate::processes::incident::graphql::Incident,
        )
        .await
    }
}

#[derive(Default)]
pub struct SlaReportQuery;

#[Object]
impl SlaReportQuery {
    /// SLA compliance per service, customer or priority for the clocks started
    /// in `period`, over the customers the caller may see.
    async fn sla_report(
        &self,
        ctx: &Context<'_>,
        period: ReportPeriod,
        group_by: SlaReportGroupBy,
    ) -> async_graphql::Result<SlaReport> {
        let p = ctx.principal()?;
        let at = crate::records::now();
        let grouping = match group_by {
            SlaReportGroupBy::Service => domain::report::GroupBy::Service,
            SlaReportGroupBy::Customer => domain::report::GroupBy::Customer,
            SlaReportGroupBy::Priority => domain::report::GroupBy::Priority,
        };
        let report = domain::report::sla_report(
            &ctx.app().store.db,
            p,
            period.from,
            period.to,
            grouping,
            at,
        )
        .await?;
        Ok(SlaReport {
            from: period.from,
            to: period.to,
            at,
            group_by,
            report,
        })
    }
}

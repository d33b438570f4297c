//! Incident management (ISO/IEC 20000-1 8.6.1): raising incidents with a
//! per-customer number and a priority from the matrix, the state machine,
//! assignment, the timeline of work notes and comments, and driving the SLA
//! clocks attached at creation.

use super::events::{IncidentChangeKind, IncidentChanged};
use chrono::{DateTime, Utc};
use entity::{
    enums::{ClockKind, IncidentSource, IncidentState, NoteKind, Priority},
    incident, incident_affected_ci, incident_note, organization, sla, sla_clock, user,
};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::processes::{
    catalogue,
    cmdb::{AffectedBy, check_affected_cis},
    directory::check_assignment,
    sla::{self as sla_domain, calendar::Calendar, clock},
};
use crate::records::{
    Store, audit, check_version, clean_name, clean_text, find_visible, insert_rows,
    lifecycle::check_transition, now, numbers::Numbering, save_versioned,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::DomainEvent,
    processes::sla::{SlaClockEvent, SlaEventKind},
};

/// An incident whose customer the caller may see, or `NOT_FOUND` (another
/// tenant's incident looks exactly like a missing one).
pub async fn find_incident<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<incident::Model> {
    find_visible::<incident::Entity, _>(db, p, id, "incident").await
}

/// Incident numbers: migration `m20261122_000007` made the function.
const NUMBERS: Numbering = Numbering {
    function: "next_incident_numbers",
    counters: "incident_counters",
};

/// An incident names its customer's CIs and the provider's.
fn affected_by(customer_id: i64) -> AffectedBy<'static> {
    AffectedBy {
        record: "an incident",
        owner: "the incident's customer",
        organization_id: customer_id,
        any_organization: false,
    }
}

/// Makes `ids` the affected CIs of `inc`, each link's coming and going
/// audited. Answers whether anything changed.
async fn set_affected_cis<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    inc: &incident::Model,
    ids: &[i64],
    at: DateTime<Utc>,
) -> AppResult<bool> {
    let existing = incident_affected_ci::Entity::find()
        .filter(incident_affected_ci::Column::IncidentId.eq(inc.id))
        .order_by_asc(incident_affected_ci::Column::Id)
        .all(db)
        .await?;
    audit::sync_links(
        db,
        p,
        existing,
        |l: &incident_affected_ci::Model| l.ci_id,
        ids,
        |ci_id| incident_affected_ci::ActiveModel {
            id: NotSet,
            incident_id: Set(inc.id),
            ci_id: Set(ci_id),
            organization_id: Set(inc.customer_id),
            created_at: Set(at),
        },
    )
    .await
}

pub struct NewIncident {
    pub customer_id: Option<i64>,
    pub title: String,
    pub description: Option<String>,
    pub impact: i32,
    pub urgency: i32,
    pub major: Option<bool>,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub source: Option<IncidentSource>,
    pub category: Option<String>,
    pub affected_ci_ids: Vec<i64>,
}

/// Raises an incident. Requesters raise them for their own organization from
/// the portal; staff for any customer they serve. The SLA in force for the
/// customer and service is attached and its clocks start.
pub async fn create_incident(
    store: &Store,
    p: &Principal,
    input: NewIncident,
) -> AppResult<(incident::Model, Vec<sla_clock::Model>)> {
    let customer_id = input.customer_id.unwrap_or(p.organization_id);
    if !p.can_see(customer_id) {
        return Err(AppError::invalid_field(
            "customerId",
            "organization not found",
        ));
    }
    let staff = p.is_staff();
    if !staff {
        if input.assignment_group_id.is_some() || input.assignee_id.is_some() {
            return Err(AppError::Forbidden("only agents assign incidents".into()));
        }
        if input.major == Some(true) {
            return Err(AppError::Forbidden(
                "only agents declare a major incident".into(),
            ));
        }
    }
    let (title, _) = clean_name("title", &input.title, 200)?;
    let description = clean_text("description", input.description, 20_000)?;
    let category = clean_text("category", input.category, 100)?;
    sla_domain::check_level("impact", input.impact)?;
    sla_domain::check_level("urgency", input.urgency)?;
    let source = if staff {
        input.source.unwrap_or(IncidentSource::Agent)
    } else {
        IncidentSource::Portal
    };

    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(customer_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("customerId", "organization not found"))?;
    if let Some(s) = input.service_id {
        catalogue::find_service(&txn, p, s)
            .await
            .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
    }
    check_assignment(&txn, p, input.assignment_group_id, input.assignee_id).await?;
    let affected =
        check_affected_cis(&txn, p, &affected_by(customer_id), &input.affected_ci_ids).await?;
    let priority = sla_domain::priority_for(&txn, input.impact, input.urgency).await?;
    let reporter_id = user::Entity::find()
        .filter(user::Column::Subject.eq(&p.subject))
        .one(&txn)
        .await?
        .map(|u| u.id);
    let at = now();
    let draft = IncidentDraft {
        customer_id,
        title,
        description,
        impact: input.impact,
        urgency: input.urgency,
        priority,
        major: input.major.unwrap_or(false),
        source,
        category,
        reporter_subject: p.subject.clone(),
        reporter_id,
        service_id: input.service_id,
        assignment_group_id: input.assignment_group_id,
        assignee_id: input.assignee_id,
        dedup_key: None,
        affected_ci_ids: affected,
    };
    let raised = raise_many(&txn, p, vec![draft], at, &store.sla_thresholds)
        .await?
        .pop()
        .ok_or_else(|| AppError::internal(std::io::Error::other("no incident raised")))?;
    txn.commit().await?;
    publish_raised(store, &raised, at);
    Ok((raised.incident, raised.clocks))
}

/// A validated incident about to be raised: the caller has checked its
/// customer, service, assignment and CIs against the principal.
pub struct IncidentDraft {
    pub customer_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub impact: i32,
    pub urgency: i32,
    pub priority: Priority,
    pub major: bool,
    pub source: IncidentSource,
    pub category: Option<String>,
    pub reporter_subject: String,
    pub reporter_id: Option<i64>,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub dedup_key: Option<String>,
    pub affected_ci_ids: Vec<i64>,
}

/// An incident just raised, with the clocks of its SLA.
pub struct Raised {
    pub incident: incident::Model,
    pub clocks: Vec<sla_clock::Model>,
}

/// Raises incidents in the caller's transaction, in a fixed number of
/// statements however many: numbers from each customer's counter, multi-row
/// inserts of incidents, affected CIs and clocks, and their audit events. The
/// SLA in force for each customer and service is attached and its clocks
/// start; an incident raised assigned has had its first response.
pub async fn raise_many<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    drafts: Vec<IncidentDraft>,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<Vec<Raised>> {
    use std::collections::HashMap;
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let mut agreements: HashMap<(i64, i64), Option<(sla::Model, Calendar)>> = HashMap::new();
    for d in &drafts {
        let Some(service) = d.service_id else {
            continue;
        };
        if agreements.contains_key(&(d.customer_id, service)) {
            continue;
        }
        let found = match sla_domain::matching_sla(db, d.customer_id, service, at).await? {
            Some(a) => {
                let cal = sla_domain::sla_calendar(db, &a).await?;
                Some((a, cal))
            }
            None => None,
        };
        agreements.insert((d.customer_id, service), found);
    }
    let agreement_of = |d: &IncidentDraft| {
        d.service_id
            .and_then(|s| agreements.get(&(d.customer_id, s)))
            .and_then(Option::as_ref)
    };
    // Numbers last: on SQLite the counter row stays locked until commit.
    let mut per_customer: Vec<(i64, i64)> = Vec::new();
    for d in &drafts {
        match per_customer.iter_mut().find(|(c, _)| *c == d.customer_id) {
            Some((_, n)) => *n += 1,
            None => per_customer.push((d.customer_id, 1)),
        }
    }
    let mut next_of: HashMap<i64, std::vec::IntoIter<i64>> = HashMap::new();
    for (customer, n) in per_customer {
        next_of.insert(
            customer,
            NUMBERS.reserve(db, customer, n).await?.into_iter(),
        );
    }
    let mut rows = Vec::with_capacity(drafts.len());
    let mut numbers = Vec::with_capacity(drafts.len());
    for d in &drafts {
        let n = next_of
            .get_mut(&d.customer_id)
            .and_then(Iterator::next)
            .ok_or_else(|| AppError::internal(std::io::Error::other("no number reserved")))?;
        let number = format!("INC-{n:06}");
        numbers.push(number.clone());
        let assigned = d.assignment_group_id.is_some() || d.assignee_id.is_some();
        rows.push(incident::ActiveModel {
            id: NotSet,
            customer_id: Set(d.customer_id),
            number: Set(number),
            title: Set(d.title.clone()),
            description: Set(d.description.clone()),
            impact: Set(d.impact),
            urgency: Set(d.urgency),
            priority: Set(d.priority),
            major: Set(d.major),
            state: Set(if assigned {
                IncidentState::Assigned
            } else {
                IncidentState::New
            }),
            source: Set(d.source),
            category: Set(d.category.clone()),
            reporter_subject: Set(d.reporter_subject.clone()),
            reporter_id: Set(d.reporter_id),
            service_id: Set(d.service_id),
            assignment_group_id: Set(d.assignment_group_id),
            assignee_id: Set(d.assignee_id),
            resolution_code: Set(None),
            resolution_notes: Set(None),
            sla_id: Set(agreement_of(d).map(|(a, _)| a.id)),
            resolved_at: Set(None),
            closed_at: Set(None),
            dedup_key: Set(d.dedup_key.clone()),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        });
    }
    let inserted = insert_rows(db, rows).await?;
    let mut by_key: HashMap<(i64, String), incident::Model> = inserted
        .into_iter()
        .map(|i| ((i.customer_id, i.number.clone()), i))
        .collect();
    let mut incidents = Vec::with_capacity(drafts.len());
    for (d, number) in drafts.iter().zip(numbers) {
        incidents.push(by_key.remove(&(d.customer_id, number)).ok_or_else(|| {
            AppError::internal(std::io::Error::other("inserted incident missing"))
        })?);
    }
    audit::record_many(db, p, "create", &incidents).await?;

    let mut links = Vec::new();
    let mut clock_rows = Vec::new();
    for (d, inc) in drafts.iter().zip(&incidents) {
        for ci in &d.affected_ci_ids {
            links.push(incident_affected_ci::ActiveModel {
                id: NotSet,
                incident_id: Set(inc.id),
                ci_id: Set(*ci),
                organization_id: Set(inc.customer_id),
                created_at: Set(at),
            });
        }
        if let Some((agreement, cal)) = agreement_of(d) {
            let assigned = d.assignment_group_id.is_some() || d.assignee_id.is_some();
            for c in new_clocks(agreement, cal, inc, assigned, at, thresholds)? {
                let mut active: sla_clock::ActiveModel = c.into();
                active.id = NotSet;
                clock_rows.push(active);
            }
        }
    }
    let links = insert_rows(db, links).await?;
    audit::record_many(db, p, "create", &links).await?;
    let clocks = insert_rows(db, clock_rows).await?;
    audit::record_many(db, p, "create", &clocks).await?;
    let mut out: Vec<Raised> = incidents
        .into_iter()
        .map(|incident| Raised {
            incident,
            clocks: Vec::new(),
        })
        .collect();
    for c in clocks {
        if let Some(r) = out.iter_mut().find(|r| r.incident.id == c.incident_id) {
            r.clocks.push(c);
        }
    }
    for r in &mut out {
        r.clocks.sort_by_key(|c| c.kind != ClockKind::Respond);
    }
    Ok(out)
}

/// The respond and resolve clocks of a new incident under `agreement`,
/// started at `at`; the respond clock stops at once when the incident is
/// raised assigned.
fn new_clocks(
    agreement: &sla::Model,
    cal: &Calendar,
    inc: &incident::Model,
    assigned: bool,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<Vec<sla_clock::Model>> {
    let mut out = Vec::with_capacity(2);
    for kind in [ClockKind::Respond, ClockKind::Resolve] {
        let mut c = sla_clock::Model {
            id: 0,
            incident_id: inc.id,
            customer_id: inc.customer_id,
            service_id: inc.service_id,
            priority: inc.priority,
            sla_id: agreement.id,
            kind,
            target_seconds: sla_domain::target_of(agreement, inc.priority, kind),
            started_at: at,
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
            created_at: at,
            updated_at: at,
        };
        clock::refresh(cal, &mut c, thresholds)?;
        if kind == ClockKind::Respond && assigned {
            clock::stop(cal, &mut c, at, thresholds)?;
        }
        out.push(c);
    }
    Ok(out)
}

/// Announces a raised incident: `Created`, and `Met` for a respond clock
/// stopped at once.
pub fn publish_raised(store: &Store, raised: &Raised, at: DateTime<Utc>) {
    store
        .events
        .publish(DomainEvent::IncidentChanged(Box::new(IncidentChanged {
            kind: IncidentChangeKind::Created,
            incident: raised.incident.clone(),
            changed_fields: Vec::new(),
            note: None,
        })));
    let met: Vec<_> = raised
        .clocks
        .iter()
        .filter(|c| c.met == Some(true))
        .cloned()
        .collect();
    publish_met(store, &raised.incident, met, at);
}

/// What happened to an incident, for its clocks.
#[derive(Default)]
pub struct ClockCause {
    /// An agent responded (assignment, acknowledgement, customer-visible comment).
    pub responded: bool,
}

/// Moves an incident's clocks along with a change from `before` to `after`.
async fn drive_clocks<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    before: &incident::Model,
    after: &incident::Model,
    cause: ClockCause,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<Vec<sla_clock::Model>> {
    let mut met = Vec::new();
    let mut q = sla_clock::Entity::find().filter(sla_clock::Column::IncidentId.eq(after.id));
    if db.get_database_backend() == DbBackend::Postgres {
        // Locks the rows against the worker's claims, so a save here never
        // writes back a stale warning or breach marker (SQLite's write
        // transaction already excludes other writers).
        q = q.lock_exclusive();
    }
    let clocks = q.all(db).await?;
    let Some(first) = clocks.first() else {
        return Ok(met);
    };
    let Some(agreement) = sla::Entity::find_by_id(first.sla_id).one(db).await? else {
        return Ok(met);
    };
    let cal: Calendar = sla_domain::sla_calendar(db, &agreement).await?;
    use IncidentState::*;
    let state_changed = before.state != after.state;
    for c in clocks {
        let mut next = c.clone();
        // What the SLA report groups the clock by follows the incident.
        next.service_id = after.service_id;
        next.priority = after.priority;
        if before.priority != after.priority {
            clock::retarget(
                &cal,
                &mut next,
                sla_domain::target_of(&agreement, after.priority, c.kind),
                thresholds,
            )?;
        }
        if state_changed && before.state == OnHold {
            clock::resume(&cal, &mut next, at, thresholds)?;
        }
        let responded = cause.responded
            || (state_changed && matches!(after.state, Assigned | InProgress | Resolved));
        match c.kind {
            ClockKind::Respond if responded => {
                clock::stop(&cal, &mut next, at, thresholds)?;
            }
            ClockKind::Resolve if state_changed && after.state == Resolved => {
                clock::stop(&cal, &mut next, at, thresholds)?;
            }
            ClockKind::Resolve
                if state_changed && before.state == Resolved && after.state != Closed =>
            {
                clock::restart(&cal, &mut next, at, thresholds)?;
            }
            _ => {}
        }
        if state_changed && after.state == OnHold {
            clock::pause(&cal, &mut next, at, thresholds)?;
        }
        let saved = save_versioned(db, p, &c, next).await?;
        if c.stopped_at.is_none() && saved.met == Some(true) {
            met.push(saved);
        }
    }
    Ok(met)
}

/// Publishes a `Met` event for each clock that just stopped within its target.
pub fn publish_met(
    store: &Store,
    inc: &incident::Model,
    clocks: Vec<sla_clock::Model>,
    at: DateTime<Utc>,
) {
    for clock in clocks {
        store
            .events
            .publish(DomainEvent::SlaEvent(Box::new(SlaClockEvent {
                kind: SlaEventKind::Met,
                threshold: None,
                clock,
                incident: inc.clone(),
                at,
            })));
    }
}

pub struct IncidentPatch {
    pub id: i64,
    pub version: i32,
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    pub major: Option<bool>,
    pub category: Option<Option<String>>,
    /// Replaces the affected CIs.
    pub affected_ci_ids: Option<Vec<i64>>,
}

fn refuse_if_closed(i: &incident::Model, what: &str) -> AppResult<()> {
    if i.state == IncidentState::Closed {
        return Err(AppError::Conflict(format!(
            "incident {} is closed: {what} is refused",
            i.number
        )));
    }
    Ok(())
}

pub fn publish(
    store: &Store,
    kind: IncidentChangeKind,
    before: &incident::Model,
    after: &incident::Model,
) {
    if before == after {
        return;
    }
    store
        .events
        .publish(DomainEvent::IncidentChanged(Box::new(IncidentChanged {
            kind,
            changed_fields: audit::changed_fields(before, after),
            incident: after.clone(),
            note: None,
        })));
}

/// Changes an incident's description, impact, urgency (and so priority, which
/// retargets its clocks) or major flag. Staff only.
pub async fn update_incident(
    store: &Store,
    p: &Principal,
    input: IncidentPatch,
) -> AppResult<incident::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_incident(&txn, p, input.id).await?;
    check_version("incident", input.version, before.version)?;
    refuse_if_closed(&before, "a change")?;
    let mut next = before.clone();
    if let Some(t) = &input.title {
        next.title = clean_name("title", t, 200)?.0;
    }
    if let Some(d) = input.description {
        next.description = clean_text("description", d, 20_000)?;
    }
    if let Some(c) = input.category {
        next.category = clean_text("category", c, 100)?;
    }
    if let Some(i) = input.impact {
        sla_domain::check_level("impact", i)?;
        next.impact = i;
    }
    if let Some(u) = input.urgency {
        sla_domain::check_level("urgency", u)?;
        next.urgency = u;
    }
    if next.impact != before.impact || next.urgency != before.urgency {
        next.priority = sla_domain::priority_for(&txn, next.impact, next.urgency).await?;
    }
    if let Some(m) = input.major {
        next.major = m;
    }
    let at = now();
    if let Some(ids) = &input.affected_ci_ids {
        let ids = check_affected_cis(&txn, p, &affected_by(before.customer_id), ids).await?;
        if set_affected_cis(&txn, p, &before, &ids, at).await? {
            // The incident changed: its version moves, so a stale editor is refused.
            next.updated_at = at;
        }
    }
    let (updated, met) = apply_change(
        &txn,
        p,
        &before,
        next,
        ClockCause::default(),
        at,
        &store.sla_thresholds,
    )
    .await?;
    txn.commit().await?;
    publish(store, IncidentChangeKind::Updated, &before, &updated);
    publish_met(store, &updated, met, at);
    Ok(updated)
}

/// Sets the assignment group and assignee; a new incident becomes ASSIGNED,
/// which is its first response.
pub async fn assign_incident(
    store: &Store,
    p: &Principal,
    id: i64,
    version: i32,
    group: Option<Option<i64>>,
    assignee: Option<Option<i64>>,
) -> AppResult<incident::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_incident(&txn, p, id).await?;
    check_version("incident", version, before.version)?;
    refuse_if_closed(&before, "a change")?;
    let mut next = before.clone();
    if let Some(g) = group {
        next.assignment_group_id = g;
    }
    if let Some(a) = assignee {
        next.assignee_id = a;
    }
    check_assignment(
        &txn,
        p,
        next.assignment_group_id.filter(|_| group.is_some()),
        next.assignee_id.filter(|_| assignee.is_some()),
    )
    .await?;
    let assigned = next.assignment_group_id.is_some() || next.assignee_id.is_some();
    if next.state == IncidentState::New && assigned {
        next.state = IncidentState::Assigned;
    }
    let at = now();
    let (updated, met) = apply_change(
        &txn,
        p,
        &before,
        next,
        ClockCause {
            responded: assigned,
        },
        at,
        &store.sla_thresholds,
    )
    .await?;
    txn.commit().await?;
    let kind = if before.state != updated.state {
        IncidentChangeKind::StateChanged
    } else {
        IncidentChangeKind::Updated
    };
    publish(store, kind, &before, &updated);
    publish_met(store, &updated, met, at);
    Ok(updated)
}

pub struct StateChange {
    pub id: i64,
    pub version: i32,
    pub state: IncidentState,
    pub resolution_code: Option<String>,
    pub resolution_notes: Option<String>,
}

/// Moves an incident through its lifecycle; illegal moves name the allowed ones.
pub async fn change_state(
    store: &Store,
    p: &Principal,
    input: StateChange,
) -> AppResult<incident::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_incident(&txn, p, input.id).await?;
    check_version("incident", input.version, before.version)?;
    check_transition("an incident", before.state, input.state)?;
    if input.state == IncidentState::Assigned
        && before.assignment_group_id.is_none()
        && before.assignee_id.is_none()
    {
        return Err(AppError::invalid_field(
            "state",
            "set an assignment group or assignee (assignIncident) before ASSIGNED",
        ));
    }
    let resolution = if input.state == IncidentState::Resolved {
        let code = clean_text("resolutionCode", input.resolution_code, 64)?.ok_or_else(|| {
            AppError::invalid_field("resolutionCode", "resolving needs a resolutionCode")
        })?;
        Some((
            code,
            clean_text("resolutionNotes", input.resolution_notes, 20_000)?,
        ))
    } else {
        None
    };
    let at = now();
    let next = moved(&before, input.state, resolution, at);
    let (updated, met) = apply_change(
        &txn,
        p,
        &before,
        next,
        ClockCause::default(),
        at,
        &store.sla_thresholds,
    )
    .await?;
    txn.commit().await?;
    publish(store, IncidentChangeKind::StateChanged, &before, &updated);
    publish_met(store, &updated, met, at);
    Ok(updated)
}

/// `before` moved to state `to` at `at` (the move is legal): a resolution is
/// recorded, a closing time set, and a reopening forgets the earlier resolution.
pub fn moved(
    before: &incident::Model,
    to: IncidentState,
    resolution: Option<(String, Option<String>)>,
    at: DateTime<Utc>,
) -> incident::Model {
    use IncidentState::*;
    let mut next = before.clone();
    next.state = to;
    match to {
        Resolved => {
            if let Some((code, notes)) = resolution {
                next.resolution_code = Some(code);
                next.resolution_notes = notes;
            }
            next.resolved_at = Some(at);
        }
        Closed => next.closed_at = Some(at),
        _ => {}
    }
    if before.state == Resolved && to == InProgress {
        // Reopened: the earlier resolution no longer holds.
        next.resolution_code = None;
        next.resolution_notes = None;
        next.resolved_at = None;
    }
    next
}

/// Saves `next` over `before` (version-bumped, audited) and moves the clocks
/// with it, in the caller's transaction. Answers the saved incident and the
/// clocks that just stopped within target.
pub async fn apply_change<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    before: &incident::Model,
    next: incident::Model,
    cause: ClockCause,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<(incident::Model, Vec<sla_clock::Model>)> {
    let updated = match save_versioned(db, p, before, next).await {
        Err(e) if e.is_unique_violation() => {
            // Only the open-alert index can refuse an update: a reopening
            // while a newer incident of the same alert is open.
            return Err(AppError::Conflict(format!(
                "incident {} cannot reopen: another open incident has the same alert key",
                before.number
            )));
        }
        other => other?,
    };
    let met = drive_clocks(db, p, before, &updated, cause, at, thresholds).await?;
    Ok((updated, met))
}

/// Adds a work note (staff only, never shown to requesters) or a comment
/// (visible to the customer). A closed incident takes no more entries. The
/// first comment by an agent is a response and stops the respond clock.
pub async fn add_note(
    store: &Store,
    p: &Principal,
    incident_id: i64,
    kind: NoteKind,
    body: String,
) -> AppResult<incident_note::Model> {
    if kind == NoteKind::WorkNote {
        p.require_staff()?;
    }
    let body = clean_text("body", Some(body), 20_000)?
        .ok_or_else(|| AppError::invalid_field("body", "body must not be empty"))?;
    let txn = begin_write(&store.db).await?;
    let inc = find_incident(&txn, p, incident_id).await?;
    refuse_if_closed(&inc, "a new comment or work note")?;
    let at = now();
    let note = audit::insert(
        &txn,
        p,
        incident_note::ActiveModel {
            id: NotSet,
            incident_id: Set(inc.id),
            customer_id: Set(inc.customer_id),
            kind: Set(kind),
            body: Set(body),
            author_subject: Set(p.subject.clone()),
            author_is_staff: Set(p.is_staff()),
            created_at: Set(at),
        },
    )
    .await?;
    let met = if kind == NoteKind::Comment && p.is_staff() {
        drive_clocks(
            &txn,
            p,
            &inc,
            &inc,
            ClockCause { responded: true },
            at,
            &store.sla_thresholds,
        )
        .await?
    } else {
        Vec::new()
    };
    txn.commit().await?;
    publish_met(store, &inc, met, at);
    store
        .events
        .publish(DomainEvent::IncidentChanged(Box::new(IncidentChanged {
            kind: IncidentChangeKind::Commented,
            changed_fields: Vec::new(),
            incident: inc,
            note: Some(note.clone()),
        })));
    Ok(note)
}

/// The open incidents (neither resolved nor closed) the caller may see that
/// name one of `ci_ids` as affected or whose service is one of `service_ids`:
/// impact analysis answers them. Newest first, at most `limit`, in one statement.
pub async fn open_incidents_touching<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    ci_ids: &[i64],
    service_ids: &[i64],
    limit: u64,
) -> AppResult<Vec<incident::Model>> {
    use sea_orm::{Condition, sea_query::Query};
    if ci_ids.is_empty() && service_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut touching = Condition::any();
    if !ci_ids.is_empty() {
        touching = touching.add(
            incident::Column::Id.in_subquery(
                Query::select()
                    .column(incident_affected_ci::Column::IncidentId)
                    .from(incident_affected_ci::Entity)
                    .and_where(incident_affected_ci::Column::CiId.is_in(ci_ids.iter().copied()))
                    .to_owned(),
            ),
        );
    }
    if !service_ids.is_empty() {
        touching = touching.add(incident::Column::ServiceId.is_in(service_ids.iter().copied()));
    }
    Ok(incident::Entity::find()
        .filter(crate::records::scope_to(p, incident::Column::CustomerId))
        .filter(incident::Column::State.is_not_in([IncidentState::Resolved, IncidentState::Closed]))
        .filter(touching)
        .order_by_desc(incident::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

//! Problems' records: who sees them, their numbers, and every write (create,
//! update, state, notes, incident links), each in one transaction with its
//! audit events and its event published after commit.

use chrono::{DateTime, Utc};
use entity::{
    enums::{IncidentState, NoteKind, OrganizationKind, ProblemState},
    incident, organization, problem, problem_affected_ci, problem_incident, problem_note,
};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ModelTrait,
    QueryFilter, QueryOrder, Set, sea_query::Query,
};

use super::{ProblemChangeKind, ProblemChanged, rules};
use crate::processes::{
    catalogue,
    cmdb::{AffectedBy, check_affected_cis},
    directory::check_assignment,
    incident as incidents, sla,
};
use crate::records::lifecycle::Lifecycle;
use crate::records::{
    Store, audit, check_version, clean_name, clean_text, conflict_on_unique, ensure_free,
    find_visible, now, numbers::Numbering, save_versioned, scope_to,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::DomainEvent,
    processes::incident::IncidentChangeKind,
};

/// Who sees a problem: the staff of its organization, and anyone who sees
/// one of its linked incidents (a requester reads a problem only through an
/// incident of their own organization, never the provider's other work).
pub fn visible_condition(p: &Principal) -> Condition {
    let Some(orgs) = p.visible_organizations() else {
        return if p.is_staff() {
            Condition::all()
        } else {
            // A requester with every organization in scope does not exist;
            // if one did, links decide for them like for any requester.
            Condition::all().add(
                problem::Column::Id.in_subquery(
                    Query::select()
                        .column(problem_incident::Column::ProblemId)
                        .from(problem_incident::Entity)
                        .to_owned(),
                ),
            )
        };
    };
    let through_links = problem::Column::Id.in_subquery(
        Query::select()
            .column(problem_incident::Column::ProblemId)
            .from(problem_incident::Entity)
            .and_where(problem_incident::Column::OrganizationId.is_in(orgs.iter().copied()))
            .to_owned(),
    );
    let mut any = Condition::any().add(through_links);
    if p.is_staff() {
        any = any.add(scope_to(p, problem::Column::OrganizationId));
    }
    any
}

/// The rule of [`visible_condition`] for one problem.
pub async fn can_see_problem<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    pr: &problem::Model,
) -> AppResult<bool> {
    if p.is_staff() && p.can_see(pr.organization_id) {
        return Ok(true);
    }
    let customers = incident_customers(db, pr.id).await?;
    Ok(customers.iter().any(|c| p.can_see(*c)))
}

/// A problem the caller may see, or `NOT_FOUND`.
pub async fn find_problem<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<problem::Model> {
    match problem::Entity::find_by_id(id).one(db).await? {
        Some(pr) if can_see_problem(db, p, &pr).await? => Ok(pr),
        _ => Err(AppError::not_found("problem")),
    }
}

/// A problem the caller may change: one of an organization they serve
/// (seeing it through a linked incident is not enough), else `NOT_FOUND`.
async fn find_to_change<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<problem::Model> {
    find_visible::<problem::Entity, _>(db, p, id, "problem").await
}

/// The distinct customers of a problem's linked incidents.
pub async fn incident_customers<C: ConnectionTrait>(
    db: &C,
    problem_id: i64,
) -> AppResult<Vec<i64>> {
    let mut out: Vec<i64> = problem_incident::Entity::find()
        .filter(problem_incident::Column::ProblemId.eq(problem_id))
        .all(db)
        .await?
        .into_iter()
        .map(|l| l.organization_id)
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Problem numbers: migration `m20261206_000011` made the function.
const NUMBERS: Numbering = Numbering {
    function: "next_problem_numbers",
    counters: "problem_counters",
};

/// A fresh number of an organization, as incidents' numbers are reserved.
async fn next_number<C: ConnectionTrait>(db: &C, organization_id: i64) -> AppResult<String> {
    let n = NUMBERS.reserve(db, organization_id, 1).await?;
    let n = n.first().ok_or_else(|| {
        AppError::internal(std::io::Error::other("the problem number was not reserved"))
    })?;
    Ok(format!("PRB-{n:06}"))
}

/// A problem names its organization's CIs and the provider's; a provider's
/// problem may name any customer's CI the caller sees.
fn affected_by(owner: &organization::Model) -> AffectedBy<'static> {
    AffectedBy {
        record: "a problem",
        owner: "the problem's organization",
        organization_id: owner.id,
        any_organization: owner.kind == OrganizationKind::Provider,
    }
}

/// Makes `ids` the affected CIs of `pr`, each link's coming and going
/// audited. Answers whether anything changed.
async fn set_affected_cis<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    pr: &problem::Model,
    ids: &[i64],
    at: DateTime<Utc>,
) -> AppResult<bool> {
    let existing = problem_affected_ci::Entity::find()
        .filter(problem_affected_ci::Column::ProblemId.eq(pr.id))
        .order_by_asc(problem_affected_ci::Column::Id)
        .all(db)
        .await?;
    audit::sync_links(
        db,
        p,
        existing,
        |l: &problem_affected_ci::Model| l.ci_id,
        ids,
        |ci_id| problem_affected_ci::ActiveModel {
            id: NotSet,
            problem_id: Set(pr.id),
            ci_id: Set(ci_id),
            organization_id: Set(pr.organization_id),
            created_at: Set(at),
        },
    )
    .await
}

/// Publishes a committed change (nothing when nothing changed).
fn publish(
    store: &Store,
    kind: ProblemChangeKind,
    before: Option<&problem::Model>,
    after: &problem::Model,
    incident_customers: Vec<i64>,
    note: Option<problem_note::Model>,
    incident_id: Option<i64>,
) {
    let changed_fields = match before {
        Some(b) if b == after && note.is_none() && incident_id.is_none() => return,
        Some(b) => audit::changed_fields(b, after),
        None => Vec::new(),
    };
    store
        .events
        .publish(DomainEvent::ProblemChanged(Box::new(ProblemChanged {
            kind,
            problem: after.clone(),
            changed_fields,
            note,
            incident_id,
            incident_customers,
        })));
}

pub struct NewProblem {
    /// Defaults to the caller's organization (the provider, for its agents).
    pub organization_id: Option<i64>,
    pub title: String,
    pub description: Option<String>,
    pub symptoms: Option<String>,
    pub impact: i32,
    pub urgency: i32,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub affected_ci_ids: Vec<i64>,
}

/// Records a problem (staff), NEW, its priority from the incidents' matrix.
pub async fn create_problem(
    store: &Store,
    p: &Principal,
    input: NewProblem,
) -> AppResult<problem::Model> {
    let organization_id = input.organization_id.unwrap_or(p.organization_id);
    if !p.can_see(organization_id) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let (title, _) = clean_name("title", &input.title, 200)?;
    let description = clean_text("description", input.description, 20_000)?;
    let symptoms = clean_text("symptoms", input.symptoms, 20_000)?;
    let root_cause = clean_text("rootCause", input.root_cause, 20_000)?;
    let workaround = clean_text("workaround", input.workaround, 20_000)?;
    sla::check_level("impact", input.impact)?;
    sla::check_level("urgency", input.urgency)?;

    let txn = begin_write(&store.db).await?;
    let owner = organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    if let Some(s) = input.service_id {
        catalogue::find_service(&txn, p, s)
            .await
            .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
    }
    check_assignment(&txn, p, input.assignment_group_id, input.assignee_id).await?;
    let affected =
        check_affected_cis(&txn, p, &affected_by(&owner), &input.affected_ci_ids).await?;
    let priority = sla::priority_for(&txn, input.impact, input.urgency).await?;
    let at = now();
    // The number last: on SQLite the counter row stays locked until commit.
    let number = next_number(&txn, organization_id).await?;
    let created = audit::insert(
        &txn,
        p,
        problem::ActiveModel {
            id: NotSet,
            organization_id: Set(organization_id),
            number: Set(number),
            title: Set(title),
            description: Set(description),
            symptoms: Set(symptoms),
            impact: Set(input.impact),
            urgency: Set(input.urgency),
            priority: Set(priority),
            state: Set(ProblemState::New),
            service_id: Set(input.service_id),
            assignment_group_id: Set(input.assignment_group_id),
            assignee_id: Set(input.assignee_id),
            root_cause: Set(root_cause),
            workaround: Set(workaround),
            resolution: Set(None),
            reporter_subject: Set(p.subject.clone()),
            known_error_at: Set(None),
            resolved_at: Set(None),
            closed_at: Set(None),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        },
    )
    .await?;
    set_affected_cis(&txn, p, &created, &affected, at).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::Created,
        None,
        &created,
        Vec::new(),
        None,
        None,
    );
    Ok(created)
}

fn refuse_if_final(pr: &problem::Model, what: &str) -> AppResult<()> {
    if matches!(pr.state, ProblemState::Closed | ProblemState::Cancelled) {
        return Err(AppError::Conflict(format!(
            "problem {} is {}: {what} is refused",
            pr.number,
            pr.state.name().to_lowercase()
        )));
    }
    Ok(())
}

pub struct ProblemPatch {
    pub id: i64,
    pub version: i32,
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub symptoms: Option<Option<String>>,
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    pub service_id: Option<Option<i64>>,
    pub assignment_group_id: Option<Option<i64>>,
    pub assignee_id: Option<Option<i64>>,
    pub root_cause: Option<Option<String>>,
    pub workaround: Option<Option<String>>,
    pub resolution: Option<Option<String>>,
    /// Replaces the affected CIs.
    pub affected_ci_ids: Option<Vec<i64>>,
}

fn text_patch(
    field: &str,
    target: &mut Option<String>,
    value: Option<Option<String>>,
) -> AppResult<()> {
    if let Some(v) = value {
        *target = clean_text(field, v, 20_000)?;
    }
    Ok(())
}

/// Changes a problem's fields (staff, the version read). A known error keeps
/// its workaround or root cause, a resolved problem its resolution.
pub async fn update_problem(
    store: &Store,
    p: &Principal,
    input: ProblemPatch,
) -> AppResult<problem::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_to_change(&txn, p, input.id).await?;
    check_version("problem", input.version, before.version)?;
    refuse_if_final(&before, "a change")?;
    let mut next = before.clone();
    if let Some(t) = &input.title {
        next.title = clean_name("title", t, 200)?.0;
    }
    text_patch("description", &mut next.description, input.description)?;
    text_patch("symptoms", &mut next.symptoms, input.symptoms)?;
    text_patch("rootCause", &mut next.root_cause, input.root_cause)?;
    text_patch("workaround", &mut next.workaround, input.workaround)?;
    text_patch("resolution", &mut next.resolution, input.resolution)?;
    if let Some(i) = input.impact {
        sla::check_level("impact", i)?;
        next.impact = i;
    }
    if let Some(u) = input.urgency {
        sla::check_level("urgency", u)?;
        next.urgency = u;
    }
    if next.impact != before.impact || next.urgency != before.urgency {
        next.priority = sla::priority_for(&txn, next.impact, next.urgency).await?;
    }
    if let Some(s) = input.service_id {
        if let Some(id) = s {
            catalogue::find_service(&txn, p, id)
                .await
                .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
        }
        next.service_id = s;
    }
    if let Some(g) = input.assignment_group_id {
        next.assignment_group_id = g;
    }
    if let Some(a) = input.assignee_id {
        next.assignee_id = a;
    }
    check_assignment(
        &txn,
        p,
        next.assignment_group_id
            .filter(|_| input.assignment_group_id.is_some()),
        next.assignee_id.filter(|_| input.assignee_id.is_some()),
    )
    .await?;
    rules::check_requirements(&next)?;
    let at = now();
    if let Some(ids) = &input.affected_ci_ids {
        let owner = organization::Entity::find_by_id(before.organization_id)
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::not_found("organization"))?;
        let ids = check_affected_cis(&txn, p, &affected_by(&owner), ids).await?;
        if set_affected_cis(&txn, p, &before, &ids, at).await? {
            // The problem changed: its version moves, so a stale editor is refused.
            next.updated_at = at;
        }
    }
    let updated = save_versioned(&txn, p, &before, next).await?;
    let customers = incident_customers(&txn, updated.id).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::Updated,
        Some(&before),
        &updated,
        customers,
        None,
        None,
    );
    Ok(updated)
}

pub struct ProblemStateChange {
    pub id: i64,
    pub version: i32,
    pub state: ProblemState,
    /// Set with the move (e.g. the resolution when resolving); `None` keeps.
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub resolution: Option<String>,
    /// On RESOLVED: resolve the linked incidents still open (that the caller sees).
    pub resolve_linked_incidents: bool,
}

/// The resolution code an incident resolved with its problem gets.
pub const RESOLVED_BY_PROBLEM: &str = "RESOLVED_BY_PROBLEM";

/// Moves a problem through its lifecycle; illegal moves name the allowed
/// ones. Resolving may resolve its open linked incidents in the same
/// transaction, each audited and announced as an incident change. Answers
/// the problem and the incidents it resolved.
pub async fn change_problem_state(
    store: &Store,
    p: &Principal,
    input: ProblemStateChange,
) -> AppResult<(problem::Model, Vec<incident::Model>)> {
    let root_cause = clean_text("rootCause", input.root_cause, 20_000)?;
    let workaround = clean_text("workaround", input.workaround, 20_000)?;
    let resolution = clean_text("resolution", input.resolution, 20_000)?;
    if input.resolve_linked_incidents && input.state != ProblemState::Resolved {
        return Err(AppError::invalid_field(
            "resolveLinkedIncidents",
            "linked incidents are resolved only when the problem is resolved",
        ));
    }
    let txn = begin_write(&store.db).await?;
    let before = find_to_change(&txn, p, input.id).await?;
    check_version("problem", input.version, before.version)?;
    rules::check_transition(before.state, input.state)?;
    let at = now();
    let mut next = rules::moved(&before, input.state, at);
    next.root_cause = root_cause.or(next.root_cause);
    next.workaround = workaround.or(next.workaround);
    next.resolution = resolution.or(next.resolution);
    rules::check_requirements(&next)?;
    let updated = save_versioned(&txn, p, &before, next).await?;

    let mut resolved = Vec::new();
    if input.resolve_linked_incidents {
        let linked: Vec<i64> = problem_incident::Entity::find()
            .filter(problem_incident::Column::ProblemId.eq(updated.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|l| l.incident_id)
            .collect();
        let open = incident::Entity::find()
            .filter(incident::Column::Id.is_in(linked))
            .filter(scope_to(p, incident::Column::CustomerId))
            .filter(
                incident::Column::State.is_not_in([IncidentState::Resolved, IncidentState::Closed]),
            )
            .order_by_asc(incident::Column::Id)
            .all(&txn)
            .await?;
        let notes = format!(
            "Resolved with problem {}: {}",
            updated.number,
            updated.resolution.as_deref().unwrap_or_default()
        );
        for inc in open {
            crate::records::lifecycle::check_transition(
                "an incident",
                inc.state,
                IncidentState::Resolved,
            )?;
            let next = incidents::moved(
                &inc,
                IncidentState::Resolved,
                Some((RESOLVED_BY_PROBLEM.to_owned(), Some(notes.clone()))),
                at,
            );
            let (after, met) = incidents::apply_change(
                &txn,
                p,
                &inc,
                next,
                incidents::ClockCause::default(),
                at,
                &store.sla_thresholds,
            )
            .await?;
            resolved.push((inc, after, met));
        }
    }
    let customers = incident_customers(&txn, updated.id).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::StateChanged,
        Some(&before),
        &updated,
        customers,
        None,
        None,
    );
    let mut out = Vec::with_capacity(resolved.len());
    for (before, after, met) in resolved {
        incidents::publish(store, IncidentChangeKind::StateChanged, &before, &after);
        incidents::publish_met(store, &after, met, at);
        out.push(after);
    }
    Ok((updated, out))
}

/// Adds a work note (internal) or a comment (readable by requesters who see
/// the problem) to the timeline. A closed or cancelled problem takes no more.
pub async fn add_problem_note(
    store: &Store,
    p: &Principal,
    problem_id: i64,
    kind: NoteKind,
    body: String,
) -> AppResult<problem_note::Model> {
    let body = clean_text("body", Some(body), 20_000)?
        .ok_or_else(|| AppError::invalid_field("body", "body must not be empty"))?;
    let txn = begin_write(&store.db).await?;
    let pr = find_to_change(&txn, p, problem_id).await?;
    refuse_if_final(&pr, "a new note")?;
    let note = audit::insert(
        &txn,
        p,
        problem_note::ActiveModel {
            id: NotSet,
            problem_id: Set(pr.id),
            organization_id: Set(pr.organization_id),
            kind: Set(kind),
            body: Set(body),
            author_subject: Set(p.subject.clone()),
            created_at: Set(now()),
        },
    )
    .await?;
    let customers = incident_customers(&txn, pr.id).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::Commented,
        Some(&pr),
        &pr,
        customers,
        Some(note.clone()),
        None,
    );
    Ok(note)
}

/// The incident to link or unlink: one the caller sees, and of the problem's
/// organization unless the problem is the provider's (a provider's problem
/// spans customers). Any other is answered `NOT_FOUND`, like a missing one.
async fn linkable_incident<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    pr: &problem::Model,
    incident_id: i64,
) -> AppResult<incident::Model> {
    let inc = incidents::find_incident(db, p, incident_id).await?;
    if inc.customer_id != pr.organization_id {
        let owner = organization::Entity::find_by_id(pr.organization_id)
            .one(db)
            .await?;
        if owner.is_none_or(|o| o.kind != OrganizationKind::Provider) {
            return Err(AppError::not_found("incident"));
        }
    }
    Ok(inc)
}

/// Links an incident to a problem (staff). A second link of the same pair is
/// a `CONFLICT`; a closed or cancelled problem takes no new incident.
pub async fn link_incident(
    store: &Store,
    p: &Principal,
    problem_id: i64,
    incident_id: i64,
) -> AppResult<(problem::Model, incident::Model)> {
    let txn = begin_write(&store.db).await?;
    let pr = find_to_change(&txn, p, problem_id).await?;
    let inc = linkable_incident(&txn, p, &pr, incident_id).await?;
    refuse_if_final(&pr, "linking an incident")?;
    let duplicate = || {
        format!(
            "incident {} is already linked to problem {}",
            inc.number, pr.number
        )
    };
    ensure_free::<problem_incident::Entity, _>(
        &txn,
        Condition::all()
            .add(problem_incident::Column::ProblemId.eq(pr.id))
            .add(problem_incident::Column::IncidentId.eq(inc.id)),
        None,
        |_| duplicate(),
    )
    .await?;
    audit::insert(
        &txn,
        p,
        problem_incident::ActiveModel {
            id: NotSet,
            problem_id: Set(pr.id),
            incident_id: Set(inc.id),
            organization_id: Set(inc.customer_id),
            created_at: Set(now()),
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, &duplicate()))?;
    let customers = incident_customers(&txn, pr.id).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::IncidentLinked,
        Some(&pr),
        &pr,
        customers,
        None,
        Some(inc.id),
    );
    Ok((pr, inc))
}

/// Removes an incident's link to a problem (staff); a missing link is `NOT_FOUND`.
pub async fn unlink_incident(
    store: &Store,
    p: &Principal,
    problem_id: i64,
    incident_id: i64,
) -> AppResult<(problem::Model, incident::Model)> {
    let txn = begin_write(&store.db).await?;
    let pr = find_to_change(&txn, p, problem_id).await?;
    let inc = linkable_incident(&txn, p, &pr, incident_id).await?;
    let link = problem_incident::Entity::find()
        .filter(problem_incident::Column::ProblemId.eq(pr.id))
        .filter(problem_incident::Column::IncidentId.eq(inc.id))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("link between the problem and the incident"))?;
    // Announced to the customers that saw it through this link, too.
    let customers = incident_customers(&txn, pr.id).await?;
    link.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&link), None).await?;
    txn.commit().await?;
    publish(
        store,
        ProblemChangeKind::IncidentUnlinked,
        Some(&pr),
        &pr,
        customers,
        None,
        Some(inc.id),
    );
    Ok((pr, inc))
}

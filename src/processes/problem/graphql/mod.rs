//! Problem management's API: problems and known errors, their timeline and
//! links to incidents, trend analysis, and the `problemChanged` subscription.
//! Mutations are in `mutations.rs`.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use entity::{enums, problem, problem_note};
use futures_util::{Stream, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

mod mutations;

use crate::auth::Staff;
use crate::graphql::{
    args::optional_ref,
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, page},
};
use crate::processes::{
    catalogue::graphql::Service,
    cmdb::graphql::ConfigurationItem,
    directory::graphql::{Organization, SupportGroup, User},
    incident::graphql::{Incident, NoteKind},
    sla::graphql::Priority,
};
use crate::records::lifecycle::Lifecycle;
use crate::{error::AppError, processes::problem as domain};
pub use mutations::ProblemMutation;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ProblemState")]
pub enum ProblemState {
    New,
    UnderInvestigation,
    /// A known-error record: the cause or a workaround is documented.
    KnownError,
    Resolved,
    /// Final.
    Closed,
    /// Final.
    Cancelled,
}

/// A problem (ISO/IEC 20000-1 8.6.3); in KNOWN_ERROR, a known-error record.
pub struct Problem(pub problem::Model);

#[Object]
impl Problem {
    pub async fn id(&self) -> ID {
        ids::encode("Problem", self.0.id)
    }
    /// Unique per organization, e.g. `PRB-000123`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// What users and monitoring observe.
    async fn symptoms(&self) -> Option<&str> {
        self.0.symptoms.as_deref()
    }
    /// 1 (high) to 3 (low).
    async fn impact(&self) -> i32 {
        self.0.impact
    }
    /// 1 (high) to 3 (low).
    async fn urgency(&self) -> i32 {
        self.0.urgency
    }
    /// From impact and urgency through the incidents' priority matrix.
    async fn priority(&self) -> Priority {
        self.0.priority.into()
    }
    async fn state(&self) -> ProblemState {
        self.0.state.into()
    }
    /// The states it may move to next.
    async fn allowed_transitions(&self) -> Vec<ProblemState> {
        self.0.state.allowed().iter().map(|s| (*s).into()).collect()
    }
    /// The customer or the provider owning it.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        let Some(id) = self.0.service_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().service, id).await?.map(Service))
    }
    async fn assignment_group(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SupportGroup>> {
        let Some(id) = self.0.assignment_group_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().support_group, id)
            .await?
            .map(SupportGroup))
    }
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.assignee_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().user, id).await?.map(User))
    }
    async fn root_cause(&self) -> Option<&str> {
        self.0.root_cause.as_deref()
    }
    /// How to restore service until the cause is removed; shown on linked incidents.
    async fn workaround(&self) -> Option<&str> {
        self.0.workaround.as_deref()
    }
    /// Required to resolve.
    async fn resolution(&self) -> Option<&str> {
        self.0.resolution.as_deref()
    }
    /// The token subject of whoever recorded it.
    async fn reporter_subject(&self) -> &str {
        &self.0.reporter_subject
    }
    async fn known_error_at(&self) -> Option<DateTime<Utc>> {
        self.0.known_error_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// When it was closed or cancelled.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// The CIs it names as affected (those the caller may see), by id.
    async fn affected_cis(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ConfigurationItem>> {
        let p = ctx.principal()?;
        let links = load(&ctx.loaders().affected_cis_by_problem, self.0.id)
            .await?
            .unwrap_or_default();
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let cis = ctx
            .loaders()
            .configuration_item
            .load_many(links.iter().map(|l| l.ci_id))
            .await
            .map_err(AppError::internal)?;
        let mut out: Vec<_> = cis
            .into_values()
            .filter(|c| p.can_see(c.organization_id))
            .collect();
        out.sort_by_key(|c| c.id);
        Ok(out.into_iter().map(ConfigurationItem).collect())
    }
    /// The linked incidents the caller may see, oldest link first.
    async fn incidents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Incident>> {
        let p = ctx.principal()?;
        let mut links = load(&ctx.loaders().problem_links_by_problem, self.0.id)
            .await?
            .unwrap_or_default();
        links.retain(|l| p.can_see(l.organization_id));
        links.sort_by_key(|l| l.id);
        let mut found = ctx
            .loaders()
            .incident
            .load_many(links.iter().map(|l| l.incident_id))
            .await
            .map_err(AppError::internal)?;
        Ok(links
            .iter()
            .filter_map(|l| found.remove(&l.incident_id))
            .filter(|i| p.can_see(i.customer_id))
            .map(Incident)
            .collect())
    }
    /// Work notes and comments, oldest first; requesters see only comments.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProblemNote>> {
        let p = ctx.principal()?;
        let mut notes = load(&ctx.loaders().notes_by_problem, self.0.id)
            .await?
            .unwrap_or_default();
        notes.retain(|n| p.is_staff() || n.kind == enums::NoteKind::Comment);
        notes.sort_by_key(|n| n.id);
        Ok(notes.into_iter().map(ProblemNote).collect())
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

/// A timeline entry of a problem.
pub struct ProblemNote(pub problem_note::Model);

#[Object]
impl ProblemNote {
    async fn id(&self) -> ID {
        ids::encode("ProblemNote", self.0.id)
    }
    async fn kind(&self) -> NoteKind {
        self.0.kind.into()
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// The token subject of the author.
    async fn author_subject(&self) -> &str {
        &self.0.author_subject
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The problems linked to an incident that the caller may see (all of them
/// for whoever sees the incident), newest link first: `Incident.problems`.
pub async fn problems_of_incident(
    ctx: &Context<'_>,
    incident: &entity::incident::Model,
) -> async_graphql::Result<Vec<Problem>> {
    let p = ctx.principal()?;
    let mut links = load(&ctx.loaders().problem_links_by_incident, incident.id)
        .await?
        .unwrap_or_default();
    links.sort_by_key(|l| std::cmp::Reverse(l.id));
    let mut found = ctx
        .loaders()
        .problem
        .load_many(links.iter().map(|l| l.problem_id))
        .await
        .map_err(AppError::internal)?;
    Ok(links
        .iter()
        .filter_map(|l| {
            let pr = found.remove(&l.problem_id)?;
            let visible =
                p.can_see(l.organization_id) || (p.is_staff() && p.can_see(pr.organization_id));
            visible.then_some(Problem(pr))
        })
        .collect())
}

/// The workaround an incident shows from its linked problems: a known
/// error's first, else any other's, newest link first.
pub async fn workaround_of_incident(
    ctx: &Context<'_>,
    incident: &entity::incident::Model,
) -> async_graphql::Result<Option<String>> {
    let problems = problems_of_incident(ctx, incident).await?;
    let known = problems
        .iter()
        .filter(|pr| pr.0.state == enums::ProblemState::KnownError)
        .chain(problems.iter())
        .find_map(|pr| pr.0.workaround.clone());
    Ok(known)
}

#[derive(InputObject, Default)]
pub struct ProblemFilter {
    /// Any of these states.
    pub state: Option<Vec<ProblemState>>,
    pub priority: Option<Vec<Priority>>,
    pub organization_id: Option<ID>,
    pub service_id: Option<ID>,
    pub assignment_group_id: Option<ID>,
    pub assignee_id: Option<ID>,
}

/// What the incidents of a trend have in common.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ProblemCandidateKind {
    ConfigurationItem,
    ServiceCategory,
    AlertKey,
}

/// Incidents not yet linked to a problem that share a CI, a service and
/// category, or a monitoring alert key: a problem to consider.
pub struct ProblemCandidate {
    candidate: domain::ProblemCandidate,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

#[Object]
impl ProblemCandidate {
    async fn kind(&self) -> ProblemCandidateKind {
        match self.candidate.key {
            domain::CandidateKey::ConfigurationItem(_) => ProblemCandidateKind::ConfigurationItem,
            domain::CandidateKey::ServiceCategory { .. } => ProblemCandidateKind::ServiceCategory,
            domain::CandidateKey::AlertKey(_) => ProblemCandidateKind::AlertKey,
        }
    }
    /// The shared CI, for CONFIGURATION_ITEM.
    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ConfigurationItem>> {
        let domain::CandidateKey::ConfigurationItem(id) = self.candidate.key else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().configuration_item, id)
            .await?
            .map(ConfigurationItem))
    }
    /// The shared service, for SERVICE_CATEGORY.
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        let domain::CandidateKey::ServiceCategory { service_id, .. } = &self.candidate.key else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().service, *service_id)
            .await?
            .map(Service))
    }
    /// The shared category, for SERVICE_CATEGORY.
    async fn category(&self) -> Option<&str> {
        match &self.candidate.key {
            domain::CandidateKey::ServiceCategory { category, .. } => Some(category),
            _ => None,
        }
    }
    /// The shared monitoring dedup key, for ALERT_KEY.
    async fn alert_key(&self) -> Option<&str> {
        match &self.candidate.key {
            domain::CandidateKey::AlertKey(k) => Some(k),
            _ => None,
        }
    }
    async fn incident_count(&self) -> i64 {
        self.candidate.incident_count
    }
    /// When the first of its incidents was raised.
    async fn first_seen(&self) -> DateTime<Utc> {
        self.candidate.first_seen
    }
    /// When the last of its incidents was raised.
    async fn last_seen(&self) -> DateTime<Utc> {
        self.candidate.last_seen
    }
    /// Its incidents, newest first (at most `first`, 20 by default).
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i32,
    ) -> async_graphql::Result<Vec<Incident>> {
        let found = domain::candidate_incidents(
            &ctx.app().store.db,
            ctx.principal()?,
            &self.candidate.key,
            self.since,
            self.until,
            first as u64,
        )
        .await?;
        Ok(found.into_iter().map(Incident).collect())
    }
}

#[derive(Default)]
pub struct ProblemQuery;

#[Object]
impl ProblemQuery {
    async fn problem(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Problem> {
        let n = ids::expect(&id, "Problem", "id")?;
        Ok(Problem(
            domain::find_problem(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// Problems the caller may see, newest first: staff those of the
    /// organizations they serve, anyone those linked to incidents they see.
    async fn problems(
        &self,
        ctx: &Context<'_>,
        filter: Option<ProblemFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Problem>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = problem::Entity::find().filter(domain::visible_condition(p));
        if let Some(states) = f.state.filter(|s| !s.is_empty()) {
            q = q.filter(
                problem::Column::State.is_in(states.into_iter().map(enums::ProblemState::from)),
            );
        }
        if let Some(prios) = f.priority.filter(|s| !s.is_empty()) {
            q = q.filter(
                problem::Column::Priority.is_in(prios.into_iter().map(enums::Priority::from)),
            );
        }
        if let Some(o) = optional_ref(f.organization_id.as_ref(), "Organization", "organizationId")?
        {
            q = q.filter(problem::Column::OrganizationId.eq(o));
        }
        if let Some(s) = optional_ref(f.service_id.as_ref(), "Service", "serviceId")? {
            q = q.filter(problem::Column::ServiceId.eq(s));
        }
        if let Some(g) = optional_ref(
            f.assignment_group_id.as_ref(),
            "SupportGroup",
            "assignmentGroupId",
        )? {
            q = q.filter(problem::Column::AssignmentGroupId.eq(g));
        }
        if let Some(u) = optional_ref(f.assignee_id.as_ref(), "User", "assigneeId")? {
            q = q.filter(problem::Column::AssigneeId.eq(u));
        }
        page(
            ctx,
            q,
            Keyset::<problem::Entity>::by_id(true),
            PageArgs::new(first, after, last, before),
            Problem,
        )
        .await
    }

    /// Known-error records whose title, symptoms or workaround contain
    /// `search` (case-insensitive), newest first: "is this a known issue?".
    async fn known_errors(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Problem>> {
        let q = domain::known_errors_query(ctx.principal()?, search.as_deref());
        page(
            ctx,
            q,
            Keyset::<problem::Entity>::by_id(true),
            PageArgs::new(first, after, last, before),
            Problem,
        )
        .await
    }

    /// Trend analysis (agents): groups of at least `minIncidents` incidents
    /// raised in `[since, until)` (the last 30 days by default) and not yet
    /// linked to a problem, sharing a CI, a service and category, or a
    /// monitoring alert key; largest first.
    #[graphql(guard = "Staff")]
    async fn problem_candidates(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        #[graphql(default = 3)] min_incidents: i32,
    ) -> async_graphql::Result<Vec<ProblemCandidate>> {
        let until = until.unwrap_or_else(crate::records::now);
        let since = since.unwrap_or(until - chrono::Duration::days(30));
        let found = domain::problem_candidates(
            &ctx.app().store.db,
            ctx.principal()?,
            since,
            until,
            i64::from(min_incidents),
        )
        .await?;
        Ok(found
            .into_iter()
            .map(|candidate| ProblemCandidate {
                candidate,
                since,
                until,
            })
            .collect())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::problem::ProblemChangeKind")]
pub enum ProblemChangeKind {
    Created,
    Updated,
    StateChanged,
    Commented,
    IncidentLinked,
    IncidentUnlinked,
}

/// A committed change to a problem.
#[derive(SimpleObject)]
pub struct ProblemChangedEvent {
    pub kind: ProblemChangeKind,
    pub problem: Problem,
    /// Names of the stored fields that changed (empty on creation, notes and links).
    pub changed_fields: Vec<String>,
    /// The timeline entry, for COMMENTED.
    pub note: Option<ProblemNote>,
    /// The incident linked or unlinked, for INCIDENT_LINKED and INCIDENT_UNLINKED.
    pub incident_id: Option<ID>,
}

#[derive(InputObject, Default)]
pub struct ProblemChangedFilter {
    pub organization_id: Option<ID>,
    pub service_id: Option<ID>,
    pub problem_id: Option<ID>,
    /// Any of these states (after the change).
    pub state: Option<Vec<ProblemState>>,
}

#[derive(Default)]
pub struct ProblemSubscription;

#[Subscription]
impl ProblemSubscription {
    /// Problems created, updated, moved, noted or (un)linked, as the caller
    /// may see them: requesters only problems linked to their organization's
    /// incidents, and never work notes.
    async fn problem_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<ProblemChangedFilter>,
    ) -> async_graphql::Result<impl Stream<Item = ProblemChangedEvent> + use<>> {
        let p = ctx.principal()?.clone();
        let f = filter.unwrap_or_default();
        let org = optional_ref(f.organization_id.as_ref(), "Organization", "organizationId")?;
        let service = optional_ref(f.service_id.as_ref(), "Service", "serviceId")?;
        let only = optional_ref(f.problem_id.as_ref(), "Problem", "problemId")?;
        let states: Option<Vec<enums::ProblemState>> = f
            .state
            .filter(|s| !s.is_empty())
            .map(|s| s.into_iter().map(Into::into).collect());
        let events = ctx.app().store.events.stream();
        Ok(events.filter_map(move |ev| {
            let out = match &*ev {
                crate::events::DomainEvent::ProblemChanged(c)
                    if c.visible_to(&p)
                        && org.is_none_or(|id| id == c.problem.organization_id)
                        && service.is_none_or(|id| Some(id) == c.problem.service_id)
                        && only.is_none_or(|id| id == c.problem.id)
                        && states.as_ref().is_none_or(|s| s.contains(&c.problem.state))
                        && !(p.is_customer_view()
                            && c.note
                                .as_ref()
                                .is_some_and(|n| n.kind == enums::NoteKind::WorkNote)) =>
                {
                    Some(ProblemChangedEvent {
                        kind: c.kind.into(),
                        problem: Problem(c.problem.clone()),
                        changed_fields: c.changed_fields.clone(),
                        note: c.note.clone().map(ProblemNote),
                        incident_id: c.incident_id.map(|i| ids::encode("Incident", i)),
                    })
                }
                _ => None,
            };
            futures_util::future::ready(out)
        }))
    }
}

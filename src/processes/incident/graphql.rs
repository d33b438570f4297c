//! Incident management: incidents with their clocks and timeline, the state
//! machine, and the `incidentChanged` subscription.

use async_graphql::{
    Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use entity::{enums, incident, incident_note};
use futures_util::{Stream, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::auth::Staff;
use crate::graphql::{
    args::{maybe, patch_ref, refs},
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, page},
};
use crate::processes::{
    catalogue::graphql::Service,
    cmdb::graphql::ConfigurationItem,
    directory::graphql::{Organization, SupportGroup, User},
    sla::graphql::{Priority, Sla, SlaClock},
};
use crate::records::lifecycle::Lifecycle;
use crate::records::scope_to;
use crate::{
    error::AppError, events::DomainEvent, processes::incident as domain,
    processes::incident::IncidentChangeKind,
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::IncidentState")]
pub enum IncidentState {
    New,
    Assigned,
    InProgress,
    /// Pending the customer or a supplier: SLA clocks pause.
    OnHold,
    Resolved,
    /// Final.
    Closed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::IncidentSource")]
pub enum IncidentSource {
    Portal,
    Agent,
    Monitoring,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::NoteKind")]
pub enum NoteKind {
    /// Internal; never shown to requesters.
    WorkNote,
    /// Visible to the customer.
    Comment,
}

/// An incident (ISO/IEC 20000-1 8.6.1).
pub struct Incident(pub incident::Model);

#[Object]
impl Incident {
    pub async fn id(&self) -> ID {
        ids::encode("Incident", self.0.id)
    }
    /// Unique per customer, e.g. `INC-000123`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// 1 (high) to 3 (low).
    async fn impact(&self) -> i32 {
        self.0.impact
    }
    /// 1 (high) to 3 (low).
    async fn urgency(&self) -> i32 {
        self.0.urgency
    }
    /// Derived from impact and urgency through the priority matrix.
    async fn priority(&self) -> Priority {
        self.0.priority.into()
    }
    /// A major incident.
    async fn major(&self) -> bool {
        self.0.major
    }
    async fn state(&self) -> IncidentState {
        self.0.state.into()
    }
    /// The states it may move to next.
    async fn allowed_transitions(&self) -> Vec<IncidentState> {
        self.0.state.allowed().iter().map(|s| (*s).into()).collect()
    }
    async fn source(&self) -> IncidentSource {
        self.0.source.into()
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// The token subject of whoever raised it.
    async fn reporter_subject(&self) -> &str {
        &self.0.reporter_subject
    }
    async fn reporter(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.reporter_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().user, id).await?.map(User))
    }
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.customer_id)
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
    async fn resolution_code(&self) -> Option<&str> {
        self.0.resolution_code.as_deref()
    }
    async fn resolution_notes(&self) -> Option<&str> {
        self.0.resolution_notes.as_deref()
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// The CIs the incident names as affected (those the caller may see), by id.
    async fn affected_cis(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ConfigurationItem>> {
        let p = ctx.principal()?;
        let links = load(&ctx.loaders().affected_cis_by_incident, self.0.id)
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
    /// The SLA attached when the incident was raised (customer + service, in force then).
    async fn sla(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Sla>> {
        let Some(id) = self.0.sla_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().sla, id).await?.map(Sla))
    }
    /// The respond and resolve clocks; empty when no SLA applies.
    async fn clocks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SlaClock>> {
        let mut clocks = load(&ctx.loaders().clocks_by_incident, self.0.id)
            .await?
            .unwrap_or_default();
        clocks.sort_by_key(|c| c.clock.kind == enums::ClockKind::Resolve);
        Ok(clocks
            .into_iter()
            .map(|c| SlaClock::with_calendar(c.clock, c.calendar))
            .collect())
    }
    /// Work notes and comments, oldest first; requesters see only comments.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<IncidentNote>> {
        let p = ctx.principal()?;
        let mut notes = load(&ctx.loaders().notes_by_incident, self.0.id)
            .await?
            .unwrap_or_default();
        notes.retain(|n| p.is_staff() || n.kind == enums::NoteKind::Comment);
        notes.sort_by_key(|n| n.id);
        Ok(notes.into_iter().map(IncidentNote).collect())
    }
    /// The monitoring alert behind an incident raised by an integration
    /// (its key, count, labels, flapping); staff only, null otherwise.
    async fn alert(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::processes::monitoring::graphql::IncidentAlert>> {
        crate::processes::monitoring::graphql::alert_of(ctx, self.0.id).await
    }
    /// The problems it is linked to, newest link first.
    async fn problems(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::processes::problem::graphql::Problem>> {
        crate::processes::problem::graphql::problems_of_incident(ctx, &self.0).await
    }
    /// The workaround of a linked problem (a known error's first).
    async fn workaround(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        crate::processes::problem::graphql::workaround_of_incident(ctx, &self.0).await
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

/// A timeline entry: a work note (internal) or a comment (customer-visible).
pub struct IncidentNote(pub incident_note::Model);

#[Object]
impl IncidentNote {
    async fn id(&self) -> ID {
        ids::encode("IncidentNote", self.0.id)
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
    /// Written by an agent or admin.
    async fn by_staff(&self) -> bool {
        self.0.author_is_staff
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject, Default)]
pub struct IncidentFilter {
    /// Any of these states.
    pub state: Option<Vec<IncidentState>>,
    pub priority: Option<Vec<Priority>>,
    pub customer_id: Option<ID>,
    pub service_id: Option<ID>,
    pub assignment_group_id: Option<ID>,
    pub assignee_id: Option<ID>,
    pub major: Option<bool>,
}

#[derive(Default)]
pub struct IncidentQuery;

#[Object]
impl IncidentQuery {
    /// Incidents of the customers the caller may see, newest first.
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        filter: Option<IncidentFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Incident>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = incident::Entity::find().filter(scope_to(p, incident::Column::CustomerId));
        if let Some(states) = f.state.filter(|s| !s.is_empty()) {
            q = q.filter(
                incident::Column::State.is_in(states.into_iter().map(enums::IncidentState::from)),
            );
        }
        if let Some(prios) = f.priority.filter(|s| !s.is_empty()) {
            q = q.filter(
                incident::Column::Priority.is_in(prios.into_iter().map(enums::Priority::from)),
            );
        }
        if let Some(c) = &f.customer_id {
            q = q.filter(incident::Column::CustomerId.eq(ids::reference(
                c,
                "Organization",
                "customerId",
            )?));
        }
        if let Some(s) = &f.service_id {
            q = q.filter(incident::Column::ServiceId.eq(ids::reference(
                s,
                "Service",
                "serviceId",
            )?));
        }
        if let Some(g) = &f.assignment_group_id {
            q = q.filter(incident::Column::AssignmentGroupId.eq(ids::reference(
                g,
                "SupportGroup",
                "assignmentGroupId",
            )?));
        }
        if let Some(u) = &f.assignee_id {
            q = q.filter(incident::Column::AssigneeId.eq(ids::reference(u, "User", "assigneeId")?));
        }
        if let Some(m) = f.major {
            q = q.filter(incident::Column::Major.eq(m));
        }
        let keyset = Keyset::<incident::Entity>::by_id(true);
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Incident,
        )
        .await
    }

    async fn incident(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Incident> {
        let n = ids::expect(&id, "Incident", "id")?;
        Ok(Incident(
            domain::find_incident(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }
}

#[derive(InputObject)]
pub struct CreateIncidentInput {
    pub title: String,
    pub description: Option<String>,
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    /// Defaults to the caller's organization.
    pub customer_id: Option<ID>,
    pub service_id: Option<ID>,
    /// Agents only; assigning at creation makes the incident ASSIGNED.
    pub assignment_group_id: Option<ID>,
    pub assignee_id: Option<ID>,
    /// Agents only.
    pub major: Option<bool>,
    /// PORTAL for requesters; AGENT by default for agents.
    pub source: Option<IncidentSource>,
    pub category: Option<String>,
    /// The configuration items affected: the customer's or the provider's
    /// (at most 100).
    pub affected_ci_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct UpdateIncidentInput {
    pub id: ID,
    /// The version you read; a stale one is refused with `CONFLICT`.
    pub version: i32,
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    /// A new impact or urgency re-derives the priority and retargets the clocks.
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    pub major: Option<bool>,
    pub category: MaybeUndefined<String>,
    /// Replaces the affected configuration items (`[]` removes them all).
    pub affected_ci_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct AssignIncidentInput {
    pub id: ID,
    pub version: i32,
    pub assignment_group_id: MaybeUndefined<ID>,
    pub assignee_id: MaybeUndefined<ID>,
}

#[derive(InputObject)]
pub struct ChangeIncidentStateInput {
    pub id: ID,
    pub version: i32,
    /// RESOLVED -> IN_PROGRESS reopens the incident.
    pub state: IncidentState,
    /// Required for RESOLVED.
    pub resolution_code: Option<String>,
    pub resolution_notes: Option<String>,
}

#[derive(InputObject)]
pub struct AddIncidentNoteInput {
    pub incident_id: ID,
    /// COMMENT (default, customer-visible) or WORK_NOTE (agents only).
    #[graphql(default_with = "NoteKind::Comment")]
    pub kind: NoteKind,
    pub body: String,
}

fn opt_ref(v: &Option<ID>, kind: &str, field: &str) -> Result<Option<i64>, AppError> {
    v.as_ref()
        .map(|id| ids::reference(id, kind, field))
        .transpose()
}

#[derive(Default)]
pub struct IncidentMutation;

#[Object]
impl IncidentMutation {
    /// Raises an incident; the SLA for its customer and service starts its clocks.
    async fn create_incident(
        &self,
        ctx: &Context<'_>,
        input: CreateIncidentInput,
    ) -> async_graphql::Result<Incident> {
        let p = ctx.principal()?;
        let new = domain::NewIncident {
            customer_id: opt_ref(&input.customer_id, "Organization", "customerId")?,
            title: input.title,
            description: input.description,
            impact: input.impact,
            urgency: input.urgency,
            major: input.major,
            service_id: opt_ref(&input.service_id, "Service", "serviceId")?,
            assignment_group_id: opt_ref(
                &input.assignment_group_id,
                "SupportGroup",
                "assignmentGroupId",
            )?,
            assignee_id: opt_ref(&input.assignee_id, "User", "assigneeId")?,
            source: input.source.map(Into::into),
            category: input.category,
            affected_ci_ids: refs(input.affected_ci_ids, "ConfigurationItem", "affectedCiIds")?
                .unwrap_or_default(),
        };
        let (created, _) = domain::create_incident(&ctx.app().store, p, new).await?;
        Ok(Incident(created))
    }

    /// Changes title, description, impact, urgency, major flag, category or the
    /// affected CIs (agents).
    #[graphql(guard = "Staff")]
    async fn update_incident(
        &self,
        ctx: &Context<'_>,
        input: UpdateIncidentInput,
    ) -> async_graphql::Result<Incident> {
        let p = ctx.principal()?;
        let patch = domain::IncidentPatch {
            id: ids::expect(&input.id, "Incident", "id")?,
            version: input.version,
            title: input.title,
            description: maybe(input.description),
            impact: input.impact,
            urgency: input.urgency,
            major: input.major,
            category: maybe(input.category),
            affected_ci_ids: refs(input.affected_ci_ids, "ConfigurationItem", "affectedCiIds")?,
        };
        Ok(Incident(
            domain::update_incident(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Sets the assignment group and assignee (agents); a NEW incident becomes ASSIGNED.
    #[graphql(guard = "Staff")]
    async fn assign_incident(
        &self,
        ctx: &Context<'_>,
        input: AssignIncidentInput,
    ) -> async_graphql::Result<Incident> {
        let p = ctx.principal()?;
        let id = ids::expect(&input.id, "Incident", "id")?;
        let group = patch_ref(
            input.assignment_group_id,
            "SupportGroup",
            "assignmentGroupId",
        )?;
        let assignee = patch_ref(input.assignee_id, "User", "assigneeId")?;
        Ok(Incident(
            domain::assign_incident(&ctx.app().store, p, id, input.version, group, assignee)
                .await?,
        ))
    }

    /// Moves an incident to another state (agents). Illegal moves are refused
    /// with `VALIDATION`, naming the allowed ones.
    #[graphql(guard = "Staff")]
    async fn change_incident_state(
        &self,
        ctx: &Context<'_>,
        input: ChangeIncidentStateInput,
    ) -> async_graphql::Result<Incident> {
        let p = ctx.principal()?;
        let change = domain::StateChange {
            id: ids::expect(&input.id, "Incident", "id")?,
            version: input.version,
            state: input.state.into(),
            resolution_code: input.resolution_code,
            resolution_notes: input.resolution_notes,
        };
        Ok(Incident(
            domain::change_state(&ctx.app().store, p, change).await?,
        ))
    }

    /// Adds a comment (anyone who sees the incident) or a work note (agents).
    /// A closed incident is refused with `CONFLICT`.
    async fn add_incident_note(
        &self,
        ctx: &Context<'_>,
        input: AddIncidentNoteInput,
    ) -> async_graphql::Result<IncidentNote> {
        let p = ctx.principal()?;
        let id = ids::expect(&input.incident_id, "Incident", "incidentId")?;
        Ok(IncidentNote(
            domain::add_note(&ctx.app().store, p, id, input.kind.into(), input.body).await?,
        ))
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IncidentChangeKind")]
pub enum IncidentChangeKindGql {
    Created,
    Updated,
    StateChanged,
    Commented,
}

impl From<IncidentChangeKind> for IncidentChangeKindGql {
    fn from(k: IncidentChangeKind) -> Self {
        match k {
            IncidentChangeKind::Created => Self::Created,
            IncidentChangeKind::Updated => Self::Updated,
            IncidentChangeKind::StateChanged => Self::StateChanged,
            IncidentChangeKind::Commented => Self::Commented,
        }
    }
}

/// A committed change to an incident.
#[derive(SimpleObject)]
pub struct IncidentChangedEvent {
    pub kind: IncidentChangeKindGql,
    pub incident: Incident,
    /// Names of the stored fields that changed (empty on creation and comments).
    pub changed_fields: Vec<String>,
    /// The timeline entry, for COMMENTED.
    pub note: Option<IncidentNote>,
}

#[derive(InputObject, Default)]
pub struct IncidentChangedFilter {
    pub customer_id: Option<ID>,
    pub service_id: Option<ID>,
    pub assignment_group_id: Option<ID>,
    /// Any of these priorities (after the change).
    pub priority: Option<Vec<Priority>>,
    pub incident_id: Option<ID>,
}

#[derive(Default)]
pub struct IncidentSubscription;

#[Subscription]
impl IncidentSubscription {
    /// Incidents created, updated, moved to another state or commented on, as
    /// the caller may see them: requesters get only their organization's
    /// incidents and never work notes.
    async fn incident_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<IncidentChangedFilter>,
    ) -> async_graphql::Result<impl Stream<Item = IncidentChangedEvent> + use<>> {
        let p = ctx.principal()?.clone();
        let f = filter.unwrap_or_default();
        let customer = opt_ref(&f.customer_id, "Organization", "customerId")?;
        let service = opt_ref(&f.service_id, "Service", "serviceId")?;
        let group = opt_ref(&f.assignment_group_id, "SupportGroup", "assignmentGroupId")?;
        let only = opt_ref(&f.incident_id, "Incident", "incidentId")?;
        let priorities: Option<Vec<enums::Priority>> = f
            .priority
            .filter(|s| !s.is_empty())
            .map(|s| s.into_iter().map(Into::into).collect());
        let events = ctx.app().store.events.stream();
        Ok(events.filter_map(move |ev| {
            let out = match &*ev {
                DomainEvent::IncidentChanged(c)
                    if p.can_see(c.incident.customer_id)
                        && customer.is_none_or(|id| id == c.incident.customer_id)
                        && service.is_none_or(|id| Some(id) == c.incident.service_id)
                        && group.is_none_or(|id| Some(id) == c.incident.assignment_group_id)
                        && only.is_none_or(|id| id == c.incident.id)
                        && priorities
                            .as_ref()
                            .is_none_or(|s| s.contains(&c.incident.priority))
                        && !(p.is_customer_view()
                            && c.note
                                .as_ref()
                                .is_some_and(|n| n.kind == enums::NoteKind::WorkNote)) =>
                {
                    Some(IncidentChangedEvent {
                        kind: c.kind.into(),
                        incident: Incident(c.incident.clone()),
                        changed_fields: c.changed_fields.clone(),
                        note: c.note.clone().map(IncidentNote),
                    })
                }
                _ => None,
            };
            futures_util::future::ready(out)
        }))
    }
}

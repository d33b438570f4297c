//! Problem management's mutations (agents and admins): recording, updating
//! and moving problems, their timeline, and their links to incidents.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};

use super::{Problem, ProblemNote, ProblemState};
use crate::auth::Staff;
use crate::graphql::{
    args::{maybe, optional_ref, patch_ref, refs},
    context::ContextExt,
    ids,
};
use crate::processes::incident::graphql::{Incident, NoteKind};
use crate::processes::problem as domain;

#[derive(InputObject)]
pub struct CreateProblemInput {
    pub title: String,
    pub description: Option<String>,
    pub symptoms: Option<String>,
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    /// A customer, or the provider (the default for the provider's agents).
    pub organization_id: Option<ID>,
    pub service_id: Option<ID>,
    pub assignment_group_id: Option<ID>,
    pub assignee_id: Option<ID>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    /// The organization's or the provider's CIs (any the caller sees for a
    /// provider's problem); at most 100.
    pub affected_ci_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct UpdateProblemInput {
    pub id: ID,
    /// The version you read; a stale one is refused with `CONFLICT`.
    pub version: i32,
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub symptoms: MaybeUndefined<String>,
    /// A new impact or urgency re-derives the priority.
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    pub service_id: MaybeUndefined<ID>,
    pub assignment_group_id: MaybeUndefined<ID>,
    pub assignee_id: MaybeUndefined<ID>,
    pub root_cause: MaybeUndefined<String>,
    pub workaround: MaybeUndefined<String>,
    pub resolution: MaybeUndefined<String>,
    /// Replaces the affected CIs (`[]` removes them all).
    pub affected_ci_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct ChangeProblemStateInput {
    pub id: ID,
    pub version: i32,
    pub state: ProblemState,
    /// Recorded with the move; KNOWN_ERROR needs a root cause or workaround.
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    /// Required for RESOLVED (unless already recorded).
    pub resolution: Option<String>,
    /// With RESOLVED: resolves the linked incidents still open that you see
    /// (resolution code RESOLVED_BY_PROBLEM), each audited and announced.
    #[graphql(default)]
    pub resolve_linked_incidents: bool,
}

#[derive(InputObject)]
pub struct AddProblemNoteInput {
    pub problem_id: ID,
    /// WORK_NOTE (default, internal) or COMMENT (readable by requesters who see the problem).
    #[graphql(default_with = "NoteKind::WorkNote")]
    pub kind: NoteKind,
    pub body: String,
}

#[derive(InputObject)]
pub struct ProblemIncidentInput {
    pub problem_id: ID,
    pub incident_id: ID,
}

/// A problem after a state change, with the incidents the change resolved.
#[derive(SimpleObject)]
pub struct ChangeProblemStatePayload {
    pub problem: Problem,
    /// The linked incidents resolved with it (`resolveLinkedIncidents`).
    pub resolved_incidents: Vec<Incident>,
}

/// Both ends of a link after it was made or removed.
#[derive(SimpleObject)]
pub struct ProblemIncidentPayload {
    pub problem: Problem,
    pub incident: Incident,
}

#[derive(Default)]
pub struct ProblemMutation;

#[Object]
impl ProblemMutation {
    /// Records a problem (agents), NEW, numbered per organization.
    #[graphql(guard = "Staff")]
    async fn create_problem(
        &self,
        ctx: &Context<'_>,
        input: CreateProblemInput,
    ) -> async_graphql::Result<Problem> {
        let new = domain::NewProblem {
            organization_id: optional_ref(
                input.organization_id.as_ref(),
                "Organization",
                "organizationId",
            )?,
            title: input.title,
            description: input.description,
            symptoms: input.symptoms,
            impact: input.impact,
            urgency: input.urgency,
            service_id: optional_ref(input.service_id.as_ref(), "Service", "serviceId")?,
            assignment_group_id: optional_ref(
                input.assignment_group_id.as_ref(),
                "SupportGroup",
                "assignmentGroupId",
            )?,
            assignee_id: optional_ref(input.assignee_id.as_ref(), "User", "assigneeId")?,
            root_cause: input.root_cause,
            workaround: input.workaround,
            affected_ci_ids: refs(input.affected_ci_ids, "ConfigurationItem", "affectedCiIds")?
                .unwrap_or_default(),
        };
        Ok(Problem(
            domain::create_problem(&ctx.app().store, ctx.principal()?, new).await?,
        ))
    }

    /// Changes a problem's fields (agents); `null` clears an optional one.
    #[graphql(guard = "Staff")]
    async fn update_problem(
        &self,
        ctx: &Context<'_>,
        input: UpdateProblemInput,
    ) -> async_graphql::Result<Problem> {
        let patch = domain::ProblemPatch {
            id: ids::expect(&input.id, "Problem", "id")?,
            version: input.version,
            title: input.title,
            description: maybe(input.description),
            symptoms: maybe(input.symptoms),
            impact: input.impact,
            urgency: input.urgency,
            service_id: patch_ref(input.service_id, "Service", "serviceId")?,
            assignment_group_id: patch_ref(
                input.assignment_group_id,
                "SupportGroup",
                "assignmentGroupId",
            )?,
            assignee_id: patch_ref(input.assignee_id, "User", "assigneeId")?,
            root_cause: maybe(input.root_cause),
            workaround: maybe(input.workaround),
            resolution: maybe(input.resolution),
            affected_ci_ids: refs(input.affected_ci_ids, "ConfigurationItem", "affectedCiIds")?,
        };
        Ok(Problem(
            domain::update_problem(&ctx.app().store, ctx.principal()?, patch).await?,
        ))
    }

    /// Moves a problem to another state (agents). Illegal moves are refused
    /// with `VALIDATION`, naming the allowed ones.
    #[graphql(guard = "Staff")]
    async fn change_problem_state(
        &self,
        ctx: &Context<'_>,
        input: ChangeProblemStateInput,
    ) -> async_graphql::Result<ChangeProblemStatePayload> {
        let change = domain::ProblemStateChange {
            id: ids::expect(&input.id, "Problem", "id")?,
            version: input.version,
            state: input.state.into(),
            root_cause: input.root_cause,
            workaround: input.workaround,
            resolution: input.resolution,
            resolve_linked_incidents: input.resolve_linked_incidents,
        };
        let (problem, resolved) =
            domain::change_problem_state(&ctx.app().store, ctx.principal()?, change).await?;
        Ok(ChangeProblemStatePayload {
            problem: Problem(problem),
            resolved_incidents: resolved.into_iter().map(Incident).collect(),
        })
    }

    /// Adds a work note or a comment to a problem's timeline (agents). A
    /// closed or cancelled problem is refused with `CONFLICT`.
    #[graphql(guard = "Staff")]
    async fn add_problem_note(
        &self,
        ctx: &Context<'_>,
        input: AddProblemNoteInput,
    ) -> async_graphql::Result<ProblemNote> {
        let id = ids::expect(&input.problem_id, "Problem", "problemId")?;
        Ok(ProblemNote(
            domain::add_problem_note(
                &ctx.app().store,
                ctx.principal()?,
                id,
                input.kind.into(),
                input.body,
            )
            .await?,
        ))
    }

    /// Links an incident to a problem (agents): the incident shows the
    /// problem's workaround. Another tenant's incident is `NOT_FOUND`, a
    /// second link of the same pair `CONFLICT`.
    #[graphql(guard = "Staff")]
    async fn link_incident_to_problem(
        &self,
        ctx: &Context<'_>,
        input: ProblemIncidentInput,
    ) -> async_graphql::Result<ProblemIncidentPayload> {
        let (problem, incident) = ids_of(&input)?;
        let (p, i) =
            domain::link_incident(&ctx.app().store, ctx.principal()?, problem, incident).await?;
        Ok(ProblemIncidentPayload {
            problem: Problem(p),
            incident: Incident(i),
        })
    }

    /// Removes an incident's link to a problem (agents).
    #[graphql(guard = "Staff")]
    async fn unlink_incident_from_problem(
        &self,
        ctx: &Context<'_>,
        input: ProblemIncidentInput,
    ) -> async_graphql::Result<ProblemIncidentPayload> {
        let (problem, incident) = ids_of(&input)?;
        let (p, i) =
            domain::unlink_incident(&ctx.app().store, ctx.principal()?, problem, incident).await?;
        Ok(ProblemIncidentPayload {
            problem: Problem(p),
            incident: Incident(i),
        })
    }
}

fn ids_of(input: &ProblemIncidentInput) -> crate::error::AppResult<(i64, i64)> {
    Ok((
        ids::expect(&input.problem_id, "Problem", "problemId")?,
        ids::expect(&input.incident_id, "Incident", "incidentId")?,
    ))
}

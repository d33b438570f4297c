//! Problem management (ISO/IEC 20000-1 8.6.3): problems, known errors,
//! their links to incidents, and trend analysis over unlinked incidents.
//!
//! `rules` holds the state machine (pure), `store` the reads and writes (no
//! GraphQL, no HTTP), `analysis` the known-error search and trend queries,
//! `graphql` the API. This file registers the process's records and event.

pub mod analysis;
pub mod graphql;
mod mutations;
pub mod rules;
pub mod store;

pub use analysis::*;
pub use rules::*;
pub use store::*;

use serde::{Deserialize, Serialize};

use crate::records::{audit::audited, versioned};

audited!(entity::problem::Model, "Problem", |m| Some(
    m.organization_id
));
audited!(
    entity::problem_incident::Model,
    "ProblemIncident",
    |m| Some(m.organization_id)
);
audited!(
    entity::problem_affected_ci::Model,
    "ProblemAffectedCi",
    |m| Some(m.organization_id)
);
audited!(entity::problem_note::Model, "ProblemNote", |m| Some(
    m.organization_id
));

versioned!(entity::problem::Model,);

/// What happened to a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProblemChangeKind {
    Created,
    Updated,
    StateChanged,
    Commented,
    IncidentLinked,
    IncidentUnlinked,
}

/// A committed change to a problem, published after commit.
#[derive(Debug, Clone)]
pub struct ProblemChanged {
    pub kind: ProblemChangeKind,
    pub problem: entity::problem::Model,
    pub changed_fields: Vec<String>,
    /// The timeline entry added, for `Commented`.
    pub note: Option<entity::problem_note::Model>,
    /// The incident linked or unlinked, for `IncidentLinked`/`IncidentUnlinked`.
    pub incident_id: Option<i64>,
    /// The customers of its linked incidents when it changed: besides the
    /// staff of its organization, they are who may see the problem.
    pub incident_customers: Vec<i64>,
}

impl ProblemChanged {
    /// Whether `p` may hear of it: the rule of [`store::can_see_problem`].
    pub fn visible_to(&self, p: &crate::auth::Principal) -> bool {
        (p.is_staff() && p.can_see(self.problem.organization_id))
            || self.incident_customers.iter().any(|c| p.can_see(*c))
    }
}

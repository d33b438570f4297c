//! Problem management (ISO/IEC 20000-1 8.6.3): problems, known errors,
//! their links to incidents, and trend analysis over unlinked incidents.
//!
//! `rules` holds the state machine (pure), `store` the reads and writes (no
//! GraphQL, no HTTP), `analysis` the known-error search and trend queries,
//! `graphql` the API. This file registers the process's records and event.

pub mod analysis;
pub mod events;
pub mod graphql;
pub mod rules;
pub mod store;

pub use analysis::*;
pub use events::*;
pub use rules::*;
pub use store::*;

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

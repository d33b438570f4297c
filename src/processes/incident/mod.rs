//! Incident management (ISO/IEC 20000-1 8.6.1).
//!
//! `store` holds the rules and the reads and writes (no GraphQL, no HTTP);
//! `graphql` the API. This file registers the process's records.

pub mod events;
pub mod graphql;
pub mod rules;
pub mod store;

pub use events::*;
pub use store::*;

use crate::records::{audit::audited, versioned};

audited!(entity::incident::Model, "Incident", |m| Some(m.customer_id));
audited!(
    entity::incident_affected_ci::Model,
    "IncidentAffectedCi",
    |m| Some(m.organization_id)
);
audited!(entity::incident_note::Model, "IncidentNote", |m| Some(
    m.customer_id
));

versioned!(entity::incident::Model,);

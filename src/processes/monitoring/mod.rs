//! Monitoring alerts to incidents: integrations, the alert state machine, the delivery log.
//!
//! `store` holds the rules and the reads and writes (no GraphQL, no HTTP);
//! `graphql` the API. This file registers the process's records.

pub mod graphql;
pub mod store;

pub use store::*;

use crate::records::{audit::audited, versioned};

audited!(entity::integration::Model, "Integration", |m| Some(
    m.organization_id
));
audited!(entity::incident_alert::Model, "IncidentAlert", |m| Some(
    m.customer_id
));

versioned!(entity::integration::Model, entity::incident_alert::Model,);

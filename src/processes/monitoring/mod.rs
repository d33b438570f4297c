//! Monitoring alerts to incidents: integrations, the alert state machine, the delivery log.
//!
//! The rules and the reads and writes (no GraphQL, no HTTP) are split by
//! concern: `integrations` (secrets, settings), `routing` (routing rules),
//! `alerts` (the alert state machine's rules), `alert_rows` (the alert rows
//! as written), `delivery` (a delivery in one transaction), `round` (its
//! steps), `cis` (the CIs alerts name) and `log` (the delivery log); `graphql` holds the API. This file registers the
//! process's records.

mod alert_rows;
mod alerts;
mod cis;
mod delivery;
pub mod graphql;
mod integrations;
mod log;
mod round;
mod routing;

pub use alerts::*;
pub use delivery::*;
pub use integrations::*;
pub use log::*;
pub use routing::*;

use crate::records::{audit::audited, versioned};

audited!(entity::integration::Model, "Integration", |m| Some(
    m.organization_id
));
audited!(entity::incident_alert::Model, "IncidentAlert", |m| Some(
    m.customer_id
));

versioned!(entity::integration::Model, entity::incident_alert::Model,);

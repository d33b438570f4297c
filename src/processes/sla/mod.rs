//! Service level management (ISO/IEC 20000-1 8.3.3): business calendars, SLAs,
//! the priority matrix and SLA clocks with their breach worker.
//!
//! `store` holds the rules and the reads and writes (no GraphQL, no HTTP);
//! `graphql` the API. This file registers the process's records.

pub mod calendar;
pub mod clock;
pub mod events;
pub mod graphql;
pub mod report;
pub mod store;
pub mod worker;

pub use events::*;
pub use store::*;

use crate::records::{audit::audited, versioned};

audited!(entity::business_calendar::Model, "BusinessCalendar", |m| {
    Some(m.organization_id)
});
audited!(entity::sla::Model, "Sla", |m| Some(m.customer_id));
audited!(entity::priority_rule::Model, "PriorityRule", |_m| None);
audited!(entity::sla_clock::Model, "SlaClock", |m| Some(
    m.customer_id
));

versioned!(
    entity::business_calendar::Model,
    entity::sla::Model,
    entity::priority_rule::Model,
    entity::sla_clock::Model,
);

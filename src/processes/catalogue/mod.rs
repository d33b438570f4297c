//! The service catalogue (ISO/IEC 20000-1 8.2.4): services, offerings, subscriptions.
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

audited!(entity::service::Model, "Service", |m| Some(
    m.organization_id
));
audited!(
    entity::service_offering::Model,
    "ServiceOffering",
    |m| Some(m.organization_id)
);
audited!(
    entity::service_subscription::Model,
    "ServiceSubscription",
    |m| Some(m.customer_id)
);

versioned!(entity::service::Model, entity::service_offering::Model,);

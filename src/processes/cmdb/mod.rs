//! Configuration management (ISO/IEC 20000-1 8.2.5-8.2.6): CI classes, configuration items,
//! relationships, service composition and impact analysis.
//!
//! `store` holds the rules and the reads and writes (no GraphQL, no HTTP);
//! `graphql` the API. This file registers the process's records.

pub mod events;
pub mod graphql;
pub mod store;

pub use events::*;
pub use store::*;

use crate::records::{audit::audited, versioned};

audited!(entity::ci_class::Model, "ConfigurationItemClass", |_m| None);
audited!(
    entity::configuration_item::Model,
    "ConfigurationItem",
    |m| Some(m.organization_id)
);
audited!(entity::ci_relationship::Model, "CiRelationship", |m| Some(
    m.organization_id
));
audited!(
    entity::service_configuration_item::Model,
    "ServiceConfigurationItem",
    |m| Some(m.organization_id)
);

versioned!(entity::ci_class::Model, entity::configuration_item::Model,);

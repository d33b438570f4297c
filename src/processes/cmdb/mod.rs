//! Configuration management (ISO/IEC 20000-1 8.2.5-8.2.6): CI classes, configuration items,
//! relationships, service composition and impact analysis.
//!
//! The rules and the reads and writes (no GraphQL, no HTTP) are split by
//! concern: `attributes` (class schemas and value checks), `classes`, `cis`,
//! `relationships`, `service_links` (which CIs a service consists of),
//! `impact`, `history` (CIs at a point in time) and `upsert` (the bulk call of
//! discovery tools), `events` (`ciChanged`); `graphql` is the API. This file registers the process's records.

pub mod affected;
pub mod attributes;
pub mod cis;
pub mod classes;
pub mod events;
pub mod graphql;
pub mod history;
pub mod impact;
pub mod relationships;
pub mod service_links;
pub mod upsert;

pub use affected::*;
pub use attributes::*;
pub use cis::*;
pub use classes::*;
pub use events::*;
pub use history::*;
pub use impact::*;
pub use relationships::*;
pub use service_links::*;
pub use upsert::*;

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

//! Organizations (customers and the provider), users and support groups.
//!
//! `store` holds the rules and the reads and writes (no GraphQL, no HTTP);
//! `graphql` the API. This file registers the process's records.

pub mod events;
pub mod graphql;
pub mod store;

pub use store::*;

use crate::records::{audit::audited, versioned};

audited!(entity::organization::Model, "Organization", |m| Some(m.id));
audited!(entity::user::Model, "User", |m| Some(m.organization_id));
audited!(entity::support_group::Model, "SupportGroup", |m| Some(
    m.organization_id
));
audited!(entity::group_membership::Model, "GroupMembership", |_m| {
    None
});

versioned!(
    entity::organization::Model,
    entity::user::Model,
    entity::support_group::Model,
);

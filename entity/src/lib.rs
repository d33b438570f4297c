//! SeaORM entities for ServiceGraph: table shapes only. Business rules live in
//! the server's `domain` module and GraphQL types in its `graphql` module.

pub mod audit_event;
pub mod ci_class;
pub mod ci_relationship;
pub mod configuration_item;
pub mod group_membership;
pub mod organization;
pub mod service;
pub mod service_configuration_item;
pub mod service_offering;
pub mod service_subscription;
pub mod support_group;
pub mod user;

pub mod prelude {
    pub use super::audit_event::Entity as AuditEvent;
    pub use super::ci_class::Entity as CiClass;
    pub use super::ci_relationship::Entity as CiRelationship;
    pub use super::configuration_item::Entity as ConfigurationItem;
    pub use super::group_membership::Entity as GroupMembership;
    pub use super::organization::Entity as Organization;
    pub use super::service::Entity as Service;
    pub use super::service_configuration_item::Entity as ServiceConfigurationItem;
    pub use super::service_offering::Entity as ServiceOffering;
    pub use super::service_subscription::Entity as ServiceSubscription;
    pub use super::support_group::Entity as SupportGroup;
    pub use super::user::Entity as User;
}

pub mod enums;

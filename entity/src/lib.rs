//! SeaORM entities for ServiceGraph: table shapes only. Business rules live in
//! the server's `domain` module and GraphQL types in its `graphql` module.

pub mod audit_event;
pub mod business_calendar;
pub mod ci_class;
pub mod ci_relationship;
pub mod configuration_item;
pub mod group_membership;
pub mod idempotency_key;
pub mod incident;
pub mod incident_affected_ci;
pub mod incident_alert;
pub mod incident_counter;
pub mod incident_note;
pub mod ingest_delivery;
pub mod integration;
pub mod organization;
pub mod priority_rule;
pub mod problem;
pub mod problem_affected_ci;
pub mod problem_counter;
pub mod problem_incident;
pub mod problem_note;
pub mod service;
pub mod service_configuration_item;
pub mod service_offering;
pub mod service_subscription;
pub mod sla;
pub mod sla_clock;
pub mod sla_worker_setting;
pub mod support_group;
pub mod user;

pub mod prelude {
    pub use super::audit_event::Entity as AuditEvent;
    pub use super::business_calendar::Entity as BusinessCalendar;
    pub use super::ci_class::Entity as CiClass;
    pub use super::ci_relationship::Entity as CiRelationship;
    pub use super::configuration_item::Entity as ConfigurationItem;
    pub use super::group_membership::Entity as GroupMembership;
    pub use super::idempotency_key::Entity as IdempotencyKey;
    pub use super::incident::Entity as Incident;
    pub use super::incident_affected_ci::Entity as IncidentAffectedCi;
    pub use super::incident_alert::Entity as IncidentAlert;
    pub use super::incident_counter::Entity as IncidentCounter;
    pub use super::incident_note::Entity as IncidentNote;
    pub use super::ingest_delivery::Entity as IngestDelivery;
    pub use super::integration::Entity as Integration;
    pub use super::organization::Entity as Organization;
    pub use super::priority_rule::Entity as PriorityRule;
    pub use super::service::Entity as Service;
    pub use super::service_configuration_item::Entity as ServiceConfigurationItem;
    pub use super::service_offering::Entity as ServiceOffering;
    pub use super::service_subscription::Entity as ServiceSubscription;
    pub use super::sla::Entity as Sla;
    pub use super::sla_clock::Entity as SlaClock;
    pub use super::sla_worker_setting::Entity as SlaWorkerSetting;
    pub use super::support_group::Entity as SupportGroup;
    pub use super::user::Entity as User;
}

pub mod enums;

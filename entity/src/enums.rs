//! Enumerations stored as short strings, shared by several tables.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Lifecycle of a service or catalogue offering (ISO/IEC 20000-1 8.2.4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStatus {
    #[sea_orm(string_value = "pipeline")]
    Pipeline,
    #[sea_orm(string_value = "live")]
    Live,
    #[sea_orm(string_value = "retired")]
    Retired,
}

/// How much the business depends on a service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    #[sea_orm(string_value = "low")]
    Low,
    #[sea_orm(string_value = "medium")]
    Medium,
    #[sea_orm(string_value = "high")]
    High,
    #[sea_orm(string_value = "critical")]
    Critical,
}

/// Whether an organization is the service provider itself or one of its customers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum OrganizationKind {
    #[sea_orm(string_value = "provider")]
    Provider,
    #[sea_orm(string_value = "customer")]
    Customer,
}

/// Lifecycle of a configuration item. Retired is final.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum CiStatus {
    #[sea_orm(string_value = "planned")]
    Planned,
    #[sea_orm(string_value = "ordered")]
    Ordered,
    #[sea_orm(string_value = "in_production")]
    InProduction,
    #[sea_orm(string_value = "maintenance")]
    Maintenance,
    #[sea_orm(string_value = "retired")]
    Retired,
}

/// The environment a configuration item serves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum CiEnvironment {
    #[sea_orm(string_value = "production")]
    Production,
    #[sea_orm(string_value = "staging")]
    Staging,
    #[sea_orm(string_value = "test")]
    Test,
    #[sea_orm(string_value = "development")]
    Development,
    #[sea_orm(string_value = "dr")]
    DisasterRecovery,
}

/// The type of a CI relationship, in its canonical direction (source -> target).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RelationshipKind {
    /// source depends on target / target is used by source.
    #[sea_orm(string_value = "depends_on")]
    DependsOn,
    /// source runs on target / target runs source.
    #[sea_orm(string_value = "runs_on")]
    RunsOn,
    /// source is hosted on target / target hosts source.
    #[sea_orm(string_value = "hosted_on")]
    HostedOn,
    /// source connects to target / target is connected from source.
    #[sea_orm(string_value = "connects_to")]
    ConnectsTo,
    /// source contains target / target is contained in source.
    #[sea_orm(string_value = "contains")]
    Contains,
}

/// A service level agreement with a customer, or an operational level
/// agreement between internal groups: the same record, told apart by kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AgreementKind {
    #[sea_orm(string_value = "sla")]
    Sla,
    #[sea_orm(string_value = "ola")]
    Ola,
}

/// Whether an agreement is being drafted, in force, or withdrawn.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    #[sea_orm(string_value = "draft")]
    Draft,
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "retired")]
    Retired,
}

/// Incident priority; P1 is the highest.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[sea_orm(string_value = "p1")]
    P1,
    #[sea_orm(string_value = "p2")]
    P2,
    #[sea_orm(string_value = "p3")]
    P3,
    #[sea_orm(string_value = "p4")]
    P4,
}

/// Where an incident is in its lifecycle (ISO/IEC 20000-1 8.6.1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    #[sea_orm(string_value = "new")]
    New,
    #[sea_orm(string_value = "assigned")]
    Assigned,
    #[sea_orm(string_value = "in_progress")]
    InProgress,
    #[sea_orm(string_value = "on_hold")]
    OnHold,
    #[sea_orm(string_value = "resolved")]
    Resolved,
    #[sea_orm(string_value = "closed")]
    Closed,
}

/// How an incident was raised.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IncidentSource {
    #[sea_orm(string_value = "portal")]
    Portal,
    #[sea_orm(string_value = "agent")]
    Agent,
    #[sea_orm(string_value = "monitoring")]
    Monitoring,
}

/// An entry of an incident's timeline: internal work note or customer-visible comment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    #[sea_orm(string_value = "work_note")]
    WorkNote,
    #[sea_orm(string_value = "comment")]
    Comment,
}

/// Which target an SLA clock measures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    #[sea_orm(string_value = "respond")]
    Respond,
    #[sea_orm(string_value = "resolve")]
    Resolve,
}

/// The monitoring system an integration speaks for: it decides which
/// endpoint's payloads the integration's secret is accepted on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    #[sea_orm(string_value = "alertmanager")]
    Alertmanager,
    #[sea_orm(string_value = "grafana")]
    Grafana,
    /// PagerDuty Events API v2-compatible senders.
    #[sea_orm(string_value = "events_api")]
    EventsApi,
    /// Senders using the GraphQL `raiseAlert` mutation.
    #[sea_orm(string_value = "generic")]
    Generic,
}

/// What a resolved alert does to its open incident.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ResolveAction {
    /// Resolves the incident at the alert's end time.
    #[sea_orm(string_value = "resolve")]
    Resolve,
    /// Only adds a work note; an agent resolves.
    #[sea_orm(string_value = "note")]
    Note,
}

/// The status a monitoring system reports for an alert.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[sea_orm(string_value = "firing")]
    Firing,
    #[sea_orm(string_value = "acknowledged")]
    Acknowledged,
    #[sea_orm(string_value = "resolved")]
    Resolved,
}

/// Where a problem is in its lifecycle (ISO/IEC 20000-1 8.6.3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum ProblemState {
    #[sea_orm(string_value = "new")]
    New,
    #[sea_orm(string_value = "under_investigation")]
    UnderInvestigation,
    #[sea_orm(string_value = "known_error")]
    KnownError,
    #[sea_orm(string_value = "resolved")]
    Resolved,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

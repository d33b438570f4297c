use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{IncidentSource, IncidentState, Priority};

/// An incident (ISO/IEC 20000-1 8.6.1).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "incidents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The customer organization; the incident's tenant.
    pub customer_id: i64,
    /// Human-readable, unique per customer, e.g. `INC-000123`.
    pub number: String,
    pub title: String,
    pub description: Option<String>,
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    pub priority: Priority,
    pub major: bool,
    pub state: IncidentState,
    pub source: IncidentSource,
    pub category: Option<String>,
    /// The token subject of whoever raised it.
    pub reporter_subject: String,
    /// The reporter's user record, when one exists.
    pub reporter_id: Option<i64>,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub resolution_code: Option<String>,
    pub resolution_notes: Option<String>,
    /// The SLA attached at creation.
    pub sla_id: Option<i64>,
    pub resolved_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    /// The alert key of an incident raised by monitoring: one open incident per customer and key.
    pub dedup_key: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

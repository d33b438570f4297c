use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{Priority, ProblemState};

/// A problem (ISO/IEC 20000-1 8.6.3): the unknown cause of one or more
/// incidents; in the known-error state it is a known-error record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "problems")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The customer or the provider owning it; its tenant.
    pub organization_id: i64,
    /// Human-readable, unique per organization, e.g. `PRB-000123`.
    pub number: String,
    pub title: String,
    pub description: Option<String>,
    /// What users and monitoring observe; known-error search matches it.
    pub symptoms: Option<String>,
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    pub priority: Priority,
    pub state: ProblemState,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub resolution: Option<String>,
    /// The token subject of whoever recorded it.
    pub reporter_subject: String,
    pub known_error_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    /// When it was closed or cancelled.
    pub closed_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{ClockKind, Priority};

/// The state of one SLA clock of an incident, enough to recompute its due time:
/// business time is computed from the calendar, the start, the pauses and the stop.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sla_clocks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub incident_id: i64,
    pub customer_id: i64,
    /// The incident's service and priority, copied for the SLA report (which
    /// groups clocks by them without joining the incidents); the incident
    /// domain keeps them in step with the incident.
    pub service_id: Option<i64>,
    pub priority: Priority,
    pub sla_id: i64,
    pub kind: ClockKind,
    /// Business seconds allowed at the incident's current priority.
    pub target_seconds: i64,
    pub started_at: DateTimeUtc,
    /// Closed pauses: `[{ "start": .., "end": .. }]`.
    #[sea_orm(column_type = "JsonBinary")]
    pub pauses: Json,
    /// Set while the clock is paused.
    pub paused_since: Option<DateTimeUtc>,
    pub stopped_at: Option<DateTimeUtc>,
    /// Recomputed on every change; null while paused past the due time.
    pub due_at: Option<DateTimeUtc>,
    /// Set when the clock stops: whether it stopped within its target.
    pub met: Option<bool>,
    /// Business seconds counted when the clock stopped, for reports.
    pub business_seconds: Option<i64>,
    /// The highest warning threshold (percent) an event was fired for.
    pub warning_fired: i32,
    /// When the breach event was fired.
    pub breach_fired_at: Option<DateTimeUtc>,
    /// When the breach worker next looks at the clock: the earliest instant
    /// it may cross a warning threshold not yet fired or its target. Null
    /// when stopped, paused or with nothing left to fire. Internal to the
    /// worker; kept on every change of the clock.
    pub next_check_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

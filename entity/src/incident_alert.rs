use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::AlertStatus;

/// The alert behind an incident raised by monitoring: its key, how often it
/// fired, its latest labels and annotations, and whether it flaps.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "incident_alerts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub incident_id: i64,
    pub customer_id: i64,
    pub integration_id: i64,
    pub dedup_key: String,
    /// The latest status the sender reported.
    pub status: AlertStatus,
    /// Firing notifications received, the first included.
    pub alert_count: i32,
    /// Times a firing alert reopened the resolved incident.
    pub reopen_count: i32,
    pub flapping: bool,
    /// Re-fires recorded instead of reopening while flapping.
    pub flap_count: i32,
    /// Times of recent re-fires (RFC 3339), within the flap window.
    pub refires: Json,
    pub labels: Json,
    pub annotations: Json,
    pub source_url: Option<String>,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! The SLA clocks' events.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::events::Relay;

/// What an SLA clock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlaEventKind {
    /// Crossed a warning threshold (percent of its target).
    Warning,
    /// Went past its target.
    Breached,
    /// Stopped within its target.
    Met,
}

/// An SLA clock event, fired once per clock and threshold.
#[derive(Debug, Clone)]
pub struct SlaClockEvent {
    pub kind: SlaEventKind,
    /// The warning threshold in percent, for `Warning`.
    pub threshold: Option<u32>,
    pub clock: entity::sla_clock::Model,
    pub incident: entity::incident::Model,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SlaClockRef {
    kind: SlaEventKind,
    threshold: Option<u32>,
    clock_id: i64,
    incident_id: i64,
    at: DateTime<Utc>,
}

impl Relay for SlaClockEvent {
    type Wire = SlaClockRef;
    fn to_wire(&self) -> SlaClockRef {
        SlaClockRef {
            kind: self.kind,
            threshold: self.threshold,
            clock_id: self.clock.id,
            incident_id: self.incident.id,
            at: self.at,
        }
    }
    async fn from_wire(db: &DatabaseConnection, w: SlaClockRef) -> Result<Option<Self>, DbErr> {
        let clock = entity::sla_clock::Entity::find_by_id(w.clock_id)
            .one(db)
            .await?;
        let incident = entity::incident::Entity::find_by_id(w.incident_id)
            .one(db)
            .await?;
        Ok(clock.zip(incident).map(|(clock, incident)| Self {
            kind: w.kind,
            threshold: w.threshold,
            clock,
            incident,
            at: w.at,
        }))
    }
}

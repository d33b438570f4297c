//! The incident process's events.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::events::Relay;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncidentChangeKind {
    Created,
    Updated,
    StateChanged,
    Commented,
}

/// A committed change to an incident. Its customer is the only organization
/// (besides the staff serving it) allowed to see it.
#[derive(Debug, Clone)]
pub struct IncidentChanged {
    pub kind: IncidentChangeKind,
    pub incident: entity::incident::Model,
    pub changed_fields: Vec<String>,
    /// The timeline entry added, for `Commented`.
    pub note: Option<entity::incident_note::Model>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentRef {
    kind: IncidentChangeKind,
    id: i64,
    changed_fields: Vec<String>,
    note_id: Option<i64>,
}

impl Relay for IncidentChanged {
    type Wire = IncidentRef;
    fn to_wire(&self) -> IncidentRef {
        IncidentRef {
            kind: self.kind,
            id: self.incident.id,
            changed_fields: self.changed_fields.clone(),
            note_id: self.note.as_ref().map(|n| n.id),
        }
    }
    async fn from_wire(db: &DatabaseConnection, w: IncidentRef) -> Result<Option<Self>, DbErr> {
        let note = match w.note_id {
            Some(n) => entity::incident_note::Entity::find_by_id(n).one(db).await?,
            None => None,
        };
        Ok(entity::incident::Entity::find_by_id(w.id)
            .one(db)
            .await?
            .map(|incident| Self {
                kind: w.kind,
                incident,
                changed_fields: w.changed_fields,
                note,
            }))
    }
}

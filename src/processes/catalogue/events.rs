//! The catalogue's events.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::events::{ChangeKind, Relay};

/// A committed change to a service, with the organizations allowed to see it.
#[derive(Debug, Clone)]
pub struct ServiceChanged {
    pub kind: ChangeKind,
    pub service: entity::service::Model,
    /// The owner organization and the subscribing customers at the time of the change.
    pub visible_to: Vec<i64>,
    pub changed_fields: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceRef {
    kind: ChangeKind,
    id: i64,
    visible_to: Vec<i64>,
    changed_fields: Vec<String>,
}

impl Relay for ServiceChanged {
    type Wire = ServiceRef;
    fn to_wire(&self) -> ServiceRef {
        ServiceRef {
            kind: self.kind,
            id: self.service.id,
            visible_to: self.visible_to.clone(),
            changed_fields: self.changed_fields.clone(),
        }
    }
    async fn from_wire(db: &DatabaseConnection, w: ServiceRef) -> Result<Option<Self>, DbErr> {
        Ok(entity::service::Entity::find_by_id(w.id)
            .one(db)
            .await?
            .map(|service| Self {
                kind: w.kind,
                service,
                visible_to: w.visible_to,
                changed_fields: w.changed_fields,
            }))
    }
}

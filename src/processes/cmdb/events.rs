//! The CMDB's events.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::events::{ChangeKind, Relay};

/// A committed change to a configuration item; visible to its tenant's principals.
#[derive(Debug, Clone)]
pub struct CiChanged {
    pub kind: ChangeKind,
    pub ci: entity::configuration_item::Model,
    pub changed_fields: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CiRef {
    kind: ChangeKind,
    id: i64,
    changed_fields: Vec<String>,
}

impl Relay for CiChanged {
    type Wire = CiRef;
    fn to_wire(&self) -> CiRef {
        CiRef {
            kind: self.kind,
            id: self.ci.id,
            changed_fields: self.changed_fields.clone(),
        }
    }
    async fn from_wire(db: &DatabaseConnection, w: CiRef) -> Result<Option<Self>, DbErr> {
        Ok(entity::configuration_item::Entity::find_by_id(w.id)
            .one(db)
            .await?
            .map(|ci| Self {
                kind: w.kind,
                ci,
                changed_fields: w.changed_fields,
            }))
    }
}

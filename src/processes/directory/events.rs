//! The directory's events: an organization changed (caches drop it).

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};

use crate::events::Relay;

impl Relay for entity::organization::Model {
    /// The organization's id.
    type Wire = i64;
    fn to_wire(&self) -> i64 {
        self.id
    }
    async fn from_wire(db: &DatabaseConnection, id: i64) -> Result<Option<Self>, DbErr> {
        entity::organization::Entity::find_by_id(id).one(db).await
    }
}

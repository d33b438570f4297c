use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::LifecycleStatus;

/// What a customer can see and request of a service; only live offerings are requestable.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "service_offerings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub service_id: i64,
    pub organization_id: i64,
    pub name: String,
    pub name_key: String,
    pub description: Option<String>,
    pub status: LifecycleStatus,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

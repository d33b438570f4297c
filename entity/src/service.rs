use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{Criticality, LifecycleStatus};

/// A service in the service catalogue (ISO/IEC 20000-1 8.2.4).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "services")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The organization that owns and delivers the service (usually the provider).
    pub organization_id: i64,
    pub name: String,
    pub name_key: String,
    pub description: Option<String>,
    pub status: LifecycleStatus,
    pub criticality: Criticality,
    pub owner_group_id: Option<i64>,
    pub owner_user_id: Option<i64>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Priority;

/// One cell of the priority matrix: impact x urgency -> priority.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "priority_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// 1 (high) to 3 (low).
    pub impact: i32,
    /// 1 (high) to 3 (low).
    pub urgency: i32,
    pub priority: Priority,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

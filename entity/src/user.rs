use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A person known to the provider: an agent, a requester or an administrator.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    /// The identity provider's subject (`sub` claim); unique.
    #[sea_orm(unique)]
    pub subject: String,
    pub display_name: String,
    pub email: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

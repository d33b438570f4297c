use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::OrganizationKind;

/// A customer organization or the provider itself; the unit of tenancy.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Stable short code used as the `tenant` claim of tokens.
    #[sea_orm(unique)]
    pub code: String,
    pub name: String,
    /// Lower-cased name, for case-insensitive uniqueness and sorting.
    #[sea_orm(unique)]
    pub name_key: String,
    pub kind: OrganizationKind,
    pub description: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

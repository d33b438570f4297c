use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A class of configuration items (server, database, ...) with the schema its
/// CIs' attributes must follow (ISO/IEC 20000-1 8.2.6).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ci_classes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Short stable code, e.g. `server`; discovery tools name classes by it.
    #[sea_orm(unique)]
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    /// `[{ "name", "type", "required", "values", "description" }]`, see `domain::cmdb::AttributeDefinition`.
    #[sea_orm(column_type = "JsonBinary")]
    pub attributes: Json,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

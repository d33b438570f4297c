use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{CiEnvironment, CiStatus};

/// A configuration item (ISO/IEC 20000-1 8.2.6) of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "configuration_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The tenant the CI belongs to.
    pub organization_id: i64,
    pub class_id: i64,
    pub name: String,
    pub name_key: String,
    pub status: CiStatus,
    pub environment: CiEnvironment,
    pub owner_group_id: Option<i64>,
    /// Attribute values, validated against the class's attribute schema.
    #[sea_orm(column_type = "JsonBinary")]
    pub attributes: Json,
    /// The discovery tool or feed that owns the record (with `external_id`, unique per tenant).
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::RelationshipKind;

/// A directed, typed relationship between two CIs of the same tenant, stored in
/// its canonical direction: `source <kind> target` (e.g. app `runs_on` server).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ci_relationships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    pub source_id: i64,
    pub target_id: i64,
    pub kind: RelationshipKind,
    /// One of several members the dependent can use: losing it alone does not take the dependent down.
    pub redundant: bool,
    /// The CI that is impacted when `dependency_id` fails (derived from kind and direction).
    pub dependent_id: i64,
    pub dependency_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

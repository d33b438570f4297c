use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A CI a problem names as affected.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "problem_affected_cis")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub problem_id: i64,
    pub ci_id: i64,
    /// The problem's organization, for tenancy and the audit trail.
    pub organization_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

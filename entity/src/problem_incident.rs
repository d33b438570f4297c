use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An incident linked to a problem (many to many).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "problem_incidents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub problem_id: i64,
    pub incident_id: i64,
    /// The incident's customer: who may see the problem through it, and the
    /// tenant of the link's audit trail.
    pub organization_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

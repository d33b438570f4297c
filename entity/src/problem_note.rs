use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::NoteKind;

/// A timeline entry of a problem: an internal work note or a comment that
/// requesters who see the problem may read.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "problem_notes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub problem_id: i64,
    /// The problem's organization, for tenancy.
    pub organization_id: i64,
    pub kind: NoteKind,
    pub body: String,
    pub author_subject: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

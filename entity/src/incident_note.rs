use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::NoteKind;

/// A timeline entry of an incident: an internal work note or a customer-visible comment.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "incident_notes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub incident_id: i64,
    /// The incident's customer, for tenancy.
    pub customer_id: i64,
    pub kind: NoteKind,
    pub body: String,
    pub author_subject: String,
    /// Whether an agent or admin wrote it (a customer-visible agent comment is a response).
    pub author_is_staff: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

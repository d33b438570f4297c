use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One append-only audit event: who changed which record, when, and how.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub occurred_at: DateTimeUtc,
    /// The subject of the token that made the change.
    pub actor: String,
    pub actor_organization_id: Option<i64>,
    /// The organization the changed record belongs to.
    pub tenant_id: Option<i64>,
    /// `create`, `update`, `retire`, `delete`, ...
    pub action: String,
    /// The GraphQL type name of the record, e.g. `Service`.
    pub record_type: String,
    pub record_id: i64,
    /// `{ field: { "before": .., "after": .. } }` for the fields that changed;
    /// JSON `null` on a creation, whose changes are every field of `snapshot`
    /// but the bookkeeping ones (`version`, `updated_at`, `name_key`,
    /// `next_check_at`), from null (`domain::audit::changes_of`).
    /// `json`, not `jsonb`, on PostgreSQL: stored as written, never queried inside.
    #[sea_orm(column_type = "Json")]
    pub changes: Json,
    /// The whole record after the change (null after a delete).
    #[sea_orm(column_type = "Json", nullable)]
    pub snapshot: Option<Json>,
    pub request_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

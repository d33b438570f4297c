use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{IntegrationKind, ResolveAction};

/// A monitoring system allowed to raise incidents for one tenant. Its secret
/// is stored only as a SHA-256 hash.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The tenant whose incidents the integration raises.
    pub organization_id: i64,
    pub name: String,
    pub name_key: String,
    pub kind: IntegrationKind,
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// The secret's first characters, to tell secrets apart.
    pub secret_hint: String,
    pub default_service_id: Option<i64>,
    pub default_assignment_group_id: Option<i64>,
    pub default_impact: i32,
    pub default_urgency: i32,
    /// Label names whose values make the alert key; empty: the sender's key.
    pub dedup_labels: Json,
    pub resolve_action: ResolveAction,
    pub reopen_window_seconds: i32,
    pub flap_threshold: i32,
    pub flap_window_seconds: i32,
    /// Routing rules, in order: the first match wins.
    pub rules: Json,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

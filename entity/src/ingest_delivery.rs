use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One delivery to an ingest endpoint: who sent it, what it did, what failed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ingest_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Null when the sender could not be identified.
    pub integration_id: Option<i64>,
    pub organization_id: Option<i64>,
    /// `alertmanager`, `grafana`, `events` or `graphql`.
    pub endpoint: String,
    pub received_at: DateTimeUtc,
    pub http_status: i32,
    /// SHA-256 of the body: a retried delivery is recognised by it.
    pub body_hash: Option<String>,
    pub alerts: i32,
    pub created: i32,
    pub updated: i32,
    pub resolved: i32,
    pub ignored: i32,
    /// Messages, one per refused alert or refused delivery.
    pub errors: Json,
    pub request_id: Option<String>,
    pub duration_ms: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

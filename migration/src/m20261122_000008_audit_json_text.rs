//! The audit trail's `changes` and `snapshot` as `json` instead of `jsonb`
//! (PostgreSQL only). Nothing queries inside them: they are written once and
//! read back whole (the API, a CI's history). Building `jsonb` (parsing,
//! sorting every object's keys, the binary form) was the largest share of
//! PostgreSQL's CPU while ingesting alerts, about 340 events a delivery;
//! `json` keeps the text as written after checking it is JSON. The values
//! read back are the same (key order and white space aside, which the server's
//! JSON values do not keep either). SQLite stores JSON as text already.
//!
//! The change rewrites the table under an exclusive lock: on a large trail,
//! run it in a maintenance window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        retype(m, "json").await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        retype(m, "jsonb").await
    }
}

/// Both audit JSON columns to `ty`, on PostgreSQL (SQLite keeps text).
async fn retype(m: &SchemaManager<'_>, ty: &str) -> Result<(), DbErr> {
    if m.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    m.get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE audit_events \
             ALTER COLUMN changes TYPE {ty} USING changes::{ty}, \
             ALTER COLUMN snapshot TYPE {ty} USING snapshot::{ty}"
        ))
        .await?;
    Ok(())
}

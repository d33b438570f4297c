//! The breach worker reads only the clocks that may have something to fire:
//! `sla_clocks.next_check_at` is the earliest instant at which a running clock
//! crosses its next warning threshold or its target, kept by the incident
//! domain on every change of the clock and by the worker after each check.
//! A partial index holds only the clocks that have such an instant, so a
//! worker pass costs what is due, not what is running.
//!
//! The backfill makes every running, unbreached clock due now: the first pass
//! after the upgrade checks each once and stores its real next instant.
//!
//! `sla_worker_settings` records the warning thresholds the stored instants
//! were computed with (one row, id 1), so a worker started with other
//! thresholds recomputes them once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("sla_clocks")
                .add_column(timestamp_with_time_zone_null("next_check_at"))
                .to_owned(),
        )
        .await?;
        // SQLite keeps timestamps as text and compares them as text: the
        // backfill writes the form the driver writes (RFC 3339, `+00:00`).
        let now = match m.get_database_backend() {
            DbBackend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')",
            _ => "CURRENT_TIMESTAMP",
        };
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "UPDATE sla_clocks SET next_check_at = {now} \
             WHERE stopped_at IS NULL AND paused_since IS NULL AND breach_fired_at IS NULL"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_sla_clocks_next_check ON sla_clocks (next_check_at) \
             WHERE next_check_at IS NOT NULL",
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sla_worker_settings")
                .col(integer("id").primary_key())
                .col(text("warning_thresholds"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("sla_worker_settings").to_owned())
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_sla_clocks_next_check")
            .await?;
        m.alter_table(
            Table::alter()
                .table("sla_clocks")
                .drop_column("next_check_at")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

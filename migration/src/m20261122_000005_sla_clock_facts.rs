//! SLA clocks carry what the SLA report groups them by: the incident's
//! service and priority (the customer is already there). The report then
//! reads the clocks started in a period alone instead of joining them with
//! every incident. The incident domain keeps both in step: they are set when
//! the clocks are created and follow the incident when it changes.
//!
//! `ix_sla_clocks_started (started_at)` is replaced by an index on the same
//! key that, on PostgreSQL, also carries every column the report and its
//! breached-incidents list read, so both are answered from the index alone
//! (an index-only scan), whatever the physical order of the rows (the
//! backfill below rewrites every row).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::common::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Columns the PostgreSQL index carries besides its key.
const CARRIED: [&str; 10] = [
    "service_id",
    "priority",
    "customer_id",
    "kind",
    "incident_id",
    "stopped_at",
    "met",
    "breach_fired_at",
    "due_at",
    "business_seconds",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column an ALTER: SQLite adds one column a statement.
        m.alter_table(
            Table::alter()
                .table("sla_clocks")
                .add_column(big_integer_null("service_id"))
                .to_owned(),
        )
        .await?;
        // Every clock has an incident: the default only fills the existing
        // rows until the backfill below overwrites them.
        m.alter_table(
            Table::alter()
                .table("sla_clocks")
                .add_column(string_len("priority", 16).default("p4"))
                .to_owned(),
        )
        .await?;
        // Dropped before the backfill: one index less to maintain while every
        // row is rewritten.
        m.drop_index(
            Index::drop()
                .name("ix_sla_clocks_started")
                .table("sla_clocks")
                .to_owned(),
        )
        .await?;
        // UPDATE .. FROM: PostgreSQL, and SQLite since 3.33.
        m.get_connection()
            .execute_unprepared(
                "UPDATE sla_clocks SET service_id = i.service_id, priority = i.priority \
                 FROM incidents i WHERE i.id = sla_clocks.incident_id",
            )
            .await?;
        let mut ix = index(
            "ix_sla_clocks_started_facts",
            "sla_clocks",
            &["started_at"],
            false,
        );
        if m.get_database_backend() == DbBackend::Postgres {
            for c in CARRIED {
                ix.include(String::from(c));
            }
        }
        m.create_index(ix).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_sla_clocks_started_facts")
                .table("sla_clocks")
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_sla_clocks_started",
            "sla_clocks",
            &["started_at"],
            false,
        ))
        .await?;
        for c in ["priority", "service_id"] {
            m.alter_table(
                Table::alter()
                    .table("sla_clocks")
                    .drop_column(String::from(c))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

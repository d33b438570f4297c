//! Monitoring integrations (DOMAIN.md "Monitoring alerts to incidents"):
//! integrations with hashed secrets and routing rules, the alert state of
//! incidents raised by monitoring, the delivery log, and the database's
//! guarantee of one open incident per tenant and alert key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::common::{fk, index, stamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            stamps(
                Table::create()
                    .table("integrations")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(string_len("kind", 16))
                    .col(string_len("secret_hash", 64))
                    .col(string_len("secret_hint", 16))
                    .col(big_integer_null("default_service_id"))
                    .col(big_integer_null("default_assignment_group_id"))
                    .col(integer("default_impact"))
                    .col(integer("default_urgency"))
                    .col(json_binary("dedup_labels"))
                    .col(string_len("resolve_action", 16))
                    .col(integer("reopen_window_seconds"))
                    .col(integer("flap_threshold"))
                    .col(integer("flap_window_seconds"))
                    .col(json_binary("rules"))
                    .col(boolean("active")),
            )
            .foreign_key(&mut fk("integrations", "organization_id", "organizations"))
            .foreign_key(&mut fk("integrations", "default_service_id", "services"))
            .foreign_key(&mut fk(
                "integrations",
                "default_assignment_group_id",
                "support_groups",
            ))
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_integrations_name",
            "integrations",
            &["organization_id", "name_key"],
            true,
        ))
        .await?;
        m.create_index(index(
            "ux_integrations_secret",
            "integrations",
            &["secret_hash"],
            true,
        ))
        .await?;

        // The alert key of an incident raised by monitoring.
        m.alter_table(
            Table::alter()
                .table("incidents")
                .add_column(string_len_null("dedup_key", 255))
                .to_owned(),
        )
        .await?;
        // One open incident per tenant and alert key, whatever the timing of
        // the senders: a second insert (or a reopening) fails here.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_incidents_open_dedup ON incidents (customer_id, dedup_key) \
                 WHERE dedup_key IS NOT NULL AND state NOT IN ('resolved', 'closed')",
            )
            .await?;
        // The latest incident of a key, open or not (reopen window, new incident).
        m.create_index(index(
            "ix_incidents_dedup",
            "incidents",
            &["customer_id", "dedup_key", "id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("incident_alerts")
                .col(big_pk_auto("id"))
                .col(big_integer("incident_id"))
                .col(big_integer("customer_id"))
                .col(big_integer("integration_id"))
                .col(string_len("dedup_key", 255))
                .col(string_len("status", 16))
                .col(integer("alert_count"))
                .col(integer("reopen_count"))
                .col(boolean("flapping"))
                .col(integer("flap_count"))
                .col(json_binary("refires"))
                .col(json_binary("labels"))
                .col(json_binary("annotations"))
                .col(text_null("source_url"))
                .col(timestamp_with_time_zone("first_seen_at"))
                .col(timestamp_with_time_zone("last_seen_at"))
                .col(timestamp_with_time_zone_null("ended_at"))
                .col(integer("version").default(1))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("incident_alerts", "incident_id", "incidents"))
                .foreign_key(&mut fk("incident_alerts", "customer_id", "organizations"))
                .foreign_key(&mut fk("incident_alerts", "integration_id", "integrations"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_incident_alerts_incident",
            "incident_alerts",
            &["incident_id"],
            true,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("ingest_deliveries")
                .col(big_pk_auto("id"))
                .col(big_integer_null("integration_id"))
                .col(big_integer_null("organization_id"))
                .col(string_len("endpoint", 32))
                .col(timestamp_with_time_zone("received_at"))
                .col(integer("http_status"))
                .col(string_len_null("body_hash", 64))
                .col(integer("alerts"))
                .col(integer("created"))
                .col(integer("updated"))
                .col(integer("resolved"))
                .col(integer("ignored"))
                .col(json_binary("errors"))
                .col(string_len_null("request_id", 64))
                .col(integer("duration_ms"))
                .foreign_key(&mut fk(
                    "ingest_deliveries",
                    "integration_id",
                    "integrations",
                ))
                .to_owned(),
        )
        .await?;
        // Retries of one payload: the recent accepted delivery with the same body.
        m.create_index(index(
            "ix_ingest_deliveries_body",
            "ingest_deliveries",
            &["integration_id", "body_hash"],
            false,
        ))
        .await?;
        // The log, newest first, and its pruning.
        m.create_index(index(
            "ix_ingest_deliveries_received",
            "ingest_deliveries",
            &["received_at"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("ingest_deliveries").to_owned())
            .await?;
        m.drop_table(Table::drop().table("incident_alerts").to_owned())
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ux_incidents_open_dedup")
            .await?;
        m.drop_index(
            Index::drop()
                .name("ix_incidents_dedup")
                .table("incidents")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("incidents")
                .drop_column("dedup_key")
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table("integrations").to_owned())
            .await?;
        Ok(())
    }
}

//! Service level management and incident management: business calendars, SLAs,
//! the priority matrix (seeded with a default), incidents with their per-tenant
//! number counter and timeline, and SLA clocks.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::common::{fk, index, stamps};
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Impact + urgency (each 1 high .. 3 low): 2 -> P1, 3 -> P2, 4 -> P3, 5 and 6 -> P4.
fn default_priority(impact: i32, urgency: i32) -> &'static str {
    match impact + urgency {
        2 => "p1",
        3 => "p2",
        4 => "p3",
        _ => "p4",
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            stamps(
                Table::create()
                    .table("business_calendars")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(string_len("time_zone", 64))
                    .col(json_binary("windows"))
                    .col(json_binary("holidays"))
                    .foreign_key(&mut fk(
                        "business_calendars",
                        "organization_id",
                        "organizations",
                    )),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_business_calendars_name",
            "business_calendars",
            &["organization_id", "name_key"],
            true,
        ))
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("slas")
                    .col(big_pk_auto("id"))
                    .col(string_len("name", 200))
                    .col(string_len("kind", 16))
                    .col(string_len("status", 16))
                    .col(big_integer("customer_id"))
                    .col(big_integer("service_id"))
                    .col(big_integer("calendar_id"))
                    .col(timestamp_with_time_zone("valid_from"))
                    .col(timestamp_with_time_zone_null("valid_to"))
                    .col(big_integer("respond_p1"))
                    .col(big_integer("respond_p2"))
                    .col(big_integer("respond_p3"))
                    .col(big_integer("respond_p4"))
                    .col(big_integer("resolve_p1"))
                    .col(big_integer("resolve_p2"))
                    .col(big_integer("resolve_p3"))
                    .col(big_integer("resolve_p4"))
                    .col(double("availability_target"))
                    .foreign_key(&mut fk("slas", "customer_id", "organizations"))
                    .foreign_key(&mut fk("slas", "service_id", "services"))
                    .foreign_key(&mut fk("slas", "calendar_id", "business_calendars")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_slas_customer_service",
            "slas",
            &["customer_id", "service_id", "valid_from"],
            false,
        ))
        .await?;
        m.create_index(index("ix_slas_service", "slas", &["service_id"], false))
            .await?;
        m.create_index(index("ix_slas_calendar", "slas", &["calendar_id"], false))
            .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("priority_rules")
                    .col(big_pk_auto("id"))
                    .col(integer("impact"))
                    .col(integer("urgency"))
                    .col(string_len("priority", 16)),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_priority_rules",
            "priority_rules",
            &["impact", "urgency"],
            true,
        ))
        .await?;
        let db = m.get_connection();
        // A fixed, portable timestamp literal: the default matrix ships with this migration.
        let now = "'2026-11-22T00:00:00+00:00'";
        for impact in 1..=3 {
            for urgency in 1..=3 {
                db.execute_unprepared(&format!(
                        "INSERT INTO priority_rules (impact, urgency, priority, version, created_at, updated_at) \
                         VALUES ({impact}, {urgency}, '{}', 1, {now}, {now})",
                        default_priority(impact, urgency)
                ))
                .await?;
            }
        }

        m.create_table(
            Table::create()
                .table("incident_counters")
                .col(big_integer("organization_id").primary_key())
                .col(big_integer("last_value"))
                .foreign_key(&mut fk(
                    "incident_counters",
                    "organization_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("incidents")
                    .col(big_pk_auto("id"))
                    .col(big_integer("customer_id"))
                    .col(string_len("number", 32))
                    .col(string_len("title", 200))
                    .col(text_null("description"))
                    .col(integer("impact"))
                    .col(integer("urgency"))
                    .col(string_len("priority", 16))
                    .col(boolean("major").default(false))
                    .col(string_len("state", 16))
                    .col(string_len("source", 16))
                    .col(string_len_null("category", 100))
                    .col(string_len("reporter_subject", 200))
                    .col(big_integer_null("reporter_id"))
                    .col(big_integer_null("service_id"))
                    .col(big_integer_null("assignment_group_id"))
                    .col(big_integer_null("assignee_id"))
                    .col(string_len_null("resolution_code", 64))
                    .col(text_null("resolution_notes"))
                    .col(big_integer_null("sla_id"))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .foreign_key(&mut fk("incidents", "customer_id", "organizations"))
                    .foreign_key(&mut fk("incidents", "reporter_id", "users"))
                    .foreign_key(&mut fk("incidents", "service_id", "services"))
                    .foreign_key(&mut fk(
                        "incidents",
                        "assignment_group_id",
                        "support_groups",
                    ))
                    .foreign_key(&mut fk("incidents", "assignee_id", "users"))
                    .foreign_key(&mut fk("incidents", "sla_id", "slas")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_incidents_number",
            "incidents",
            &["customer_id", "number"],
            true,
        ))
        .await?;
        m.create_index(index(
            "ix_incidents_state_group",
            "incidents",
            &["state", "assignment_group_id", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_incidents_customer",
            "incidents",
            &["customer_id", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_incidents_service",
            "incidents",
            &["service_id", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_incidents_created",
            "incidents",
            &["created_at", "id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("incident_notes")
                .col(big_pk_auto("id"))
                .col(big_integer("incident_id"))
                .col(big_integer("customer_id"))
                .col(string_len("kind", 16))
                .col(text("body"))
                .col(string_len("author_subject", 200))
                .col(boolean("author_is_staff"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("incident_notes", "incident_id", "incidents"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_incident_notes_incident",
            "incident_notes",
            &["incident_id", "id"],
            false,
        ))
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("sla_clocks")
                    .col(big_pk_auto("id"))
                    .col(big_integer("incident_id"))
                    .col(big_integer("customer_id"))
                    .col(big_integer("sla_id"))
                    .col(string_len("kind", 16))
                    .col(big_integer("target_seconds"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(json_binary("pauses"))
                    .col(timestamp_with_time_zone_null("paused_since"))
                    .col(timestamp_with_time_zone_null("stopped_at"))
                    .col(timestamp_with_time_zone_null("due_at"))
                    .col(boolean_null("met"))
                    .col(big_integer_null("business_seconds"))
                    .col(integer("warning_fired").default(0))
                    .col(timestamp_with_time_zone_null("breach_fired_at"))
                    .foreign_key(&mut fk("sla_clocks", "incident_id", "incidents"))
                    .foreign_key(&mut fk("sla_clocks", "sla_id", "slas")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_sla_clocks_incident_kind",
            "sla_clocks",
            &["incident_id", "kind"],
            true,
        ))
        .await?;
        // Reports select clocks by start.
        m.create_index(index(
            "ix_sla_clocks_started",
            "sla_clocks",
            &["started_at"],
            false,
        ))
        .await?;
        // The breach worker scans running clocks by due time.
        m.create_index(index(
            "ix_sla_clocks_due",
            "sla_clocks",
            &["stopped_at", "due_at"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sla_clocks",
            "incident_notes",
            "incidents",
            "incident_counters",
            "priority_rules",
            "slas",
            "business_calendars",
        ] {
            m.drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Problem management (ISO/IEC 20000-1 8.6.3): problems with a number per
//! organization, their affected CIs, their links to incidents (many to many)
//! and their timeline. Numbers come like incidents': a counter row per
//! organization on SQLite, a sequence per organization on PostgreSQL
//! (`next_problem_numbers`), so concurrent records do not queue on a row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::common::{fk, index, stamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `next_problem_numbers(org, n)`: `n` fresh problem numbers of an
/// organization, ascending; the sequence is created at its first problem
/// under a transaction-scoped advisory lock (its own key space).
const UP_PG: &str = r#"
CREATE FUNCTION next_problem_numbers(org bigint, n integer) RETURNS SETOF bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    seq text := 'problem_numbers_' || org;
    start bigint;
BEGIN
    IF to_regclass(seq) IS NULL THEN
        PERFORM pg_advisory_xact_lock(20261206, (org % 2147483647)::integer);
        SELECT GREATEST(
            (SELECT last_value FROM problem_counters WHERE organization_id = org),
            (SELECT MAX(substring(number FROM 5)::bigint) FROM problems
              WHERE organization_id = org AND number ~ '^PRB-[0-9]{1,18}$'),
            0) + 1
          INTO start;
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I AS bigint START WITH %s MINVALUE 1', seq, start);
    END IF;
    RETURN QUERY EXECUTE format('SELECT nextval(%L) FROM generate_series(1, %s) ORDER BY 1', seq, n);
END
$fn$;
"#;

const DOWN_PG: &str = r#"
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_class c
              WHERE c.relkind = 'S'
                AND c.relname ~ '^problem_numbers_[0-9]+$'
                AND c.relnamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format('DROP SEQUENCE %I', r.relname);
    END LOOP;
END
$do$;
DROP FUNCTION next_problem_numbers(bigint, integer);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("problem_counters")
                .col(big_integer("organization_id").primary_key())
                .col(big_integer("last_value"))
                .foreign_key(&mut fk(
                    "problem_counters",
                    "organization_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("problems")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("number", 32))
                    .col(string_len("title", 200))
                    .col(text_null("description"))
                    .col(text_null("symptoms"))
                    .col(integer("impact"))
                    .col(integer("urgency"))
                    .col(string_len("priority", 16))
                    .col(string_len("state", 24))
                    .col(big_integer_null("service_id"))
                    .col(big_integer_null("assignment_group_id"))
                    .col(big_integer_null("assignee_id"))
                    .col(text_null("root_cause"))
                    .col(text_null("workaround"))
                    .col(text_null("resolution"))
                    .col(string_len("reporter_subject", 200))
                    .col(timestamp_with_time_zone_null("known_error_at"))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .foreign_key(&mut fk("problems", "organization_id", "organizations"))
                    .foreign_key(&mut fk("problems", "service_id", "services"))
                    .foreign_key(&mut fk("problems", "assignment_group_id", "support_groups"))
                    .foreign_key(&mut fk("problems", "assignee_id", "users")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_problems_number",
            "problems",
            &["organization_id", "number"],
            true,
        ))
        .await?;
        // Lists by state (known errors, open problems) newest first.
        m.create_index(index(
            "ix_problems_state",
            "problems",
            &["state", "id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("problem_incidents")
                .col(big_pk_auto("id"))
                .col(big_integer("problem_id"))
                .col(big_integer("incident_id"))
                .col(big_integer("organization_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("problem_incidents", "problem_id", "problems"))
                .foreign_key(&mut fk("problem_incidents", "incident_id", "incidents"))
                .foreign_key(&mut fk(
                    "problem_incidents",
                    "organization_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;
        // One link per pair (a duplicate is refused even between two
        // concurrent writers); it also serves the loader by problem.
        m.create_index(index(
            "ux_problem_incidents",
            "problem_incidents",
            &["problem_id", "incident_id"],
            true,
        ))
        .await?;
        // Incident.problems, and trend analysis's "not linked to any problem".
        m.create_index(index(
            "ix_problem_incidents_incident",
            "problem_incidents",
            &["incident_id", "problem_id"],
            false,
        ))
        .await?;
        // Requester visibility: the problems linked to an organization's incidents.
        m.create_index(index(
            "ix_problem_incidents_organization",
            "problem_incidents",
            &["organization_id", "problem_id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("problem_affected_cis")
                .col(big_pk_auto("id"))
                .col(big_integer("problem_id"))
                .col(big_integer("ci_id"))
                .col(big_integer("organization_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("problem_affected_cis", "problem_id", "problems"))
                .foreign_key(&mut fk(
                    "problem_affected_cis",
                    "ci_id",
                    "configuration_items",
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_problem_affected_cis",
            "problem_affected_cis",
            &["problem_id", "ci_id"],
            true,
        ))
        .await?;
        // Impact analysis: the open problems naming a reached CI.
        m.create_index(index(
            "ix_problem_affected_cis_ci",
            "problem_affected_cis",
            &["ci_id", "problem_id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("problem_notes")
                .col(big_pk_auto("id"))
                .col(big_integer("problem_id"))
                .col(big_integer("organization_id"))
                .col(string_len("kind", 16))
                .col(text("body"))
                .col(string_len("author_subject", 200))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("problem_notes", "problem_id", "problems"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_problem_notes_problem",
            "problem_notes",
            &["problem_id", "id"],
            false,
        ))
        .await?;

        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection().execute_unprepared(UP_PG).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection().execute_unprepared(DOWN_PG).await?;
        }
        for table in [
            "problem_notes",
            "problem_affected_cis",
            "problem_incidents",
            "problems",
            "problem_counters",
        ] {
            m.drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

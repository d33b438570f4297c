//! Incident numbers without a lock held until commit (PostgreSQL only): each
//! customer's numbers come from a sequence of its own, `incident_numbers_<id>`,
//! created at its first incident by `next_incident_numbers`. `nextval` is not
//! transactional, so concurrent raises for one customer no longer queue on the
//! `incident_counters` row; a rolled-back raise leaves a gap in the numbers.
//! SQLite (one writer) keeps the counter table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `next_incident_numbers(customer, n)`: `n` fresh numbers of a customer,
/// ascending. A missing sequence is created under a transaction-scoped
/// advisory lock (two-key space, used nowhere else), so concurrent first
/// raises create it once; it starts after the customer's counter and after
/// any number already taken.
const UP: &str = r#"
CREATE FUNCTION next_incident_numbers(customer bigint, n integer) RETURNS SETOF bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    seq text := 'incident_numbers_' || customer;
    start bigint;
BEGIN
    IF to_regclass(seq) IS NULL THEN
        PERFORM pg_advisory_xact_lock(20261122, (customer % 2147483647)::integer);
        SELECT GREATEST(
            (SELECT last_value FROM incident_counters WHERE organization_id = customer),
            (SELECT MAX(substring(number FROM 5)::bigint) FROM incidents
              WHERE customer_id = customer AND number ~ '^INC-[0-9]{1,18}$'),
            0) + 1
          INTO start;
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I AS bigint START WITH %s MINVALUE 1', seq, start);
    END IF;
    RETURN QUERY EXECUTE format('SELECT nextval(%L) FROM generate_series(1, %s) ORDER BY 1', seq, n);
END
$fn$;
"#;

/// Back to the counter table: each counter takes its sequence's last value.
const DOWN: &str = r#"
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, substring(c.relname FROM 18)::bigint AS org
               FROM pg_class c
              WHERE c.relkind = 'S'
                AND c.relname ~ '^incident_numbers_[0-9]+$'
                AND c.relnamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format(
            'INSERT INTO incident_counters (organization_id, last_value) '
            'SELECT %s, last_value FROM %I WHERE is_called '
            'ON CONFLICT (organization_id) DO UPDATE '
            'SET last_value = GREATEST(incident_counters.last_value, EXCLUDED.last_value)',
            r.org, r.relname);
        EXECUTE format('DROP SEQUENCE %I', r.relname);
    END LOOP;
END
$do$;
DROP FUNCTION next_incident_numbers(bigint, integer);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}

//! Database migrations for ServiceGraph, portable across SQLite and PostgreSQL.
//! Each process adds its own migration file; `Migrator` lists them in order.

pub use sea_orm_migration::prelude::*;

mod common;
mod m20261122_000001_foundation;
mod m20261122_000002_cmdb;
mod m20261122_000003_sla;
mod m20261122_000004_incident_cis;
mod m20261122_000005_sla_clock_facts;
mod m20261122_000006_monitoring;
mod m20261122_000007_incident_number_sequences;
mod m20261122_000008_audit_json_text;
mod m20261122_000009_sla_clock_next_check;
mod m20261206_000010_idempotency_keys;
mod m20261206_000011_problems;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_cmdb::Migration),
            Box::new(m20261122_000003_sla::Migration),
            Box::new(m20261122_000004_incident_cis::Migration),
            Box::new(m20261122_000005_sla_clock_facts::Migration),
            Box::new(m20261122_000006_monitoring::Migration),
            Box::new(m20261122_000007_incident_number_sequences::Migration),
            Box::new(m20261122_000008_audit_json_text::Migration),
            Box::new(m20261122_000009_sla_clock_next_check::Migration),
            Box::new(m20261206_000010_idempotency_keys::Migration),
            Box::new(m20261206_000011_problems::Migration),
        ]
    }
}

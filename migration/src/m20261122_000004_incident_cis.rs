//! Affected configuration items of incidents (ISO/IEC 20000-1 8.6.1: "an
//! incident names its affected CIs"), and the indexes the incident list and
//! impact analysis need to find them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    from_table: &'static str,
    col: &'static str,
    to_table: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, col)
        .to(to_table, "id")
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

fn index(name: &str, table: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(Alias::new(table));
    for c in cols {
        i.col(Alias::new(*c));
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("incident_affected_cis")
                .col(big_pk_auto("id"))
                .col(big_integer("incident_id"))
                .col(big_integer("ci_id"))
                .col(big_integer("organization_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("incident_affected_cis", "incident_id", "incidents"))
                .foreign_key(&mut fk(
                    "incident_affected_cis",
                    "ci_id",
                    "configuration_items",
                ))
                .foreign_key(&mut fk(
                    "incident_affected_cis",
                    "organization_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;
        // One link per pair; it also serves the loader (by incident).
        m.create_index(index(
            "ux_incident_affected_cis",
            "incident_affected_cis",
            &["incident_id", "ci_id"],
            true,
        ))
        .await?;
        // Impact analysis: the open incidents naming a reached CI.
        m.create_index(index(
            "ix_incident_affected_cis_ci",
            "incident_affected_cis",
            &["ci_id", "incident_id"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("incident_affected_cis").to_owned())
            .await?;
        Ok(())
    }
}

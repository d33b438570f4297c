//! Configuration management (CMDB): CI classes, configuration items, their
//! relationships, and which CIs each service consists of.

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
                    .table("ci_classes")
                    .col(big_pk_auto("id"))
                    .col(string_len_uniq("code", 64))
                    .col(string_len("name", 200))
                    .col(text_null("description"))
                    .col(json_binary("attributes")),
            )
            .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("configuration_items")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(big_integer("class_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(string_len("status", 16))
                    .col(string_len("environment", 16))
                    .col(big_integer_null("owner_group_id"))
                    .col(json_binary("attributes"))
                    .col(string_len_null("source", 64))
                    .col(string_len_null("external_id", 200))
                    .foreign_key(&mut fk(
                        "configuration_items",
                        "organization_id",
                        "organizations",
                    ))
                    .foreign_key(&mut fk("configuration_items", "class_id", "ci_classes"))
                    .foreign_key(&mut fk(
                        "configuration_items",
                        "owner_group_id",
                        "support_groups",
                    )),
            )
            .to_owned(),
        )
        .await?;
        // Discovery tools upsert by external identity: unique per tenant (NULLs do not clash).
        m.create_index(
            index(
                "ux_configuration_items_external",
                "configuration_items",
                &["organization_id", "source", "external_id"],
                false,
            )
            .unique()
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_configuration_items_name",
            "configuration_items",
            &["name_key", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_configuration_items_org",
            "configuration_items",
            &["organization_id", "name_key"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_configuration_items_class",
            "configuration_items",
            &["class_id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("ci_relationships")
                .col(big_pk_auto("id"))
                .col(big_integer("organization_id"))
                .col(big_integer("source_id"))
                .col(big_integer("target_id"))
                .col(string_len("kind", 16))
                .col(boolean("redundant").default(false))
                .col(big_integer("dependent_id"))
                .col(big_integer("dependency_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk(
                    "ci_relationships",
                    "organization_id",
                    "organizations",
                ))
                .foreign_key(&mut fk(
                    "ci_relationships",
                    "source_id",
                    "configuration_items",
                ))
                .foreign_key(&mut fk(
                    "ci_relationships",
                    "target_id",
                    "configuration_items",
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            index(
                "ux_ci_relationships",
                "ci_relationships",
                &["source_id", "target_id", "kind"],
                false,
            )
            .unique()
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_ci_relationships_target",
            "ci_relationships",
            &["target_id"],
            false,
        ))
        .await?;
        // Impact analysis walks these two, one per direction; covering indexes let
        // the recursive step read the index only.
        m.create_index(index(
            "ix_ci_relationships_dependency",
            "ci_relationships",
            &["dependency_id", "dependent_id", "organization_id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_ci_relationships_dependent",
            "ci_relationships",
            &["dependent_id", "dependency_id", "organization_id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("service_configuration_items")
                .col(big_pk_auto("id"))
                .col(big_integer("service_id"))
                .col(big_integer("ci_id"))
                .col(big_integer("organization_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk(
                    "service_configuration_items",
                    "service_id",
                    "services",
                ))
                .foreign_key(&mut fk(
                    "service_configuration_items",
                    "ci_id",
                    "configuration_items",
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            index(
                "ux_service_configuration_items",
                "service_configuration_items",
                &["service_id", "ci_id"],
                false,
            )
            .unique()
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_service_configuration_items_ci",
            "service_configuration_items",
            &["ci_id"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "service_configuration_items",
            "ci_relationships",
            "configuration_items",
            "ci_classes",
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

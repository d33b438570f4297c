//! Organizations, people, support groups, the service catalogue and the audit trail.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::common::{fk, stamps};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            stamps(
                Table::create()
                    .table("organizations")
                    .col(big_pk_auto("id"))
                    .col(string_len_uniq("code", 64))
                    .col(string_len("name", 200))
                    .col(string_len_uniq("name_key", 200))
                    .col(string_len("kind", 16))
                    .col(text_null("description"))
                    .col(boolean("active").default(true)),
            )
            .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("users")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len_uniq("subject", 200))
                    .col(string_len("display_name", 200))
                    .col(string_len_null("email", 320))
                    .col(boolean("active").default(true))
                    .foreign_key(&mut fk("users", "organization_id", "organizations")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_users_org")
                .table("users")
                .col("organization_id")
                .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("support_groups")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(text_null("description"))
                    .col(string_len_null("email", 320))
                    .foreign_key(&mut fk(
                        "support_groups",
                        "organization_id",
                        "organizations",
                    )),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_support_groups_name")
                .table("support_groups")
                .col("organization_id")
                .col("name_key")
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("group_memberships")
                .col(big_pk_auto("id"))
                .col(big_integer("group_id"))
                .col(big_integer("user_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("group_memberships", "group_id", "support_groups"))
                .foreign_key(&mut fk("group_memberships", "user_id", "users"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_group_memberships")
                .table("group_memberships")
                .col("group_id")
                .col("user_id")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_group_memberships_user")
                .table("group_memberships")
                .col("user_id")
                .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("services")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(text_null("description"))
                    .col(string_len("status", 16))
                    .col(string_len("criticality", 16))
                    .col(big_integer_null("owner_group_id"))
                    .col(big_integer_null("owner_user_id"))
                    .foreign_key(&mut fk("services", "organization_id", "organizations"))
                    .foreign_key(&mut fk("services", "owner_group_id", "support_groups"))
                    .foreign_key(&mut fk("services", "owner_user_id", "users")),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_services_name")
                .table("services")
                .col("organization_id")
                .col("name_key")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_services_name_key")
                .table("services")
                .col("name_key")
                .col("id")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_services_status")
                .table("services")
                .col("status")
                .to_owned(),
        )
        .await?;

        m.create_table(
            stamps(
                Table::create()
                    .table("service_offerings")
                    .col(big_pk_auto("id"))
                    .col(big_integer("service_id"))
                    .col(big_integer("organization_id"))
                    .col(string_len("name", 200))
                    .col(string_len("name_key", 200))
                    .col(text_null("description"))
                    .col(string_len("status", 16))
                    .foreign_key(&mut fk("service_offerings", "service_id", "services"))
                    .foreign_key(&mut fk(
                        "service_offerings",
                        "organization_id",
                        "organizations",
                    )),
            )
            .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_service_offerings_name")
                .table("service_offerings")
                .col("service_id")
                .col("name_key")
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("service_subscriptions")
                .col(big_pk_auto("id"))
                .col(big_integer("service_id"))
                .col(big_integer("customer_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("service_subscriptions", "service_id", "services"))
                .foreign_key(&mut fk(
                    "service_subscriptions",
                    "customer_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_service_subscriptions")
                .table("service_subscriptions")
                .col("service_id")
                .col("customer_id")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_service_subscriptions_customer")
                .table("service_subscriptions")
                .col("customer_id")
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("audit_events")
                .col(big_pk_auto("id"))
                .col(timestamp_with_time_zone("occurred_at"))
                .col(string_len("actor", 200))
                .col(big_integer_null("actor_organization_id"))
                .col(big_integer_null("tenant_id"))
                .col(string_len("action", 64))
                .col(string_len("record_type", 64))
                .col(big_integer("record_id"))
                .col(json_binary("changes"))
                .col(json_binary_null("snapshot"))
                .col(string_len_null("request_id", 64))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_events_record")
                .table("audit_events")
                .col("record_type")
                .col("record_id")
                .col("id")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_events_tenant")
                .table("audit_events")
                .col("tenant_id")
                .col("id")
                .to_owned(),
        )
        .await?;

        // The audit trail is evidence: the database itself refuses to change or delete it.
        let db = m.get_connection();
        match m.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$;
                     CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
                     FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events;
                     DROP FUNCTION IF EXISTS audit_events_append_only();",
                )
                .await?;
        }
        for table in [
            "audit_events",
            "service_subscriptions",
            "service_offerings",
            "services",
            "group_memberships",
            "support_groups",
            "users",
            "organizations",
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

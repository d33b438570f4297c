//! Idempotency keys of POST /graphql (the `Idempotency-Key` header): per
//! caller and key, the hash of the first request's body and, once it has
//! run, its answer to replay. The unique index is what lets only one of
//! several concurrent requests with a key run; `expires_at` is the lease of
//! a request still running, then the end of the answer's retention, and
//! what the pruner deletes by.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::common::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("idempotency_keys")
                .col(big_pk_auto("id"))
                .col(big_integer("organization_id"))
                .col(text("subject"))
                .col(string_len("key", 255))
                .col(string_len("request_hash", 64))
                .col(string_len("claim_token", 36))
                .col(integer_null("response_status"))
                .col(string_len_null("response_content_type", 255))
                .col(text_null("response_body"))
                .col(string_len_null("request_id", 64))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .foreign_key(&mut fk(
                    "idempotency_keys",
                    "organization_id",
                    "organizations",
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_idempotency_keys_scope",
            "idempotency_keys",
            &["organization_id", "subject", "key"],
            true,
        ))
        .await?;
        m.create_index(index(
            "ix_idempotency_keys_expires",
            "idempotency_keys",
            &["expires_at"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("idempotency_keys").to_owned())
            .await
    }
}

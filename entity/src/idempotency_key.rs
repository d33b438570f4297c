use sea_orm::entity::prelude::*;

/// A caller's idempotency key on POST /graphql: the first request's body
/// hash and, once it has run, its answer. While `response_status` is null
/// the request is still running and `expires_at` is its lease.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The caller's own organization (the token's tenant).
    pub organization_id: i64,
    /// The caller (the token's `sub`).
    pub subject: String,
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub request_hash: String,
    /// Who holds the claim: only its holder stores the answer.
    pub claim_token: String,
    pub response_status: Option<i32>,
    pub response_content_type: Option<String>,
    pub response_body: Option<String>,
    /// The request that produced the answer.
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// The lease while running; afterwards, when the answer is forgotten.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

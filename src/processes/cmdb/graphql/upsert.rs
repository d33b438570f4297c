//! The bulk upsert discovery tools call: inputs, results, the mutation.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::cis::{CiEnvironment, CiStatus, ConfigurationItem};
use super::relationships::{CiRelationship, RelationshipKind};
use crate::auth::Staff;
use crate::graphql::{args::optional_ref, context::ContextExt};
use crate::{error::AppError, processes::cmdb as domain};

/// A CI named by external identity.
#[derive(InputObject)]
pub struct ExternalCiRef {
    pub source: String,
    pub external_id: String,
}

#[derive(InputObject)]
pub struct UpsertConfigurationItemInput {
    pub source: String,
    pub external_id: String,
    pub class_code: String,
    pub name: String,
    /// Kept when absent (IN_PRODUCTION for a new CI).
    pub status: Option<CiStatus>,
    /// Kept when absent (PRODUCTION for a new CI).
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<ID>,
    /// The complete attributes (replaces the stored ones).
    pub attributes: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpsertCiRelationshipInput {
    pub source: ExternalCiRef,
    pub target: ExternalCiRef,
    pub kind: RelationshipKind,
    #[graphql(default)]
    pub redundant: bool,
}

#[derive(InputObject)]
pub struct UpsertConfigurationItemsInput {
    /// The tenant of every CI of the call; defaults to the caller's organization.
    pub organization_id: Option<ID>,
    /// At most 1,000.
    pub items: Vec<UpsertConfigurationItemInput>,
    /// At most 5,000; they may name CIs of this call or already stored ones.
    #[graphql(default)]
    pub relationships: Vec<UpsertCiRelationshipInput>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::cmdb::UpsertStatus")]
pub enum UpsertStatus {
    Created,
    Updated,
    /// Nothing to change: nothing was written.
    Unchanged,
    /// Nothing of this item was written; see `error`.
    Error,
}

/// Why one item of a bulk call was refused (the same codes as top-level errors).
#[derive(SimpleObject)]
pub struct ItemError {
    pub code: String,
    pub message: String,
    /// The offending input field, e.g. `attributes.cpuCount`.
    pub field: Option<String>,
}

impl From<AppError> for ItemError {
    fn from(e: AppError) -> Self {
        let field = match &e {
            AppError::Validation { field, .. } => field.clone(),
            _ => None,
        };
        if let AppError::Internal(source) = &e {
            tracing::error!(error = %source, "internal error in a bulk item");
        }
        Self {
            code: e.code().to_owned(),
            message: e.message(),
            field,
        }
    }
}

#[derive(SimpleObject)]
pub struct UpsertItemResult {
    pub source: String,
    pub external_id: String,
    pub status: UpsertStatus,
    pub error: Option<ItemError>,
    pub configuration_item: Option<ConfigurationItem>,
}

#[derive(SimpleObject)]
pub struct UpsertRelationshipResult {
    /// The position of the relationship in the input list.
    pub index: i32,
    pub status: UpsertStatus,
    pub error: Option<ItemError>,
    pub relationship: Option<CiRelationship>,
}

/// The answer of `upsertConfigurationItems`, item by item in input order.
#[derive(SimpleObject)]
pub struct UpsertConfigurationItemsPayload {
    pub items: Vec<UpsertItemResult>,
    pub relationships: Vec<UpsertRelationshipResult>,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub errors: i32,
}

#[derive(Default)]
pub struct UpsertMutation;

#[Object]
impl UpsertMutation {
    /// Creates or updates up to 1,000 CIs of one organization by external
    /// identity (`source` + `externalId`), then their relationships, in one
    /// transaction. Each item answers for itself (CREATED, UPDATED, UNCHANGED,
    /// or ERROR with nothing of it written); a call over the limit is refused
    /// whole with `VALIDATION`. Discovery tools call it on a schedule: the same
    /// call twice answers UNCHANGED and writes nothing the second time.
    #[graphql(guard = "Staff")]
    async fn upsert_configuration_items(
        &self,
        ctx: &Context<'_>,
        input: UpsertConfigurationItemsInput,
    ) -> async_graphql::Result<UpsertConfigurationItemsPayload> {
        let p = ctx.principal()?;
        let mut items = Vec::with_capacity(input.items.len());
        let mut early: Vec<Option<AppError>> = Vec::with_capacity(input.items.len());
        for i in input.items {
            let group = optional_ref(i.owner_group_id.as_ref(), "SupportGroup", "ownerGroupId");
            let (group, err) = match group {
                Ok(g) => (g, None),
                // Reported on the item: refer to a group that cannot exist.
                Err(e) => (Some(0), Some(e)),
            };
            early.push(err);
            items.push(domain::UpsertItem {
                source: i.source,
                external_id: i.external_id,
                class_code: i.class_code,
                name: i.name,
                status: i.status.map(Into::into),
                environment: i.environment.map(Into::into),
                owner_group_id: group,
                attributes: i.attributes.map(|j| j.0),
            });
        }
        let batch = domain::UpsertBatch {
            organization_id: optional_ref(
                input.organization_id.as_ref(),
                "Organization",
                "organizationId",
            )?,
            items,
            relationships: input
                .relationships
                .into_iter()
                .map(|r| domain::UpsertRelationship {
                    source: (r.source.source, r.source.external_id),
                    target: (r.target.source, r.target.external_id),
                    kind: r.kind.into(),
                    redundant: r.redundant,
                })
                .collect(),
        };
        let result = domain::upsert(&ctx.app().store, p, batch).await?;
        let mut payload = UpsertConfigurationItemsPayload {
            items: Vec::with_capacity(result.items.len()),
            relationships: Vec::with_capacity(result.relationships.len()),
            created: 0,
            updated: 0,
            unchanged: 0,
            errors: 0,
        };
        for (o, early) in result.items.into_iter().zip(early) {
            let error = early.or(o.error);
            let status = if error.is_some() {
                domain::UpsertStatus::Error
            } else {
                o.status
            };
            match status {
                domain::UpsertStatus::Created => payload.created += 1,
                domain::UpsertStatus::Updated => payload.updated += 1,
                domain::UpsertStatus::Unchanged => payload.unchanged += 1,
                domain::UpsertStatus::Error => payload.errors += 1,
            }
            payload.items.push(UpsertItemResult {
                source: o.source,
                external_id: o.external_id,
                status: status.into(),
                error: error.map(Into::into),
                configuration_item: o.ci.map(ConfigurationItem),
            });
        }
        for (index, o) in result.relationships.into_iter().enumerate() {
            payload.relationships.push(UpsertRelationshipResult {
                index: index as i32,
                status: o.status.into(),
                error: o.error.map(Into::into),
                relationship: o.relationship.map(CiRelationship),
            });
        }
        Ok(payload)
    }
}

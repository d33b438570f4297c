//! Relationships between CIs: objects, input, mutations.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use entity::ci_relationship;

use super::cis::ConfigurationItem;
use crate::auth::Staff;
use crate::graphql::{
    context::{ContextExt, load},
    ids,
};
use crate::processes::cmdb as domain;

/// Relationship types in their canonical direction, `source -> target`. Impact
/// flows from target to source (the source depends on the target), except for
/// `CONTAINS`, where the contained target depends on its container source.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::RelationshipKind")]
pub enum RelationshipKind {
    /// source "depends on" target; target is "used by" source.
    DependsOn,
    /// source "runs on" target; target "runs" source.
    RunsOn,
    /// source is "hosted on" target; target "hosts" source.
    HostedOn,
    /// source "connects to" target; target is "connected from" source.
    ConnectsTo,
    /// source "contains" target; target is "contained in" source.
    Contains,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum RelationshipDirection {
    /// Relationships where this CI is the source.
    Outgoing,
    /// Relationships where this CI is the target.
    Incoming,
}

/// A directed, typed relationship: `source <kind> target`.
pub struct CiRelationship(pub ci_relationship::Model);

#[Object]
impl CiRelationship {
    pub async fn id(&self) -> ID {
        ids::encode("CiRelationship", self.0.id)
    }
    async fn kind(&self) -> RelationshipKind {
        self.0.kind.into()
    }
    /// Read from the source, e.g. "depends on".
    async fn name(&self) -> &'static str {
        domain::relationship_names(self.0.kind).0
    }
    /// Read from the target, e.g. "used by".
    async fn reverse_name(&self) -> &'static str {
        domain::relationship_names(self.0.kind).1
    }
    async fn source(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.source_id)
            .await?
            .map(ConfigurationItem))
    }
    async fn target(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.target_id)
            .await?
            .map(ConfigurationItem))
    }
    /// One of several members the dependent can use: losing it alone does not take the dependent down.
    async fn redundant(&self) -> bool {
        self.0.redundant
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A relationship seen from one of its CIs.
pub struct RelatedConfigurationItem {
    pub(super) direction: RelationshipDirection,
    pub(super) relationship: ci_relationship::Model,
}

#[Object]
impl RelatedConfigurationItem {
    async fn direction(&self) -> RelationshipDirection {
        self.direction
    }
    /// The relationship's name read from this CI, e.g. "runs on" or "runs".
    async fn name(&self) -> &'static str {
        let (forward, reverse) = domain::relationship_names(self.relationship.kind);
        match self.direction {
            RelationshipDirection::Outgoing => forward,
            RelationshipDirection::Incoming => reverse,
        }
    }
    async fn kind(&self) -> RelationshipKind {
        self.relationship.kind.into()
    }
    async fn redundant(&self) -> bool {
        self.relationship.redundant
    }
    /// The CI at the other end.
    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ConfigurationItem>> {
        let other = match self.direction {
            RelationshipDirection::Outgoing => self.relationship.target_id,
            RelationshipDirection::Incoming => self.relationship.source_id,
        };
        Ok(load(&ctx.loaders().configuration_item, other)
            .await?
            .map(ConfigurationItem))
    }
    async fn relationship(&self) -> CiRelationship {
        CiRelationship(self.relationship.clone())
    }
}

#[derive(InputObject)]
pub struct AddCiRelationshipInput {
    pub source_id: ID,
    pub target_id: ID,
    pub kind: RelationshipKind,
    #[graphql(default)]
    pub redundant: bool,
}

#[derive(Default)]
pub struct RelationshipMutation;

#[Object]
impl RelationshipMutation {
    /// Adds a relationship `source <kind> target` between two CIs of one
    /// organization. A self edge, a duplicate (`CONFLICT`), a CI of another
    /// organization or a retired CI is refused.
    #[graphql(guard = "Staff")]
    async fn add_ci_relationship(
        &self,
        ctx: &Context<'_>,
        input: AddCiRelationshipInput,
    ) -> async_graphql::Result<CiRelationship> {
        let p = ctx.principal()?;
        let new = domain::NewRelationship {
            source_id: ids::reference(&input.source_id, "ConfigurationItem", "sourceId")?,
            target_id: ids::reference(&input.target_id, "ConfigurationItem", "targetId")?,
            kind: input.kind.into(),
            redundant: input.redundant,
        };
        Ok(CiRelationship(
            domain::add_relationship(&ctx.app().store, p, new).await?,
        ))
    }

    /// Removes a relationship; true when it existed.
    #[graphql(guard = "Staff")]
    async fn remove_ci_relationship(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let p = ctx.principal()?;
        let n = ids::expect(&id, "CiRelationship", "id")?;
        domain::remove_relationship(&ctx.app().store, p, n).await?;
        Ok(true)
    }
}

//! An integration as the API shows it, with its routing rules, and the
//! routing rules as inputs.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::integration;

use super::enums::{IntegrationKind, MatchOp, ResolveAction};
use crate::error::AppResult;
use crate::graphql::{
    args::optional_ref,
    context::{ContextExt, load},
    ids,
};
use crate::processes::{
    catalogue::graphql::Service,
    directory::graphql::{Organization, SupportGroup},
    monitoring as domain,
};

/// One label test: a missing label has the empty value.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "MatcherInput")]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

/// A routing rule: alerts whose labels satisfy every matcher go to its
/// service, CIs, priority and group; the first matching rule wins and unset
/// fields fall back to the integration's defaults.
pub struct RoutingRule(domain::RoutingRule);

#[Object]
impl RoutingRule {
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn matchers(&self) -> Vec<Matcher> {
        self.0
            .matchers
            .iter()
            .map(|m| Matcher {
                label: m.label.clone(),
                op: m.op.into(),
                value: m.value.clone(),
            })
            .collect()
    }
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        service(ctx, self.0.service_id).await
    }
    async fn assignment_group(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SupportGroup>> {
        support_group(ctx, self.0.assignment_group_id).await
    }
    async fn impact(&self) -> Option<i32> {
        self.0.impact
    }
    async fn urgency(&self) -> Option<i32> {
        self.0.urgency
    }
    /// Labels whose values name the affected CIs, by external id or name.
    async fn ci_labels(&self) -> &[String] {
        &self.0.ci_labels
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
}

/// The service a rule or an integration routes to, through its loader.
async fn service(ctx: &Context<'_>, id: Option<i64>) -> async_graphql::Result<Option<Service>> {
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(load(&ctx.loaders().service, id).await?.map(Service))
}

/// The support group a rule or an integration assigns to, through its loader.
async fn support_group(
    ctx: &Context<'_>,
    id: Option<i64>,
) -> async_graphql::Result<Option<SupportGroup>> {
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(load(&ctx.loaders().support_group, id)
        .await?
        .map(SupportGroup))
}

#[derive(InputObject)]
pub struct RoutingRuleInput {
    pub name: Option<String>,
    #[graphql(default)]
    pub matchers: Vec<Matcher>,
    /// A service the integration's tenant owns or subscribes to.
    pub service_id: Option<ID>,
    pub assignment_group_id: Option<ID>,
    /// 1 (high) to 3 (low); unset: from the `severity` label, else the default.
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    /// Labels whose values name the affected CIs (external id, else name).
    #[graphql(default)]
    pub ci_labels: Vec<String>,
    pub category: Option<String>,
}

pub(super) fn rules_in(rules: Vec<RoutingRuleInput>) -> AppResult<Vec<domain::RoutingRule>> {
    rules
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            Ok(domain::RoutingRule {
                name: r.name,
                matchers: r
                    .matchers
                    .into_iter()
                    .map(|m| domain::Matcher {
                        label: m.label,
                        op: m.op.into(),
                        value: m.value,
                    })
                    .collect(),
                service_id: optional_ref(
                    r.service_id.as_ref(),
                    "Service",
                    &format!("rules[{n}].serviceId"),
                )?,
                assignment_group_id: optional_ref(
                    r.assignment_group_id.as_ref(),
                    "SupportGroup",
                    &format!("rules[{n}].assignmentGroupId"),
                )?,
                impact: r.impact,
                urgency: r.urgency,
                ci_labels: r.ci_labels,
                category: r.category,
            })
        })
        .collect()
}

/// A monitoring system allowed to raise incidents for one organization. Its
/// secret is shown once, when created or rotated.
pub struct Integration(pub integration::Model);

#[Object]
impl Integration {
    pub async fn id(&self) -> ID {
        ids::encode("Integration", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The organization whose incidents it raises.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    async fn kind(&self) -> IntegrationKind {
        self.0.kind.into()
    }
    /// The secret's first characters, to tell secrets apart.
    async fn secret_hint(&self) -> &str {
        &self.0.secret_hint
    }
    async fn default_service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        service(ctx, self.0.default_service_id).await
    }
    async fn default_assignment_group(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SupportGroup>> {
        support_group(ctx, self.0.default_assignment_group_id).await
    }
    async fn default_impact(&self) -> i32 {
        self.0.default_impact
    }
    async fn default_urgency(&self) -> i32 {
        self.0.default_urgency
    }
    /// Labels whose values make the alert key; empty: the sender's
    /// fingerprint or dedup key.
    async fn dedup_labels(&self) -> Vec<String> {
        domain::dedup_labels_of(&self.0)
    }
    async fn resolve_action(&self) -> ResolveAction {
        self.0.resolve_action.into()
    }
    /// A firing alert within this many seconds of its incident's resolution reopens it.
    async fn reopen_window_seconds(&self) -> i32 {
        self.0.reopen_window_seconds
    }
    /// More re-fires than this within `flapWindowSeconds` mark the alert as flapping.
    async fn flap_threshold(&self) -> i32 {
        self.0.flap_threshold
    }
    async fn flap_window_seconds(&self) -> i32 {
        self.0.flap_window_seconds
    }
    async fn rules(&self) -> async_graphql::Result<Vec<RoutingRule>> {
        Ok(domain::rules_of(&self.0)?
            .into_iter()
            .map(RoutingRule)
            .collect())
    }
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

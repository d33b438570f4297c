//! Monitoring integrations, the `raiseAlert` mutation, the alert behind an
//! incident, and the delivery log (`ingestLog`).

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{enums, incident_alert, ingest_delivery, integration};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::auth::Admin;
use crate::graphql::{
    args::maybe,
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::{
    catalogue::graphql::Service,
    directory::graphql::{Organization, SupportGroup},
    incident::graphql::Incident,
};
use crate::records::scope_to;
use crate::{
    error::AppError,
    processes::monitoring::{self as domain, IncomingAlert, IntegrationSettings},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::IntegrationKind")]
pub enum IntegrationKind {
    /// Prometheus Alertmanager (`POST /ingest/alertmanager`).
    Alertmanager,
    /// Grafana alerting (`POST /ingest/grafana`).
    Grafana,
    /// PagerDuty Events API v2-compatible senders (`POST /ingest/events`).
    EventsApi,
    /// Senders using `raiseAlert`.
    Generic,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ResolveAction")]
pub enum ResolveAction {
    /// A resolved alert resolves its incident at the alert's end time.
    Resolve,
    /// A resolved alert only adds a work note; an agent resolves.
    Note,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::AlertStatus")]
pub enum AlertStatus {
    Firing,
    /// Assigns the open incident (its first response).
    Acknowledged,
    Resolved,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::monitoring::MatchOp")]
pub enum MatchOp {
    Equals,
    NotEquals,
    /// A regular expression matching the whole value.
    Matches,
    NotMatches,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::monitoring::AlertAction")]
pub enum AlertAction {
    /// A new incident was raised.
    Created,
    /// A repeat: the open incident's alert count and last-seen time moved.
    Updated,
    /// A resolved incident within the reopen window was reopened.
    Reopened,
    /// A re-fire was recorded on the flapping incident instead of reopening it.
    Flapping,
    Resolved,
    /// The resolved alert was noted; the incident stays open.
    Noted,
    Acknowledged,
    /// Nothing to do (a resolve or acknowledge without an open incident).
    Ignored,
}

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
        let Some(id) = self.0.service_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().service, id).await?.map(Service))
    }
    async fn assignment_group(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SupportGroup>> {
        let Some(id) = self.0.assignment_group_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().support_group, id)
            .await?
            .map(SupportGroup))
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

fn rules_in(rules: Vec<RoutingRuleInput>) -> Result<Vec<domain::RoutingRule>, AppError> {
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
                service_id: r
                    .service_id
                    .map(|id| ids::reference(&id, "Service", &format!("rules[{n}].serviceId")))
                    .transpose()?,
                assignment_group_id: r
                    .assignment_group_id
                    .map(|id| {
                        ids::reference(
                            &id,
                            "SupportGroup",
                            &format!("rules[{n}].assignmentGroupId"),
                        )
                    })
                    .transpose()?,
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
        let Some(id) = self.0.default_service_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().service, id).await?.map(Service))
    }
    async fn default_assignment_group(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SupportGroup>> {
        let Some(id) = self.0.default_assignment_group_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().support_group, id)
            .await?
            .map(SupportGroup))
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

/// The alert behind an incident raised by monitoring.
pub struct IncidentAlert(pub incident_alert::Model);

#[Object]
impl IncidentAlert {
    async fn dedup_key(&self) -> &str {
        &self.0.dedup_key
    }
    /// The latest status the sender reported.
    async fn status(&self) -> AlertStatus {
        self.0.status.into()
    }
    /// Firing notifications received, the first included.
    async fn alert_count(&self) -> i32 {
        self.0.alert_count
    }
    /// Times a re-fire reopened the incident.
    async fn reopen_count(&self) -> i32 {
        self.0.reopen_count
    }
    /// Re-fired more than the integration's threshold within its window.
    async fn flapping(&self) -> bool {
        self.0.flapping
    }
    /// Re-fires recorded instead of reopening while flapping.
    async fn flap_count(&self) -> i32 {
        self.0.flap_count
    }
    async fn labels(&self) -> Json<Value> {
        Json(self.0.labels.clone())
    }
    async fn annotations(&self) -> Json<Value> {
        Json(self.0.annotations.clone())
    }
    async fn source_url(&self) -> Option<&str> {
        self.0.source_url.as_deref()
    }
    async fn first_seen_at(&self) -> DateTime<Utc> {
        self.0.first_seen_at
    }
    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.0.last_seen_at
    }
    /// When the sender reported the alert resolved.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// The integration that raised it (admins only; null otherwise).
    async fn integration(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Integration>> {
        if !ctx.principal()?.is_admin() {
            return Ok(None);
        }
        Ok(load(&ctx.loaders().integration, self.0.integration_id)
            .await?
            .map(Integration))
    }
}

/// The monitoring alert behind an incident, for staff.
pub async fn alert_of(
    ctx: &Context<'_>,
    incident_id: i64,
) -> async_graphql::Result<Option<IncidentAlert>> {
    if !ctx.principal()?.is_staff() {
        return Ok(None);
    }
    Ok(load(&ctx.loaders().alert_by_incident, incident_id)
        .await?
        .and_then(|rows| rows.into_iter().next())
        .map(IncidentAlert))
}

/// One delivery to an ingest endpoint (or a `raiseAlert` call).
pub struct IngestDelivery(pub ingest_delivery::Model);

#[Object]
impl IngestDelivery {
    async fn id(&self) -> ID {
        ids::encode("IngestDelivery", self.0.id)
    }
    async fn integration(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Integration>> {
        let Some(id) = self.0.integration_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().integration, id).await?.map(Integration))
    }
    /// `alertmanager`, `grafana`, `events` or `graphql`.
    async fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }
    /// The HTTP status answered (200 for `raiseAlert`).
    async fn http_status(&self) -> i32 {
        self.0.http_status
    }
    /// Alerts in the delivery.
    async fn alerts(&self) -> i32 {
        self.0.alerts
    }
    async fn created(&self) -> i32 {
        self.0.created
    }
    /// Repeats, reopenings, acknowledgements, notes.
    async fn updated(&self) -> i32 {
        self.0.updated
    }
    async fn resolved(&self) -> i32 {
        self.0.resolved
    }
    async fn ignored(&self) -> i32 {
        self.0.ignored
    }
    /// Why the delivery (or part of it) was refused, or that it was a retry.
    async fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.0.errors.clone()).unwrap_or_default()
    }
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    async fn duration_ms(&self) -> i32 {
        self.0.duration_ms
    }
}

#[derive(InputObject, Default)]
pub struct IntegrationFilter {
    pub organization_id: Option<ID>,
    pub active: Option<bool>,
}

#[derive(Default)]
pub struct MonitoringQuery;

#[Object]
impl MonitoringQuery {
    /// Monitoring integrations, by name. Admins only.
    #[graphql(guard = "Admin")]
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        filter: Option<IntegrationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Integration>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q =
            integration::Entity::find().filter(scope_to(p, integration::Column::OrganizationId));
        if let Some(o) = &f.organization_id {
            q = q.filter(integration::Column::OrganizationId.eq(ids::reference(
                o,
                "Organization",
                "organizationId",
            )?));
        }
        if let Some(a) = f.active {
            q = q.filter(integration::Column::Active.eq(a));
        }
        let keyset = Keyset::by(
            integration::Column::NameKey,
            |m: &integration::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Integration,
        )
        .await
    }

    #[graphql(guard = "Admin")]
    async fn integration(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Integration> {
        let n = ids::expect(&id, "Integration", "id")?;
        Ok(Integration(
            domain::find_integration(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// The ingest deliveries, newest first, kept for `ingest.log_retention`.
    /// Admins only.
    #[graphql(guard = "Admin")]
    async fn ingest_log(
        &self,
        ctx: &Context<'_>,
        integration_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<IngestDelivery>> {
        let p = ctx.principal()?;
        let mut q = ingest_delivery::Entity::find();
        if let Some(orgs) = p.visible_organizations() {
            q = q.filter(ingest_delivery::Column::OrganizationId.is_in(orgs.iter().copied()));
        }
        if let Some(i) = &integration_id {
            q = q.filter(ingest_delivery::Column::IntegrationId.eq(ids::reference(
                i,
                "Integration",
                "integrationId",
            )?));
        }
        let keyset = Keyset::<ingest_delivery::Entity>::by_id(true);
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            IngestDelivery,
        )
        .await
    }
}

#[derive(InputObject)]
pub struct CreateIntegrationInput {
    pub organization_id: ID,
    pub name: String,
    pub kind: IntegrationKind,
    /// The service of alerts no rule routes.
    pub default_service_id: Option<ID>,
    pub default_assignment_group_id: Option<ID>,
    /// 1 (high) to 3 (low); default 2.
    pub default_impact: Option<i32>,
    /// 1 (high) to 3 (low); default 2.
    pub default_urgency: Option<i32>,
    /// Labels whose values make the alert key (e.g. `["alertname", "instance"]`);
    /// default: the sender's fingerprint or dedup key.
    pub dedup_labels: Option<Vec<String>>,
    /// Default RESOLVE.
    pub resolve_action: Option<ResolveAction>,
    /// Default `ingest.reopen_window` (30 minutes).
    pub reopen_window_seconds: Option<i32>,
    /// Default `ingest.flap_threshold` (3).
    pub flap_threshold: Option<i32>,
    /// Default `ingest.flap_window` (1 hour).
    pub flap_window_seconds: Option<i32>,
    pub rules: Option<Vec<RoutingRuleInput>>,
}

#[derive(InputObject)]
pub struct UpdateIntegrationInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub default_service_id: MaybeUndefined<ID>,
    pub default_assignment_group_id: MaybeUndefined<ID>,
    pub default_impact: Option<i32>,
    pub default_urgency: Option<i32>,
    pub dedup_labels: Option<Vec<String>>,
    pub resolve_action: Option<ResolveAction>,
    pub reopen_window_seconds: Option<i32>,
    pub flap_threshold: Option<i32>,
    pub flap_window_seconds: Option<i32>,
    /// Replaces the rules.
    pub rules: Option<Vec<RoutingRuleInput>>,
    /// An inactive integration's secret is refused (401).
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct RotateIntegrationSecretInput {
    pub id: ID,
    pub version: i32,
}

/// An integration with its secret: shown only in this answer.
#[derive(SimpleObject)]
pub struct IntegrationSecret {
    pub integration: Integration,
    /// Send it as a bearer token, a basic-auth password, or the events API's
    /// `routing_key`. Only its hash is stored.
    pub secret: String,
}

#[derive(InputObject)]
pub struct AlertLabelInput {
    pub name: String,
    pub value: String,
}

#[derive(InputObject)]
pub struct RaiseAlertInput {
    /// Required unless the request is authenticated with the integration's secret.
    pub integration_id: Option<ID>,
    #[graphql(default_with = "AlertStatus::Firing")]
    pub status: AlertStatus,
    /// The sender's key for the alert; without it, the integration's dedup
    /// labels or a hash of the labels.
    pub dedup_key: Option<String>,
    /// The incident's title (else the `alertname` label).
    pub summary: Option<String>,
    pub description: Option<String>,
    /// critical, error, warning or info: sets impact and urgency unless a rule does.
    pub severity: Option<String>,
    #[graphql(default)]
    pub labels: Vec<AlertLabelInput>,
    #[graphql(default)]
    pub annotations: Vec<AlertLabelInput>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub source_url: Option<String>,
}

#[derive(SimpleObject)]
pub struct RaiseAlertPayload {
    pub action: AlertAction,
    pub dedup_key: String,
    /// The incident the alert raised, updated or resolved (null when ignored without one).
    pub incident: Option<Incident>,
}

#[derive(Default)]
pub struct MonitoringMutation;

fn settings_of(
    name: Option<String>,
    default_service_id: Option<Option<ID>>,
    default_assignment_group_id: Option<Option<ID>>,
    rest: SettingsRest,
) -> Result<IntegrationSettings, AppError> {
    let service = default_service_id
        .map(|o| {
            o.map(|id| ids::reference(&id, "Service", "defaultServiceId"))
                .transpose()
        })
        .transpose()?;
    let group = default_assignment_group_id
        .map(|o| {
            o.map(|id| ids::reference(&id, "SupportGroup", "defaultAssignmentGroupId"))
                .transpose()
        })
        .transpose()?;
    Ok(IntegrationSettings {
        name,
        default_service_id: service,
        default_assignment_group_id: group,
        default_impact: rest.default_impact,
        default_urgency: rest.default_urgency,
        dedup_labels: rest.dedup_labels,
        resolve_action: rest.resolve_action.map(Into::into),
        reopen_window_seconds: rest.reopen_window_seconds,
        flap_threshold: rest.flap_threshold,
        flap_window_seconds: rest.flap_window_seconds,
        rules: rest.rules.map(rules_in).transpose()?,
        active: rest.active,
    })
}

/// The settings both inputs share.
struct SettingsRest {
    default_impact: Option<i32>,
    default_urgency: Option<i32>,
    dedup_labels: Option<Vec<String>>,
    resolve_action: Option<ResolveAction>,
    reopen_window_seconds: Option<i32>,
    flap_threshold: Option<i32>,
    flap_window_seconds: Option<i32>,
    rules: Option<Vec<RoutingRuleInput>>,
    active: Option<bool>,
}

fn pairs(field: &str, list: Vec<AlertLabelInput>) -> Result<BTreeMap<String, String>, AppError> {
    let mut out = BTreeMap::new();
    for l in list {
        if out.insert(l.name.clone(), l.value).is_some() {
            return Err(AppError::invalid_field(
                field,
                format!("{} is given twice", domain::shown(&l.name)),
            ));
        }
    }
    Ok(out)
}

#[Object]
impl MonitoringMutation {
    /// Creates an integration for an organization; the answer carries its
    /// secret, shown only this once. Admins only.
    #[graphql(guard = "Admin")]
    async fn create_integration(
        &self,
        ctx: &Context<'_>,
        input: CreateIntegrationInput,
    ) -> async_graphql::Result<IntegrationSecret> {
        let app = ctx.app();
        let org = ids::reference(&input.organization_id, "Organization", "organizationId")?;
        let settings = settings_of(
            Some(input.name),
            Some(input.default_service_id),
            Some(input.default_assignment_group_id),
            SettingsRest {
                default_impact: input.default_impact,
                default_urgency: input.default_urgency,
                dedup_labels: input.dedup_labels,
                resolve_action: input.resolve_action,
                reopen_window_seconds: input.reopen_window_seconds,
                flap_threshold: input.flap_threshold,
                flap_window_seconds: input.flap_window_seconds,
                rules: input.rules,
                active: None,
            },
        )?;
        let (created, secret) = domain::create_integration(
            &app.store,
            ctx.principal()?,
            org,
            input.kind.into(),
            settings,
            &app.ingest,
        )
        .await?;
        Ok(IntegrationSecret {
            integration: Integration(created),
            secret,
        })
    }

    /// Changes an integration's routing and behaviour, or deactivates it. Admins only.
    async fn update_integration(
        &self,
        ctx: &Context<'_>,
        input: UpdateIntegrationInput,
    ) -> async_graphql::Result<Integration> {
        let id = ids::expect(&input.id, "Integration", "id")?;
        let settings = settings_of(
            input.name,
            maybe(input.default_service_id),
            maybe(input.default_assignment_group_id),
            SettingsRest {
                default_impact: input.default_impact,
                default_urgency: input.default_urgency,
                dedup_labels: input.dedup_labels,
                resolve_action: input.resolve_action,
                reopen_window_seconds: input.reopen_window_seconds,
                flap_threshold: input.flap_threshold,
                flap_window_seconds: input.flap_window_seconds,
                rules: input.rules,
                active: input.active,
            },
        )?;
        let saved = domain::update_integration(
            &ctx.app().store,
            ctx.principal()?,
            id,
            input.version,
            settings,
        )
        .await?;
        Ok(Integration(saved))
    }

    /// Replaces an integration's secret; the old one stops working at once.
    async fn rotate_integration_secret(
        &self,
        ctx: &Context<'_>,
        input: RotateIntegrationSecretInput,
    ) -> async_graphql::Result<IntegrationSecret> {
        let id = ids::expect(&input.id, "Integration", "id")?;
        let (saved, secret) =
            domain::rotate_secret(&ctx.app().store, ctx.principal()?, id, input.version).await?;
        Ok(IntegrationSecret {
            integration: Integration(saved),
            secret,
        })
    }

    /// Raises, repeats, acknowledges or resolves an alert, with the same
    /// meaning as the ingest endpoints. Authenticate with the integration's
    /// secret as the bearer token, or as staff naming `integrationId`.
    async fn raise_alert(
        &self,
        ctx: &Context<'_>,
        input: RaiseAlertInput,
    ) -> async_graphql::Result<RaiseAlertPayload> {
        let started = std::time::Instant::now();
        let app = ctx.app();
        let p = ctx.principal()?;
        let named = input
            .integration_id
            .as_ref()
            .map(|id| ids::reference(id, "Integration", "integrationId"))
            .transpose()?;
        let integration = domain::integration_for_caller(&app.store.db, p, named).await?;
        let labels = pairs("labels", input.labels)?;
        let annotations = pairs("annotations", input.annotations)?;
        for (what, map) in [("labels", &labels), ("annotations", &annotations)] {
            domain::check_pairs(&app.ingest, "input", what, map)
                .map_err(|m| AppError::invalid_field(what, m))?;
        }
        if let Some(s) = &input.severity
            && !matches!(s.as_str(), "critical" | "error" | "warning" | "info")
        {
            return Err(AppError::invalid_field(
                "severity",
                "severity must be critical, error, warning or info",
            )
            .into());
        }
        let status: enums::AlertStatus = input.status.into();
        if status != enums::AlertStatus::Firing
            && input.dedup_key.is_none()
            && domain::dedup_labels_of(&integration).is_empty()
            && labels.is_empty()
        {
            return Err(AppError::invalid_field(
                "dedupKey",
                "dedupKey (or labels) is required to acknowledge or resolve",
            )
            .into());
        }
        if input.dedup_key.as_deref().is_some_and(|k| k.len() > 255) {
            return Err(
                AppError::invalid_field("dedupKey", "dedupKey is at most 255 characters").into(),
            );
        }
        let alert = IncomingAlert {
            status,
            key: input.dedup_key,
            summary: input.summary,
            description: input.description,
            severity: input.severity,
            labels,
            annotations,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            source_url: input.source_url,
        };
        let outcome = domain::ingest(
            &app.store,
            &app.ingest,
            &integration,
            "graphql",
            None,
            vec![alert],
            started,
        )
        .await?;
        let first = outcome
            .alerts
            .into_iter()
            .next()
            .ok_or_else(|| AppError::internal(std::io::Error::other("no outcome")))?;
        Ok(RaiseAlertPayload {
            action: first.action.into(),
            dedup_key: first.key,
            incident: first.incident.map(Incident),
        })
    }
}

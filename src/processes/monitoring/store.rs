//! Monitoring alerts to incidents (DOMAIN.md): integrations with hashed
//! secrets and routing rules, and the alert state machine that raises,
//! updates, reopens, resolves and acknowledges incidents exactly once per
//! tenant and alert key, with the delivery log. The HTTP endpoints (in
//! `crate::ingest`) and the `raiseAlert` mutation both end here.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use entity::{
    configuration_item,
    enums::{
        AlertStatus, CiStatus, IncidentSource, IncidentState, IntegrationKind, NoteKind,
        OrganizationKind, ResolveAction,
    },
    incident, incident_alert, incident_note, ingest_delivery, integration, organization,
    support_group,
};
use regex::Regex;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::NotSet,
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set,
    Statement,
    sea_query::{Expr, Func, Query},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::processes::{
    catalogue,
    incident::{self as incidents, ClockCause, IncidentDraft, Raised},
    sla as sla_domain,
};
use crate::records::{Store, audit, check_version, clean_name, insert_rows, now, save_versioned};
use crate::{
    auth::{Principal, Role, TenantScope},
    config::IngestConfig,
    db::begin_write,
    error::{AppError, AppResult, current_request_id},
    events::{DomainEvent, IncidentChangeKind, IncidentChanged},
};

/// Every integration secret starts with this, so a bearer token can be told
/// apart from a JWT.
pub const SECRET_PREFIX: &str = "sgi_";

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    use rand::Rng;
    let tail: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("{SECRET_PREFIX}{tail}")
}

/// Who an integration acts as: its tenant only, with the integration role.
pub fn integration_principal(i: &integration::Model) -> Principal {
    Principal {
        subject: format!("integration:{}", i.id),
        organization_id: i.organization_id,
        roles: [Role::Integration].into_iter().collect(),
        scope: TenantScope::Organizations(vec![i.organization_id]),
    }
}

// ---------------------------------------------------------------------------
// Routing rules

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchOp {
    Equals,
    NotEquals,
    /// A regular expression matching the whole value (as Alertmanager's `=~`).
    Matches,
    NotMatches,
}

/// A test on one label; a missing label has the empty value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

/// Where matching alerts go. The first rule whose matchers all hold wins;
/// unset fields fall back to the integration's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoutingRule {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    /// Labels whose values name the affected CIs (by name or external id).
    pub ci_labels: Vec<String>,
    pub category: Option<String>,
}

pub fn rules_of(i: &integration::Model) -> AppResult<Vec<RoutingRule>> {
    serde_json::from_value(i.rules.clone()).map_err(AppError::internal)
}

pub fn dedup_labels_of(i: &integration::Model) -> Vec<String> {
    serde_json::from_value(i.dedup_labels.clone()).unwrap_or_default()
}

const MAX_RULES: usize = 100;
const MAX_MATCHERS: usize = 20;
const MAX_DEDUP_LABELS: usize = 10;

fn anchored(field: &str, pattern: &str) -> AppResult<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| AppError::invalid_field(field, format!("not a valid regular expression: {e}")))
}

/// Rules with their regular expressions compiled, once per delivery.
struct Routing {
    rules: Vec<(RoutingRule, Vec<Option<Regex>>)>,
}

impl Routing {
    fn new(i: &integration::Model) -> AppResult<Self> {
        let mut rules = Vec::new();
        for (n, rule) in rules_of(i)?.into_iter().enumerate() {
            let mut compiled = Vec::with_capacity(rule.matchers.len());
            for (m, matcher) in rule.matchers.iter().enumerate() {
                compiled.push(match matcher.op {
                    MatchOp::Matches | MatchOp::NotMatches => Some(anchored(
                        &format!("rules[{n}].matchers[{m}].value"),
                        &matcher.value,
                    )?),
                    _ => None,
                });
            }
            rules.push((rule, compiled));
        }
        Ok(Self { rules })
    }

    fn route(&self, labels: &BTreeMap<String, String>) -> Option<&RoutingRule> {
        self.rules.iter().find_map(|(rule, regexes)| {
            let all = rule.matchers.iter().zip(regexes).all(|(m, re)| {
                let value = labels.get(&m.label).map_or("", String::as_str);
                match (m.op, re) {
                    (MatchOp::Equals, _) => value == m.value,
                    (MatchOp::NotEquals, _) => value != m.value,
                    (MatchOp::Matches, Some(re)) => re.is_match(value),
                    (MatchOp::NotMatches, Some(re)) => !re.is_match(value),
                    _ => false,
                }
            });
            all.then_some(rule)
        })
    }
}

/// Impact and urgency from a conventional severity, when no rule sets them.
fn severity_levels(severity: &str) -> Option<(i32, i32)> {
    match severity.to_ascii_lowercase().as_str() {
        "critical" | "fatal" | "page" => Some((1, 1)),
        "error" | "high" | "major" => Some((1, 2)),
        "warning" | "warn" | "minor" | "medium" => Some((2, 2)),
        "info" | "informational" | "low" | "none" => Some((3, 3)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Integrations

pub struct IntegrationSettings {
    pub name: Option<String>,
    pub default_service_id: Option<Option<i64>>,
    pub default_assignment_group_id: Option<Option<i64>>,
    pub default_impact: Option<i32>,
    pub default_urgency: Option<i32>,
    pub dedup_labels: Option<Vec<String>>,
    pub resolve_action: Option<ResolveAction>,
    pub reopen_window_seconds: Option<i32>,
    pub flap_threshold: Option<i32>,
    pub flap_window_seconds: Option<i32>,
    pub rules: Option<Vec<RoutingRule>>,
    pub active: Option<bool>,
}

fn apply_settings(m: &mut integration::Model, s: IntegrationSettings) -> AppResult<()> {
    if let Some(name) = &s.name {
        let (name, key) = clean_name("name", name, 200)?;
        m.name = name;
        m.name_key = key;
    }
    crate::records::patch(&mut m.default_service_id, s.default_service_id);
    crate::records::patch(
        &mut m.default_assignment_group_id,
        s.default_assignment_group_id,
    );
    crate::records::patch(&mut m.default_impact, s.default_impact);
    crate::records::patch(&mut m.default_urgency, s.default_urgency);
    crate::records::patch(&mut m.resolve_action, s.resolve_action);
    crate::records::patch(&mut m.reopen_window_seconds, s.reopen_window_seconds);
    crate::records::patch(&mut m.flap_threshold, s.flap_threshold);
    crate::records::patch(&mut m.flap_window_seconds, s.flap_window_seconds);
    crate::records::patch(&mut m.active, s.active);
    if let Some(labels) = s.dedup_labels {
        m.dedup_labels = serde_json::to_value(labels).map_err(AppError::internal)?;
    }
    if let Some(rules) = s.rules {
        m.rules = serde_json::to_value(rules).map_err(AppError::internal)?;
    }
    Ok(())
}

/// Checks an integration as it would be stored: levels, windows, labels,
/// regular expressions, and that every service and group it routes to is one
/// its tenant may use (another tenant's answers like a missing one).
async fn check_integration<C: ConnectionTrait>(db: &C, m: &integration::Model) -> AppResult<()> {
    sla_domain::check_level("defaultImpact", m.default_impact)?;
    sla_domain::check_level("defaultUrgency", m.default_urgency)?;
    if !(0..=7 * 86_400).contains(&m.reopen_window_seconds) {
        return Err(AppError::invalid_field(
            "reopenWindowSeconds",
            "reopenWindowSeconds must be between 0 and 604800 (7 days)",
        ));
    }
    if !(1..=1000).contains(&m.flap_threshold) {
        return Err(AppError::invalid_field(
            "flapThreshold",
            "flapThreshold must be between 1 and 1000",
        ));
    }
    if !(60..=7 * 86_400).contains(&m.flap_window_seconds) {
        return Err(AppError::invalid_field(
            "flapWindowSeconds",
            "flapWindowSeconds must be between 60 and 604800 (7 days)",
        ));
    }
    let dedup = dedup_labels_of(m);
    if dedup.len() > MAX_DEDUP_LABELS {
        return Err(AppError::invalid_field(
            "dedupLabels",
            format!("at most {MAX_DEDUP_LABELS} dedup labels"),
        ));
    }
    for l in &dedup {
        check_label_name("dedupLabels", l)?;
    }
    let rules = rules_of(m)?;
    if rules.len() > MAX_RULES {
        return Err(AppError::invalid_field(
            "rules",
            format!("at most {MAX_RULES} routing rules"),
        ));
    }
    let tenant = tenant_view(m.organization_id);
    let mut services = vec![("defaultServiceId".to_owned(), m.default_service_id)];
    let mut groups = vec![(
        "defaultAssignmentGroupId".to_owned(),
        m.default_assignment_group_id,
    )];
    for (n, rule) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{n}].{f}");
        if rule.matchers.len() > MAX_MATCHERS {
            return Err(AppError::invalid_field(
                &at("matchers"),
                format!("a rule has at most {MAX_MATCHERS} matchers"),
            ));
        }
        for (k, matcher) in rule.matchers.iter().enumerate() {
            check_label_name(&at(&format!("matchers[{k}].label")), &matcher.label)?;
            if matches!(matcher.op, MatchOp::Matches | MatchOp::NotMatches) {
                anchored(&at(&format!("matchers[{k}].value")), &matcher.value)?;
            }
        }
        if let Some(i) = rule.impact {
            sla_domain::check_level(&at("impact"), i)?;
        }
        if let Some(u) = rule.urgency {
            sla_domain::check_level(&at("urgency"), u)?;
        }
        for l in &rule.ci_labels {
            check_label_name(&at("ciLabels"), l)?;
        }
        services.push((at("serviceId"), rule.service_id));
        groups.push((at("assignmentGroupId"), rule.assignment_group_id));
    }
    for (field, id) in services {
        if let Some(id) = id {
            catalogue::find_service(db, &tenant, id)
                .await
                .map_err(|_| AppError::invalid_field(&field, "service not found"))?;
        }
    }
    let providers = provider_ids(db).await?;
    for (field, id) in groups {
        if let Some(id) = id {
            match support_group::Entity::find_by_id(id).one(db).await? {
                Some(g)
                    if g.organization_id == m.organization_id
                        || providers.contains(&g.organization_id) => {}
                _ => return Err(AppError::invalid_field(&field, "support group not found")),
            }
        }
    }
    Ok(())
}

fn check_label_name(field: &str, name: &str) -> AppResult<()> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(AppError::invalid_field(
            field,
            "a label name is 1 to 128 characters without control characters",
        ));
    }
    Ok(())
}

/// The view of a tenant's own principal: what services it may route to.
fn tenant_view(organization_id: i64) -> Principal {
    Principal {
        subject: "integration".into(),
        organization_id,
        roles: [Role::Integration].into_iter().collect(),
        scope: TenantScope::Organizations(vec![organization_id]),
    }
}

async fn provider_ids<C: ConnectionTrait>(db: &C) -> AppResult<Vec<i64>> {
    Ok(organization::Entity::find()
        .filter(organization::Column::Kind.eq(OrganizationKind::Provider))
        .all(db)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect())
}

pub async fn find_integration<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<integration::Model> {
    // Integrations and their secrets' settings are admins' records.
    p.require_admin()?;
    match integration::Entity::find_by_id(id).one(db).await? {
        Some(i) if p.can_see(i.organization_id) => Ok(i),
        _ => Err(AppError::not_found("integration")),
    }
}

/// The active integration a secret belongs to.
pub async fn integration_by_secret<C: ConnectionTrait>(
    db: &C,
    secret: &str,
) -> AppResult<Option<integration::Model>> {
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    Ok(integration::Entity::find()
        .filter(integration::Column::SecretHash.eq(hash_secret(secret)))
        .filter(integration::Column::Active.eq(true))
        .one(db)
        .await?)
}

/// The integration a caller raises alerts through: the one whose secret
/// authenticated the request (`integration:<id>` principals), or, for staff
/// and integration-role tokens, the one named, if its tenant is visible.
pub async fn integration_for_caller<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    named: Option<i64>,
) -> AppResult<integration::Model> {
    let own = p
        .subject
        .strip_prefix("integration:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|_| p.has_role(Role::Integration) && !p.is_staff());
    let id = match (own, named) {
        (Some(own), Some(n)) if own != n => {
            return Err(AppError::invalid_field(
                "integrationId",
                "integration not found",
            ));
        }
        (Some(own), _) => own,
        (None, Some(n)) => n,
        (None, None) => {
            return Err(AppError::invalid_field(
                "integrationId",
                "integrationId is required unless you authenticate with the integration's secret",
            ));
        }
    };
    if !(p.is_staff() || p.has_role(Role::Integration)) {
        return Err(AppError::Forbidden(
            "raising alerts needs an integration secret, the integration role, or the agent or admin role".into(),
        ));
    }
    match integration::Entity::find_by_id(id).one(db).await? {
        Some(i) if i.active && p.can_see(i.organization_id) => Ok(i),
        _ => Err(AppError::invalid_field(
            "integrationId",
            "integration not found",
        )),
    }
}

/// Creates an integration and answers it with its secret, which is shown
/// only this once (only its hash is kept). Admins only.
pub async fn create_integration(
    store: &Store,
    p: &Principal,
    organization_id: i64,
    kind: IntegrationKind,
    settings: IntegrationSettings,
    defaults: &IngestConfig,
) -> AppResult<(integration::Model, String)> {
    if !p.can_see(organization_id) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let name = settings
        .name
        .clone()
        .ok_or_else(|| AppError::invalid_field("name", "name must not be empty"))?;
    let (name, name_key) = clean_name("name", &name, 200)?;
    let secret = new_secret();
    let at = now();
    let mut model = integration::Model {
        id: 0,
        organization_id,
        name,
        name_key,
        kind,
        secret_hash: hash_secret(&secret),
        secret_hint: secret.chars().take(8).collect(),
        default_service_id: None,
        default_assignment_group_id: None,
        default_impact: 2,
        default_urgency: 2,
        dedup_labels: serde_json::json!([]),
        resolve_action: ResolveAction::Resolve,
        reopen_window_seconds: secs(defaults.reopen_window),
        flap_threshold: defaults.flap_threshold as i32,
        flap_window_seconds: secs(defaults.flap_window),
        rules: serde_json::json!([]),
        active: true,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    apply_settings(&mut model, settings)?;
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    check_integration(&txn, &model).await?;
    let mut active: integration::ActiveModel = model.into();
    active.id = NotSet;
    let created = audit::insert(&txn, p, active).await.map_err(|e| {
        crate::records::conflict_on_unique(
            e,
            "an integration with this name already exists for this organization",
        )
    })?;
    txn.commit().await?;
    Ok((created, secret))
}

fn secs(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

pub async fn update_integration(
    store: &Store,
    p: &Principal,
    id: i64,
    version: i32,
    settings: IntegrationSettings,
) -> AppResult<integration::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_integration(&txn, p, id).await?;
    check_version("integration", version, before.version)?;
    let mut next = before.clone();
    apply_settings(&mut next, settings)?;
    check_integration(&txn, &next).await?;
    let saved = save_versioned(&txn, p, &before, next).await.map_err(|e| {
        crate::records::conflict_on_unique(
            e,
            "an integration with this name already exists for this organization",
        )
    })?;
    txn.commit().await?;
    Ok(saved)
}

/// Replaces an integration's secret: the old one stops working at once.
pub async fn rotate_secret(
    store: &Store,
    p: &Principal,
    id: i64,
    version: i32,
) -> AppResult<(integration::Model, String)> {
    let txn = begin_write(&store.db).await?;
    let before = find_integration(&txn, p, id).await?;
    check_version("integration", version, before.version)?;
    let secret = new_secret();
    let mut next = before.clone();
    next.secret_hash = hash_secret(&secret);
    next.secret_hint = secret.chars().take(8).collect();
    let saved = save_versioned(&txn, p, &before, next).await?;
    txn.commit().await?;
    Ok((saved, secret))
}

// ---------------------------------------------------------------------------
// Alerts

/// One alert as any sender reports it, after parsing.
#[derive(Debug, Clone)]
pub struct IncomingAlert {
    pub status: AlertStatus,
    /// The sender's fingerprint or dedup key.
    pub key: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub source_url: Option<String>,
}

/// What one alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// A new incident.
    Created,
    /// A repeat: the open incident's alert count and last-seen time moved.
    Updated,
    /// A resolved incident within the reopen window was reopened.
    Reopened,
    /// A re-fire recorded on a flapping incident instead of reopening it.
    Flapping,
    Resolved,
    /// A resolved alert noted on the incident, which stays open (resolve action NOTE).
    Noted,
    Acknowledged,
    /// Nothing to do: a resolve or acknowledge without an open incident.
    Ignored,
}

#[derive(Debug, Clone)]
pub struct AlertOutcome {
    pub key: String,
    pub action: AlertAction,
    pub incident: Option<incident::Model>,
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub created: i32,
    pub updated: i32,
    pub resolved: i32,
    pub ignored: i32,
}

impl Counts {
    fn add(&mut self, action: AlertAction) {
        match action {
            AlertAction::Created => self.created += 1,
            AlertAction::Resolved => self.resolved += 1,
            AlertAction::Ignored => self.ignored += 1,
            _ => self.updated += 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub delivery_id: i64,
    /// A retry of a delivery already stored: nothing changed.
    pub duplicate: bool,
    pub counts: Counts,
    pub alerts: Vec<AlertOutcome>,
}

/// A label or annotation name safe to put in a message.
pub fn shown(name: &str) -> String {
    let s: String = name.chars().take(64).collect();
    s.escape_debug().to_string()
}

/// Checks one alert's labels or annotations against the limits; the message
/// names the alert (`at`) and the offending entry.
pub fn check_pairs(
    limits: &IngestConfig,
    at: &str,
    what: &str,
    map: &BTreeMap<String, String>,
) -> Result<(), String> {
    if map.len() > limits.max_labels {
        return Err(format!(
            "{at}.{what}: at most {} {what} per alert, this one has {}",
            limits.max_labels,
            map.len()
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.len() > 128 {
            return Err(format!(
                "{at}.{what}: a name is 1 to 128 bytes ({:?})",
                shown(k)
            ));
        }
        if v.len() > limits.max_value_bytes {
            return Err(format!(
                "{at}.{what}.{}: a value is at most {} bytes, this one has {}",
                shown(k),
                limits.max_value_bytes,
                v.len()
            ));
        }
    }
    Ok(())
}

/// Keys longer than this are stored as their hash.
const MAX_KEY: usize = 200;

/// The key that makes repeats of an alert one incident: the configured
/// labels' values, else the sender's key, else a hash of all labels.
pub fn alert_key(dedup_labels: &[String], alert: &IncomingAlert) -> String {
    let key = if !dedup_labels.is_empty() {
        let parts: Vec<String> = dedup_labels
            .iter()
            .map(|l| format!("{l}={}", alert.labels.get(l).map_or("", String::as_str)))
            .collect();
        parts.join(",")
    } else if let Some(k) = alert.key.as_deref().filter(|k| !k.is_empty()) {
        k.to_owned()
    } else {
        let joined: Vec<String> = alert
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("labels:{}", hash_secret(&joined.join("\u{1f}")))
    };
    if key.len() > MAX_KEY || key.chars().any(char::is_control) {
        format!("sha256:{}", hash_secret(&key))
    } else {
        key
    }
}

/// Text safe for titles and notes: control characters become spaces
/// (newlines and tabs stay in multi-line text).
fn printable(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !(multiline && (c == '\n' || c == '\t')) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn title_of(alert: &IncomingAlert, key: &str) -> String {
    let raw = alert
        .summary
        .as_deref()
        .or_else(|| alert.annotations.get("summary").map(String::as_str))
        .or_else(|| alert.labels.get("alertname").map(String::as_str))
        .unwrap_or(key);
    let t = truncate(printable(raw, false).trim(), 200);
    if t.is_empty() { "Alert".to_owned() } else { t }
}

fn describe(alert: &IncomingAlert) -> String {
    let mut out = String::new();
    if let Some(d) = alert
        .description
        .as_deref()
        .or_else(|| alert.annotations.get("description").map(String::as_str))
    {
        out.push_str(d);
        out.push_str("\n\n");
    }
    if !alert.labels.is_empty() {
        out.push_str("Labels:\n");
        for (k, v) in &alert.labels {
            out.push_str(&format!("  {k}={v}\n"));
        }
    }
    let extra: Vec<_> = alert
        .annotations
        .iter()
        .filter(|(k, _)| *k != "summary" && *k != "description")
        .collect();
    if !extra.is_empty() {
        out.push_str("Annotations:\n");
        for (k, v) in extra {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if let Some(u) = &alert.source_url {
        out.push_str(&format!("Source: {u}\n"));
    }
    truncate(printable(&out, true).trim_end(), 20_000)
}

fn annotations_note(prefix: &str, alert: &IncomingAlert) -> String {
    let mut out = prefix.to_owned();
    if !alert.annotations.is_empty() {
        out.push_str("\nAnnotations:");
        for (k, v) in &alert.annotations {
            out.push_str(&format!("\n  {k}: {v}"));
        }
    }
    truncate(&printable(&out, true), 20_000)
}

/// Labels or annotations as stored: exactly as sent, except NUL (which
/// PostgreSQL cannot store in text) as U+FFFD.
fn json_map(m: &BTreeMap<String, String>) -> serde_json::Value {
    let clean = |s: &str| s.replace('\0', "\u{fffd}");
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| (clean(k), serde_json::Value::String(clean(v))))
            .collect(),
    )
}

/// A 64-bit lock key for (tenant, alert key).
fn lock_key(customer_id: i64, key: &str) -> i64 {
    let digest = Sha256::digest(format!("{customer_id}\u{1f}{key}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// On PostgreSQL, takes transaction-scoped advisory locks on the keys in one
/// statement, in a fixed order (no deadlock between deliveries). A
/// concurrent delivery with one of the keys waits until this one commits,
/// then sees its incidents. (SQLite's write transaction already serializes.)
async fn lock_keys<C: ConnectionTrait>(db: &C, mut keys: Vec<i64>) -> AppResult<()> {
    if db.get_database_backend() != DbBackend::Postgres || keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let list: Vec<String> = keys.iter().map(i64::to_string).collect();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(k) FROM \
         (SELECT unnest(string_to_array($1, ',')::bigint[]) AS k ORDER BY 1) AS keys",
        [list.join(",").into()],
    ))
    .await?;
    Ok(())
}

/// The state of one alert key: its latest incident and that incident's alert row.
#[derive(Clone)]
struct KeyState {
    incident: incident::Model,
    alert: Option<incident_alert::Model>,
}

/// Work done by one delivery, published after commit.
enum Announce {
    Raised(Raised),
    Changed(IncidentChangeKind, Box<(incident::Model, incident::Model)>),
    Met(incident::Model, Vec<entity::sla_clock::Model>),
    Repeat(incident::Model),
}

/// Handles a delivery of alerts from `integration` in one transaction:
/// answers after commit, so an acknowledged delivery is stored. A retry of a
/// recently accepted body changes nothing. A unique-index refusal (another
/// process raised the same key first) is retried with fresh state.
pub async fn ingest(
    store: &Store,
    settings: &IngestConfig,
    integration: &integration::Model,
    endpoint: &str,
    body_hash: Option<String>,
    alerts: Vec<IncomingAlert>,
    started: std::time::Instant,
) -> AppResult<IngestOutcome> {
    let routing = Routing::new(integration)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ingest_once(
            store,
            settings,
            integration,
            &routing,
            endpoint,
            body_hash.clone(),
            &alerts,
            started,
        )
        .await
        {
            Err(e) if e.is_unique_violation() && attempt < 3 => {
                tracing::debug!(
                    attempt,
                    "alert key taken concurrently; retrying the delivery"
                );
            }
            other => return other,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn ingest_once(
    store: &Store,
    settings: &IngestConfig,
    integration: &integration::Model,
    routing: &Routing,
    endpoint: &str,
    body_hash: Option<String>,
    alerts: &[IncomingAlert],
    started: std::time::Instant,
) -> AppResult<IngestOutcome> {
    let p = integration_principal(integration);
    let customer = integration.organization_id;
    let dedup = dedup_labels_of(integration);
    let keyed: Vec<(String, &IncomingAlert)> =
        alerts.iter().map(|a| (alert_key(&dedup, a), a)).collect();
    let at = now();

    let txn = begin_write(&store.db).await?;
    let mut locks: Vec<i64> = keyed.iter().map(|(k, _)| lock_key(customer, k)).collect();
    if let Some(h) = &body_hash {
        locks.push(lock_key(
            customer,
            &format!("delivery:{}:{h}", integration.id),
        ));
    }
    lock_keys(&txn, locks).await?;

    // The same body accepted within the retry window is a retry when it would
    // change nothing: every alert already holds in the current state. A body
    // equal to an earlier one after the state moved on (firing, resolved,
    // firing again) is a new notification and is handled as one.
    let earlier = match &body_hash {
        Some(h) => {
            let since = at - Duration::seconds(settings.retry_window.as_secs() as i64);
            ingest_delivery::Entity::find()
                .filter(ingest_delivery::Column::IntegrationId.eq(integration.id))
                .filter(ingest_delivery::Column::BodyHash.eq(h.as_str()))
                .filter(ingest_delivery::Column::ReceivedAt.gte(since))
                .filter(ingest_delivery::Column::HttpStatus.lt(300))
                .order_by_desc(ingest_delivery::Column::Id)
                .one(&txn)
                .await?
        }
        None => None,
    };
    let status = if endpoint == "events" { 202 } else { 200 };
    let mut states = load_states(&txn, customer, &keyed).await?;
    if let Some(earlier) = earlier
        && keyed
            .iter()
            .all(|(k, a)| already_holds(a.status, states.get(k)))
    {
        let counts = Counts {
            ignored: keyed.len() as i32,
            ..Counts::default()
        };
        let log = log_delivery(
            &txn,
            Some(integration),
            endpoint,
            at,
            status,
            None,
            keyed.len(),
            &counts,
            vec![format!(
                "a retry of delivery {} (same body): nothing changed",
                earlier.id
            )],
            started,
        )
        .await?;
        txn.commit().await?;
        return Ok(IngestOutcome {
            delivery_id: log.id,
            duplicate: true,
            counts,
            alerts: Vec::new(),
        });
    }

    // A key twice in one delivery is handled in order: each round takes
    // at most one alert per key, so the bulk writes of a round never race
    // with themselves.
    let mut rounds: Vec<Vec<(usize, &str, &IncomingAlert)>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (k, a)) in keyed.iter().enumerate() {
        let n = seen.entry(k.as_str()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push((i, k.as_str(), *a));
        *n += 1;
    }
    let mut outcomes: Vec<Option<AlertOutcome>> = vec![None; keyed.len()];
    let mut announce = Vec::new();
    let mut ci_cache: Option<CiIndex> = None;
    for round in rounds {
        run_round(
            &txn,
            &p,
            integration,
            routing,
            &round,
            &mut states,
            &mut outcomes,
            &mut announce,
            &mut ci_cache,
            at,
            &store.sla_thresholds,
        )
        .await?;
    }
    let outcomes: Vec<AlertOutcome> = outcomes.into_iter().flatten().collect();
    let mut counts = Counts::default();
    for o in &outcomes {
        counts.add(o.action);
    }
    let log = log_delivery(
        &txn,
        Some(integration),
        endpoint,
        at,
        status,
        body_hash,
        keyed.len(),
        &counts,
        Vec::new(),
        started,
    )
    .await?;
    txn.commit().await?;
    for a in announce {
        match a {
            Announce::Raised(r) => incidents::publish_raised(store, &r, at),
            Announce::Changed(kind, pair) => incidents::publish(store, kind, &pair.0, &pair.1),
            Announce::Met(inc, clocks) => incidents::publish_met(store, &inc, clocks, at),
            Announce::Repeat(inc) => {
                store
                    .events
                    .publish(DomainEvent::IncidentChanged(Box::new(IncidentChanged {
                        kind: IncidentChangeKind::Updated,
                        changed_fields: vec!["alert".into()],
                        incident: inc,
                        note: None,
                    })))
            }
        }
    }
    Ok(IngestOutcome {
        delivery_id: log.id,
        duplicate: false,
        counts,
        alerts: outcomes,
    })
}

/// The latest incident of each key and its alert row, in two statements.
async fn load_states<C: ConnectionTrait>(
    db: &C,
    customer: i64,
    keyed: &[(String, &IncomingAlert)],
) -> AppResult<HashMap<String, KeyState>> {
    let mut keys: Vec<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let found = if db.get_database_backend() == DbBackend::Postgres {
        // One backward probe of (customer_id, dedup_key, id) per key, whatever
        // the statistics say: an `IN` list of parameters let the planner
        // filter every incident of the customer against the list instead,
        // so each delivery cost more as incidents accumulated.
        incident::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT i.* FROM unnest($2::text[]) AS k(key) \
                 CROSS JOIN LATERAL (SELECT * FROM incidents \
                 WHERE customer_id = $1 AND dedup_key = k.key ORDER BY id DESC LIMIT 1) AS i",
                [
                    customer.into(),
                    keys.iter()
                        .map(|k| (*k).to_owned())
                        .collect::<Vec<String>>()
                        .into(),
                ],
            ))
            .all(db)
            .await?
    } else {
        let latest = Query::select()
            .expr(Func::max(Expr::col(incident::Column::Id)))
            .from(incident::Entity)
            .and_where(incident::Column::CustomerId.eq(customer))
            .and_where(incident::Column::DedupKey.is_in(keys.iter().copied()))
            .group_by_col(incident::Column::DedupKey)
            .to_owned();
        incident::Entity::find()
            .filter(incident::Column::Id.in_subquery(latest))
            .all(db)
            .await?
    };
    let alerts = if found.is_empty() {
        Vec::new()
    } else {
        incident_alert::Entity::find()
            .filter(incident_alert::Column::IncidentId.is_in(found.iter().map(|i| i.id)))
            .all(db)
            .await?
    };
    let mut out = HashMap::new();
    for inc in found {
        let alert = alerts.iter().find(|a| a.incident_id == inc.id).cloned();
        if let Some(k) = inc.dedup_key.clone() {
            out.insert(
                k,
                KeyState {
                    incident: inc,
                    alert,
                },
            );
        }
    }
    Ok(out)
}

fn is_open(s: IncidentState) -> bool {
    !matches!(s, IncidentState::Resolved | IncidentState::Closed)
}

/// Whether an alert reported as `status` already holds in its key's current
/// state, so that handling it again would change nothing: a firing alert
/// with its incident open and the alert firing; a resolve or acknowledge
/// with no open incident or with the alert already in that status.
fn already_holds(status: AlertStatus, state: Option<&KeyState>) -> bool {
    let open = state.filter(|s| is_open(s.incident.state));
    let reported = open.and_then(|s| s.alert.as_ref()).map(|a| a.status);
    match status {
        AlertStatus::Firing => reported == Some(AlertStatus::Firing),
        AlertStatus::Resolved | AlertStatus::Acknowledged => {
            open.is_none() || reported == Some(status)
        }
    }
}

/// CIs the alerts of a delivery may name: the tenant's and the provider's,
/// by lower-cased name and by external id.
struct CiIndex {
    by_name: HashMap<String, i64>,
    by_external: HashMap<String, i64>,
}

async fn ci_index<C: ConnectionTrait>(
    db: &C,
    customer: i64,
    values: &[String],
) -> AppResult<CiIndex> {
    let mut owners = provider_ids(db).await?;
    owners.push(customer);
    let lowered: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
    let rows = configuration_item::Entity::find()
        .filter(configuration_item::Column::OrganizationId.is_in(owners))
        .filter(configuration_item::Column::Status.ne(CiStatus::Retired))
        .filter(
            Condition::any()
                .add(configuration_item::Column::NameKey.is_in(lowered))
                .add(configuration_item::Column::ExternalId.is_in(values.iter().cloned())),
        )
        .order_by_asc(configuration_item::Column::Id)
        .all(db)
        .await?;
    let mut idx = CiIndex {
        by_name: HashMap::new(),
        by_external: HashMap::new(),
    };
    // The tenant's own CI wins over a provider's of the same name.
    for ci in rows {
        let own = ci.organization_id == customer;
        if own || !idx.by_name.contains_key(&ci.name_key) {
            idx.by_name.insert(ci.name_key.clone(), ci.id);
        }
        if let Some(e) = &ci.external_id
            && (own || !idx.by_external.contains_key(e))
        {
            idx.by_external.insert(e.clone(), ci.id);
        }
    }
    Ok(idx)
}

#[allow(clippy::too_many_arguments)]
async fn run_round<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    integration: &integration::Model,
    routing: &Routing,
    round: &[(usize, &str, &IncomingAlert)],
    states: &mut HashMap<String, KeyState>,
    outcomes: &mut [Option<AlertOutcome>],
    announce: &mut Vec<Announce>,
    ci_cache: &mut Option<CiIndex>,
    at: DateTime<Utc>,
    thresholds: &[u32],
) -> AppResult<()> {
    let customer = integration.organization_id;
    let mut creations: Vec<(usize, &str, &IncomingAlert, &RoutingRule)> = Vec::new();
    let mut notes: Vec<incident_note::ActiveModel> = Vec::new();
    let mut repeats: Vec<(incident_alert::Model, incident_alert::Model)> = Vec::new();
    let mut priorities: HashMap<(i32, i32), entity::enums::Priority> = HashMap::new();
    let fallback = RoutingRule::default();
    let note = |inc: &incident::Model, body: String| incident_note::ActiveModel {
        id: NotSet,
        incident_id: Set(inc.id),
        customer_id: Set(inc.customer_id),
        kind: Set(NoteKind::WorkNote),
        body: Set(body),
        author_subject: Set(p.subject.clone()),
        author_is_staff: Set(false),
        created_at: Set(at),
    };

    for &(i, key, alert) in round {
        // Taken out, not cloned: every branch puts the key's new state back
        // (a round holds each key once; a creation's comes with its incident).
        let state = states.remove(key);
        let rule = routing.route(&alert.labels).unwrap_or(&fallback);
        let done = |action, incident: Option<&incident::Model>| AlertOutcome {
            key: key.to_owned(),
            action,
            incident: incident.cloned(),
        };
        let outcome = match (alert.status, state) {
            (AlertStatus::Firing, Some(s)) if is_open(s.incident.state) => {
                // A repeat: count, last seen, latest labels; a note when the
                // annotations changed.
                let changed = s
                    .alert
                    .as_ref()
                    .is_none_or(|a| a.annotations != json_map(&alert.annotations));
                let row = match &s.alert {
                    // Written in bulk at the end of the round.
                    Some(before) => {
                        let mut next = alert_next(before, alert, at);
                        next.alert_count += 1;
                        next.version += 1;
                        next.updated_at = at;
                        repeats.push((before.clone(), next.clone()));
                        next
                    }
                    None => {
                        save_alert(db, p, integration, &s, alert, at, |a| {
                            a.alert_count += 1;
                        })
                        .await?
                    }
                };
                if changed {
                    notes.push(note(
                        &s.incident,
                        annotations_note(
                            &format!("Alert fired again (seen {} times).", row.alert_count),
                            alert,
                        ),
                    ));
                }
                announce.push(Announce::Repeat(s.incident.clone()));
                states.insert(
                    key.to_owned(),
                    KeyState {
                        incident: s.incident.clone(),
                        alert: Some(row),
                    },
                );
                done(AlertAction::Updated, Some(&s.incident))
            }
            (AlertStatus::Firing, Some(s))
                if s.incident.state == IncidentState::Resolved
                    && s.incident.resolved_at.is_some_and(|r| {
                        at - r <= Duration::seconds(integration.reopen_window_seconds.into())
                    }) =>
            {
                let window = Duration::seconds(integration.flap_window_seconds.into());
                let mut refires: Vec<DateTime<Utc>> = s
                    .alert
                    .as_ref()
                    .and_then(|a| serde_json::from_value(a.refires.clone()).ok())
                    .unwrap_or_default();
                refires.retain(|t| at - *t < window);
                refires.push(at);
                let flapping = refires.len() > integration.flap_threshold as usize;
                let was_flapping = s.alert.as_ref().is_some_and(|a| a.flapping);
                let refires_json = serde_json::to_value(&refires).map_err(AppError::internal)?;
                if flapping {
                    // Recorded on the incident instead of reopening it again.
                    let row = save_alert(db, p, integration, &s, alert, at, |a| {
                        a.alert_count += 1;
                        a.flap_count += 1;
                        a.flapping = true;
                        a.refires = refires_json.clone();
                    })
                    .await?;
                    if !was_flapping {
                        notes.push(note(
                            &s.incident,
                            format!(
                                "Alert is flapping: it fired again {} times within {} seconds. \
                                 Further re-fires are counted here instead of reopening the incident.",
                                refires.len(),
                                integration.flap_window_seconds
                            ),
                        ));
                    }
                    announce.push(Announce::Repeat(s.incident.clone()));
                    states.insert(
                        key.to_owned(),
                        KeyState {
                            incident: s.incident.clone(),
                            alert: Some(row),
                        },
                    );
                    done(AlertAction::Flapping, Some(&s.incident))
                } else {
                    let next = incidents::moved(&s.incident, IncidentState::InProgress, None, at);
                    let (updated, met) = incidents::apply_change(
                        db,
                        p,
                        &s.incident,
                        next,
                        ClockCause::default(),
                        at,
                        thresholds,
                    )
                    .await?;
                    let row = save_alert(db, p, integration, &s, alert, at, |a| {
                        a.alert_count += 1;
                        a.reopen_count += 1;
                        a.flapping = false;
                        a.refires = refires_json.clone();
                    })
                    .await?;
                    notes.push(note(
                        &updated,
                        annotations_note(
                            "Alert fired again within the reopen window: incident reopened.",
                            alert,
                        ),
                    ));
                    announce.push(Announce::Changed(
                        IncidentChangeKind::StateChanged,
                        Box::new((s.incident.clone(), updated.clone())),
                    ));
                    announce.push(Announce::Met(updated.clone(), met));
                    states.insert(
                        key.to_owned(),
                        KeyState {
                            incident: updated.clone(),
                            alert: Some(row),
                        },
                    );
                    done(AlertAction::Reopened, Some(&updated))
                }
            }
            (AlertStatus::Firing, _) => {
                creations.push((i, key, alert, rule));
                continue;
            }
            (AlertStatus::Resolved, Some(s)) if is_open(s.incident.state) => {
                let ended = alert
                    .ends_at
                    .filter(|e| *e <= at)
                    .unwrap_or(at)
                    .max(s.incident.updated_at);
                let row = save_alert(db, p, integration, &s, alert, at, |a| {
                    a.status = AlertStatus::Resolved;
                    a.ended_at = Some(ended);
                })
                .await?;
                let text = format!(
                    "Alert resolved at {} ({}).",
                    ended.to_rfc3339(),
                    integration.name
                );
                let (incident, action) = match integration.resolve_action {
                    ResolveAction::Resolve => {
                        let next = incidents::moved(
                            &s.incident,
                            IncidentState::Resolved,
                            Some(("monitoring_cleared".into(), Some(text))),
                            ended,
                        );
                        let (updated, met) = incidents::apply_change(
                            db,
                            p,
                            &s.incident,
                            next,
                            ClockCause::default(),
                            ended,
                            thresholds,
                        )
                        .await?;
                        announce.push(Announce::Changed(
                            IncidentChangeKind::StateChanged,
                            Box::new((s.incident.clone(), updated.clone())),
                        ));
                        announce.push(Announce::Met(updated.clone(), met));
                        (updated, AlertAction::Resolved)
                    }
                    ResolveAction::Note => {
                        notes.push(note(&s.incident, text));
                        announce.push(Announce::Repeat(s.incident.clone()));
                        (s.incident.clone(), AlertAction::Noted)
                    }
                };
                states.insert(
                    key.to_owned(),
                    KeyState {
                        incident: incident.clone(),
                        alert: Some(row),
                    },
                );
                done(action, Some(&incident))
            }
            (AlertStatus::Acknowledged, Some(s)) if is_open(s.incident.state) => {
                let row = save_alert(db, p, integration, &s, alert, at, |a| {
                    a.status = AlertStatus::Acknowledged;
                })
                .await?;
                let mut incident = s.incident.clone();
                if s.incident.state == IncidentState::New {
                    let mut next = s.incident.clone();
                    let group = next
                        .assignment_group_id
                        .or(rule.assignment_group_id)
                        .or(integration.default_assignment_group_id);
                    next.assignment_group_id = group;
                    next.state = if group.is_some() {
                        IncidentState::Assigned
                    } else {
                        IncidentState::InProgress
                    };
                    let (updated, met) = incidents::apply_change(
                        db,
                        p,
                        &s.incident,
                        next,
                        ClockCause { responded: true },
                        at,
                        thresholds,
                    )
                    .await?;
                    announce.push(Announce::Changed(
                        IncidentChangeKind::StateChanged,
                        Box::new((s.incident.clone(), updated.clone())),
                    ));
                    announce.push(Announce::Met(updated.clone(), met));
                    incident = updated;
                }
                notes.push(note(
                    &incident,
                    format!("Alert acknowledged by the sender ({}).", integration.name),
                ));
                states.insert(
                    key.to_owned(),
                    KeyState {
                        incident: incident.clone(),
                        alert: Some(row),
                    },
                );
                done(AlertAction::Acknowledged, Some(&incident))
            }
            (_, s) => {
                let outcome = done(AlertAction::Ignored, s.as_ref().map(|s| &s.incident));
                if let Some(s) = s {
                    states.insert(key.to_owned(), s);
                }
                outcome
            }
        };
        outcomes[i] = Some(outcome);
    }

    if !creations.is_empty() {
        let ci_values: Vec<String> = creations
            .iter()
            .flat_map(|(_, _, a, r)| r.ci_labels.iter().filter_map(|l| a.labels.get(l)))
            .cloned()
            .collect();
        if !ci_values.is_empty() && ci_cache.is_none() {
            *ci_cache = Some(ci_index(db, customer, &ci_values).await?);
        } else if !ci_values.is_empty()
            && let Some(idx) = ci_cache.as_ref()
            && ci_values.iter().any(|v| {
                !idx.by_name.contains_key(&v.to_lowercase()) && !idx.by_external.contains_key(v)
            })
        {
            *ci_cache = Some(ci_index(db, customer, &ci_values).await?);
        }
        let mut drafts = Vec::with_capacity(creations.len());
        for (_, key, alert, rule) in &creations {
            let severity = alert
                .severity
                .as_deref()
                .or_else(|| alert.labels.get("severity").map(String::as_str))
                .and_then(severity_levels);
            let impact = rule
                .impact
                .or(severity.map(|s| s.0))
                .unwrap_or(integration.default_impact);
            let urgency = rule
                .urgency
                .or(severity.map(|s| s.1))
                .unwrap_or(integration.default_urgency);
            let mut cis = Vec::new();
            if let Some(idx) = ci_cache.as_ref() {
                for l in &rule.ci_labels {
                    if let Some(v) = alert.labels.get(l)
                        && let Some(id) = idx
                            .by_external
                            .get(v)
                            .or_else(|| idx.by_name.get(&v.to_lowercase()))
                        && !cis.contains(id)
                    {
                        cis.push(*id);
                    }
                }
            }
            drafts.push(IncidentDraft {
                customer_id: customer,
                title: title_of(alert, key),
                description: Some(describe(alert)).filter(|d| !d.is_empty()),
                impact,
                urgency,
                priority: match priorities.get(&(impact, urgency)) {
                    Some(p) => *p,
                    None => {
                        let p = sla_domain::priority_for(db, impact, urgency).await?;
                        priorities.insert((impact, urgency), p);
                        p
                    }
                },
                major: false,
                source: IncidentSource::Monitoring,
                category: rule
                    .category
                    .clone()
                    .map(|c| truncate(&printable(&c, false), 100)),
                reporter_subject: p.subject.clone(),
                reporter_id: None,
                service_id: rule.service_id.or(integration.default_service_id),
                assignment_group_id: rule
                    .assignment_group_id
                    .or(integration.default_assignment_group_id),
                assignee_id: None,
                dedup_key: Some((*key).to_owned()),
                affected_ci_ids: cis,
            });
        }
        let raised = incidents::raise_many(db, p, drafts, at, thresholds).await?;
        let rows: Vec<incident_alert::ActiveModel> = creations
            .iter()
            .zip(&raised)
            .map(|((_, _, alert, _), r)| {
                new_alert_row(&r.incident, integration.id, Some(alert), at)
            })
            .collect();
        let rows = insert_rows(db, rows).await?;
        audit::record_many(db, p, "create", &rows).await?;
        for (((i, key, _, _), r), row) in creations.iter().zip(raised).zip(rows) {
            outcomes[*i] = Some(AlertOutcome {
                key: (*key).to_owned(),
                action: AlertAction::Created,
                incident: Some(r.incident.clone()),
            });
            states.insert(
                (*key).to_owned(),
                KeyState {
                    incident: r.incident.clone(),
                    alert: Some(row),
                },
            );
            announce.push(Announce::Raised(r));
        }
    }
    save_repeats(db, p, repeats).await?;
    if !notes.is_empty() {
        let saved = insert_rows(db, notes).await?;
        audit::record_many(db, p, "create", &saved).await?;
    }
    Ok(())
}

/// Updates the alert row of a key with the alert's latest labels and
/// annotations and `change`, version-bumped and audited (a row is created
/// for an incident that has none).
async fn save_alert<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    integration: &integration::Model,
    s: &KeyState,
    alert: &IncomingAlert,
    at: DateTime<Utc>,
    change: impl FnOnce(&mut incident_alert::Model),
) -> AppResult<incident_alert::Model> {
    let before = match &s.alert {
        Some(a) => a.clone(),
        None => {
            let fresh = new_alert_row(&s.incident, integration.id, None, at);
            audit::insert(db, p, fresh).await?
        }
    };
    let mut next = alert_next(&before, alert, at);
    change(&mut next);
    save_versioned(db, p, &before, next).await
}

/// The alert row of an incident raised by monitoring: fired once, from
/// `alert` (labels, annotations, start), or empty for an incident that had
/// none.
fn new_alert_row(
    inc: &incident::Model,
    integration_id: i64,
    alert: Option<&IncomingAlert>,
    at: DateTime<Utc>,
) -> incident_alert::ActiveModel {
    let (first_seen, last_seen) = match alert {
        Some(a) => (a.starts_at.filter(|s| *s <= at).unwrap_or(at), at),
        None => (inc.created_at, inc.created_at),
    };
    incident_alert::ActiveModel {
        id: NotSet,
        incident_id: Set(inc.id),
        customer_id: Set(inc.customer_id),
        integration_id: Set(integration_id),
        dedup_key: Set(inc.dedup_key.clone().unwrap_or_default()),
        status: Set(AlertStatus::Firing),
        alert_count: Set(1),
        reopen_count: Set(0),
        flapping: Set(false),
        flap_count: Set(0),
        refires: Set(serde_json::json!([])),
        labels: Set(alert.map_or(serde_json::json!({}), |a| json_map(&a.labels))),
        annotations: Set(alert.map_or(serde_json::json!({}), |a| json_map(&a.annotations))),
        source_url: Set(alert
            .and_then(|a| a.source_url.as_deref())
            .map(|u| printable(u, false))),
        first_seen_at: Set(first_seen),
        last_seen_at: Set(last_seen),
        ended_at: Set(None),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
    }
}

/// An alert row after a firing notification: firing, latest labels and
/// annotations, seen now.
fn alert_next(
    before: &incident_alert::Model,
    alert: &IncomingAlert,
    at: DateTime<Utc>,
) -> incident_alert::Model {
    let mut next = before.clone();
    next.status = AlertStatus::Firing;
    next.ended_at = None;
    next.labels = json_map(&alert.labels);
    next.annotations = json_map(&alert.annotations);
    if let Some(u) = &alert.source_url {
        next.source_url = Some(printable(u, false));
    }
    next.last_seen_at = at;
    next
}

/// Writes the repeats of a round (version already bumped) with their audit
/// events: on PostgreSQL one UPDATE over `unnest`ed column arrays and one
/// multi-row audit insert, however many; on SQLite (one writer, in process)
/// row by row.
async fn save_repeats<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    pairs: Vec<(incident_alert::Model, incident_alert::Model)>,
) -> AppResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() != DbBackend::Postgres {
        for (before, mut next) in pairs {
            // save_versioned bumps again.
            next.version = before.version;
            save_versioned(db, p, &before, next).await?;
        }
        return Ok(());
    }
    // One array per column, in binary (arrays hold no nulls: `source_url`
    // and `ended_at` come with a mask).
    let n = pairs.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut counts = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut annotations = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut no_url = Vec::with_capacity(n);
    let mut seen = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    let mut not_ended = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    for (_, a) in &pairs {
        ids.push(a.id);
        statuses.push(sea_orm::ActiveEnum::to_value(&a.status));
        counts.push(a.alert_count);
        labels.push(a.labels.clone());
        annotations.push(a.annotations.clone());
        urls.push(a.source_url.clone().unwrap_or_default());
        no_url.push(a.source_url.is_none());
        seen.push(a.last_seen_at);
        ended.push(a.ended_at.unwrap_or(a.last_seen_at));
        not_ended.push(a.ended_at.is_none());
        versions.push(a.version);
        updated.push(a.updated_at);
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE incident_alerts AS a SET status = v.status, alert_count = v.alert_count, \
         labels = v.labels, annotations = v.annotations, \
         source_url = CASE WHEN v.no_url THEN NULL ELSE v.source_url END, \
         last_seen_at = v.last_seen_at, \
         ended_at = CASE WHEN v.not_ended THEN NULL ELSE v.ended_at END, \
         version = v.version, updated_at = v.updated_at \
         FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::jsonb[], $5::jsonb[], \
         $6::text[], $7::boolean[], $8::timestamptz[], $9::timestamptz[], $10::boolean[], \
         $11::integer[], $12::timestamptz[]) AS v(id, status, alert_count, labels, annotations, \
         source_url, no_url, last_seen_at, ended_at, not_ended, version, updated_at) \
         WHERE a.id = v.id",
        [
            ids.into(),
            statuses.into(),
            counts.into(),
            labels.into(),
            annotations.into(),
            urls.into(),
            no_url.into(),
            seen.into(),
            ended.into(),
            not_ended.into(),
            versions.into(),
            updated.into(),
        ],
    ))
    .await?;
    audit::record_updates(db, p, "update", &pairs).await
}

/// Writes one line of the delivery log.
#[allow(clippy::too_many_arguments)]
pub async fn log_delivery<C: ConnectionTrait>(
    db: &C,
    integration: Option<&integration::Model>,
    endpoint: &str,
    at: DateTime<Utc>,
    http_status: u16,
    body_hash: Option<String>,
    alerts: usize,
    counts: &Counts,
    errors: Vec<String>,
    started: std::time::Instant,
) -> AppResult<ingest_delivery::Model> {
    let errors: Vec<String> = errors
        .into_iter()
        .take(100)
        .map(|e| truncate(&printable(&e, false), 1000))
        .collect();
    Ok(ingest_delivery::ActiveModel {
        id: NotSet,
        integration_id: Set(integration.map(|i| i.id)),
        organization_id: Set(integration.map(|i| i.organization_id)),
        endpoint: Set(endpoint.to_owned()),
        received_at: Set(at),
        http_status: Set(http_status.into()),
        body_hash: Set(body_hash),
        alerts: Set(i32::try_from(alerts).unwrap_or(i32::MAX)),
        created: Set(counts.created),
        updated: Set(counts.updated),
        resolved: Set(counts.resolved),
        ignored: Set(counts.ignored),
        errors: Set(serde_json::to_value(errors).map_err(AppError::internal)?),
        request_id: Set(current_request_id()),
        duration_ms: Set(i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)),
    }
    .insert(db)
    .await?)
}

/// Deletes log lines older than the retention; answers how many.
pub async fn prune_log<C: ConnectionTrait>(
    db: &C,
    retention: std::time::Duration,
) -> AppResult<u64> {
    let cutoff = now() - Duration::seconds(retention.as_secs() as i64);
    let res = ingest_delivery::Entity::delete_many()
        .filter(ingest_delivery::Column::ReceivedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Prunes the delivery log every hour (and once at start).
pub async fn run_pruner(store: Store, retention: std::time::Duration) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match prune_log(&store.db, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned the ingest log"),
            Err(e) => tracing::warn!(error = ?e, "pruning the ingest log failed"),
        }
    }
}

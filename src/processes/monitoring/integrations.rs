//! Integrations: the monitoring systems allowed to raise incidents for one
//! organization, with their hashed secrets, settings and routing rules.

use entity::{
    enums::{IntegrationKind, OrganizationKind, ResolveAction},
    integration, organization, support_group,
};
use sea_orm::{ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::routing::{MatchOp, RoutingRule, anchored, dedup_labels_of, rules_of};
use crate::processes::{catalogue, sla as sla_domain};
use crate::records::{
    Store, audit, check_version, clean_name, conflict_on_unique, find_visible, find_where, now,
    patch, save_versioned,
};
use crate::{
    auth::{Principal, Role, TenantScope},
    config::IngestConfig,
    db::begin_write,
    error::{AppError, AppResult},
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

const MAX_RULES: usize = 100;
const MAX_MATCHERS: usize = 20;
const MAX_DEDUP_LABELS: usize = 10;

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
    patch(&mut m.default_service_id, s.default_service_id);
    patch(
        &mut m.default_assignment_group_id,
        s.default_assignment_group_id,
    );
    patch(&mut m.default_impact, s.default_impact);
    patch(&mut m.default_urgency, s.default_urgency);
    patch(&mut m.resolve_action, s.resolve_action);
    patch(&mut m.reopen_window_seconds, s.reopen_window_seconds);
    patch(&mut m.flap_threshold, s.flap_threshold);
    patch(&mut m.flap_window_seconds, s.flap_window_seconds);
    patch(&mut m.active, s.active);
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
            find_where::<support_group::Entity, _>(db, id, "support group", |g| {
                g.organization_id == m.organization_id || providers.contains(&g.organization_id)
            })
            .await
            .map_err(|e| not_found_as_field(e, &field, "support group not found"))?;
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

pub(super) async fn provider_ids<C: ConnectionTrait>(db: &C) -> AppResult<Vec<i64>> {
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
    find_visible::<integration::Entity, _>(db, p, id, "integration").await
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
    find_where::<integration::Entity, _>(db, id, "integration", |i| {
        i.active && p.can_see(i.organization_id)
    })
    .await
    .map_err(|e| not_found_as_field(e, "integrationId", "integration not found"))
}

/// A reference that names a missing or hidden record is the input's fault
/// (`VALIDATION` on `field`); any other error stays as it is.
fn not_found_as_field(e: AppError, field: &str, message: &str) -> AppError {
    match e {
        AppError::NotFound(_) => AppError::invalid_field(field, message),
        other => other,
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
    let mut model = fresh(organization_id, kind, name, name_key, &secret, defaults);
    apply_settings(&mut model, settings)?;
    let txn = begin_write(&store.db).await?;
    find_where::<organization::Entity, _>(&txn, organization_id, "organization", |_| true)
        .await
        .map_err(|e| not_found_as_field(e, "organizationId", "organization not found"))?;
    check_integration(&txn, &model).await?;
    let mut active: integration::ActiveModel = model.into();
    active.id = NotSet;
    let created = audit::insert(&txn, p, active).await.map_err(|e| {
        conflict_on_unique(
            e,
            "an integration with this name already exists for this organization",
        )
    })?;
    txn.commit().await?;
    Ok((created, secret))
}

/// A new integration with every setting at its default (the reopen and
/// flapping windows from `defaults`), before its settings are applied.
fn fresh(
    organization_id: i64,
    kind: IntegrationKind,
    name: String,
    name_key: String,
    secret: &str,
    defaults: &IngestConfig,
) -> integration::Model {
    let at = now();
    integration::Model {
        id: 0,
        organization_id,
        name,
        name_key,
        kind,
        secret_hash: hash_secret(secret),
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
    }
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
        conflict_on_unique(
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

/// An integration with every setting at its default, for tests of the rules.
#[cfg(test)]
pub(super) fn blank_integration() -> integration::Model {
    let defaults = IngestConfig::default();
    fresh(
        1,
        IntegrationKind::Generic,
        "Test".into(),
        "test".into(),
        "sgi_test",
        &defaults,
    )
}

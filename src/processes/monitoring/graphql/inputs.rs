//! The monitoring mutations' inputs and answers, and their conversion to
//! the domain's settings and alerts.

use std::collections::BTreeMap;

use async_graphql::{ID, InputObject, MaybeUndefined, SimpleObject};
use chrono::{DateTime, Utc};

use entity::{enums, integration};

use super::enums::{AlertAction, AlertStatus, IntegrationKind, ResolveAction};
use super::integration::{Integration, RoutingRuleInput, rules_in};
use crate::config::IngestConfig;
use crate::error::{AppError, AppResult};
use crate::graphql::args::{optional_ref, patch_ref};
use crate::processes::incident::graphql::Incident;
use crate::processes::monitoring::{self as domain, IncomingAlert, IntegrationSettings};

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

/// An input's settings from its name, default service and group (checked)
/// and `active`, as each input has them; the other fields, which both
/// inputs share, are mapped here once.
macro_rules! settings_of {
    ($input:ident, $name:expr, $service:expr, $group:expr, $active:expr) => {
        IntegrationSettings {
            name: $name,
            default_service_id: $service,
            default_assignment_group_id: $group,
            default_impact: $input.default_impact,
            default_urgency: $input.default_urgency,
            dedup_labels: $input.dedup_labels,
            resolve_action: $input.resolve_action.map(Into::into),
            reopen_window_seconds: $input.reopen_window_seconds,
            flap_threshold: $input.flap_threshold,
            flap_window_seconds: $input.flap_window_seconds,
            rules: $input.rules.map(rules_in).transpose()?,
            active: $active,
        }
    };
}

impl CreateIntegrationInput {
    /// The new integration's settings, with their references checked.
    pub(super) fn settings(self) -> AppResult<IntegrationSettings> {
        let service = optional_ref(
            self.default_service_id.as_ref(),
            "Service",
            "defaultServiceId",
        )?;
        let group = optional_ref(
            self.default_assignment_group_id.as_ref(),
            "SupportGroup",
            "defaultAssignmentGroupId",
        )?;
        let name = Some(self.name);
        Ok(settings_of!(self, name, Some(service), Some(group), None))
    }
}

impl UpdateIntegrationInput {
    /// The settings to change, with their references checked.
    pub(super) fn settings(self) -> AppResult<IntegrationSettings> {
        let service = patch_ref(self.default_service_id, "Service", "defaultServiceId")?;
        let group = patch_ref(
            self.default_assignment_group_id,
            "SupportGroup",
            "defaultAssignmentGroupId",
        )?;
        Ok(settings_of!(self, self.name, service, group, self.active))
    }
}

impl RaiseAlertInput {
    /// The alert as the ingest endpoints would have parsed it, within the
    /// same limits.
    pub(super) fn into_alert(
        self,
        limits: &IngestConfig,
        integration: &integration::Model,
    ) -> AppResult<IncomingAlert> {
        let labels = pairs("labels", self.labels)?;
        let annotations = pairs("annotations", self.annotations)?;
        for (what, map) in [("labels", &labels), ("annotations", &annotations)] {
            domain::check_pairs(limits, "input", what, map)
                .map_err(|m| AppError::invalid_field(what, m))?;
        }
        if let Some(s) = &self.severity
            && !matches!(s.as_str(), "critical" | "error" | "warning" | "info")
        {
            return Err(AppError::invalid_field(
                "severity",
                "severity must be critical, error, warning or info",
            ));
        }
        let status: enums::AlertStatus = self.status.into();
        if status != enums::AlertStatus::Firing
            && self.dedup_key.is_none()
            && domain::dedup_labels_of(integration).is_empty()
            && labels.is_empty()
        {
            return Err(AppError::invalid_field(
                "dedupKey",
                "dedupKey (or labels) is required to acknowledge or resolve",
            ));
        }
        if self.dedup_key.as_deref().is_some_and(|k| k.len() > 255) {
            return Err(AppError::invalid_field(
                "dedupKey",
                "dedupKey is at most 255 characters",
            ));
        }
        Ok(IncomingAlert {
            status,
            key: self.dedup_key,
            summary: self.summary,
            description: self.description,
            severity: self.severity,
            labels,
            annotations,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            source_url: self.source_url,
        })
    }
}

/// Labels or annotations as name-value pairs; a name given twice is refused.
fn pairs(field: &str, list: Vec<AlertLabelInput>) -> AppResult<BTreeMap<String, String>> {
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

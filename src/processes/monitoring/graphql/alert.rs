//! The alert behind an incident raised by monitoring.

use async_graphql::{Context, Json, Object};
use chrono::{DateTime, Utc};
use entity::incident_alert;
use serde_json::Value;

use super::enums::AlertStatus;
use super::integration::Integration;
use crate::graphql::context::{ContextExt, load};

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

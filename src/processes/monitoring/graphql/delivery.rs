//! The delivery log (`ingestLog`) as the API shows it.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::ingest_delivery;

use super::integration::Integration;
use crate::graphql::{
    context::{ContextExt, load},
    ids,
};

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

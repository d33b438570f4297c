//! The delivery log (`ingestLog`): one line per delivery to an ingest
//! endpoint or `raiseAlert` call, and the pruner that keeps it short.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use entity::{ingest_delivery, integration};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    Set,
};

use super::alerts::{Counts, printable, truncate};
use crate::error::{AppError, AppResult, current_request_id};
use crate::records::{Store, now};

/// One line of the delivery log, as written.
pub struct DeliveryLine<'a> {
    /// None when the sender could not be authenticated.
    pub integration: Option<&'a integration::Model>,
    pub endpoint: &'a str,
    pub received_at: DateTime<Utc>,
    pub http_status: u16,
    /// The body's hash, kept to recognize a retry of an accepted delivery.
    pub body_hash: Option<String>,
    pub alerts: usize,
    pub counts: Counts,
    /// Why the delivery (or part of it) was refused, or that it was a retry.
    pub errors: Vec<String>,
    pub started: Instant,
}

/// Writes one line of the delivery log.
pub async fn log_delivery<C: ConnectionTrait>(
    db: &C,
    line: DeliveryLine<'_>,
) -> AppResult<ingest_delivery::Model> {
    let errors: Vec<String> = line
        .errors
        .into_iter()
        .take(100)
        .map(|e| truncate(&printable(&e, false), 1000))
        .collect();
    let counts = &line.counts;
    Ok(ingest_delivery::ActiveModel {
        id: NotSet,
        integration_id: Set(line.integration.map(|i| i.id)),
        organization_id: Set(line.integration.map(|i| i.organization_id)),
        endpoint: Set(line.endpoint.to_owned()),
        received_at: Set(line.received_at),
        http_status: Set(line.http_status.into()),
        body_hash: Set(line.body_hash),
        alerts: Set(i32::try_from(line.alerts).unwrap_or(i32::MAX)),
        created: Set(counts.created),
        updated: Set(counts.updated),
        resolved: Set(counts.resolved),
        ignored: Set(counts.ignored),
        errors: Set(serde_json::to_value(errors).map_err(AppError::internal)?),
        request_id: Set(current_request_id()),
        duration_ms: Set(i32::try_from(line.started.elapsed().as_millis()).unwrap_or(i32::MAX)),
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

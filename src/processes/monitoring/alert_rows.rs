//! The alert rows of incidents raised by monitoring: a new one, one after
//! a firing notification, and a round's repeats written in bulk.

use chrono::{DateTime, Utc};
use entity::{enums::AlertStatus, incident, incident_alert};
use sea_orm::{ActiveValue::NotSet, ConnectionTrait, DbBackend, Set, Statement};

use super::alerts::{IncomingAlert, json_map, printable};
use crate::auth::Principal;
use crate::error::AppResult;
use crate::records::{audit, save_versioned};

/// The alert row of an incident raised by monitoring: fired once, from
/// `alert` (labels, annotations, start), or empty for an incident that had
/// none.
pub(super) fn new_alert_row(
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
pub(super) fn alert_next(
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
pub(super) async fn save_repeats<C: ConnectionTrait>(
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

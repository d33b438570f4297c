//! Monitoring webhooks: `POST /ingest/alertmanager` (Prometheus Alertmanager
//! webhook, version 4), `POST /ingest/grafana` (Grafana alerting's webhook)
//! and `POST /ingest/events` (PagerDuty Events API v2-compatible). Each
//! authenticates the integration by its secret, checks the limits, parses the
//! sender's format into alerts and hands them to `processes::monitoring`.
//!
//! Status codes tell senders whether to retry: 2xx only after commit; 4xx
//! for what will never be accepted (401 bad secret, 400 malformed or
//! over-limit content, 413 too large); 429 with `Retry-After` when the
//! integration's budget (`budget.ingest_alerts`) is spent; 5xx only when a
//! retry can help.

mod payload;

use std::time::Instant;

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use entity::integration;
use serde_json::{Value, json};

use crate::{
    app::AppState,
    error::{AppError, REQUEST_ID},
    processes::monitoring::{self, AlertAction, Counts, DeliveryLine, IngestOutcome},
    records::{Store, now},
};

pub use payload::{Refusal, parse_alertmanager, parse_events, parse_grafana};

/// The ingest routes, with their own body limit (alert batches are larger
/// than GraphQL requests).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ingest/alertmanager", post(alertmanager))
        .route("/ingest/grafana", post(grafana))
        .route("/ingest/events", post(events))
        .layer(DefaultBodyLimit::disable())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Alertmanager,
    Grafana,
    Events,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Events => "events",
        }
    }
}

async fn alertmanager(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    scoped(
        &headers,
        handle(state, Endpoint::Alertmanager, headers.clone(), body),
    )
    .await
}

async fn grafana(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    scoped(
        &headers,
        handle(state, Endpoint::Grafana, headers.clone(), body),
    )
    .await
}

async fn events(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    scoped(
        &headers,
        handle(state, Endpoint::Events, headers.clone(), body),
    )
    .await
}

async fn scoped(headers: &HeaderMap, f: impl Future<Output = Response>) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID.scope(request_id, f).await
}

/// The secret a sender presents: a bearer token, or the password (else the
/// user name) of basic auth, as Alertmanager's `http_config` sends them.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':').unwrap_or((&text, ""));
        return Some(if password.is_empty() { user } else { password }.to_owned());
    }
    None
}

/// One delivery, counted in the metrics (when on) by sender and outcome.
async fn handle(state: AppState, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let counted = state.metrics.is_some();
    let response = deliver(state, endpoint, headers, body).await;
    if counted {
        metrics::counter!(
            crate::app::metrics::INGEST_DELIVERIES,
            "sender" => endpoint.name(),
            "outcome" => delivery_outcome(response.status()),
        )
        .increment(1);
    }
    response
}

/// The `outcome` label of a delivery's answer.
fn delivery_outcome(status: StatusCode) -> &'static str {
    match status {
        s if s.is_success() => "accepted",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::CONFLICT => "conflict",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "error",
    }
}

async fn deliver(state: AppState, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let limits = &state.config.ingest;
    let header_secret = presented_secret(&headers);
    // Without a secret in the headers, only the events API (routing_key) can
    // still authenticate: refuse the others before reading the body.
    if header_secret.is_none() && endpoint != Endpoint::Events {
        return refuse(
            endpoint,
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "an integration secret is required (bearer token or basic-auth password)",
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return too_large(endpoint, limits.max_body_bytes);
    }
    let bytes = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return too_large(endpoint, limits.max_body_bytes),
    };
    let parsed = match endpoint {
        Endpoint::Alertmanager => parse_alertmanager(&bytes, limits),
        Endpoint::Grafana => parse_grafana(&bytes, limits),
        Endpoint::Events => parse_events(&bytes, limits),
    };
    let secret = match (&parsed, header_secret) {
        (_, Some(s)) => Some(s),
        (Ok(p), None) => p.routing_key.clone(),
        (Err(r), None) => r.routing_key.clone(),
    };
    let integration = match secret {
        Some(s) => match monitoring::integration_by_secret(&state.db, &s).await {
            Ok(found) => found,
            Err(e) => return failure(endpoint, e),
        },
        None => None,
    };
    let Some(integration) = integration else {
        let message = if endpoint == Endpoint::Events {
            "unknown routing key or integration secret"
        } else {
            "unknown integration secret"
        };
        return refuse(
            endpoint,
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            message,
        );
    };
    // Charged before the delivery is looked at further: a malformed one
    // costs a write to the ingest log too.
    let alerts = parsed
        .as_ref()
        .map_or_else(|r| r.alerts, |p| p.alerts.len());
    let receipt = match state.budget.admit_ingest(integration.id, alerts) {
        Ok(receipt) => receipt,
        Err(refused) => {
            let answer = refuse(
                endpoint,
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                &refused.message(),
            );
            return refused.stamp(answer);
        }
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(refusal) => {
            log_refusal(&state, &integration, endpoint, &refusal, started).await;
            return receipt.stamp(refuse(
                endpoint,
                refusal.status,
                "VALIDATION",
                &refusal.message,
            ));
        }
    };
    tracing::debug!(
        integration = integration.id,
        alerts = parsed.alerts.len(),
        endpoint = endpoint.name(),
        "ingest delivery"
    );
    let body_hash = Some(monitoring::hash_secret(&String::from_utf8_lossy(&bytes)));
    let store = Store::new(state.db.clone(), state.events.clone(), &state.config.sla);
    let first_key = parsed.alerts.first().and_then(|a| a.key.clone());
    // A task of its own: a sender that hangs up does not cancel the delivery
    // half way (see the GraphQL handler).
    let config = state.config.clone();
    let delivery = async move {
        monitoring::ingest(
            &store,
            &config.ingest,
            &integration,
            endpoint.name(),
            body_hash,
            parsed.alerts,
            started,
        )
        .await
    };
    let result = crate::app::detached(delivery).await.and_then(|r| r);
    receipt.stamp(match result {
        Ok(outcome) => accepted(endpoint, first_key, &outcome),
        Err(e) => failure(endpoint, e),
    })
}

async fn log_refusal(
    state: &AppState,
    integration: &integration::Model,
    endpoint: Endpoint,
    refusal: &Refusal,
    started: Instant,
) {
    let line = DeliveryLine {
        integration: Some(integration),
        endpoint: endpoint.name(),
        received_at: now(),
        http_status: refusal.status.as_u16(),
        body_hash: None,
        alerts: refusal.alerts,
        counts: Counts::default(),
        errors: vec![refusal.message.clone()],
        started,
    };
    let logged = monitoring::log_delivery(&state.db, line).await;
    if let Err(e) = logged {
        tracing::warn!(error = ?e, "could not log a refused delivery");
    }
}

fn action_name(a: AlertAction) -> &'static str {
    match a {
        AlertAction::Created => "CREATED",
        AlertAction::Updated => "UPDATED",
        AlertAction::Reopened => "REOPENED",
        AlertAction::Flapping => "FLAPPING",
        AlertAction::Resolved => "RESOLVED",
        AlertAction::Noted => "NOTED",
        AlertAction::Acknowledged => "ACKNOWLEDGED",
        AlertAction::Ignored => "IGNORED",
    }
}

/// `first_key`: the sender's key of the first alert, answered by the events
/// API when the delivery was a retry (no outcomes).
fn accepted(endpoint: Endpoint, first_key: Option<String>, outcome: &IngestOutcome) -> Response {
    if endpoint == Endpoint::Events {
        // As the Events API answers: the key to send with acknowledge and resolve.
        let key = outcome
            .alerts
            .first()
            .map(|a| a.key.clone())
            .or(first_key)
            .unwrap_or_default();
        return (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "success",
                "message": if outcome.duplicate { "Event already processed" } else { "Event processed" },
                "dedup_key": key,
            })),
        )
            .into_response();
    }
    let c = &outcome.counts;
    let per_alert: Vec<Value> = outcome
        .alerts
        .iter()
        .map(|a| {
            json!({
                "key": a.key,
                "action": action_name(a.action),
                "incident": a.incident.as_ref().map(|i| i.number.clone()),
            })
        })
        .collect();
    (
        StatusCode::OK,
        Json(json!({
            "status": "success",
            "duplicate": outcome.duplicate,
            "created": c.created,
            "updated": c.updated,
            "resolved": c.resolved,
            "ignored": c.ignored,
            "alerts": per_alert,
        })),
    )
        .into_response()
}

fn too_large(endpoint: Endpoint, limit: usize) -> Response {
    refuse(
        endpoint,
        StatusCode::PAYLOAD_TOO_LARGE,
        "VALIDATION",
        &format!("the body is larger than {limit} bytes"),
    )
}

/// A refusal in the endpoint's own shape: the events API's error body, or
/// `{status, code, message}` for the webhooks.
fn refuse(endpoint: Endpoint, status: StatusCode, code: &str, message: &str) -> Response {
    let body = if endpoint == Endpoint::Events {
        let (status_text, summary) = match status {
            StatusCode::UNAUTHORIZED => ("unauthorized", "Invalid routing key"),
            StatusCode::TOO_MANY_REQUESTS => ("throttled", "Too many events, retry later"),
            _ => ("invalid event", "Event object is invalid"),
        };
        json!({
            "status": status_text,
            "message": summary,
            "errors": [message],
            "code": code,
        })
    } else {
        json!({ "status": "error", "code": code, "message": message })
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"servicegraph-ingest\""),
        );
    }
    response
}

/// A delivery that failed after authentication: input errors are 4xx; a
/// database that cannot be reached is 503 with Retry-After; anything else 500.
fn failure(endpoint: Endpoint, e: AppError) -> Response {
    match &e {
        AppError::Validation { message, .. } => {
            refuse(endpoint, StatusCode::BAD_REQUEST, "VALIDATION", message)
        }
        AppError::Conflict(m) => refuse(endpoint, StatusCode::CONFLICT, "CONFLICT", m),
        _ => {
            let unavailable = e.is_unavailable();
            let err: async_graphql::Error = e.into();
            let (status, code) = if unavailable {
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            };
            let mut response = refuse(endpoint, status, code, &err.message);
            if unavailable {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(crate::app::RETRY_AFTER_SECONDS),
                );
            }
            response
        }
    }
}

//! The senders' formats, parsed into [`IncomingAlert`]s with the limits
//! checked: Alertmanager's webhook (version 4), Grafana alerting's webhook
//! (Alertmanager-like with extra fields) and the PagerDuty Events API v2.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Datelike, Utc};
use entity::enums::AlertStatus;
use serde::Deserialize;
use serde_json::Value;

use crate::{config::IngestConfig, processes::monitoring::IncomingAlert};

/// A delivery parsed and within limits.
#[derive(Debug)]
pub struct Parsed {
    pub alerts: Vec<IncomingAlert>,
    /// The events API's `routing_key` (its way to authenticate).
    pub routing_key: Option<String>,
}

/// A delivery that will never be accepted, with the status to answer.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// Alerts in the delivery, when it could be read that far.
    pub alerts: usize,
    pub routing_key: Option<String>,
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        alerts: 0,
        routing_key: None,
    }
}

fn malformed(e: serde_json::Error) -> Refusal {
    bad(format!("malformed JSON: {e}"))
}

fn shown(name: &str) -> String {
    crate::processes::monitoring::shown(name)
}

fn check_map(
    limits: &IngestConfig,
    at: &str,
    what: &str,
    map: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    crate::processes::monitoring::check_pairs(limits, at, what, map).map_err(bad)
}

fn check_count(limits: &IngestConfig, n: usize) -> Result<(), Refusal> {
    if n > limits.max_alerts {
        return Err(Refusal {
            alerts: n,
            ..bad(format!(
                "a delivery holds at most {} alerts, this one has {n}",
                limits.max_alerts
            ))
        });
    }
    Ok(())
}

/// An RFC 3339 time; Alertmanager's zero time (year 1) means none.
fn time(at: &str, field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Refusal> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(v)
        .map_err(|_| bad(format!("{at}.{field} is not an RFC 3339 time")))?
        .with_timezone(&Utc);
    Ok((t.year() > 1).then_some(t))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody {
    version: Option<String>,
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: Option<String>,
    // Grafana's additions.
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "silenceURL")]
    silence_url: Option<String>,
    value_string: Option<String>,
}

fn webhook(
    bytes: &[u8],
    limits: &IngestConfig,
    versions: &[&str],
    sender: &str,
) -> Result<Parsed, Refusal> {
    let body: WebhookBody = serde_json::from_slice(bytes).map_err(malformed)?;
    match body.version.as_deref() {
        Some(v) if versions.contains(&v) => {}
        other => {
            return Err(bad(format!(
                "unsupported {sender} webhook version {}: expected {}",
                other.map_or_else(|| "(none)".to_owned(), |v| format!("{:?}", shown(v))),
                versions.join(" or ")
            )));
        }
    }
    check_count(limits, body.alerts.len())?;
    let total = body.alerts.len();
    let mut alerts = Vec::with_capacity(total);
    for (i, a) in body.alerts.into_iter().enumerate() {
        let at = format!("alerts[{i}]");
        let with_count = |mut r: Refusal| {
            r.alerts = total;
            r
        };
        let status = match a.status.as_str() {
            "firing" => AlertStatus::Firing,
            "resolved" => AlertStatus::Resolved,
            other => {
                return Err(with_count(bad(format!(
                    "{at}.status must be firing or resolved, not {:?}",
                    shown(other)
                ))));
            }
        };
        check_map(limits, &at, "labels", &a.labels).map_err(with_count)?;
        check_map(limits, &at, "annotations", &a.annotations).map_err(with_count)?;
        let mut annotations = a.annotations;
        for (k, v) in [
            ("dashboardURL", a.dashboard_url),
            ("panelURL", a.panel_url),
            ("silenceURL", a.silence_url),
            ("value", a.value_string),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty() && v.len() <= limits.max_value_bytes) {
                annotations.entry(k.to_owned()).or_insert(v);
            }
        }
        alerts.push(IncomingAlert {
            status,
            key: a.fingerprint.filter(|f| !f.is_empty()),
            summary: None,
            description: None,
            severity: None,
            starts_at: time(&at, "startsAt", a.starts_at.as_deref()).map_err(with_count)?,
            ends_at: time(&at, "endsAt", a.ends_at.as_deref()).map_err(with_count)?,
            source_url: a
                .generator_url
                .filter(|u| !u.is_empty() && u.len() <= limits.max_value_bytes),
            labels: a.labels,
            annotations,
        });
    }
    Ok(Parsed {
        alerts,
        routing_key: None,
    })
}

/// Alertmanager's webhook payload, version "4".
pub fn parse_alertmanager(bytes: &[u8], limits: &IngestConfig) -> Result<Parsed, Refusal> {
    webhook(bytes, limits, &["4"], "Alertmanager")
}

/// Grafana alerting's webhook payload (version "1"; Grafana also accepts
/// Alertmanager's shape, so "4" is taken too).
pub fn parse_grafana(bytes: &[u8], limits: &IngestConfig) -> Result<Parsed, Refusal> {
    webhook(bytes, limits, &["1", "4"], "Grafana")
}

#[derive(Deserialize)]
struct EventBody {
    routing_key: Option<String>,
    event_action: Option<String>,
    dedup_key: Option<String>,
    payload: Option<EventPayload>,
    client_url: Option<String>,
}

#[derive(Deserialize)]
struct EventPayload {
    summary: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<Value>,
}

/// A PagerDuty Events API v2 event. A trigger without `dedup_key` gets one
/// derived from the body, so a retried trigger keeps its key.
pub fn parse_events(bytes: &[u8], limits: &IngestConfig) -> Result<Parsed, Refusal> {
    let body: EventBody = serde_json::from_slice(bytes).map_err(malformed)?;
    let routing_key = body.routing_key.clone();
    let refuse = |m: String| Refusal {
        alerts: 1,
        routing_key: routing_key.clone(),
        ..bad(m)
    };
    if routing_key.as_deref().is_none_or(str::is_empty) {
        return Err(refuse("routing_key is required".into()));
    }
    let status = match body.event_action.as_deref() {
        Some("trigger") => AlertStatus::Firing,
        Some("acknowledge") => AlertStatus::Acknowledged,
        Some("resolve") => AlertStatus::Resolved,
        other => {
            return Err(refuse(format!(
                "event_action must be trigger, acknowledge or resolve, not {}",
                other.map_or_else(|| "(none)".to_owned(), |v| format!("{:?}", shown(v)))
            )));
        }
    };
    if body.dedup_key.as_deref().is_some_and(|k| k.len() > 255) {
        return Err(refuse("dedup_key is at most 255 characters".into()));
    }
    let dedup_key = body.dedup_key.filter(|k| !k.is_empty());
    if status != AlertStatus::Firing && dedup_key.is_none() {
        return Err(refuse(
            "dedup_key is required to acknowledge or resolve".into(),
        ));
    }
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut summary = None;
    let mut severity = None;
    let mut starts_at = None;
    match (status, body.payload) {
        (AlertStatus::Firing, None) => {
            return Err(refuse("payload is required to trigger".into()));
        }
        (_, Some(p)) => {
            if status == AlertStatus::Firing {
                for (field, value) in [
                    ("payload.summary", &p.summary),
                    ("payload.source", &p.source),
                    ("payload.severity", &p.severity),
                ] {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(refuse(format!("{field} is required to trigger")));
                    }
                }
            }
            if let Some(s) = &p.severity
                && !matches!(s.as_str(), "critical" | "error" | "warning" | "info")
            {
                return Err(refuse(format!(
                    "payload.severity must be critical, error, warning or info, not {:?}",
                    shown(s)
                )));
            }
            if p.summary
                .as_deref()
                .is_some_and(|s| s.chars().count() > 1024)
            {
                return Err(refuse("payload.summary is at most 1024 characters".into()));
            }
            for (k, v) in [
                ("source", p.source),
                ("component", p.component),
                ("group", p.group),
                ("class", p.class),
                ("severity", p.severity.clone()),
            ] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    labels.insert(k.to_owned(), v);
                }
            }
            if let Some(Value::Object(details)) = p.custom_details {
                for (k, v) in details {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    annotations.insert(k, text);
                }
            } else if let Some(Value::String(s)) = p.custom_details {
                annotations.insert("details".to_owned(), s);
            }
            starts_at = time("payload", "timestamp", p.timestamp.as_deref()).map_err(|mut r| {
                r.routing_key = routing_key.clone();
                r
            })?;
            summary = p.summary;
            severity = p.severity;
        }
        (_, None) => {}
    }
    check_map(limits, "payload", "labels", &labels).map_err(|mut r| {
        r.routing_key = routing_key.clone();
        r
    })?;
    check_map(limits, "payload", "custom_details", &annotations).map_err(|mut r| {
        r.routing_key = routing_key.clone();
        r
    })?;
    let key = dedup_key.unwrap_or_else(|| {
        let digest = crate::processes::monitoring::hash_secret(&String::from_utf8_lossy(bytes));
        digest[..32].to_owned()
    });
    Ok(Parsed {
        alerts: vec![IncomingAlert {
            status,
            key: Some(key),
            summary,
            description: None,
            severity,
            labels,
            annotations,
            starts_at,
            ends_at: None,
            source_url: body
                .client_url
                .filter(|u| u.len() <= limits.max_value_bytes),
        }],
        routing_key,
    })
}

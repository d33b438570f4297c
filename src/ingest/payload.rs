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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn limits() -> IngestConfig {
        IngestConfig {
            max_alerts: 2,
            ..IngestConfig::default()
        }
    }

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn webhook_alert(status: &str) -> Value {
        json!({
            "status": status,
            "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {"summary": "Disk full"},
            "startsAt": "2026-03-01T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "abc123"
        })
    }

    #[test]
    fn alertmanager_alerts_keep_labels_fingerprint_and_times() {
        let b = body(
            json!({"version": "4", "alerts": [webhook_alert("firing"), webhook_alert("resolved")]}),
        );
        let parsed = parse_alertmanager(&b, &limits()).unwrap();
        assert_eq!(parsed.routing_key, None);
        let [firing, resolved] = &parsed.alerts[..] else {
            panic!("two alerts");
        };
        assert_eq!(firing.status, AlertStatus::Firing);
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(firing.key.as_deref(), Some("abc123"));
        assert_eq!(firing.labels["instance"], "db1");
        assert_eq!(
            firing.source_url.as_deref(),
            Some("http://prometheus/graph")
        );
        assert!(firing.starts_at.is_some());
        // Alertmanager's zero time is no time.
        assert_eq!(firing.ends_at, None);
    }

    #[test]
    fn webhook_versions_statuses_times_and_counts_are_checked() {
        let wrong = body(json!({"version": "3", "alerts": []}));
        let r = parse_alertmanager(&wrong, &limits()).unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.message.contains("version \"3\""), "{}", r.message);
        assert!(parse_grafana(&body(json!({"version": "1", "alerts": []})), &limits()).is_ok());

        let mut bad_status = webhook_alert("pending");
        bad_status["fingerprint"] = json!("");
        let b = body(json!({"version": "4", "alerts": [webhook_alert("firing"), bad_status]}));
        let r = parse_alertmanager(&b, &limits()).unwrap_err();
        assert!(r.message.starts_with("alerts[1].status"), "{}", r.message);
        assert_eq!(r.alerts, 2);

        let mut bad_time = webhook_alert("firing");
        bad_time["startsAt"] = json!("yesterday");
        let b = body(json!({"version": "4", "alerts": [bad_time]}));
        let r = parse_alertmanager(&b, &limits()).unwrap_err();
        assert_eq!(r.message, "alerts[0].startsAt is not an RFC 3339 time");

        let three = vec![webhook_alert("firing"); 3];
        let r = parse_alertmanager(&body(json!({"version": "4", "alerts": three})), &limits())
            .unwrap_err();
        assert_eq!(r.alerts, 3);

        let r = parse_alertmanager(b"{", &limits()).unwrap_err();
        assert!(r.message.starts_with("malformed JSON"));
    }

    #[test]
    fn grafanas_links_and_value_become_annotations_unless_given() {
        let mut a = webhook_alert("firing");
        a["dashboardURL"] = json!("http://grafana/d/1");
        a["valueString"] = json!("[ var='A' value=97 ]");
        a["panelURL"] = json!("");
        a["annotations"]["value"] = json!("sent");
        let b = body(json!({"version": "1", "alerts": [a]}));
        let parsed = parse_grafana(&b, &limits()).unwrap();
        let annotations = &parsed.alerts[0].annotations;
        assert_eq!(annotations["dashboardURL"], "http://grafana/d/1");
        assert_eq!(annotations["value"], "sent");
        assert!(!annotations.contains_key("panelURL"));
    }

    fn event(action: &str) -> Value {
        json!({
            "routing_key": "sgi_key",
            "event_action": action,
            "payload": {
                "summary": "Disk full on db1",
                "source": "db1",
                "severity": "critical",
                "component": "disk",
                "custom_details": {"used": 97, "mount": "/"}
            }
        })
    }

    #[test]
    fn events_trigger_with_labels_details_and_a_key_stable_across_retries() {
        let b = body(event("trigger"));
        let parsed = parse_events(&b, &limits()).unwrap();
        assert_eq!(parsed.routing_key.as_deref(), Some("sgi_key"));
        let a = &parsed.alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.summary.as_deref(), Some("Disk full on db1"));
        assert_eq!(a.labels["source"], "db1");
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.annotations["used"], "97");
        assert_eq!(a.annotations["mount"], "/");
        let key = a.key.clone().unwrap();
        assert_eq!(key.len(), 32);
        let again = parse_events(&b, &limits()).unwrap();
        assert_eq!(again.alerts[0].key.as_deref(), Some(key.as_str()));

        let mut keyed = event("trigger");
        keyed["dedup_key"] = json!("disk-db1");
        let parsed = parse_events(&body(keyed), &limits()).unwrap();
        assert_eq!(parsed.alerts[0].key.as_deref(), Some("disk-db1"));
    }

    #[test]
    fn events_refusals_carry_the_routing_key_to_authenticate_them() {
        let refused = |v: Value| parse_events(&body(v), &limits()).unwrap_err();
        let r = refused(event("resolve"));
        assert_eq!(r.message, "dedup_key is required to acknowledge or resolve");
        assert_eq!(r.routing_key.as_deref(), Some("sgi_key"));
        assert_eq!(r.alerts, 1);

        let r = refused(event("snooze"));
        assert!(
            r.message.starts_with("event_action must be"),
            "{}",
            r.message
        );

        let mut no_payload = event("trigger");
        no_payload["payload"] = Value::Null;
        assert_eq!(
            refused(no_payload).message,
            "payload is required to trigger"
        );

        let mut no_summary = event("trigger");
        no_summary["payload"]["summary"] = json!("");
        assert_eq!(
            refused(no_summary).message,
            "payload.summary is required to trigger"
        );

        let mut bad_severity = event("trigger");
        bad_severity["payload"]["severity"] = json!("urgent");
        assert!(
            refused(bad_severity)
                .message
                .starts_with("payload.severity must be")
        );

        let mut no_key = event("trigger");
        no_key["routing_key"] = json!("");
        let r = refused(no_key);
        assert_eq!(r.message, "routing_key is required");

        let mut acknowledged = event("acknowledge");
        acknowledged["dedup_key"] = json!("disk-db1");
        acknowledged["payload"] = Value::Null;
        let parsed = parse_events(&body(acknowledged), &limits()).unwrap();
        assert_eq!(parsed.alerts[0].status, AlertStatus::Acknowledged);
    }
}

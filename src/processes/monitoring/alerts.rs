//! The alert state machine's rules (pure: no database, no GraphQL): what
//! an alert is, its key, whether it already holds in its key's state, when
//! re-fires count as flapping, and the texts it writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use entity::{
    enums::{AlertStatus, IncidentState},
    incident, incident_alert,
};

use super::integrations::hash_secret;
use crate::config::IngestConfig;

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

impl IncomingAlert {
    /// The severity the sender gave, else its `severity` label.
    pub(super) fn severity(&self) -> Option<&str> {
        self.severity
            .as_deref()
            .or_else(|| self.labels.get("severity").map(String::as_str))
    }
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
    pub(super) fn add(&mut self, action: AlertAction) {
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
pub(super) fn printable(s: &str, multiline: bool) -> String {
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

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub(super) fn title_of(alert: &IncomingAlert, key: &str) -> String {
    let raw = alert
        .summary
        .as_deref()
        .or_else(|| alert.annotations.get("summary").map(String::as_str))
        .or_else(|| alert.labels.get("alertname").map(String::as_str))
        .unwrap_or(key);
    let t = truncate(printable(raw, false).trim(), 200);
    if t.is_empty() { "Alert".to_owned() } else { t }
}

pub(super) fn describe(alert: &IncomingAlert) -> String {
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

pub(super) fn annotations_note(prefix: &str, alert: &IncomingAlert) -> String {
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
pub(super) fn json_map(m: &BTreeMap<String, String>) -> serde_json::Value {
    let clean = |s: &str| s.replace('\0', "\u{fffd}");
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| (clean(k), serde_json::Value::String(clean(v))))
            .collect(),
    )
}

/// The state of one alert key: its latest incident and that incident's alert row.
#[derive(Clone)]
pub(super) struct KeyState {
    pub(super) incident: incident::Model,
    pub(super) alert: Option<incident_alert::Model>,
}

pub(super) fn is_open(s: IncidentState) -> bool {
    !matches!(s, IncidentState::Resolved | IncidentState::Closed)
}

/// Whether an alert reported as `status` already holds in its key's current
/// state, so that handling it again would change nothing: a firing alert
/// with its incident open and the alert firing; a resolve or acknowledge
/// with no open incident or with the alert already in that status.
pub(super) fn already_holds(status: AlertStatus, state: Option<&KeyState>) -> bool {
    let open = state.filter(|s| is_open(s.incident.state));
    let reported = open.and_then(|s| s.alert.as_ref()).map(|a| a.status);
    match status {
        AlertStatus::Firing => reported == Some(AlertStatus::Firing),
        AlertStatus::Resolved | AlertStatus::Acknowledged => {
            open.is_none() || reported == Some(status)
        }
    }
}

/// Whether a firing alert may reopen its key's incident: resolved (not
/// closed) no longer than the integration's reopen window ago.
pub(super) fn within_reopen_window(
    incident: &incident::Model,
    at: DateTime<Utc>,
    window_seconds: i32,
) -> bool {
    incident.state == IncidentState::Resolved
        && incident
            .resolved_at
            .is_some_and(|r| at - r <= Duration::seconds(window_seconds.into()))
}

/// The re-fires of an alert within the flap window, this one included.
pub(super) struct Refires {
    pub(super) times: Vec<DateTime<Utc>>,
    /// More re-fires than the threshold: recorded instead of reopening.
    pub(super) flapping: bool,
}

/// Counts a re-fire at `at` against the earlier ones still within the
/// window (`row`'s, when the key has an alert row).
pub(super) fn refire(
    row: Option<&incident_alert::Model>,
    at: DateTime<Utc>,
    window_seconds: i32,
    threshold: i32,
) -> Refires {
    let window = Duration::seconds(window_seconds.into());
    let mut times: Vec<DateTime<Utc>> = row
        .and_then(|a| serde_json::from_value(a.refires.clone()).ok())
        .unwrap_or_default();
    times.retain(|t| at - *t < window);
    times.push(at);
    let flapping = times.len() > threshold as usize;
    Refires { times, flapping }
}

#[cfg(test)]
mod tests {
    use entity::enums::{IncidentSource, Priority};

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn alert(status: AlertStatus, key: Option<&str>, labels: &[(&str, &str)]) -> IncomingAlert {
        IncomingAlert {
            status,
            key: key.map(str::to_owned),
            summary: None,
            description: None,
            severity: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: None,
            ends_at: None,
            source_url: None,
        }
    }

    fn incident(state: IncidentState, resolved_at: Option<DateTime<Utc>>) -> incident::Model {
        incident::Model {
            id: 7,
            customer_id: 1,
            number: "INC-000007".into(),
            title: "Disk full".into(),
            description: None,
            impact: 2,
            urgency: 2,
            priority: Priority::P3,
            major: false,
            state,
            source: IncidentSource::Monitoring,
            category: None,
            reporter_subject: "integration:1".into(),
            reporter_id: None,
            service_id: None,
            assignment_group_id: None,
            assignee_id: None,
            resolution_code: None,
            resolution_notes: None,
            sla_id: None,
            resolved_at,
            closed_at: None,
            dedup_key: Some("k".into()),
            version: 1,
            created_at: at(),
            updated_at: at(),
        }
    }

    fn row(status: AlertStatus, refires: &[DateTime<Utc>]) -> incident_alert::Model {
        incident_alert::Model {
            id: 3,
            incident_id: 7,
            customer_id: 1,
            integration_id: 1,
            dedup_key: "k".into(),
            status,
            alert_count: 1,
            reopen_count: 0,
            flapping: false,
            flap_count: 0,
            refires: serde_json::to_value(refires).unwrap(),
            labels: serde_json::json!({}),
            annotations: serde_json::json!({}),
            source_url: None,
            first_seen_at: at(),
            last_seen_at: at(),
            ended_at: None,
            version: 1,
            created_at: at(),
            updated_at: at(),
        }
    }

    fn state(incident_state: IncidentState, alert: Option<AlertStatus>) -> KeyState {
        KeyState {
            incident: incident(incident_state, None),
            alert: alert.map(|s| row(s, &[])),
        }
    }

    #[test]
    fn the_key_is_the_dedup_labels_then_the_senders_key_then_a_hash_of_the_labels() {
        let a = alert(
            AlertStatus::Firing,
            Some("fp1"),
            &[("alertname", "DiskFull"), ("instance", "db1")],
        );
        let labels = vec!["alertname".to_owned(), "job".to_owned()];
        assert_eq!(alert_key(&labels, &a), "alertname=DiskFull,job=");
        assert_eq!(alert_key(&[], &a), "fp1");
        let unkeyed = alert(AlertStatus::Firing, Some(""), &[("instance", "db1")]);
        let key = alert_key(&[], &unkeyed);
        assert!(key.starts_with("labels:"), "{key}");
        // The same labels make the same key, in any order of arrival.
        assert_eq!(key, alert_key(&[], &unkeyed.clone()));
        let other = alert(AlertStatus::Firing, None, &[("instance", "db2")]);
        assert_ne!(key, alert_key(&[], &other));
    }

    #[test]
    fn long_keys_and_keys_with_control_characters_are_stored_as_their_hash() {
        let long = "x".repeat(MAX_KEY + 1);
        let a = alert(AlertStatus::Firing, Some(&long), &[]);
        assert_eq!(alert_key(&[], &a), format!("sha256:{}", hash_secret(&long)));
        let a = alert(AlertStatus::Firing, Some("a\nb"), &[]);
        assert!(alert_key(&[], &a).starts_with("sha256:"));
        let a = alert(AlertStatus::Firing, Some(&"x".repeat(MAX_KEY)), &[]);
        assert_eq!(alert_key(&[], &a).len(), MAX_KEY);
    }

    #[test]
    fn a_firing_alert_holds_only_while_its_open_incident_is_firing() {
        use AlertStatus::Firing;
        use IncidentState::New;
        assert!(!already_holds(Firing, None));
        assert!(already_holds(Firing, Some(&state(New, Some(Firing)))));
        let resolved_alert = state(New, Some(AlertStatus::Resolved));
        assert!(!already_holds(Firing, Some(&resolved_alert)));
        assert!(!already_holds(Firing, Some(&state(New, None))));
        let resolved_incident = state(IncidentState::Resolved, Some(Firing));
        assert!(!already_holds(Firing, Some(&resolved_incident)));
    }

    #[test]
    fn a_resolve_or_acknowledge_holds_without_an_open_incident_or_once_reported() {
        use AlertStatus::{Acknowledged, Firing};
        use IncidentState::{Closed, InProgress};
        for status in [AlertStatus::Resolved, Acknowledged] {
            assert!(already_holds(status, None));
            assert!(already_holds(status, Some(&state(Closed, Some(Firing)))));
            assert!(already_holds(
                status,
                Some(&state(InProgress, Some(status)))
            ));
            assert!(!already_holds(
                status,
                Some(&state(InProgress, Some(Firing)))
            ));
            assert!(!already_holds(status, Some(&state(InProgress, None))));
        }
        let acknowledged = state(InProgress, Some(Acknowledged));
        assert!(!already_holds(AlertStatus::Resolved, Some(&acknowledged)));
    }

    #[test]
    fn only_a_recently_resolved_incident_reopens() {
        let minutes = |m| at() - Duration::minutes(m);
        let resolved = |m| incident(IncidentState::Resolved, Some(minutes(m)));
        assert!(within_reopen_window(&resolved(30), at(), 1800));
        assert!(!within_reopen_window(&resolved(31), at(), 1800));
        assert!(within_reopen_window(&resolved(0), at(), 0));
        let closed = incident(IncidentState::Closed, Some(minutes(1)));
        assert!(!within_reopen_window(&closed, at(), 1800));
        assert!(!within_reopen_window(
            &incident(IncidentState::InProgress, None),
            at(),
            1800
        ));
    }

    #[test]
    fn refires_beyond_the_threshold_within_the_window_are_flapping() {
        let ago = |m| at() - Duration::minutes(m);
        // Without a row, the first re-fire.
        let r = refire(None, at(), 3600, 3);
        assert_eq!(r.times, vec![at()]);
        assert!(!r.flapping);
        // Three within the hour and this one: more than 3.
        let prior = row(AlertStatus::Resolved, &[ago(50), ago(20), ago(5)]);
        let r = refire(Some(&prior), at(), 3600, 3);
        assert_eq!(r.times.len(), 4);
        assert!(r.flapping);
        // Those older than the window are forgotten.
        let prior = row(AlertStatus::Resolved, &[ago(90), ago(61), ago(5)]);
        let r = refire(Some(&prior), at(), 3600, 3);
        assert_eq!(r.times, vec![ago(5), at()]);
        assert!(!r.flapping);
        // Exactly the window's age is outside it.
        let prior = row(AlertStatus::Resolved, &[ago(60)]);
        assert_eq!(refire(Some(&prior), at(), 3600, 1).times, vec![at()]);
    }

    #[test]
    fn titles_prefer_the_summary_then_the_alert_name_and_stay_printable() {
        let mut a = alert(AlertStatus::Firing, None, &[("alertname", "Disk\tFull")]);
        assert_eq!(title_of(&a, "k"), "Disk Full");
        a.summary = Some("  ".into());
        assert_eq!(title_of(&a, "k"), "Alert");
        a.summary = Some("x".repeat(300));
        let t = title_of(&a, "k");
        assert_eq!(t.chars().count(), 200);
        assert!(t.ends_with('…'));
        let bare = alert(AlertStatus::Firing, None, &[]);
        assert_eq!(title_of(&bare, "the-key"), "the-key");
    }

    #[test]
    fn labels_over_the_limits_are_refused_with_their_place() {
        let limits = IngestConfig {
            max_labels: 2,
            max_value_bytes: 4,
            ..IngestConfig::default()
        };
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(check_pairs(&limits, "alerts[0]", "labels", &map(&[("a", "1")])).is_ok());
        let too_many = check_pairs(
            &limits,
            "alerts[0]",
            "labels",
            &map(&[("a", "1"), ("b", "2"), ("c", "3")]),
        );
        assert!(
            too_many
                .unwrap_err()
                .starts_with("alerts[0].labels: at most 2")
        );
        let too_long = check_pairs(&limits, "alerts[1]", "annotations", &map(&[("a", "12345")]));
        assert!(
            too_long
                .unwrap_err()
                .starts_with("alerts[1].annotations.a: a value is at most 4 bytes")
        );
        assert!(check_pairs(&limits, "x", "labels", &map(&[("", "1")])).is_err());
    }

    #[test]
    fn stored_labels_replace_nul_only() {
        let m: BTreeMap<String, String> = [("a\0".to_owned(), "b\0\n".to_owned())].into();
        assert_eq!(
            json_map(&m),
            serde_json::json!({"a\u{fffd}": "b\u{fffd}\n"})
        );
    }
}

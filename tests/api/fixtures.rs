//! Set-ups shared by the API tests of several processes: calendars and SLAs,
//! a customer subscribed to a service under an SLA, monitoring integrations
//! and Alertmanager's payloads, listening for SLA events and ageing the
//! running clocks.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

pub const CREATE_CALENDAR: &str = "mutation($i: CreateBusinessCalendarInput!) { createBusinessCalendar(input: $i) { id name timeZone is24x7 version windows { weekday start end endsNextDay } holidays { date yearly name } } }";
pub const CREATE_SLA: &str = "mutation($i: CreateSlaInput!) { createSla(input: $i) { id name kind status version validFrom validTo availabilityTarget targets { priority respondMinutes resolveMinutes } customer { id } service { id } calendar { id name } } }";

pub const CREATE_INTEGRATION: &str = "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { secret integration { id version name kind secretHint active organization { code } } } }";

pub const WEEKDAYS: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

/// A calendar's windows for every hour of every day.
pub fn all_day_windows() -> Vec<Value> {
    WEEKDAYS
        .iter()
        .map(|d| json!({ "weekday": d, "start": "00:00", "end": "24:00" }))
        .collect()
}

/// A 24x7 calendar in UTC.
pub async fn round_the_clock(app: &TestApp) -> String {
    let all = all_day_windows();
    let data = app
        .ok(
            &app.admin(),
            CREATE_CALENDAR,
            json!({ "i": { "name": "24x7", "timeZone": "UTC", "windows": all } }),
        )
        .await;
    assert_eq!(data["createBusinessCalendar"]["is24x7"], true);
    data["createBusinessCalendar"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// P1 respond 60 / resolve 240, P2 120 / 480, P3 240 / 960, P4 480 / 2400 (minutes).
pub fn standard_targets() -> Value {
    json!([
        { "priority": "P1", "respondMinutes": 60, "resolveMinutes": 240 },
        { "priority": "P2", "respondMinutes": 120, "resolveMinutes": 480 },
        { "priority": "P3", "respondMinutes": 240, "resolveMinutes": 960 },
        { "priority": "P4", "respondMinutes": 480, "resolveMinutes": 2400 },
    ])
}

pub async fn create_sla(app: &TestApp, customer: &str, service: &str, calendar: &str) -> Value {
    let data = app
        .ok(
            &app.admin(),
            CREATE_SLA,
            json!({ "i": {
                "name": "Gold",
                "customerId": customer,
                "serviceId": service,
                "calendarId": calendar,
                "validFrom": "2020-01-01T00:00:00Z",
                "targets": standard_targets(),
                "availabilityTarget": 99.9
            } }),
        )
        .await;
    data["createSla"].clone()
}

pub struct Setup {
    pub acme: String,
    pub service: String,
    pub group: String,
}

/// The customer Acme subscribes to a live service named `service` with a
/// 24x7 SLA ([`standard_targets`]); returns (customer, service, calendar).
pub async fn acme_with_sla_on(app: &TestApp, service: &str) -> (String, String, String) {
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": service, "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap().to_owned();
    app.subscribe(&svc, &acme).await;
    let cal = round_the_clock(app).await;
    create_sla(app, &acme, &svc, &cal).await;
    (acme, svc, cal)
}

/// Acme subscribes to a live "Payments" service with a 24x7 SLA; a CI
/// `db-01` belongs to Acme; a provider group "NOC" exists.
pub async fn setup(app: &TestApp) -> Setup {
    let (acme, service, _) = acme_with_sla_on(app, "Payments").await;
    app.ok(
        &app.admin(),
        "mutation($i: CreateConfigurationItemInput!) { createConfigurationItem(input: $i) { id } }",
        json!({ "i": { "name": "db-01", "classCode": "database", "attributes": { "engine": "postgresql" }, "organizationId": acme } }),
    )
    .await;
    let g = app
        .ok(
            &app.admin(),
            "mutation($i: CreateSupportGroupInput!) { createSupportGroup(input: $i) { id } }",
            json!({ "i": { "name": "NOC" } }),
        )
        .await;
    Setup {
        acme,
        service,
        group: g["createSupportGroup"]["id"].as_str().unwrap().to_owned(),
    }
}

/// Creates an integration for Acme routing `severity=critical` to impact 1 /
/// urgency 1 with CIs from the `instance` label; `extra` overrides fields.
pub async fn integration(app: &TestApp, s: &Setup, kind: &str, extra: Value) -> (String, String) {
    let mut input = json!({
        "organizationId": s.acme,
        "name": format!("{kind} prod"),
        "kind": kind,
        "defaultServiceId": s.service,
        "defaultAssignmentGroupId": s.group,
        "rules": [{
            "name": "critical",
            "matchers": [{ "label": "severity", "op": "EQUALS", "value": "critical" }],
            "impact": 1, "urgency": 1,
            "ciLabels": ["instance"]
        }, {
            "name": "rest",
            "ciLabels": ["instance"]
        }]
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    let d = app
        .ok(&app.admin(), CREATE_INTEGRATION, json!({ "i": input }))
        .await;
    let secret = d["createIntegration"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("sgi_"), "{secret}");
    assert_eq!(
        d["createIntegration"]["integration"]["secretHint"],
        secret[..8]
    );
    (
        d["createIntegration"]["integration"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret,
    )
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An Alertmanager v4 alert as its webhook sends it.
pub fn am_alert(status: &str, fingerprint: &str, instance: &str, summary: &str) -> Value {
    let now = Utc::now();
    json!({
        "status": status,
        "labels": { "alertname": "PostgresDown", "instance": instance, "job": "postgres", "severity": "critical" },
        "annotations": { "summary": summary, "description": format!("{instance} is not answering") },
        "startsAt": ts(now - Duration::minutes(5)),
        "endsAt": if status == "resolved" { ts(now) } else { "0001-01-01T00:00:00Z".to_owned() },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint
    })
}

/// Alertmanager's webhook body (version 4) around `alerts`.
pub fn am_body(alerts: Vec<Value>) -> Value {
    let status = if alerts.iter().any(|a| a["status"] == "firing") {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"PostgresDown\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "servicegraph",
        "groupLabels": { "alertname": "PostgresDown" },
        "commonLabels": { "alertname": "PostgresDown", "job": "postgres" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts
    })
}

const SLA_EVENTS: &str = "subscription($f: SlaEventFilter) { slaEvents(filter: $f) { kind threshold clock { kind targetSeconds } incident { number } } }";

pub async fn listen_sla(app: &TestApp, token: &str) -> Ws {
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(token).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": SLA_EVENTS } }))
        .await;
    ws
}

/// Moves the start of the running clocks back to `minutes` ago, as if raised
/// that long ago. Everything the server stored about when to look at a clock
/// moves back with it (as it would have had the time really passed); with
/// `keep_schedule` only the start moves.
pub async fn shift_clocks(database_url: &str, minutes: i64, keep_schedule: bool) {
    use entity::sla_clock;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let db = sea_orm::Database::connect(database_url).await.unwrap();
    let started = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    let running = sla_clock::Entity::find()
        .filter(sla_clock::Column::StoppedAt.is_null())
        .all(&db)
        .await
        .unwrap();
    for c in running {
        let shift = started - c.started_at;
        let next = if keep_schedule {
            c.next_check_at
        } else {
            c.next_check_at.map(|n| n + shift)
        };
        sla_clock::Entity::update_many()
            .col_expr(sla_clock::Column::StartedAt, Expr::value(started))
            .col_expr(sla_clock::Column::NextCheckAt, Expr::value(next))
            .filter(sla_clock::Column::Id.eq(c.id))
            .exec(&db)
            .await
            .unwrap();
    }
    let _ = db.close().await;
}

pub async fn age_clocks(database_url: &str, minutes: i64) {
    shift_clocks(database_url, minutes, false).await;
}

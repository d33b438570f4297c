//! Monitoring alerts to incidents over real HTTP: Alertmanager, Grafana and
//! events-API payloads as those senders produce them, repeats, resolves,
//! reopening, flapping, concurrent duplicates, retries, secrets, tenancy,
//! limits, `raiseAlert`, the delivery log and `incidentChanged`.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    fixtures::{CREATE_INTEGRATION, am_alert, am_body, integration, setup, ts},
    helpers::*,
};

const INCIDENTS: &str = "query { incidents(first: 50) { totalCount edges { node { id number title state priority source resolvedAt resolutionCode description customer { code } service { name } affectedCis { name } clocks { kind stoppedAt } timeline { kind body } assignmentGroup { name } alert { dedupKey status alertCount reopenCount flapping flapCount labels annotations firstSeenAt lastSeenAt endedAt integration { name } } } } } }";

/// Grafana alerting's webhook body (its documented example, trimmed).
fn grafana_body(status: &str, fingerprint: &str) -> Value {
    json!({
        "receiver": "servicegraph",
        "status": status,
        "orgId": 1,
        "alerts": [{
            "status": status,
            "labels": { "alertname": "High CPU", "grafana_folder": "Infra", "instance": "db-01" },
            "annotations": { "summary": "CPU above 90 % on db-01" },
            "startsAt": "2026-11-22T09:00:00Z",
            "endsAt": if status == "resolved" { ts(Utc::now()) } else { "0001-01-01T00:00:00Z".to_owned() },
            "generatorURL": "http://grafana/alerting/grafana/abc/view",
            "fingerprint": fingerprint,
            "silenceURL": "http://grafana/alerting/silence/new",
            "dashboardURL": "http://grafana/d/abc",
            "panelURL": "http://grafana/d/abc?viewPanel=1",
            "values": { "B": 92.5, "C": 1 },
            "valueString": "[ var='B' labels={instance=db-01} value=92.5 ]"
        }],
        "groupLabels": { "alertname": "High CPU" },
        "commonLabels": { "alertname": "High CPU" },
        "commonAnnotations": {},
        "externalURL": "http://grafana/",
        "version": "1",
        "groupKey": "{}:{alertname=\"High CPU\"}",
        "truncatedAlerts": 0,
        "title": format!("[{}] High CPU", status.to_uppercase()),
        "state": if status == "firing" { "alerting" } else { "ok" },
        "message": "**Firing**"
    })
}

async fn deliver(
    app: &TestApp,
    path: &str,
    secret: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    deliver_raw(app, path, secret, serde_json::to_vec(body).unwrap()).await
}

async fn deliver_raw(
    app: &TestApp,
    path: &str,
    secret: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/ingest/{path}", app.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = secret {
        req = req.bearer_auth(s);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

async fn incidents(app: &TestApp) -> Vec<Value> {
    let d = app.ok(&app.admin(), INCIDENTS, json!({})).await;
    d["incidents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn alertmanager_raises_repeats_resolves_and_reopens_one_incident() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;

    // Firing: one incident with the routed service, CI, priority and SLA clocks.
    let (status, body) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![am_alert(
            "firing",
            "fp-db01",
            "db-01",
            "Postgres down on db-01",
        )]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], 1, "{body}");
    assert_eq!(body["alerts"][0]["action"], "CREATED");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1);
    let inc = &list[0];
    assert_eq!(inc["title"], "Postgres down on db-01");
    assert_eq!(inc["source"], "MONITORING");
    assert_eq!(inc["customer"]["code"], "acme");
    assert_eq!(inc["service"]["name"], "Payments");
    assert_eq!(inc["priority"], "P1");
    assert_eq!(inc["state"], "ASSIGNED");
    assert_eq!(inc["assignmentGroup"]["name"], "NOC");
    assert_eq!(inc["affectedCis"], json!([{ "name": "db-01" }]));
    assert_eq!(inc["clocks"].as_array().unwrap().len(), 2, "{inc}");
    assert_eq!(inc["alert"]["dedupKey"], "fp-db01");
    assert_eq!(inc["alert"]["alertCount"], 1);
    assert_eq!(inc["alert"]["labels"]["instance"], "db-01");
    assert_eq!(inc["alert"]["integration"]["name"], "ALERTMANAGER prod");
    assert!(
        inc["description"]
            .as_str()
            .unwrap()
            .contains("db-01 is not answering")
    );

    // A repeat with new annotations: same incident, count 2, a work note.
    let (status, body) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![am_alert(
            "firing",
            "fp-db01",
            "db-01",
            "Postgres still down",
        )]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["updated"], 1, "{body}");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1, "a repeat never opens a second incident");
    assert_eq!(list[0]["alert"]["alertCount"], 2);
    assert_eq!(
        list[0]["alert"]["annotations"]["summary"],
        "Postgres still down"
    );
    let notes = list[0]["timeline"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["kind"] == "WORK_NOTE"
            && n["body"].as_str().unwrap().contains("Postgres still down")),
        "{notes:?}"
    );

    // Resolved: the incident resolves at the alert's end time.
    let resolved = am_alert("resolved", "fp-db01", "db-01", "Postgres still down");
    let ends_at = resolved["endsAt"].as_str().unwrap().to_owned();
    let (status, body) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![resolved]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["resolved"], 1, "{body}");
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["state"], "RESOLVED");
    assert_eq!(inc["resolutionCode"], "monitoring_cleared");
    let resolved_at = DateTime::parse_from_rfc3339(inc["resolvedAt"].as_str().unwrap()).unwrap();
    let ended = DateTime::parse_from_rfc3339(&ends_at).unwrap();
    assert!(
        (resolved_at - ended).num_seconds().abs() <= 1,
        "resolvedAt {resolved_at} vs endsAt {ended}"
    );
    assert_eq!(inc["alert"]["status"], "RESOLVED");

    // Firing again within the reopen window: the same incident reopens.
    let (_, body) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![am_alert(
            "firing",
            "fp-db01",
            "db-01",
            "Postgres down again",
        )]),
    )
    .await;
    assert_eq!(body["alerts"][0]["action"], "REOPENED", "{body}");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "IN_PROGRESS");
    assert_eq!(list[0]["resolvedAt"], Value::Null);
    assert_eq!(list[0]["alert"]["reopenCount"], 1);
    assert_eq!(list[0]["alert"]["alertCount"], 3);
}

#[tokio::test]
async fn after_the_reopen_window_or_once_closed_a_new_incident_opens() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(
        &app,
        &s,
        "ALERTMANAGER",
        json!({ "reopenWindowSeconds": 0 }),
    )
    .await;
    let fire = || am_body(vec![am_alert("firing", "fp-x", "db-01", "down")]);
    deliver(&app, "alertmanager", Some(&secret), &fire()).await;
    let (_, body) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![am_alert("resolved", "fp-x", "db-01", "down")]),
    )
    .await;
    assert_eq!(body["resolved"], 1, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, body) = deliver(&app, "alertmanager", Some(&secret), &fire()).await;
    assert_eq!(body["alerts"][0]["action"], "CREATED", "{body}");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 2, "a new incident after the window");
    let states: Vec<&str> = list.iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"RESOLVED") && states.contains(&"ASSIGNED"),
        "{states:?}"
    );
    assert_ne!(list[0]["number"], list[1]["number"]);
}

#[tokio::test]
async fn flapping_is_recorded_instead_of_reopening_each_time() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "ALERTMANAGER", json!({ "flapThreshold": 1 })).await;
    let send = |status: &'static str, summary: &'static str| {
        let app = &app;
        let secret = secret.clone();
        async move {
            let (code, body) = deliver(
                app,
                "alertmanager",
                Some(&secret),
                &am_body(vec![am_alert(status, "fp-flap", "db-01", summary)]),
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{body}");
            body["alerts"][0]["action"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(send("firing", "a").await, "CREATED");
    assert_eq!(send("resolved", "a").await, "RESOLVED");
    assert_eq!(send("firing", "b").await, "REOPENED");
    assert_eq!(send("resolved", "b").await, "RESOLVED");
    // The second re-fire within the window passes the threshold of 1.
    assert_eq!(send("firing", "c").await, "FLAPPING");
    assert_eq!(send("firing", "d").await, "FLAPPING");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1, "flapping never opens another incident");
    let inc = &list[0];
    assert_eq!(inc["state"], "RESOLVED", "not reopened while flapping");
    assert_eq!(inc["alert"]["flapping"], true);
    assert_eq!(inc["alert"]["flapCount"], 2);
    assert_eq!(inc["alert"]["reopenCount"], 1);
    let flap_notes = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["body"].as_str().unwrap().contains("flapping"))
        .count();
    assert_eq!(flap_notes, 1, "one note when flapping starts");
}

#[tokio::test]
async fn identical_alerts_at_the_same_moment_make_one_incident() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    // 16 deliveries of the same alert (different bodies, so none is a retry).
    let sends = (0..16).map(|i| {
        let body = am_body(vec![am_alert(
            "firing",
            "fp-race",
            "db-01",
            &format!("down (notification {i})"),
        )]);
        let app = &app;
        let secret = secret.clone();
        async move { deliver(app, "alertmanager", Some(&secret), &body).await }
    });
    let results = futures_util::future::join_all(sends).await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let created = results
        .iter()
        .filter(|(_, b)| b["alerts"][0]["action"] == "CREATED")
        .count();
    assert_eq!(created, 1, "exactly one delivery created the incident");
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["alert"]["alertCount"], 16);
}

#[tokio::test]
async fn a_retried_delivery_changes_nothing_twice_and_is_logged() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (id, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let body = am_body(vec![
        am_alert("firing", "fp-1", "db-01", "one"),
        am_alert("firing", "fp-2", "db-01", "two"),
    ]);
    let (_, first) = deliver(&app, "alertmanager", Some(&secret), &body).await;
    assert_eq!(first["created"], 2);
    let (status, again) = deliver(&app, "alertmanager", Some(&secret), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["created"], 0);
    let list = incidents(&app).await;
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|i| i["alert"]["alertCount"] == 1));

    let log = app
        .ok(
            &app.admin(),
            "query($i: ID) { ingestLog(integrationId: $i, first: 10) { totalCount edges { node { endpoint httpStatus alerts created updated resolved ignored errors integration { name } } } } }",
            json!({ "i": id }),
        )
        .await;
    let entries = log["ingestLog"]["edges"].as_array().unwrap();
    assert_eq!(log["ingestLog"]["totalCount"], 2);
    // Newest first: the retry, then the original.
    assert_eq!(entries[0]["node"]["ignored"], 2);
    assert!(
        entries[0]["node"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("retry")
    );
    assert_eq!(entries[1]["node"]["created"], 2);
    assert_eq!(entries[1]["node"]["endpoint"], "alertmanager");
    assert_eq!(
        entries[1]["node"]["integration"]["name"],
        "ALERTMANAGER prod"
    );
    // Requesters and agents do not read the log.
    let body = app
        .gql(
            &app.agent(),
            "{ ingestLog(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

/// A firing and a resolving delivery of one alert keyed `key`, as the sender
/// of integration `kind` writes them: (endpoint, header secret, firing, resolved).
fn fire_and_resolve(
    kind: &str,
    secret: &str,
    key: &str,
) -> (&'static str, Option<String>, Value, Value) {
    match kind {
        "ALERTMANAGER" => (
            "alertmanager",
            Some(secret.to_owned()),
            am_body(vec![am_alert("firing", key, "db-01", "down")]),
            am_body(vec![am_alert("resolved", key, "db-01", "down")]),
        ),
        "GRAFANA" => (
            "grafana",
            Some(secret.to_owned()),
            grafana_body("firing", key),
            grafana_body("resolved", key),
        ),
        _ => (
            "events",
            None,
            // PagerDuty trigger bodies carry no timestamp: every re-trigger
            // is byte for byte the first one.
            json!({ "routing_key": secret, "event_action": "trigger", "dedup_key": key,
                    "payload": { "summary": "Disk full on web-7", "source": "web-7", "severity": "critical" } }),
            json!({ "routing_key": secret, "event_action": "resolve", "dedup_key": key }),
        ),
    }
}

/// Whether an answer says the delivery was a retry that changed nothing.
fn was_duplicate(endpoint: &str, answer: &Value) -> bool {
    if endpoint == "events" {
        answer["message"] == "Event already processed"
    } else {
        answer["duplicate"] == true
    }
}

/// The incidents an integration raised, newest first.
async fn incidents_of(app: &TestApp, integration_name: &str) -> Vec<Value> {
    incidents(app)
        .await
        .into_iter()
        .filter(|i| i["alert"]["integration"]["name"] == integration_name)
        .collect()
}

#[tokio::test]
async fn a_refire_after_a_resolve_reopens_or_opens_on_every_sender_format() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    // Per format: one integration with the default reopen window (the re-fire
    // reopens) and one with none (the re-fire opens a new incident).
    let mut cases = Vec::new();
    for kind in ["ALERTMANAGER", "GRAFANA", "EVENTS_API"] {
        for window in [None, Some(0)] {
            let name = format!("{kind} window {window:?}");
            let mut extra = json!({ "name": name });
            if let Some(w) = window {
                extra["reopenWindowSeconds"] = json!(w);
            }
            let (id, secret) = integration(&app, &s, kind, extra).await;
            let key = format!("refire-{}-{}", kind.to_lowercase(), window.is_some());
            let (endpoint, header, firing, resolved) = fire_and_resolve(kind, &secret, &key);
            let firing = serde_json::to_vec(&firing).unwrap();
            let (status, answer) =
                deliver_raw(&app, endpoint, header.as_deref(), firing.clone()).await;
            assert!(status.is_success(), "{kind}: {answer}");
            let (status, answer) = deliver(&app, endpoint, header.as_deref(), &resolved).await;
            assert!(status.is_success(), "{kind}: {answer}");
            let list = incidents_of(&app, &name).await;
            assert_eq!(list.len(), 1, "{kind}");
            assert_eq!(list[0]["state"], "RESOLVED", "{kind}: {}", list[0]);
            cases.push((kind, window, id, name, endpoint, header, firing));
        }
    }
    // Past the zero reopen windows.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    for (kind, window, id, name, endpoint, header, firing) in &cases {
        // The first delivery's bytes again, after the resolve: not a retry.
        let (status, answer) = deliver_raw(&app, endpoint, header.as_deref(), firing.clone()).await;
        assert!(status.is_success(), "{kind}: {answer}");
        assert!(!was_duplicate(endpoint, &answer), "{kind}: {answer}");
        let list = incidents_of(&app, name).await;
        match window {
            None => {
                assert_eq!(list.len(), 1, "{kind}: reopened, not a second incident");
                assert_eq!(list[0]["state"], "IN_PROGRESS", "{kind}: {}", list[0]);
                assert_eq!(list[0]["alert"]["status"], "FIRING", "{kind}");
                assert_eq!(list[0]["alert"]["reopenCount"], 1, "{kind}");
                assert_eq!(list[0]["alert"]["alertCount"], 2, "{kind}");
            }
            Some(_) => {
                assert_eq!(list.len(), 2, "{kind}: a new incident after the window");
                let open: Vec<&Value> = list.iter().filter(|i| i["state"] != "RESOLVED").collect();
                assert_eq!(open.len(), 1, "{kind}: {list:?}");
                assert_eq!(open[0]["alert"]["status"], "FIRING", "{kind}");
            }
        }

        // The same bytes straight away: now a retry, nothing changes twice.
        let (status, answer) = deliver_raw(&app, endpoint, header.as_deref(), firing.clone()).await;
        assert!(status.is_success(), "{kind}: {answer}");
        assert!(was_duplicate(endpoint, &answer), "{kind}: {answer}");
        let again = incidents_of(&app, name).await;
        assert_eq!(again, list, "{kind}: the retry changed nothing");

        // The log says what was answered: 202 on the events API, 200 on the webhooks.
        let log = app
            .ok(
                &app.admin(),
                "query($i: ID) { ingestLog(integrationId: $i, first: 10) { edges { node { httpStatus ignored errors } } } }",
                json!({ "i": id }),
            )
            .await;
        let entries = log["ingestLog"]["edges"].as_array().unwrap();
        assert_eq!(entries.len(), 4, "{kind}: {log}");
        let expected = if *endpoint == "events" { 202 } else { 200 };
        for e in entries {
            assert_eq!(e["node"]["httpStatus"], expected, "{kind}: {log}");
        }
        assert!(
            entries[0]["node"]["errors"][0]
                .as_str()
                .unwrap()
                .contains("retry"),
            "{kind}: {log}"
        );
        assert_eq!(entries[1]["node"]["errors"], json!([]), "{kind}: {log}");
    }
}

#[tokio::test]
async fn one_body_sent_at_the_same_moment_makes_one_incident() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let body = serde_json::to_vec(&am_body(vec![am_alert(
        "firing", "fp-same", "db-01", "down",
    )]))
    .unwrap();
    let sends = (0..8).map(|_| deliver_raw(&app, "alertmanager", Some(&secret), body.clone()));
    let results = futures_util::future::join_all(sends).await;
    for (status, answer) in &results {
        assert_eq!(*status, StatusCode::OK, "{answer}");
    }
    let created = results
        .iter()
        .filter(|(_, b)| b["alerts"][0]["action"] == "CREATED")
        .count();
    assert_eq!(created, 1, "{results:?}");
    let retries = results
        .iter()
        .filter(|(_, b)| b["duplicate"] == true)
        .count();
    assert_eq!(
        retries, 7,
        "the others are retries of the first: {results:?}"
    );
    let list = incidents(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["alert"]["alertCount"], 1);
}

#[tokio::test]
async fn a_long_request_id_is_logged_shortened_not_refused() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (id, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let request_id = "r".repeat(300);
    let resp = app
        .client
        .post(format!("{}/ingest/alertmanager", app.base))
        .bearer_auth(&secret)
        .header("x-request-id", &request_id)
        .json(&am_body(vec![am_alert(
            "firing", "fp-rid", "db-01", "down",
        )]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let log = app
        .ok(
            &app.admin(),
            "query($i: ID) { ingestLog(integrationId: $i, first: 1) { edges { node { requestId created } } } }",
            json!({ "i": id }),
        )
        .await;
    let entry = &log["ingestLog"]["edges"][0]["node"];
    assert_eq!(entry["created"], 1);
    assert_eq!(entry["requestId"], request_id[..64]);
}

#[tokio::test]
async fn secrets_authenticate_one_integration_of_one_tenant() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (id, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let body = am_body(vec![am_alert("firing", "fp-a", "db-01", "x")]);

    let (status, b) = deliver(&app, "alertmanager", None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["code"], "UNAUTHENTICATED");
    let (status, _) = deliver(&app, "alertmanager", Some("sgi_not-a-real-secret"), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = deliver(&app, "alertmanager", Some(&app.admin()), &body).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a JWT is not an integration secret"
    );

    // Basic auth with the secret as password, as Alertmanager's http_config sends it.
    let resp = app
        .client
        .post(format!("{}/ingest/alertmanager", app.base))
        .basic_auth("alertmanager", Some(&secret))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Rotating the secret retires the old one at once.
    let d = app
        .ok(
            &app.admin(),
            "mutation($i: RotateIntegrationSecretInput!) { rotateIntegrationSecret(input: $i) { secret integration { version } } }",
            json!({ "i": { "id": id, "version": 1 } }),
        )
        .await;
    let fresh = d["rotateIntegrationSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = deliver(&app, "alertmanager", Some(&secret), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = deliver(&app, "alertmanager", Some(&fresh), &body).await;
    assert_eq!(status, StatusCode::OK);

    // A deactivated integration is refused.
    app.ok(
        &app.admin(),
        "mutation($i: UpdateIntegrationInput!) { updateIntegration(input: $i) { active } }",
        json!({ "i": { "id": id, "version": 2, "active": false } }),
    )
    .await;
    let (status, _) = deliver(&app, "alertmanager", Some(&fresh), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A rule cannot route into another tenant's service.
    let globex = app.customer("globex").await;
    let theirs = app
        .service(json!({ "name": "Globex ERP", "status": "LIVE", "organizationId": globex }))
        .await;
    let body = app
        .gql(
            &app.admin(),
            CREATE_INTEGRATION,
            json!({ "i": { "organizationId": s.acme, "name": "sneaky", "kind": "ALERTMANAGER",
                "rules": [{ "serviceId": theirs["id"] }] } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "rules[0].serviceId");
    let body = app
        .gql(
            &app.admin(),
            CREATE_INTEGRATION,
            json!({ "i": { "organizationId": s.acme, "name": "bad regex", "kind": "ALERTMANAGER",
                "rules": [{ "matchers": [{ "label": "x", "op": "MATCHES", "value": "(" }] }] } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "rules[0].matchers[0].value");
    let body = app
        .gql(
            &app.agent(),
            CREATE_INTEGRATION,
            json!({ "i": { "organizationId": s.acme, "name": "agent's", "kind": "GENERIC" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Globex's admin-less requester cannot raise through Acme's integration,
    // and Globex's own integration secret cannot either.
    let (_, globex_secret) = {
        let d = app
            .ok(
                &app.admin(),
                CREATE_INTEGRATION,
                json!({ "i": { "organizationId": globex, "name": "globex am", "kind": "ALERTMANAGER" } }),
            )
            .await;
        (
            (),
            d["createIntegration"]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let raise = "mutation($i: RaiseAlertInput!) { raiseAlert(input: $i) { action incident { customer { code } } } }";
    let body = app
        .gql(
            &globex_secret,
            raise,
            json!({ "i": { "integrationId": id, "dedupKey": "k", "summary": "x" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    let ok = app
        .ok(
            &globex_secret,
            raise,
            json!({ "i": { "dedupKey": "k", "summary": "x" } }),
        )
        .await;
    assert_eq!(ok["raiseAlert"]["incident"]["customer"]["code"], "globex");
    // The secret does nothing else on /graphql.
    let body = app
        .gql(
            &globex_secret,
            "{ integrations(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn malformed_and_oversized_deliveries_get_4xx_and_nothing_is_written() {
    let app = TestApp::spawn_with(|c| {
        c.ingest.max_body_bytes = 20_000;
        c.ingest.max_alerts = 3;
        c.ingest.max_value_bytes = 100;
    })
    .await;
    let s = setup(&app).await;
    let (id, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;

    let (status, b) = deliver_raw(
        &app,
        "alertmanager",
        Some(&secret),
        b"{\"version\": \"4\", ".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        b["message"].as_str().unwrap().contains("malformed JSON"),
        "{b}"
    );

    let mut wrong = am_body(vec![am_alert("firing", "f", "db-01", "x")]);
    wrong["version"] = json!("3");
    let (status, b) = deliver(&app, "alertmanager", Some(&secret), &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(b["message"].as_str().unwrap().contains("version"), "{b}");

    let many = am_body(
        (0..4)
            .map(|i| am_alert("firing", &format!("f{i}"), "db-01", "x"))
            .collect(),
    );
    let (status, b) = deliver(&app, "alertmanager", Some(&secret), &many).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        b["message"].as_str().unwrap().contains("at most 3 alerts"),
        "{b}"
    );

    let mut long = am_alert("firing", "f", "db-01", "x");
    long["labels"]["team"] = json!("x".repeat(101));
    let (status, b) = deliver(&app, "alertmanager", Some(&secret), &am_body(vec![long])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("alerts[0].labels.team"),
        "{b}"
    );

    let mut bad_status = am_alert("firing", "f", "db-01", "x");
    bad_status["status"] = json!("exploded");
    let (status, _) = deliver(
        &app,
        "alertmanager",
        Some(&secret),
        &am_body(vec![bad_status]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, b) = deliver_raw(&app, "alertmanager", Some(&secret), vec![b' '; 30_000]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

    assert!(incidents(&app).await.is_empty(), "nothing written");
    let log = app
        .ok(
            &app.admin(),
            "query($i: ID) { ingestLog(integrationId: $i, first: 10) { edges { node { httpStatus errors created } } } }",
            json!({ "i": id }),
        )
        .await;
    let entries = log["ingestLog"]["edges"].as_array().unwrap();
    assert!(entries.len() >= 4, "refusals are logged: {entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e["node"]["httpStatus"] == 400 && e["node"]["created"] == 0)
    );

    // Control characters in labels are stored as sent (NUL, which PostgreSQL
    // cannot store in text, as U+FFFD) and kept out of titles.
    let mut odd = am_alert("firing", "f-odd", "db-01", "line1\nline2\u{7}bell");
    odd["labels"]["weird"] = json!("a\u{1b}[31mred\u{0}");
    let (status, b) = deliver(&app, "alertmanager", Some(&secret), &am_body(vec![odd])).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["alert"]["labels"]["weird"], "a\u{1b}[31mred\u{fffd}");
    assert_eq!(inc["title"], "line1 line2 bell");
}

#[tokio::test]
async fn the_events_api_speaks_pagerduty_events_v2() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(
        &app,
        &s,
        "EVENTS_API",
        json!({ "defaultAssignmentGroupId": null, "rules": [] }),
    )
    .await;
    let trigger = json!({
        "routing_key": secret,
        "event_action": "trigger",
        "dedup_key": "disk-full-web-7",
        "payload": {
            "summary": "Disk full on web-7",
            "source": "web-7",
            "severity": "warning",
            "component": "disk",
            "group": "web",
            "class": "storage",
            "custom_details": { "free_bytes": 0, "mount": "/var" }
        },
        "client": "Nagios",
        "client_url": "https://nagios.example.com"
    });
    let (status, b) = deliver(&app, "events", None, &trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    assert_eq!(
        b,
        json!({ "status": "success", "message": "Event processed", "dedup_key": "disk-full-web-7" })
    );
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["state"], "NEW");
    assert_eq!(inc["priority"], "P3", "warning: impact 2, urgency 2");
    assert_eq!(inc["alert"]["labels"]["component"], "disk");
    assert_eq!(inc["alert"]["annotations"]["free_bytes"], "0");

    // Acknowledge: the incident is taken (its first response).
    let ack = json!({ "routing_key": secret, "event_action": "acknowledge", "dedup_key": "disk-full-web-7" });
    let (status, _) = deliver(&app, "events", None, &ack).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["state"], "IN_PROGRESS");
    let respond = inc["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "RESPOND")
        .unwrap()
        .clone();
    assert!(
        respond["stoppedAt"].is_string(),
        "respond clock stopped: {inc}"
    );

    let resolve =
        json!({ "routing_key": secret, "event_action": "resolve", "dedup_key": "disk-full-web-7" });
    let (status, _) = deliver(&app, "events", None, &resolve).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(incidents(&app).await[0]["state"], "RESOLVED");

    // A trigger without dedup_key gets one, answered for later resolves.
    let mut keyless = trigger.clone();
    keyless.as_object_mut().unwrap().remove("dedup_key");
    let (_, b) = deliver(&app, "events", None, &keyless).await;
    let key = b["dedup_key"].as_str().unwrap();
    assert!(!key.is_empty());
    let (_, b) = deliver(
        &app,
        "events",
        None,
        &json!({ "routing_key": secret, "event_action": "resolve", "dedup_key": key }),
    )
    .await;
    assert_eq!(b["status"], "success");

    // The API's refusals.
    let (status, b) = deliver(
        &app,
        "events",
        None,
        &json!({ "routing_key": "nope", "event_action": "trigger" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}");
    let (status, b) = deliver(
        &app,
        "events",
        None,
        &json!({ "routing_key": secret, "event_action": "explode", "dedup_key": "x" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(b["status"], "invalid event");
    assert!(
        b["errors"][0].as_str().unwrap().contains("event_action"),
        "{b}"
    );
    let mut no_summary = trigger.clone();
    no_summary["payload"]
        .as_object_mut()
        .unwrap()
        .remove("summary");
    let (status, b) = deliver(&app, "events", None, &no_summary).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        b["errors"][0].as_str().unwrap().contains("payload.summary"),
        "{b}"
    );
    let (status, _) = deliver(
        &app,
        "events",
        None,
        &json!({ "routing_key": secret, "event_action": "resolve" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn grafana_alerts_and_the_note_only_resolve_action() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "GRAFANA", json!({ "resolveAction": "NOTE" })).await;
    let grafana = |status: &str| grafana_body(status, "c6eadffa33fcdf37");
    let (status, b) = deliver(&app, "grafana", Some(&secret), &grafana("firing")).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["title"], "CPU above 90 % on db-01");
    assert_eq!(
        inc["priority"], "P3",
        "no severity: impact 2, urgency 2 by default"
    );
    assert_eq!(
        inc["alert"]["annotations"]["dashboardURL"],
        "http://grafana/d/abc"
    );
    assert_eq!(inc["affectedCis"], json!([{ "name": "db-01" }]));

    let (_, b) = deliver(&app, "grafana", Some(&secret), &grafana("resolved")).await;
    assert_eq!(b["alerts"][0]["action"], "NOTED", "{b}");
    let inc = incidents(&app).await.remove(0);
    assert_eq!(inc["state"], "ASSIGNED", "NOTE leaves the incident open");
    assert!(
        inc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["body"].as_str().unwrap().starts_with("Alert resolved at"))
    );
}

#[tokio::test]
async fn raised_alerts_emit_incident_changed_and_raise_alert_matches_the_endpoints() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (id, secret) = integration(&app, &s, "GENERIC", json!({})).await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(&jane).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { incidentChanged { kind incident { title source } } }" } }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let raise = "mutation($i: RaiseAlertInput!) { raiseAlert(input: $i) { action dedupKey incident { number state priority alert { alertCount } } } }";
    let input = json!({ "dedupKey": "api-5xx", "summary": "API 5xx above 5 %", "severity": "critical",
        "labels": [{ "name": "instance", "value": "db-01" }] });
    // The integration's own secret as bearer token.
    let d = app.ok(&secret, raise, json!({ "i": input })).await;
    assert_eq!(d["raiseAlert"]["action"], "CREATED");
    assert_eq!(d["raiseAlert"]["incident"]["priority"], "P1");
    // Staff name the integration.
    let mut again = input.clone();
    again["integrationId"] = json!(id);
    let d = app.ok(&app.agent(), raise, json!({ "i": again })).await;
    assert_eq!(d["raiseAlert"]["action"], "UPDATED");
    assert_eq!(d["raiseAlert"]["incident"]["alert"]["alertCount"], 2);

    let msg = ws.json(5).await;
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["payload"]["data"]["incidentChanged"]["kind"], "CREATED");
    assert_eq!(
        msg["payload"]["data"]["incidentChanged"]["incident"]["source"],
        "MONITORING"
    );
    let msg = ws.json(5).await;
    assert_eq!(msg["payload"]["data"]["incidentChanged"]["kind"], "UPDATED");

    // Requesters cannot raise alerts, and do not see the alert details.
    let body = app
        .gql(
            &jane,
            raise,
            json!({ "i": { "integrationId": id, "dedupKey": "x", "summary": "x" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let d = app
        .ok(
            &jane,
            "{ incidents(first: 5) { edges { node { alert { alertCount } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["incidents"]["edges"][0]["node"]["alert"], Value::Null);

    // Resolve through GraphQL too.
    let d = app
        .ok(
            &secret,
            raise,
            json!({ "i": { "dedupKey": "api-5xx", "status": "RESOLVED" } }),
        )
        .await;
    assert_eq!(d["raiseAlert"]["action"], "RESOLVED");
    assert_eq!(d["raiseAlert"]["incident"]["state"], "RESOLVED");
}

/// On PostgreSQL a delivery's events go to other server processes together
/// (one NOTIFY transaction for all that queued): every event arrives, in
/// order, and two equal events of one delivery stay two.
#[tokio::test]
async fn on_postgresql_a_deliverys_events_all_reach_another_server_process() {
    if !is_postgres() {
        // LISTEN/NOTIFY is PostgreSQL's; a SQLite server is a single process.
        return;
    }
    let first = TestApp::spawn().await;
    let s = setup(&first).await;
    let (_, secret) = integration(&first, &s, "ALERTMANAGER", json!({})).await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| c.database.url = Some(url)).await;
    let jane = second.token("jane@acme", "acme", &["requester"]);
    let mut ws = second.ws("graphql-transport-ws").await;
    ws.init(&jane).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { incidentChanged { kind changedFields incident { title } } }" } }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let alerts: Vec<Value> = (1..=3)
        .map(|n| am_alert("firing", &format!("fp-{n}"), "db-01", &format!("down {n}")))
        .collect();
    let (status, body) = deliver(&first, "alertmanager", Some(&secret), &am_body(alerts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // fp-1 twice more in one delivery: two repeats, two equal events.
    let twice = vec![
        am_alert("firing", "fp-1", "db-01", "down 1"),
        am_alert("firing", "fp-1", "db-01", "down 1"),
    ];
    let (status, body) = deliver(&first, "alertmanager", Some(&secret), &am_body(twice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut seen = Vec::new();
    for _ in 0..5 {
        let msg = ws.json(10).await;
        assert_eq!(msg["type"], "next", "{msg}");
        let e = &msg["payload"]["data"]["incidentChanged"];
        seen.push(format!(
            "{} {}",
            e["kind"].as_str().unwrap(),
            e["incident"]["title"].as_str().unwrap()
        ));
    }
    assert_eq!(
        seen,
        [
            "CREATED down 1",
            "CREATED down 2",
            "CREATED down 3",
            "UPDATED down 1",
            "UPDATED down 1"
        ],
        "every event, in order"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), ws.json(5))
            .await
            .is_err(),
        "no event arrives twice"
    );
}

/// The creation events of `record_type` as the API answers them (`changes`
/// and `snapshot`).
async fn api_creations(app: &TestApp, record_type: &str) -> Vec<Value> {
    let d = app
        .ok(
            &app.admin(),
            "query($t: String!) { auditEvents(first: 100, filter: { recordType: $t }) { nodes { action changes snapshot } } }",
            json!({ "t": record_type }),
        )
        .await;
    d["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "create")
        .cloned()
        .collect()
}

/// Every record a delivery writes (incident, clocks, CI link, alert row) has
/// its `create` event whose snapshot is the record (stored once: the changes
/// column holds JSON null) and whose changes, as the API answers them, set
/// each field from null; a repeat's alert row has its `update` event.
#[tokio::test]
async fn every_record_a_delivery_writes_is_in_the_audit_trail() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let (_, secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let first = am_body(vec![
        am_alert("firing", "fp-a", "db-01", "Postgres down on db-01"),
        am_alert("firing", "fp-b", "web-07", "Latency on web-07"),
    ]);
    let (status, body) = deliver(&app, "alertmanager", Some(&secret), &first).await;
    assert_eq!(
        (status, body["created"].clone()),
        (StatusCode::OK, json!(2))
    );
    let repeat = am_body(vec![am_alert("firing", "fp-a", "db-01", "Postgres down")]);
    let (status, body) = deliver(&app, "alertmanager", Some(&secret), &repeat).await;
    assert_eq!(
        (status, body["updated"].clone()),
        (StatusCode::OK, json!(1))
    );

    let db = Database::connect(&app.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let rows = |sql: &str| {
        let stmt = Statement::from_string(backend, sql.to_owned());
        let db = &db;
        async move { db.query_all_raw(stmt).await.unwrap() }
    };
    let events = rows(
        "SELECT record_type, record_id, action, CAST(changes AS TEXT) AS changes, \
         CAST(snapshot AS TEXT) AS snapshot FROM audit_events ORDER BY id",
    )
    .await;
    let events: Vec<(String, i64, String, Value, Value)> = events
        .iter()
        .map(|r| {
            let json =
                |c: &str| serde_json::from_str(&r.try_get::<String>("", c).unwrap()).unwrap();
            (
                r.try_get("", "record_type").unwrap(),
                r.try_get("", "record_id").unwrap(),
                r.try_get("", "action").unwrap(),
                json("changes"),
                json("snapshot"),
            )
        })
        .collect();
    for (table, record_type, expected) in [
        ("incidents", "Incident", 2),
        ("sla_clocks", "SlaClock", 4),
        ("incident_alerts", "IncidentAlert", 2),
        ("incident_affected_cis", "IncidentAffectedCi", 1),
    ] {
        let api = api_creations(&app, record_type).await;
        let ids: Vec<i64> = rows(&format!("SELECT id FROM {table} ORDER BY id"))
            .await
            .iter()
            .map(|r| r.try_get("", "id").unwrap())
            .collect();
        assert_eq!(ids.len(), expected, "{table}");
        for id in ids {
            let created: Vec<_> = events
                .iter()
                .filter(|e| e.0 == record_type && e.1 == id && e.2 == "create")
                .collect();
            assert_eq!(created.len(), 1, "{record_type} {id}: {created:?}");
            let (_, _, _, stored, snapshot) = created[0];
            assert_eq!(snapshot["id"], id, "{snapshot}");
            // Stored once, as the snapshot; the API answers the changes.
            assert!(stored.is_null(), "{record_type} {id}: {stored}");
            let changes = &api
                .iter()
                .find(|e| e["snapshot"]["id"] == id)
                .unwrap_or_else(|| panic!("no creation of {record_type} {id}"))["changes"];
            let fields = snapshot.as_object().unwrap();
            for (k, v) in fields {
                if v.is_null() || ["version", "updated_at", "next_check_at"].contains(&k.as_str()) {
                    assert!(changes.get(k).is_none(), "{record_type}.{k}: {changes}");
                } else {
                    assert_eq!(
                        changes[k],
                        json!({ "before": null, "after": v }),
                        "{record_type}.{k}"
                    );
                }
            }
        }
    }
    let updates: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "IncidentAlert" && e.2 == "update")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        updates[0].3["alert_count"],
        json!({ "before": 1, "after": 2 })
    );
    assert_eq!(updates[0].4["alert_count"], 2);
    let numbers: Vec<String> = rows("SELECT number FROM incidents ORDER BY id")
        .await
        .iter()
        .map(|r| r.try_get("", "number").unwrap())
        .collect();
    assert_eq!(numbers, ["INC-000001", "INC-000002"]);
}

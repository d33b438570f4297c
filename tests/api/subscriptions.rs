//! GraphQL subscriptions over WebSocket: both protocols, what each caller may
//! see, filters, and how the connection is authenticated.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const SERVICE_CHANGED: &str =
    "subscription { serviceChanged { kind changedFields service { id name status } } }";
const RENAME: &str =
    "mutation($i: UpdateServiceInput!) { updateService(input: $i) { id version } }";

/// Time for the server to register a subscription before changes are made.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// An open, acknowledged graphql-transport-ws connection subscribed to `query` as id "1".
async fn subscribed(app: &TestApp, token: &str, query: &str, variables: Value) -> Ws {
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(token).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
        .await;
    ws
}

/// The next message that is not a keep-alive.
async fn next_message(ws: &mut Ws) -> Value {
    loop {
        let msg = ws.json(5).await;
        if !matches!(msg["type"].as_str(), Some("ka" | "ping" | "pong")) {
            return msg;
        }
    }
}

/// Renames a service (as admin) at `version`.
async fn rename(app: &TestApp, service: &Value, version: i64, name: &str) {
    app.ok(
        &app.admin(),
        RENAME,
        json!({ "i": { "id": service["id"], "version": version, "name": name } }),
    )
    .await;
}

fn changed_service_name(msg: &Value) -> &str {
    msg["payload"]["data"]["serviceChanged"]["service"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("not a serviceChanged event: {msg}"))
}

#[tokio::test]
async fn graphql_transport_ws_delivers_a_service_update() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let mut ws = subscribed(&app, &app.agent(), SERVICE_CHANGED, json!({})).await;
    settle().await;

    rename(&app, &s, 1, "Mail").await;
    let msg = next_message(&mut ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["id"], "1", "{msg}");
    let event = &msg["payload"]["data"]["serviceChanged"];
    assert_eq!(event["kind"], "UPDATED", "{msg}");
    assert_eq!(event["changedFields"], json!(["name"]), "{msg}");
    assert_eq!(
        event["service"],
        json!({ "id": s["id"], "name": "Mail", "status": "PIPELINE" })
    );

    // Retiring is its own kind of change.
    app.ok(
        &app.admin(),
        "mutation($id: ID!) { retireService(id: $id, version: 2) { id } }",
        json!({ "id": s["id"] }),
    )
    .await;
    let msg = next_message(&mut ws).await;
    let event = &msg["payload"]["data"]["serviceChanged"];
    assert_eq!(event["kind"], "RETIRED", "{msg}");
    assert_eq!(event["changedFields"], json!(["status"]), "{msg}");
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_uses_start_and_data() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let mut ws = app.ws("graphql-ws").await;
    ws.init(&app.admin()).await;
    ws.send(json!({ "id": "7", "type": "start", "payload": { "query": SERVICE_CHANGED } }))
        .await;
    settle().await;

    rename(&app, &s, 1, "Mail").await;
    let msg = next_message(&mut ws).await;
    assert_eq!(msg["type"], "data", "{msg}");
    assert_eq!(msg["id"], "7", "{msg}");
    assert_eq!(msg["payload"]["data"]["serviceChanged"]["kind"], "UPDATED");
    assert_eq!(changed_service_name(&msg), "Mail");
}

#[tokio::test]
async fn a_requester_receives_only_changes_to_services_it_may_see() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let globex_live = app
        .service(json!({ "name": "Globex Payroll", "status": "LIVE" }))
        .await;
    let acme_pipeline = app.service(json!({ "name": "Acme Portal" })).await;
    let acme_live = app
        .service(json!({ "name": "Acme Mail", "status": "LIVE" }))
        .await;
    app.subscribe(globex_live["id"].as_str().unwrap(), &globex)
        .await;
    app.subscribe(acme_pipeline["id"].as_str().unwrap(), &acme)
        .await;
    app.subscribe(acme_live["id"].as_str().unwrap(), &acme)
        .await;

    let requester = app.token("rita@acme", "acme", &["requester"]);
    let mut customer = subscribed(&app, &requester, SERVICE_CHANGED, json!({})).await;
    let mut admin = subscribed(&app, &app.admin(), SERVICE_CHANGED, json!({})).await;
    settle().await;

    rename(&app, &globex_live, 1, "Globex Payroll v2").await;
    rename(&app, &acme_pipeline, 1, "Acme Portal v2").await;
    rename(&app, &acme_live, 1, "Acme Mail v2").await;

    let msg = next_message(&mut customer).await;
    assert_eq!(
        changed_service_name(&msg),
        "Acme Mail v2",
        "the first event acme may see: {msg}"
    );
    // The admin saw every change, in order: the requester's view was filtered, not late.
    for expected in ["Globex Payroll v2", "Acme Portal v2", "Acme Mail v2"] {
        assert_eq!(
            changed_service_name(&next_message(&mut admin).await),
            expected
        );
    }
}

#[tokio::test]
async fn a_subscription_can_follow_one_service() {
    let app = TestApp::spawn().await;
    let email = app.service(json!({ "name": "Email" })).await;
    let payroll = app.service(json!({ "name": "Payroll" })).await;
    let mut ws = subscribed(
        &app,
        &app.agent(),
        "subscription($id: ID!) { serviceChanged(filter: { serviceId: $id }) { kind service { id name } } }",
        json!({ "id": payroll["id"] }),
    )
    .await;
    settle().await;

    rename(&app, &email, 1, "Mail").await;
    rename(&app, &payroll, 1, "Salaries").await;
    let msg = next_message(&mut ws).await;
    assert_eq!(
        msg["payload"]["data"]["serviceChanged"]["service"],
        json!({ "id": payroll["id"], "name": "Salaries" })
    );
}

#[tokio::test]
async fn a_bad_token_in_connection_init_closes_with_4403() {
    let app = TestApp::spawn().await;
    let foreign = app.token("ghost@nowhere", "nowhere", &["admin"]);
    let inits = [
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "Authorization": format!("Bearer {foreign}") }),
        json!({}),
    ];
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        for payload in &inits {
            let mut ws = app.ws(protocol).await;
            ws.send(json!({ "type": "connection_init", "payload": payload }))
                .await;
            match ws.next(5).await {
                WsEvent::Closed(code) => assert_eq!(code, Some(4403), "{protocol} {payload}"),
                WsEvent::Json(msg) => {
                    assert_eq!(protocol, "graphql-ws", "no message before the close: {msg}");
                    assert_eq!(msg["type"], "connection_error", "{msg}");
                    assert_eq!(ws.close_code(5).await, Some(4403), "{protocol} {payload}");
                }
            }
        }
    }
}

#[tokio::test]
async fn no_connection_init_in_time_closes_with_4408() {
    let app = TestApp::spawn_with(|c| c.http.ws_init_timeout = Duration::from_secs(1)).await;
    let mut ws = app.ws("graphql-transport-ws").await;
    let started = tokio::time::Instant::now();
    assert_eq!(ws.close_code(3).await, Some(4408));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the configured time"
    );
}

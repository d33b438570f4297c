//! `problemChanged` over WebSocket, on one server and across server processes.

use serde_json::{Value, json};

use super::*;

const SUB: &str = "subscription($f: ProblemChangedFilter) { problemChanged(filter: $f) { kind changedFields incidentId problem { number state } note { kind body } } }";

async fn listen(app: &TestApp, token: &str, filter: Value) -> Ws {
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(token).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": SUB, "variables": { "f": filter } } }))
        .await;
    ws
}

async fn next_event(ws: &mut Ws) -> Value {
    let msg = ws.json(5).await;
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["problemChanged"].clone()
}

#[tokio::test]
async fn problem_changes_reach_subscribers_as_they_may_see_them() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    app.customer("globex").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let mut agent_ws = listen(
        &app,
        &app.agent(),
        json!({ "state": ["NEW", "UNDER_INVESTIGATION"] }),
    )
    .await;
    let mut jane_ws = listen(&app, &jane, json!(null)).await;
    let mut bob_ws = listen(&app, &bob, json!(null)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let p = problem(
        &app,
        json!({ "title": "Mail queue stalls", "impact": 2, "urgency": 2 }),
    )
    .await;
    let e = next_event(&mut agent_ws).await;
    assert_eq!(e["kind"], "CREATED");
    assert_eq!(e["problem"]["number"], "PRB-000001");
    let i = incident(
        &app,
        &jane,
        json!({ "title": "Mail slow", "impact": 2, "urgency": 2 }),
    )
    .await;
    link(&app, &p, &i).await;
    let e = next_event(&mut agent_ws).await;
    assert_eq!(e["kind"], "INCIDENT_LINKED");
    assert_eq!(e["incidentId"], i["id"]);
    // Jane hears of it from the link on, never of work notes.
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "INCIDENT_LINKED");
    for (kind, body) in [("WORK_NOTE", "internal"), ("COMMENT", "visible")] {
        app.ok(
            &app.agent(),
            NOTE,
            json!({ "i": { "problemId": id(&p), "kind": kind, "body": body } }),
        )
        .await;
    }
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "COMMENTED");
    assert_eq!(e["note"]["body"], "visible");
    let s = move_to(&app, id(&p), &json!(1), "UNDER_INVESTIGATION", json!({})).await;
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "STATE_CHANGED");
    assert_eq!(e["changedFields"], json!(["state"]));
    // KNOWN_ERROR is outside the agent's filter.
    move_to(
        &app,
        id(&p),
        &s["problem"]["version"],
        "KNOWN_ERROR",
        json!({ "workaround": "flush" }),
    )
    .await;
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["problem"]["state"], "KNOWN_ERROR");
    for _ in 0..3 {
        // The work note, the comment, the move to UNDER_INVESTIGATION.
        let e = next_event(&mut agent_ws).await;
        assert_ne!(e["problem"]["state"], "KNOWN_ERROR");
    }
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), agent_ws.json(5))
            .await
            .is_err(),
        "filtered out"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), bob_ws.json(5))
            .await
            .is_err(),
        "another tenant hears nothing"
    );
}

#[tokio::test]
async fn on_postgresql_problem_changes_reach_subscribers_of_another_server_process() {
    if !is_postgres() {
        // LISTEN/NOTIFY is PostgreSQL's; a SQLite server is a single process.
        return;
    }
    let first = TestApp::spawn().await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| c.database.url = Some(url)).await;
    first.customer("acme").await;
    let jane = first.token("jane@acme", "acme", &["requester"]);
    let mut jane_on_second = listen(&second, &jane, json!(null)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let p = problem(
        &first,
        json!({ "title": "Relayed", "impact": 2, "urgency": 2 }),
    )
    .await;
    let i = incident(
        &first,
        &jane,
        json!({ "title": "Mine", "impact": 2, "urgency": 2 }),
    )
    .await;
    link(&first, &p, &i).await;
    for (kind, body) in [("WORK_NOTE", "internal"), ("COMMENT", "visible")] {
        first
            .ok(
                &first.agent(),
                NOTE,
                json!({ "i": { "problemId": id(&p), "kind": kind, "body": body } }),
            )
            .await;
    }
    let e = next_event(&mut jane_on_second).await;
    assert_eq!(e["kind"], "INCIDENT_LINKED");
    assert_eq!(e["problem"]["number"], "PRB-000001");
    let e = next_event(&mut jane_on_second).await;
    assert_eq!(e["kind"], "COMMENTED");
    assert_eq!(e["note"]["body"], "visible");
}

//! Incident management over HTTP: numbers, the state machine, the timeline and
//! its visibility, tenant isolation, SLA clocks, and `incidentChanged` over WebSocket.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Value, json};

use crate::{fixtures, helpers::*};

const CREATE: &str = "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id number state priority source version customer { id } } }";
const STATE: &str = "mutation($i: ChangeIncidentStateInput!) { changeIncidentState(input: $i) { state version resolutionCode resolvedAt allowedTransitions } }";
const ASSIGN: &str = "mutation($i: AssignIncidentInput!) { assignIncident(input: $i) { state version assignmentGroup { name } } }";
const NOTE: &str =
    "mutation($i: AddIncidentNoteInput!) { addIncidentNote(input: $i) { kind body byStaff } }";
const CLOCKS: &str = "query($id: ID!) { incident(id: $id) { priority version clocks { kind startedAt targetSeconds dueAt businessElapsedSeconds remainingSeconds paused stoppedAt warningsFired breachedAt met sla { name } } } }";

async fn group(app: &TestApp, name: &str) -> String {
    let d = app
        .ok(
            &app.admin(),
            "mutation($i: CreateSupportGroupInput!) { createSupportGroup(input: $i) { id } }",
            json!({ "i": { "name": name } }),
        )
        .await;
    d["createSupportGroup"]["id"].as_str().unwrap().to_owned()
}

async fn raise(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, CREATE, json!({ "i": input })).await["createIncident"].clone()
}

async fn move_to(app: &TestApp, id: &str, version: i64, state: &str) -> Value {
    app.ok(
        &app.agent(),
        STATE,
        json!({ "i": { "id": id, "version": version, "state": state, "resolutionCode": "FIXED" } }),
    )
    .await["changeIncidentState"]
        .clone()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn numbers_are_per_customer_and_unique_under_concurrency() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let agent = app.agent();
    let raises = (0..12).map(|i| {
        raise(
            &app,
            &agent,
            json!({ "title": format!("Outage {i}"), "impact": 2, "urgency": 2, "customerId": acme }),
        )
    });
    let created = futures_util::future::join_all(raises).await;
    let mut numbers: Vec<String> = created
        .iter()
        .map(|c| c["number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=12).map(|n| format!("INC-{n:06}")).collect();
    assert_eq!(numbers, expected);
    let g = raise(
        &app,
        &agent,
        json!({ "title": "First at Globex", "impact": 1, "urgency": 1, "customerId": globex }),
    )
    .await;
    assert_eq!(g["number"], "INC-000001");
    assert_eq!(g["priority"], "P1");
    assert_eq!(g["source"], "AGENT");
    assert_eq!(g["state"], "NEW");
}

#[tokio::test]
async fn the_state_machine_refuses_illegal_moves_naming_the_allowed_ones() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let inc = raise(
        &app,
        &jane,
        json!({ "title": "Mail down", "impact": 1, "urgency": 2 }),
    )
    .await;
    assert_eq!(inc["source"], "PORTAL");
    assert_eq!(inc["priority"], "P2");
    let id = inc["id"].as_str().unwrap();

    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": 1, "state": "CLOSED" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "state");
    assert_eq!(
        message(&body),
        "an incident cannot move from NEW to CLOSED; allowed from NEW: ASSIGNED, IN_PROGRESS, RESOLVED"
    );
    // ASSIGNED needs someone to assign to.
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": 1, "state": "ASSIGNED" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    // Requesters do not move incidents.
    let body = app
        .gql(
            &jane,
            STATE,
            json!({ "i": { "id": id, "version": 1, "state": "IN_PROGRESS" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    let desk = group(&app, "Service Desk").await;
    let a = app
        .ok(
            &app.agent(),
            ASSIGN,
            json!({ "i": { "id": id, "version": 1, "assignmentGroupId": desk } }),
        )
        .await;
    assert_eq!(a["assignIncident"]["state"], "ASSIGNED");
    assert_eq!(
        a["assignIncident"]["assignmentGroup"]["name"],
        "Service Desk"
    );
    let s = move_to(&app, id, 2, "IN_PROGRESS").await;
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "ON_HOLD").await;
    assert_eq!(s["allowedTransitions"], json!(["IN_PROGRESS", "RESOLVED"]));
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": s["version"], "state": "CLOSED" } }),
        )
        .await;
    assert_eq!(
        message(&body),
        "an incident cannot move from ON_HOLD to CLOSED; allowed from ON_HOLD: IN_PROGRESS, RESOLVED"
    );
    // Resolving needs a resolution code.
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": s["version"], "state": "RESOLVED" } }),
        )
        .await;
    assert_eq!(field(&body), "resolutionCode");
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "RESOLVED").await;
    assert_eq!(s["resolutionCode"], "FIXED");
    assert!(s["resolvedAt"].is_string());
    // A stale version is a CONFLICT and changes nothing.
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": 1, "state": "CLOSED" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    // Reopen, resolve again, close.
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "IN_PROGRESS").await;
    assert_eq!(s["resolutionCode"], Value::Null);
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "RESOLVED").await;
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "CLOSED").await;
    assert_eq!(s["allowedTransitions"], json!([]));
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id, "version": s["version"], "state": "IN_PROGRESS" } }),
        )
        .await;
    assert!(message(&body).contains("CLOSED is final"), "{body}");

    // No comment on a closed incident, from either side; nothing is written.
    for token in [&jane, &app.agent()] {
        let body = app
            .gql(
                token,
                NOTE,
                json!({ "i": { "incidentId": id, "body": "hello?" } }),
            )
            .await;
        assert_eq!(code(&body), "CONFLICT", "{body}");
    }
    let d = app
        .ok(
            &app.agent(),
            "query($id: ID!) { incident(id: $id) { timeline { body } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["incident"]["timeline"], json!([]));
}

#[tokio::test]
async fn requesters_see_their_own_incidents_and_comments_but_no_work_notes() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    app.customer("globex").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let inc = raise(
        &app,
        &jane,
        json!({ "title": "VPN drops", "impact": 2, "urgency": 1 }),
    )
    .await;
    let id = inc["id"].as_str().unwrap();

    app.ok(
        &app.agent(),
        NOTE,
        json!({ "i": { "incidentId": id, "kind": "WORK_NOTE", "body": "Suspect the concentrator" } }),
    )
    .await;
    let c = app
        .ok(
            &app.agent(),
            NOTE,
            json!({ "i": { "incidentId": id, "body": "We are looking into it" } }),
        )
        .await;
    assert_eq!(c["addIncidentNote"]["kind"], "COMMENT");
    assert_eq!(c["addIncidentNote"]["byStaff"], true);
    app.ok(
        &jane,
        NOTE,
        json!({ "i": { "incidentId": id, "body": "Thanks" } }),
    )
    .await;
    let body = app
        .gql(
            &jane,
            NOTE,
            json!({ "i": { "incidentId": id, "kind": "WORK_NOTE", "body": "sneaky" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    let q = "query($id: ID!) { incident(id: $id) { number timeline { kind body byStaff } } }";
    let d = app.ok(&jane, q, json!({ "id": id })).await;
    let bodies: Vec<&str> = d["incident"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["We are looking into it", "Thanks"]);
    let d = app.ok(&app.agent(), q, json!({ "id": id })).await;
    assert_eq!(d["incident"]["timeline"].as_array().unwrap().len(), 3);

    // Globex sees neither the incident nor a way to comment on it: NOT_FOUND like a missing one.
    let body = app.gql(&bob, q, json!({ "id": id })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    let missing = app
        .gql(&bob, q, json!({ "id": unknown_id("Incident") }))
        .await;
    assert_eq!(message(&body), message(&missing));
    let body = app
        .gql(
            &bob,
            NOTE,
            json!({ "i": { "incidentId": id, "body": "hi" } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let d = app
        .ok(&bob, "{ incidents { totalCount } }", json!({}))
        .await;
    assert_eq!(d["incidents"]["totalCount"], 0);
    let d = app
        .ok(
            &jane,
            "{ incidents { totalCount edges { node { number } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["incidents"]["totalCount"], 1);
    // A requester cannot raise for another customer, nor assign.
    let globex_id = app
        .ok(
            &app.admin(),
            "{ organizations(filter: { search: \"globex\" }) { edges { node { id } } } }",
            json!({}),
        )
        .await["organizations"]["edges"][0]["node"]["id"]
        .clone();
    let body = app
        .gql(
            &jane,
            CREATE,
            json!({ "i": { "title": "x", "impact": 1, "urgency": 1, "customerId": globex_id } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "customerId");
}

/// Acme subscribes to a live service with a 24x7 SLA (P1 60/240, P2 120/480,
/// P3 240/960, P4 480/2400 minutes); returns (customer, service).
async fn acme_with_sla(app: &TestApp) -> (String, String) {
    let (acme, svc, _) = acme_with_sla_calendar(app).await;
    (acme, svc)
}

/// [`acme_with_sla`], also answering the SLA's calendar.
async fn acme_with_sla_calendar(app: &TestApp) -> (String, String, String) {
    fixtures::acme_with_sla_on(app, "Email").await
}

async fn clocks(app: &TestApp, id: &str) -> (Value, Value, Value) {
    let d = app.ok(&app.agent(), CLOCKS, json!({ "id": id })).await;
    let inc = d["incident"].clone();
    let cs = inc["clocks"].as_array().unwrap().clone();
    assert_eq!(cs.len(), 2, "{inc}");
    assert_eq!(cs[0]["kind"], "RESPOND");
    assert_eq!(cs[1]["kind"], "RESOLVE");
    (inc.clone(), cs[0].clone(), cs[1].clone())
}

#[tokio::test]
async fn sla_clocks_start_pause_stop_retarget_and_resume_on_reopen() {
    let app = TestApp::spawn().await;
    let (_acme, svc) = acme_with_sla(&app).await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let inc = raise(
        &app,
        &jane,
        json!({ "title": "Mail slow", "impact": 2, "urgency": 2, "serviceId": svc }),
    )
    .await;
    let id = inc["id"].as_str().unwrap();
    assert_eq!(inc["priority"], "P3");

    // Both clocks started at creation with the P3 targets; 24x7 so due = start + target.
    let (i, respond, resolve) = clocks(&app, id).await;
    assert_eq!(respond["sla"]["name"], "Gold");
    assert_eq!(respond["targetSeconds"], 240 * 60);
    assert_eq!(resolve["targetSeconds"], 960 * 60);
    let start = time(&resolve["startedAt"]);
    assert_eq!(
        time(&respond["dueAt"]),
        start + chrono::Duration::minutes(240)
    );
    assert_eq!(
        time(&resolve["dueAt"]),
        start + chrono::Duration::minutes(960)
    );
    assert_eq!(respond["paused"], false);
    assert_eq!(respond["met"], Value::Null);
    assert_eq!(respond["breachedAt"], Value::Null);
    assert_eq!(respond["warningsFired"], json!([]));
    let elapsed = resolve["businessElapsedSeconds"].as_i64().unwrap();
    assert!((0..60).contains(&elapsed), "{resolve}");
    assert_eq!(
        resolve["remainingSeconds"].as_i64().unwrap(),
        960 * 60 - elapsed
    );

    // Priority up to P1: targets recomputed (P1 respond 60, resolve 240).
    let d = app
        .ok(
            &app.agent(),
            "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { priority version } }",
            json!({ "i": { "id": id, "version": i["version"], "impact": 1, "urgency": 1 } }),
        )
        .await;
    assert_eq!(d["updateIncident"]["priority"], "P1");
    let (_, respond, resolve) = clocks(&app, id).await;
    assert_eq!(respond["targetSeconds"], 3600);
    assert_eq!(resolve["targetSeconds"], 4 * 3600);
    assert_eq!(
        time(&resolve["dueAt"]),
        start + chrono::Duration::minutes(240)
    );

    // The first customer-visible agent comment is the response.
    app.ok(
        &app.agent(),
        NOTE,
        json!({ "i": { "incidentId": id, "kind": "WORK_NOTE", "body": "internal" } }),
    )
    .await;
    let (_, respond, _) = clocks(&app, id).await;
    assert_eq!(
        respond["stoppedAt"],
        Value::Null,
        "a work note is no response"
    );
    app.ok(
        &app.agent(),
        NOTE,
        json!({ "i": { "incidentId": id, "body": "On it" } }),
    )
    .await;
    let (i, respond, resolve) = clocks(&app, id).await;
    assert!(respond["stoppedAt"].is_string());
    assert_eq!(respond["met"], true);
    assert_eq!(resolve["stoppedAt"], Value::Null);

    // On hold pauses the resolve clock: no due time while paused.
    let v = i["version"].as_i64().unwrap();
    let s = move_to(&app, id, v, "IN_PROGRESS").await;
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "ON_HOLD").await;
    let (_, _, resolve) = clocks(&app, id).await;
    assert_eq!(resolve["paused"], true);
    assert_eq!(resolve["dueAt"], Value::Null);
    let frozen = resolve["businessElapsedSeconds"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, _, resolve) = clocks(&app, id).await;
    assert_eq!(
        resolve["businessElapsedSeconds"].as_i64().unwrap(),
        frozen,
        "no time counts on hold"
    );
    // Resumed: due later than before by the time on hold.
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "IN_PROGRESS").await;
    let (_, _, resolve) = clocks(&app, id).await;
    assert_eq!(resolve["paused"], false);
    let due = time(&resolve["dueAt"]);
    assert!(
        due >= start + chrono::Duration::seconds(4 * 3600 + 2),
        "{resolve}"
    );

    // Resolved: stopped and met. Reopened: running again, the resolved time not counted.
    let s = move_to(&app, id, s["version"].as_i64().unwrap(), "RESOLVED").await;
    let (_, _, resolve) = clocks(&app, id).await;
    assert!(resolve["stoppedAt"].is_string());
    assert_eq!(resolve["met"], true);
    let at_resolve = resolve["businessElapsedSeconds"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    move_to(&app, id, s["version"].as_i64().unwrap(), "IN_PROGRESS").await;
    let (_, _, resolve) = clocks(&app, id).await;
    assert_eq!(resolve["stoppedAt"], Value::Null);
    assert_eq!(resolve["met"], Value::Null);
    let after = resolve["businessElapsedSeconds"].as_i64().unwrap();
    assert!(after - at_resolve <= 1, "{at_resolve} -> {after}");
    assert!(time(&resolve["dueAt"]) > due, "{resolve}");
}

#[tokio::test]
async fn clock_readings_follow_an_update_of_the_calendar() {
    let app = TestApp::spawn().await;
    let (acme, svc, cal) = acme_with_sla_calendar(&app).await;
    let inc = raise(
        &app,
        &app.agent(),
        json!({ "title": "Mail down", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": svc }),
    )
    .await;
    let id = inc["id"].as_str().unwrap();

    // 24x7: the P1 respond clock is due 60 minutes after its start, read
    // twice (the second read comes from the cached calendar).
    for _ in 0..2 {
        let (_, respond, _) = clocks(&app, id).await;
        let start = time(&respond["startedAt"]);
        assert_eq!(
            time(&respond["dueAt"]),
            start + chrono::Duration::minutes(60)
        );
    }

    // The calendar shrinks to one hour a week (Monday 00:00-01:00 UTC): on
    // the next read the same clocks end inside a Monday window, the respond
    // clock after one window's worth and the resolve clock (240 minutes) three
    // weeks later.
    let d = app
        .ok(
            &app.admin(),
            "mutation($i: UpdateBusinessCalendarInput!) { updateBusinessCalendar(input: $i) { version } }",
            json!({ "i": { "id": cal, "version": 1, "windows": [{ "weekday": "MONDAY", "start": "00:00", "end": "01:00" }] } }),
        )
        .await;
    assert_eq!(d["updateBusinessCalendar"]["version"], 2);
    let (_, respond, resolve) = clocks(&app, id).await;
    let due = time(&respond["dueAt"]);
    assert_eq!(due.weekday(), chrono::Weekday::Mon, "{respond}");
    assert!(
        due.hour() == 0 || (due.hour() == 1 && due.minute() == 0 && due.second() == 0),
        "{respond}"
    );
    assert!(due > time(&respond["startedAt"]) + chrono::Duration::minutes(60));
    assert_eq!(
        time(&resolve["dueAt"]),
        due + chrono::Duration::days(21),
        "{resolve}"
    );
}

#[tokio::test]
async fn assignment_is_a_response_and_incidents_without_sla_have_no_clocks() {
    let app = TestApp::spawn().await;
    let (acme, svc) = acme_with_sla(&app).await;
    let desk = group(&app, "Service Desk").await;
    let inc = raise(
        &app,
        &app.agent(),
        json!({ "title": "Phone", "impact": 3, "urgency": 3, "serviceId": svc, "customerId": acme, "assignmentGroupId": desk }),
    )
    .await;
    assert_eq!(inc["state"], "ASSIGNED");
    let (_, respond, resolve) = clocks(&app, inc["id"].as_str().unwrap()).await;
    assert_eq!(respond["met"], true);
    assert_eq!(resolve["targetSeconds"], 2400 * 60);

    let other = raise(
        &app,
        &app.agent(),
        json!({ "title": "No service", "impact": 3, "urgency": 3, "customerId": acme }),
    )
    .await;
    let d = app
        .ok(&app.agent(), CLOCKS, json!({ "id": other["id"] }))
        .await;
    assert_eq!(d["incident"]["clocks"], json!([]));
}

const SUB: &str = "subscription($f: IncidentChangedFilter) { incidentChanged(filter: $f) { kind changedFields incident { number title customer { name } } note { kind body } } }";

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
    msg["payload"]["data"]["incidentChanged"].clone()
}

#[tokio::test]
async fn incident_changes_reach_subscribers_as_they_may_see_them() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let mut agent_ws = listen(&app, &app.agent(), json!({ "priority": ["P1", "P2"] })).await;
    let mut jane_ws = listen(&app, &jane, json!(null)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Globex's incident: the agent hears it, Jane does not.
    raise(
        &app,
        &app.agent(),
        json!({ "title": "Globex down", "impact": 1, "urgency": 1, "customerId": globex }),
    )
    .await;
    let e = next_event(&mut agent_ws).await;
    assert_eq!(e["kind"], "CREATED");
    assert_eq!(e["incident"]["title"], "Globex down");

    // A P4 at Acme: Jane hears it; the agent filtered on P1/P2 does not.
    let inc = raise(
        &app,
        &jane,
        json!({ "title": "Acme printer", "impact": 3, "urgency": 3 }),
    )
    .await;
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "CREATED");
    assert_eq!(e["incident"]["title"], "Acme printer");
    assert_eq!(e["incident"]["customer"]["name"], "Customer acme");
    let id = inc["id"].as_str().unwrap();

    // A work note is not for Jane; the comment after it is.
    app.ok(
        &app.agent(),
        NOTE,
        json!({ "i": { "incidentId": id, "kind": "WORK_NOTE", "body": "secret" } }),
    )
    .await;
    app.ok(
        &app.agent(),
        NOTE,
        json!({ "i": { "incidentId": id, "body": "public" } }),
    )
    .await;
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "COMMENTED");
    assert_eq!(e["note"]["body"], "public");

    // Raising the priority to P1 brings it into the agent's filter, as an update.
    let d = app.ok(&app.agent(), CLOCKS, json!({ "id": id })).await;
    app.ok(
        &app.agent(),
        "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { priority } }",
        json!({ "i": { "id": id, "version": d["incident"]["version"], "impact": 1, "urgency": 1 } }),
    )
    .await;
    let e = next_event(&mut agent_ws).await;
    assert_eq!(e["kind"], "UPDATED");
    assert_eq!(e["incident"]["title"], "Acme printer");
    let mut fields: Vec<String> = e["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    assert_eq!(fields, ["impact", "priority", "urgency"]);
    let e = next_event(&mut jane_ws).await;
    assert_eq!(e["kind"], "UPDATED");
    let _ = acme;
}

#[tokio::test]
async fn on_postgresql_events_reach_subscribers_of_another_server_process() {
    if !is_postgres() {
        // LISTEN/NOTIFY is PostgreSQL's; a SQLite server is a single process.
        return;
    }
    let first = TestApp::spawn().await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| c.database.url = Some(url)).await;
    first.customer("acme").await;
    first.customer("globex").await;
    let jane = first.token("jane@acme", "acme", &["requester"]);
    let bob = first.token("bob@globex", "globex", &["requester"]);
    let mut jane_on_second = listen(&second, &jane, json!(null)).await;
    let mut bob_on_second = listen(&second, &bob, json!(null)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let inc = raise(
        &first,
        &jane,
        json!({ "title": "Raised on the first", "impact": 2, "urgency": 2 }),
    )
    .await;
    let e = next_event(&mut jane_on_second).await;
    assert_eq!(e["kind"], "CREATED");
    assert_eq!(e["incident"]["title"], "Raised on the first");
    // A work note on the first process does not reach Jane; the comment does,
    // and Globex hears nothing at all.
    for (kind, body) in [("WORK_NOTE", "internal"), ("COMMENT", "visible")] {
        first
            .ok(
                &first.agent(),
                NOTE,
                json!({ "i": { "incidentId": inc["id"], "kind": kind, "body": body } }),
            )
            .await;
    }
    let e = next_event(&mut jane_on_second).await;
    assert_eq!(e["kind"], "COMMENTED");
    assert_eq!(e["note"]["body"], "visible");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), bob_on_second.json(5))
            .await
            .is_err(),
        "another tenant hears nothing"
    );
}

const AUDIT: &str = "query($t: String!) { auditEvents(filter: { recordType: $t }) { totalCount nodes { action actor changes } } }";

#[tokio::test]
async fn incident_changes_are_audited_and_bad_input_writes_nothing() {
    let app = TestApp::spawn().await;
    let (acme, svc) = acme_with_sla(&app).await;
    let agent = app.agent();
    // Bad input: nothing written, no number used up.
    for (input, f) in [
        (
            json!({ "title": "", "impact": 1, "urgency": 1, "customerId": acme }),
            "title",
        ),
        (
            json!({ "title": "x", "impact": 0, "urgency": 1, "customerId": acme }),
            "impact",
        ),
        (
            json!({ "title": "x", "impact": 1, "urgency": 4, "customerId": acme }),
            "urgency",
        ),
        (
            json!({ "title": "x", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": unknown_id("Service") }),
            "serviceId",
        ),
    ] {
        let body = app.gql(&agent, CREATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), f, "{body}");
    }
    for t in ["Incident", "SlaClock"] {
        let d = app.ok(&app.admin(), AUDIT, json!({ "t": t })).await;
        assert_eq!(d["auditEvents"]["totalCount"], 0, "{t}");
    }
    let inc = raise(
        &app,
        &agent,
        json!({ "title": "Mail", "impact": 2, "urgency": 2, "customerId": acme, "serviceId": svc }),
    )
    .await;
    assert_eq!(inc["number"], "INC-000001");
    move_to(&app, inc["id"].as_str().unwrap(), 1, "IN_PROGRESS").await;
    let d = app
        .ok(&app.admin(), AUDIT, json!({ "t": "Incident" }))
        .await;
    let events = &d["auditEvents"];
    assert_eq!(events["totalCount"], 2);
    assert_eq!(events["nodes"][0]["action"], "update");
    assert_eq!(events["nodes"][0]["actor"], "agent@provider");
    assert_eq!(
        events["nodes"][0]["changes"]["state"],
        json!({ "before": "new", "after": "in_progress" })
    );
    assert_eq!(events["nodes"][1]["action"], "create");
    // Two clocks created, and the respond clock stopped by the move out of NEW.
    let d = app
        .ok(&app.admin(), AUDIT, json!({ "t": "SlaClock" }))
        .await;
    assert_eq!(d["auditEvents"]["totalCount"], 3);
}

const CREATE_CI: &str =
    "mutation($i: CreateConfigurationItemInput!) { createConfigurationItem(input: $i) { id } }";
const AFFECTED: &str = "query($id: ID!) { incident(id: $id) { version affectedCis { id name } } }";

async fn ci_of(app: &TestApp, name: &str, org: Option<&str>) -> String {
    let mut input = json!({ "name": name, "classCode": "application", "attributes": {} });
    if let Some(org) = org {
        input["organizationId"] = json!(org);
    }
    app.ok(&app.admin(), CREATE_CI, json!({ "i": input })).await["createConfigurationItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn audit_count(app: &TestApp) -> i64 {
    app.ok(
        &app.admin(),
        "query { auditEvents { totalCount } }",
        json!({}),
    )
    .await["auditEvents"]["totalCount"]
        .as_i64()
        .unwrap()
}

async fn incident_count(app: &TestApp) -> i64 {
    app.ok(
        &app.agent(),
        "query { incidents { totalCount } }",
        json!({}),
    )
    .await["incidents"]["totalCount"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn incidents_name_affected_cis_of_their_customer_or_the_provider() {
    let app = TestApp::spawn().await;
    let agent = app.agent();
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let acme_erp = ci_of(&app, "acme-erp", Some(&acme)).await;
    let acme_crm = ci_of(&app, "acme-crm", Some(&acme)).await;
    let hosting = ci_of(&app, "provider-hosting", None).await;
    let globex_erp = ci_of(&app, "globex-erp", Some(&globex)).await;

    // An agent names the customer's and the provider's CIs (a repeat counts once).
    let inc = raise(
        &app,
        &agent,
        json!({ "title": "ERP down", "impact": 1, "urgency": 1, "customerId": acme,
                "affectedCiIds": [acme_erp, hosting, acme_erp] }),
    )
    .await;
    let id = inc["id"].as_str().unwrap();
    let read = app.ok(&agent, AFFECTED, json!({ "id": id })).await;
    let names: Vec<&str> = read["incident"]["affectedCis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-erp", "provider-hosting"]);

    // Another customer's CI, even for an agent who sees it, is refused naming the field.
    let events = audit_count(&app).await;
    let incidents = incident_count(&app).await;
    let body = app
        .gql(
            &agent,
            CREATE,
            json!({ "i": { "title": "Mixed", "impact": 2, "urgency": 2, "customerId": acme,
                           "affectedCiIds": [acme_crm, globex_erp] } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "affectedCiIds");
    // A requester of acme names a globex CI: it answers like a missing one.
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let refused = app
        .gql(
            &jane,
            CREATE,
            json!({ "i": { "title": "Mine", "impact": 2, "urgency": 2,
                           "affectedCiIds": [globex_erp] } }),
        )
        .await;
    let missing = app
        .gql(
            &jane,
            CREATE,
            json!({ "i": { "title": "Mine", "impact": 2, "urgency": 2,
                           "affectedCiIds": [unknown_id("ConfigurationItem")] } }),
        )
        .await;
    assert_eq!(code(&refused), "VALIDATION", "{refused}");
    assert_eq!(field(&refused), "affectedCiIds");
    assert_eq!(code(&missing), "VALIDATION");
    assert_eq!(message(&refused), message(&missing));
    // Nothing was written: no incident, no link, no audit event, no number used.
    assert_eq!(incident_count(&app).await, incidents);
    assert_eq!(audit_count(&app).await, events);
    let next = raise(
        &app,
        &jane,
        json!({ "title": "Next", "impact": 3, "urgency": 3 }),
    )
    .await;
    assert_eq!(next["number"], "INC-000002");

    // Replacing the set on update: links come and go with audit events, the version moves.
    let version = read["incident"]["version"].as_i64().unwrap();
    let upd = app
        .ok(
            &agent,
            "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { version affectedCis { name } } }",
            json!({ "i": { "id": id, "version": version, "affectedCiIds": [acme_crm, hosting] } }),
        )
        .await;
    assert_eq!(upd["updateIncident"]["version"], version + 1);
    assert_eq!(
        upd["updateIncident"]["affectedCis"],
        json!([{ "name": "acme-crm" }, { "name": "provider-hosting" }])
    );
    let trail = app
        .ok(
            &app.admin(),
            "query { auditEvents(filter: { recordType: \"IncidentAffectedCi\" }) { nodes { action } } }",
            json!({}),
        )
        .await;
    let mut actions: Vec<&str> = trail["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, ["create", "create", "create", "delete"]);
    // A stale version is refused and leaves the links alone.
    let stale = app
        .gql(
            &agent,
            "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { version } }",
            json!({ "i": { "id": id, "version": version, "affectedCiIds": [] } }),
        )
        .await;
    assert_eq!(code(&stale), "CONFLICT");
    // The requester sees only its own organization's CIs on its incident.
    let mine = app.ok(&jane, AFFECTED, json!({ "id": id })).await;
    assert_eq!(
        mine["incident"]["affectedCis"],
        json!([{ "id": acme_crm, "name": "acme-crm" }])
    );
}

#[tokio::test]
async fn incident_lists_nest_affected_cis_and_impact_finds_open_incidents() {
    let app = TestApp::spawn().await;
    let agent = app.agent();
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let db = ci_of(&app, "acme-db", Some(&acme)).await;
    let erp = ci_of(&app, "acme-erp", Some(&acme)).await;
    let globex_app = ci_of(&app, "globex-app", Some(&globex)).await;
    app.ok(
        &app.admin(),
        "mutation($i: AddCiRelationshipInput!) { addCiRelationship(input: $i) { id } }",
        json!({ "i": { "sourceId": erp, "targetId": db, "kind": "DEPENDS_ON" } }),
    )
    .await;
    let mut open = Vec::new();
    for i in 0..6 {
        let ci = if i % 2 == 0 { &erp } else { &db };
        let inc = raise(
            &app,
            &agent,
            json!({ "title": format!("Acme {i}"), "impact": 2, "urgency": 2, "customerId": acme,
                    "affectedCiIds": [ci] }),
        )
        .await;
        open.push(inc);
    }
    raise(
        &app,
        &agent,
        json!({ "title": "Globex", "impact": 2, "urgency": 2, "customerId": globex,
                "affectedCiIds": [globex_app] }),
    )
    .await;
    // A resolved one is not open.
    let done = &open[0];
    move_to(&app, done["id"].as_str().unwrap(), 1, "RESOLVED").await;

    let list = app
        .gql(
            &agent,
            "query { incidents(first: 50) { nodes { number service { name } assignee { id } clocks { kind } affectedCis { name organization { code } } } } }",
            json!({}),
        )
        .await;
    assert!(list.get("errors").is_none(), "{list}");
    let nodes = list["data"]["incidents"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7);
    assert!(
        nodes
            .iter()
            .all(|n| n["affectedCis"].as_array().unwrap().len() == 1)
    );

    let q = "query($id: ID!) { ciImpact(id: $id) { openIncidents { title } } }";
    let from_db = app.ok(&agent, q, json!({ "id": db })).await;
    let mut titles: Vec<&str> = from_db["ciImpact"]["openIncidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    titles.sort_unstable();
    // The DB goes down, so does the ERP that depends on it: both CIs' open incidents.
    assert_eq!(titles, ["Acme 1", "Acme 2", "Acme 3", "Acme 4", "Acme 5"]);
    // A globex requester sees none of acme's incidents, even from its own CI.
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let theirs = app.ok(&bob, q, json!({ "id": globex_app })).await;
    assert_eq!(
        theirs["ciImpact"]["openIncidents"],
        json!([{ "title": "Globex" }])
    );
}

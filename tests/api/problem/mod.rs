//! Problem management over HTTP: numbers, priority and the state machine,
//! links to incidents in both directions and who sees them, resolving linked
//! incidents, known errors, trend analysis, and `problemChanged` over WebSocket.

use serde_json::{Value, json};

use crate::helpers::*;

mod analysis;
mod events;

const CREATE: &str = "mutation($i: CreateProblemInput!) { createProblem(input: $i) { id number state priority version organization { code } allowedTransitions } }";
const UPDATE: &str = "mutation($i: UpdateProblemInput!) { updateProblem(input: $i) { version priority workaround rootCause } }";
const STATE: &str = "mutation($i: ChangeProblemStateInput!) { changeProblemState(input: $i) { problem { state version resolution resolvedAt knownErrorAt closedAt allowedTransitions } resolvedIncidents { number state resolutionCode } } }";
const LINK: &str = "mutation($i: ProblemIncidentInput!) { linkIncidentToProblem(input: $i) { problem { number } incident { number } } }";
const UNLINK: &str = "mutation($i: ProblemIncidentInput!) { unlinkIncidentFromProblem(input: $i) { problem { number } } }";
const NOTE: &str =
    "mutation($i: AddProblemNoteInput!) { addProblemNote(input: $i) { kind body authorSubject } }";
const RAISE: &str =
    "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id number version } }";

async fn problem(app: &TestApp, input: Value) -> Value {
    app.ok(&app.agent(), CREATE, json!({ "i": input })).await["createProblem"].clone()
}

async fn incident(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, RAISE, json!({ "i": input })).await["createIncident"].clone()
}

async fn move_to(app: &TestApp, id: &str, version: &Value, state: &str, extra: Value) -> Value {
    let mut i = json!({ "id": id, "version": version, "state": state });
    if let (Some(i), Some(extra)) = (i.as_object_mut(), extra.as_object()) {
        i.extend(extra.clone());
    }
    app.ok(&app.agent(), STATE, json!({ "i": i })).await["changeProblemState"].clone()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
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

async fn link(app: &TestApp, p: &Value, i: &Value) -> Value {
    app.gql(
        &app.agent(),
        LINK,
        json!({ "i": { "problemId": id(p), "incidentId": id(i) } }),
    )
    .await
}

#[tokio::test]
async fn problems_are_numbered_prioritised_and_follow_their_lifecycle() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let first = problem(
        &app,
        json!({ "title": "Mail queue stalls", "impact": 1, "urgency": 1 }),
    )
    .await;
    assert_eq!(first["number"], "PRB-000001");
    assert_eq!(first["priority"], "P1");
    assert_eq!(first["state"], "NEW");
    assert_eq!(first["organization"]["code"], "provider");
    assert_eq!(
        first["allowedTransitions"],
        json!(["UNDER_INVESTIGATION", "CANCELLED"])
    );
    let second = problem(
        &app,
        json!({ "title": "VPN drops", "impact": 3, "urgency": 3 }),
    )
    .await;
    assert_eq!(second["number"], "PRB-000002");
    assert_eq!(second["priority"], "P4");
    // Numbers are per organization.
    let at_acme = problem(
        &app,
        json!({ "title": "ERP slow", "impact": 2, "urgency": 2, "organizationId": acme }),
    )
    .await;
    assert_eq!(at_acme["number"], "PRB-000001");
    assert_eq!(at_acme["organization"]["code"], "acme");

    let pid = id(&first);
    let events = audit_count(&app).await;
    // Illegal moves name the allowed ones; nothing is written.
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": pid, "version": 1, "state": "RESOLVED", "resolution": "x" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "state");
    assert_eq!(
        message(&body),
        "a problem cannot move from NEW to RESOLVED; allowed from NEW: UNDER_INVESTIGATION, CANCELLED"
    );
    let s = move_to(&app, pid, &json!(1), "UNDER_INVESTIGATION", json!({})).await;
    assert_eq!(
        s["problem"]["allowedTransitions"],
        json!(["KNOWN_ERROR", "RESOLVED", "CANCELLED"])
    );
    // A known error documents a workaround or a root cause.
    let v = s["problem"]["version"].clone();
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": pid, "version": v, "state": "KNOWN_ERROR" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "workaround");
    let s = move_to(
        &app,
        pid,
        &v,
        "KNOWN_ERROR",
        json!({ "workaround": "Restart the queue runner" }),
    )
    .await;
    assert_eq!(s["problem"]["state"], "KNOWN_ERROR");
    assert!(s["problem"]["knownErrorAt"].is_string());
    let v = s["problem"]["version"].clone();
    // Resolving without a resolution, a stale version, a requester: refused, nothing written.
    let before = audit_count(&app).await;
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": pid, "version": v, "state": "RESOLVED" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "resolution");
    assert_eq!(message(&body), "resolving a problem needs a resolution");
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": pid, "version": 1, "state": "RESOLVED", "resolution": "x" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = app
        .gql(
            &jane,
            CREATE,
            json!({ "i": { "title": "x", "impact": 1, "urgency": 1 } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    for (input, f) in [
        (json!({ "title": " ", "impact": 1, "urgency": 1 }), "title"),
        (json!({ "title": "x", "impact": 4, "urgency": 1 }), "impact"),
        (
            json!({ "title": "x", "impact": 1, "urgency": 1, "serviceId": unknown_id("Service") }),
            "serviceId",
        ),
        (
            json!({ "title": "x", "impact": 1, "urgency": 1, "affectedCiIds": [unknown_id("ConfigurationItem")] }),
            "affectedCiIds",
        ),
    ] {
        let body = app.gql(&app.agent(), CREATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), f, "{body}");
    }
    assert_eq!(audit_count(&app).await, before);
    // No number was used up by the refused creations.
    let third = problem(
        &app,
        json!({ "title": "Disk fills", "impact": 2, "urgency": 3 }),
    )
    .await;
    assert_eq!(third["number"], "PRB-000003");

    let s = move_to(
        &app,
        pid,
        &v,
        "RESOLVED",
        json!({ "resolution": "Patched the runner" }),
    )
    .await;
    assert_eq!(s["problem"]["resolution"], "Patched the runner");
    assert!(s["problem"]["resolvedAt"].is_string());
    assert_eq!(s["resolvedIncidents"], json!([]));
    let s = move_to(&app, pid, &s["problem"]["version"], "CLOSED", json!({})).await;
    assert!(s["problem"]["closedAt"].is_string());
    let v = s["problem"]["version"].clone();
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": pid, "version": v, "state": "UNDER_INVESTIGATION" } }),
        )
        .await;
    assert!(message(&body).ends_with("none (CLOSED is final)"), "{body}");
    let body = app
        .gql(
            &app.agent(),
            UPDATE,
            json!({ "i": { "id": pid, "version": v, "title": "late" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    // Any open state cancels.
    let c = move_to(&app, id(&second), &json!(1), "CANCELLED", json!({})).await;
    assert_eq!(c["problem"]["allowedTransitions"], json!([]));

    // Updates re-derive the priority and are versioned and audited.
    let u = app
        .ok(
            &app.agent(),
            UPDATE,
            json!({ "i": { "id": id(&third), "version": 1, "impact": 1, "urgency": 1, "rootCause": "Log rotation off" } }),
        )
        .await;
    assert_eq!(u["updateProblem"]["priority"], "P1");
    assert_eq!(u["updateProblem"]["version"], 2);
    let d = app
        .ok(
            &app.admin(),
            "query { auditEvents(filter: { recordType: \"Problem\" }) { totalCount nodes { action actor changes } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["auditEvents"]["nodes"][0]["action"], "update");
    assert_eq!(d["auditEvents"]["nodes"][0]["actor"], "agent@provider");
    assert_eq!(
        d["auditEvents"]["nodes"][0]["changes"]["priority"],
        json!({ "before": "p4", "after": "p1" })
    );
    assert!(audit_count(&app).await > events);
}

#[tokio::test]
async fn problem_numbers_are_unique_under_concurrency() {
    let app = TestApp::spawn().await;
    let creates = (0..8).map(|i| {
        problem(
            &app,
            json!({ "title": format!("Trend {i}"), "impact": 2, "urgency": 2 }),
        )
    });
    let mut numbers: Vec<String> = futures_util::future::join_all(creates)
        .await
        .iter()
        .map(|c| c["number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=8).map(|n| format!("PRB-{n:06}")).collect();
    assert_eq!(numbers, expected);
}

const VIEW: &str = "query($id: ID!) { problem(id: $id) { number workaround incidents { number } timeline { kind body } } }";
const INCIDENT_VIEW: &str =
    "query($id: ID!) { incident(id: $id) { number workaround problems { number state } } }";

#[tokio::test]
async fn incidents_link_to_problems_in_both_directions_and_requesters_see_theirs() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let mail = incident(
        &app,
        &jane,
        json!({ "title": "Mail slow", "impact": 2, "urgency": 2 }),
    )
    .await;
    let g = incident(
        &app,
        &bob,
        json!({ "title": "Globex mail", "impact": 2, "urgency": 2 }),
    )
    .await;
    let shared = problem(
        &app,
        json!({ "title": "Mail queue stalls", "impact": 2, "urgency": 2, "workaround": "Flush the queue" }),
    )
    .await;
    let acme_only = problem(
        &app,
        json!({ "title": "Acme ERP", "impact": 2, "urgency": 2, "organizationId": acme }),
    )
    .await;

    // Before any link, requesters see no problem at all.
    let body = app.gql(&jane, VIEW, json!({ "id": id(&shared) })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    let d = app
        .ok(&jane, "query { problems { totalCount } }", json!({}))
        .await;
    assert_eq!(d["problems"]["totalCount"], 0);

    let ok = link(&app, &shared, &mail).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    assert_eq!(
        ok["data"]["linkIncidentToProblem"]["incident"]["number"],
        "INC-000001"
    );
    let ok = link(&app, &shared, &g).await;
    assert!(ok.get("errors").is_none(), "{ok}");

    let events = audit_count(&app).await;
    // A duplicate link, another tenant's incident, a requester: refused, nothing written.
    let body = link(&app, &shared, &mail).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(
        message(&body),
        "incident INC-000001 is already linked to problem PRB-000001"
    );
    let body = link(&app, &acme_only, &g).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let acme_agent = token_with("agent@acme-desk", "provider", &["agent"], &["acme"]);
    let body = app
        .gql(
            &acme_agent,
            LINK,
            json!({ "i": { "problemId": id(&acme_only), "incidentId": id(&g) } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            &jane,
            LINK,
            json!({ "i": { "problemId": id(&shared), "incidentId": id(&mail) } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app
        .gql(
            &app.agent(),
            LINK,
            json!({ "i": { "problemId": id(&shared), "incidentId": unknown_id("Incident") } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    assert_eq!(audit_count(&app).await, events);

    // Both directions; the incident shows the problem's workaround.
    let d = app
        .ok(&app.agent(), VIEW, json!({ "id": id(&shared) }))
        .await;
    assert_eq!(
        d["problem"]["incidents"],
        json!([{ "number": "INC-000001" }, { "number": "INC-000001" }])
    );
    let d = app
        .ok(&jane, INCIDENT_VIEW, json!({ "id": id(&mail) }))
        .await;
    assert_eq!(d["incident"]["workaround"], "Flush the queue");
    assert_eq!(
        d["incident"]["problems"],
        json!([{ "number": "PRB-000001", "state": "NEW" }])
    );

    // Jane sees the problem through her incident: only Acme's incident, only comments.
    for (kind, body) in [
        ("WORK_NOTE", "suspect the relay"),
        ("COMMENT", "we are on it"),
    ] {
        app.ok(
            &app.agent(),
            NOTE,
            json!({ "i": { "problemId": id(&shared), "kind": kind, "body": body } }),
        )
        .await;
    }
    let d = app.ok(&jane, VIEW, json!({ "id": id(&shared) })).await;
    assert_eq!(
        d["problem"]["incidents"],
        json!([{ "number": "INC-000001" }])
    );
    assert_eq!(
        d["problem"]["timeline"],
        json!([{ "kind": "COMMENT", "body": "we are on it" }])
    );
    let d = app
        .ok(&app.agent(), VIEW, json!({ "id": id(&shared) }))
        .await;
    assert_eq!(d["problem"]["timeline"].as_array().unwrap().len(), 2);
    let d = app
        .ok(
            &jane,
            "query { problems { totalCount nodes { number } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["problems"]["totalCount"], 1);
    // Acme's own problem has no incident of Jane's: she does not see it.
    let body = app.gql(&jane, VIEW, json!({ "id": id(&acme_only) })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    // The node interface answers the same.
    let d = app
        .ok(
            &jane,
            "query($id: ID!) { node(id: $id) { ... on Problem { number } } }",
            json!({ "id": id(&shared) }),
        )
        .await;
    assert_eq!(d["node"]["number"], "PRB-000001");

    // Unlinking Acme's incident takes the problem out of Jane's sight; Bob keeps it.
    let ok = app
        .ok(
            &app.agent(),
            UNLINK,
            json!({ "i": { "problemId": id(&shared), "incidentId": id(&mail) } }),
        )
        .await;
    assert_eq!(
        ok["unlinkIncidentFromProblem"]["problem"]["number"],
        "PRB-000001"
    );
    let body = app.gql(&jane, VIEW, json!({ "id": id(&shared) })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    let d = app.ok(&bob, VIEW, json!({ "id": id(&shared) })).await;
    assert_eq!(d["problem"]["number"], "PRB-000001");
    let body = app
        .gql(
            &app.agent(),
            UNLINK,
            json!({ "i": { "problemId": id(&shared), "incidentId": id(&mail) } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let d = app
        .ok(
            &app.admin(),
            "query { auditEvents(filter: { recordType: \"ProblemIncident\" }) { nodes { action } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["auditEvents"]["nodes"],
        json!([{ "action": "delete" }, { "action": "create" }, { "action": "create" }])
    );
    let _ = globex;
}

const INC_SUB: &str = "subscription { incidentChanged { kind changedFields incident { number state resolutionCode } } }";

#[tokio::test]
async fn resolving_a_problem_can_resolve_its_open_linked_incidents() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let a = incident(
        &app,
        &jane,
        json!({ "title": "A", "impact": 2, "urgency": 2 }),
    )
    .await;
    let b = incident(
        &app,
        &jane,
        json!({ "title": "B", "impact": 2, "urgency": 2 }),
    )
    .await;
    let c = incident(
        &app,
        &jane,
        json!({ "title": "C (not linked)", "impact": 2, "urgency": 2 }),
    )
    .await;
    // B is already resolved: it stays as it is.
    app.ok(
        &app.agent(),
        "mutation($i: ChangeIncidentStateInput!) { changeIncidentState(input: $i) { state } }",
        json!({ "i": { "id": id(&b), "version": 1, "state": "RESOLVED", "resolutionCode": "FIXED" } }),
    )
    .await;
    let p = problem(
        &app,
        json!({ "title": "Storage latency", "impact": 2, "urgency": 2 }),
    )
    .await;
    for i in [&a, &b] {
        let ok = link(&app, &p, i).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let s = move_to(&app, id(&p), &json!(1), "UNDER_INVESTIGATION", json!({})).await;
    let v = s["problem"]["version"].clone();
    // The option only goes with RESOLVED; a refused resolution resolves nothing.
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id(&p), "version": v, "state": "CANCELLED", "resolveLinkedIncidents": true } }),
        )
        .await;
    assert_eq!(field(&body), "resolveLinkedIncidents");
    let body = app
        .gql(
            &app.agent(),
            STATE,
            json!({ "i": { "id": id(&p), "version": v, "state": "RESOLVED", "resolveLinkedIncidents": true } }),
        )
        .await;
    assert_eq!(field(&body), "resolution");
    let d = app
        .ok(
            &app.agent(),
            "query($id: ID!) { incident(id: $id) { state version } }",
            json!({ "id": id(&a) }),
        )
        .await;
    assert_eq!(d["incident"]["state"], "NEW");
    assert_eq!(d["incident"]["version"], 1);

    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(&jane).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": INC_SUB } }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let s = move_to(
        &app,
        id(&p),
        &v,
        "RESOLVED",
        json!({ "resolution": "Replaced the controller", "resolveLinkedIncidents": true }),
    )
    .await;
    assert_eq!(s["problem"]["state"], "RESOLVED");
    assert_eq!(
        s["resolvedIncidents"],
        json!([{ "number": a["number"], "state": "RESOLVED", "resolutionCode": "RESOLVED_BY_PROBLEM" }])
    );
    let msg = ws.json(5).await;
    let e = &msg["payload"]["data"]["incidentChanged"];
    assert_eq!(e["kind"], "STATE_CHANGED", "{msg}");
    assert_eq!(e["incident"]["number"], a["number"]);
    assert_eq!(e["incident"]["state"], "RESOLVED");
    let d = app
        .ok(
            &app.agent(),
            "query($id: ID!) { incident(id: $id) { state resolutionNotes } }",
            json!({ "id": id(&a) }),
        )
        .await;
    assert_eq!(
        d["incident"]["resolutionNotes"],
        "Resolved with problem PRB-000001: Replaced the controller"
    );
    let d = app
        .ok(
            &app.admin(),
            "query { auditEvents(filter: { recordType: \"Incident\" }) { nodes { action recordId changes } } }",
            json!({}),
        )
        .await;
    let resolved: Vec<&Value> = d["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["changes"]["resolution_code"]["after"] == "RESOLVED_BY_PROBLEM")
        .collect();
    assert_eq!(resolved.len(), 1, "{d}");
    let d = app
        .ok(
            &app.agent(),
            "query($id: ID!) { incident(id: $id) { state } }",
            json!({ "id": id(&c) }),
        )
        .await;
    assert_eq!(d["incident"]["state"], "NEW");
}

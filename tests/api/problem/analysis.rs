//! Known errors, trend analysis over unlinked incidents, and the open
//! problems impact analysis reads.

use serde_json::json;

use super::*;

const KNOWN: &str =
    "query($s: String) { knownErrors(search: $s) { totalCount nodes { number title } } }";

#[tokio::test]
async fn known_errors_are_found_by_title_symptoms_and_workaround() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let mut known = Vec::new();
    for (title, symptoms, workaround) in [
        (
            "Mail queue stalls",
            "Outlook shows 'Disconnected'",
            "Restart the 100% busy runner",
        ),
        (
            "VPN drops",
            "Tunnel resets every HOUR",
            "Pin the client to gateway B",
        ),
    ] {
        let p = problem(
            &app,
            json!({ "title": title, "impact": 2, "urgency": 2, "symptoms": symptoms }),
        )
        .await;
        let s = move_to(&app, id(&p), &json!(1), "UNDER_INVESTIGATION", json!({})).await;
        move_to(
            &app,
            id(&p),
            &s["problem"]["version"],
            "KNOWN_ERROR",
            json!({ "workaround": workaround }),
        )
        .await;
        known.push(p);
    }
    // Not a known error: never found.
    problem(
        &app,
        json!({ "title": "Mail archive slow", "impact": 2, "urgency": 2 }),
    )
    .await;
    let agent = app.agent();
    for (search, expected) in [
        ("MAIL", vec!["Mail queue stalls"]),
        ("disconnected", vec!["Mail queue stalls"]),
        ("every hour", vec!["VPN drops"]),
        ("gateway b", vec!["VPN drops"]),
        ("100%", vec!["Mail queue stalls"]),
        ("%", vec!["Mail queue stalls"]),
        ("_", vec![]),
        ("nothing like it", vec![]),
        ("", vec!["VPN drops", "Mail queue stalls"]),
    ] {
        let d = app.ok(&agent, KNOWN, json!({ "s": search })).await;
        let titles: Vec<&str> = d["knownErrors"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, expected, "search {search:?}");
    }
    // A requester finds the known errors linked to their incidents only.
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let d = app.ok(&jane, KNOWN, json!({ "s": "mail" })).await;
    assert_eq!(d["knownErrors"]["totalCount"], 0);
    let i = incident(
        &app,
        &jane,
        json!({ "title": "Outlook disconnected", "impact": 2, "urgency": 2 }),
    )
    .await;
    link(&app, &known[0], &i).await;
    let d = app.ok(&jane, KNOWN, json!({ "s": "mail" })).await;
    assert_eq!(d["knownErrors"]["totalCount"], 1);
}

const CANDIDATES: &str = "query($min: Int!) { problemCandidates(minIncidents: $min) { kind configurationItem { name } service { name } category alertKey incidentCount firstSeen lastSeen incidents { number } } }";

#[tokio::test]
async fn problem_candidates_group_unlinked_incidents_in_the_database() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let agent = app.agent();
    let ci = app
        .ok(
            &app.admin(),
            "mutation($i: CreateConfigurationItemInput!) { createConfigurationItem(input: $i) { id } }",
            json!({ "i": { "name": "mail-relay", "classCode": "application", "attributes": {} } }),
        )
        .await["createConfigurationItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let svc = app
        .service(json!({ "name": "Mail", "status": "LIVE" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut on_ci = Vec::new();
    for (n, org) in [(1, &acme), (2, &acme), (3, &globex)] {
        on_ci.push(
            incident(
                &app,
                &agent,
                json!({ "title": format!("Relay {n}"), "impact": 2, "urgency": 2, "customerId": org, "affectedCiIds": [ci] }),
            )
            .await,
        );
    }
    for n in 0..2 {
        incident(
            &app,
            &agent,
            json!({ "title": format!("Bounce {n}"), "impact": 3, "urgency": 3, "customerId": acme, "serviceId": svc, "category": "delivery" }),
        )
        .await;
    }
    // One with another category: not part of the group.
    incident(
        &app,
        &agent,
        json!({ "title": "Spam", "impact": 3, "urgency": 3, "customerId": acme, "serviceId": svc, "category": "filtering" }),
    )
    .await;
    // A monitoring alert that fired again after its incident closed: two incidents, one key.
    let secret = app
        .ok(
            &app.admin(),
            "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { secret } }",
            json!({ "i": { "organizationId": acme, "name": "am", "kind": "GENERIC" } }),
        )
        .await["createIntegration"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for status in ["FIRING", "RESOLVED", "FIRING"] {
        let d = app
            .ok(
                &secret,
                "mutation($i: RaiseAlertInput!) { raiseAlert(input: $i) { incident { id version state } } }",
                json!({ "i": { "dedupKey": "disk-full:db1", "summary": "Disk full", "status": status } }),
            )
            .await;
        let inc = &d["raiseAlert"]["incident"];
        if inc["state"] == "RESOLVED" {
            app.ok(
                &agent,
                "mutation($i: ChangeIncidentStateInput!) { changeIncidentState(input: $i) { state } }",
                json!({ "i": { "id": inc["id"], "version": inc["version"], "state": "CLOSED" } }),
            )
            .await;
        }
    }

    let d = app.ok(&agent, CANDIDATES, json!({ "min": 2 })).await;
    let groups = d["problemCandidates"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{d}");
    assert_eq!(groups[0]["kind"], "CONFIGURATION_ITEM");
    assert_eq!(groups[0]["configurationItem"]["name"], "mail-relay");
    assert_eq!(groups[0]["incidentCount"], 3);
    assert!(groups[0]["firstSeen"].as_str() <= groups[0]["lastSeen"].as_str());
    assert_eq!(groups[0]["incidents"].as_array().unwrap().len(), 3);
    let by_kind = |k: &str| groups.iter().find(|g| g["kind"] == k).unwrap().clone();
    let s = by_kind("SERVICE_CATEGORY");
    assert_eq!(s["service"]["name"], "Mail");
    assert_eq!(s["category"], "delivery");
    assert_eq!(s["incidentCount"], 2);
    let a = by_kind("ALERT_KEY");
    assert_eq!(a["alertKey"], "disk-full:db1");
    assert_eq!(a["incidentCount"], 2);

    // Linking an incident to a problem takes it out of the trend.
    let p = problem(&app, json!({ "title": "Relay", "impact": 2, "urgency": 2 })).await;
    link(&app, &p, &on_ci[0]).await;
    let d = app.ok(&agent, CANDIDATES, json!({ "min": 3 })).await;
    assert_eq!(d["problemCandidates"], json!([]));
    // A requester-scoped view: an agent serving Acme only sees Acme's incidents.
    let acme_agent = token_with("agent@acme-desk", "provider", &["agent"], &["acme"]);
    let d = app.ok(&acme_agent, CANDIDATES, json!({ "min": 2 })).await;
    let kinds: Vec<&str> = d["problemCandidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"CONFIGURATION_ITEM"), "{d}");
    // Bad input.
    let body = app.gql(&agent, CANDIDATES, json!({ "min": 1 })).await;
    assert_eq!(field(&body), "minIncidents");
    let body = app
        .gql(
            &agent,
            "{ problemCandidates(since: \"2026-12-01T00:00:00Z\", until: \"2026-11-01T00:00:00Z\") { incidentCount } }",
            json!({}),
        )
        .await;
    assert_eq!(field(&body), "until");
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = app.gql(&jane, CANDIDATES, json!({ "min": 2 })).await;
    assert_eq!(code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn impact_analysis_lists_the_open_problems_on_the_reached_cis() {
    let app = TestApp::spawn().await;
    let ci = app
        .ok(
            &app.admin(),
            "mutation($i: CreateConfigurationItemInput!) { createConfigurationItem(input: $i) { id } }",
            json!({ "i": { "name": "db-cluster", "classCode": "application", "attributes": {} } }),
        )
        .await["createConfigurationItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = problem(
        &app,
        json!({ "title": "Replication lag", "impact": 2, "urgency": 2, "affectedCiIds": [ci] }),
    )
    .await;
    let done = problem(
        &app,
        json!({ "title": "Old lag", "impact": 2, "urgency": 2, "affectedCiIds": [ci] }),
    )
    .await;
    move_to(&app, id(&done), &json!(1), "CANCELLED", json!({})).await;
    problem(
        &app,
        json!({ "title": "Elsewhere", "impact": 2, "urgency": 2 }),
    )
    .await;
    let d = app
        .ok(
            &app.agent(),
            "query($id: ID!) { problem(id: $id) { affectedCis { name } } }",
            json!({ "id": id(&open) }),
        )
        .await;
    assert_eq!(
        d["problem"]["affectedCis"],
        json!([{ "name": "db-cluster" }])
    );

    // The agent asking "what does this CI touch" sees the open problem on it,
    // not the cancelled one nor the one elsewhere.
    const IMPACT: &str =
        "query($id: ID!) { ciImpact(id: $id) { openProblems { title workaround } } }";
    let d = app.ok(&app.agent(), IMPACT, json!({ "id": ci })).await;
    assert_eq!(
        d["ciImpact"]["openProblems"],
        json!([{ "title": "Replication lag", "workaround": null }])
    );
    // A customer's requester sees none of the provider's problems that are
    // not linked to their incidents.
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = app.gql(&jane, IMPACT, json!({ "id": ci })).await;
    if body["errors"].is_null() {
        assert_eq!(
            body["data"]["ciImpact"]["openProblems"],
            json!([]),
            "{body}"
        );
    } else {
        // The provider's CI itself is not theirs to see.
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
    }
}

//! The budget per caller over real HTTP and WebSocket: costs counted down in
//! the headers, 429 with Retry-After and nothing executed once spent, callers
//! and integrations charged separately, the budget coming back over the window.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::{
    fixtures::{am_alert, am_body, integration, setup},
    helpers::*,
};

/// 1 + 20 × (nodes + id) = 41 points.
const LIST: &str = "{ services(first: 20) { nodes { id } } }";
/// A mutation's root field costs 10 more: 10 + 1 + 8 = 19 points.
const CREATE: &str = "mutation($i: CreateServiceInput!) { createService(input: $i) { id name description status criticality version createdAt updatedAt } }";
/// 10 + 1 + 1 = 12 points.
const CREATE_SMALL: &str = "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }";

fn portal() -> String {
    token_with("portal@provider", "provider", &["admin"], &[])
}

async fn send(
    app: &TestApp,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = app.client.post(format!("{}{path}", app.base)).json(body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request sent");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body: Value = resp.json().await.expect("a JSON body");
    (status, headers, body)
}

async fn graphql(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
) -> (StatusCode, HeaderMap, Value) {
    send(
        app,
        "/graphql",
        Some(token),
        &json!({ "query": query, "variables": variables }),
    )
    .await
}

fn num(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Limit, remaining and cost.
fn standing(headers: &HeaderMap) -> (u64, u64, u64) {
    (
        num(headers, "x-ratelimit-limit"),
        num(headers, "x-ratelimit-remaining"),
        num(headers, "x-ratelimit-cost"),
    )
}

async fn service_count(app: &TestApp) -> i64 {
    let data = app
        .ok(&app.admin(), "{ services { totalCount } }", json!({}))
        .await;
    data["services"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn a_spent_budget_is_429_with_retry_after_and_nothing_runs() {
    // A long window: the few seconds of the test refill less than a point.
    let app = TestApp::spawn_with(|c| {
        c.budget.graphql_points = 100;
        c.budget.window = Duration::from_secs(600);
    })
    .await;
    let me = portal();
    let (status, h, body) = graphql(&app, &me, LIST, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(standing(&h), (100, 59, 41));
    let reset = num(&h, "x-ratelimit-reset");
    assert!(
        (246..=247).contains(&reset),
        "41 points at 1/6 a second: {reset}"
    );
    let (_, h, _) = graphql(&app, &me, LIST, json!({})).await;
    assert_eq!(standing(&h), (100, 18, 41));

    // 19 points, 18 left: refused whole, and the service is not created.
    let input = json!({ "i": { "name": "Email" } });
    let (status, h, body) = graphql(&app, &me, CREATE, input.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "RATE_LIMITED");
    assert!(body.get("data").is_none(), "{body}");
    assert!(message(&body).contains("costs 19"), "{body}");
    assert_eq!(standing(&h), (100, 18, 19));
    let retry = num(&h, "retry-after");
    assert!(
        (1..=6).contains(&retry),
        "one point at 1/6 a second: {retry}"
    );

    // A batch is charged whole: its cheap mutation does not run either.
    let batch = json!([
        { "query": CREATE_SMALL, "variables": input },
        { "query": LIST },
    ]);
    let (status, h, body) = send(&app, "/graphql", Some(&me), &batch).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(standing(&h), (100, 18, 12 + 41));
    assert_eq!(service_count(&app).await, 0, "nothing was created");

    // Another caller (the admin above) has its own budget.
    let (status, h, _) = graphql(&app, &app.admin(), "{ __typename }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(standing(&h), (100, 100 - 2 - 1, 1));

    // What fits still runs.
    let (status, h, body) = graphql(&app, &me, CREATE_SMALL, input).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(standing(&h), (100, 6, 12));
    assert_eq!(service_count(&app).await, 1);
}

#[tokio::test]
async fn the_budget_comes_back_over_the_window() {
    let app = TestApp::spawn_with(|c| {
        c.budget.graphql_points = 50;
        c.budget.window = Duration::from_secs(1);
    })
    .await;
    let me = portal();
    let (status, _, _) = graphql(&app, &me, LIST, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, h, body) = graphql(&app, &me, LIST, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry = num(&h, "retry-after");
    assert_eq!(retry, 1, "32 points missing at 50 a second");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, h, body) = graphql(&app, &me, LIST, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(num(&h, "x-ratelimit-cost"), 41);
    // A whole window later the budget is whole again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, h, _) = graphql(&app, &me, "{ __typename }", json!({})).await;
    assert_eq!(standing(&h), (50, 49, 1));
}

#[tokio::test]
async fn operations_started_on_a_websocket_are_charged_to_its_caller() {
    let app = TestApp::spawn_with(|c| {
        c.budget.graphql_points = 100;
        c.budget.window = Duration::from_secs(600);
    })
    .await;
    let me = portal();
    graphql(&app, &me, LIST, json!({})).await;
    graphql(&app, &me, LIST, json!({})).await;
    // 18 left; a subscription of 1 + kind + changedFields + service { id name status } = 7.
    let subscription =
        "subscription { serviceChanged { kind changedFields service { id name status } } }";
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(&me).await;
    for id in ["1", "2", "3"] {
        ws.send(json!({ "id": id, "type": "subscribe", "payload": { "query": subscription } }))
            .await;
    }
    // async-graphql answers a refused operation with a `next` carrying the error, then `complete`.
    let refused = loop {
        let msg = ws.json(5).await;
        if msg["type"] == "next" && msg["payload"].get("errors").is_some() {
            break msg;
        }
    };
    // Which of the three is refused depends on the order they start in.
    let id = refused["id"].as_str().unwrap().to_owned();
    assert!(["1", "2", "3"].contains(&id.as_str()), "{refused}");
    let err = &refused["payload"]["errors"][0];
    assert_eq!(err["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert!(
        err["extensions"]["retryAfter"].as_u64().unwrap() >= 1,
        "{refused}"
    );
    let complete = ws.json(5).await;
    assert_eq!(
        (&complete["type"], &complete["id"]),
        (&json!("complete"), &json!(id))
    );
    // The two subscriptions admitted took 14 of the 18: 4 left, 3 after this one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, h, _) = graphql(&app, &me, "{ __typename }", json!({})).await;
    assert_eq!(standing(&h), (100, 3, 1));
}

#[tokio::test]
async fn each_integration_has_its_own_alert_budget() {
    let app = TestApp::spawn_with(|c| {
        c.budget.ingest_alerts = 3;
        c.budget.window = Duration::from_secs(600);
    })
    .await;
    let s = setup(&app).await;
    let (_, am_secret) = integration(&app, &s, "ALERTMANAGER", json!({})).await;
    let (_, events_secret) = integration(
        &app,
        &s,
        "EVENTS_API",
        json!({ "name": "events", "defaultAssignmentGroupId": null, "rules": [] }),
    )
    .await;

    let two = |a: &str, b: &str| {
        am_body(vec![
            am_alert("firing", a, "db-01", "down"),
            am_alert("firing", b, "db-01", "down"),
        ])
    };
    let (status, h, body) = send(
        &app,
        "/ingest/alertmanager",
        Some(&am_secret),
        &two("a", "b"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(standing(&h), (3, 1, 2));
    let (status, h, body) = send(
        &app,
        "/ingest/alertmanager",
        Some(&am_secret),
        &two("c", "d"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(
        body["message"].as_str().unwrap().contains("costs 2"),
        "{body}"
    );
    assert_eq!(standing(&h), (3, 1, 2));
    assert!(num(&h, "retry-after") >= 1);
    let open = app
        .ok(&app.admin(), "{ incidents { totalCount } }", json!({}))
        .await;
    assert_eq!(
        open["incidents"]["totalCount"], 2,
        "the refused delivery raised nothing"
    );

    // The other integration's budget is whole; the events API answers in its own shape.
    let event = |key: &str| {
        json!({
            "routing_key": events_secret,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": { "summary": "Disk full", "source": "web-7", "severity": "warning" }
        })
    };
    for (n, key) in ["e1", "e2", "e3"].into_iter().enumerate() {
        let (status, h, body) = send(&app, "/ingest/events", None, &event(key)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(standing(&h), (3, 2 - n as u64, 1));
    }
    let (status, h, body) = send(&app, "/ingest/events", None, &event("e4")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["status"], "throttled", "{body}");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert!(num(&h, "retry-after") >= 1);
}

#[tokio::test]
async fn the_headers_are_exposed_to_browsers_and_absent_when_disabled() {
    let app = TestApp::spawn_with(|c| c.cors.allowed_origins = vec!["*".into()]).await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("origin", "https://portal.example.com")
        .bearer_auth(app.admin())
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let exposed = resp
        .headers()
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert_eq!(num(resp.headers(), "x-ratelimit-cost"), 1);

    let app = TestApp::spawn_with(|c| c.budget.enabled = false).await;
    let (status, h, _) = graphql(&app, &app.admin(), "{ __typename }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.get("x-ratelimit-remaining").is_none(), "{h:?}");
}

#[tokio::test]
async fn the_default_budget_admits_a_handful_of_the_largest_requests_a_minute() {
    let app = TestApp::spawn().await;
    let me = portal();
    // 100 aliases of a full page with clocks, timeline and affected CIs: within
    // the complexity limit (100 × 17), but 100 × (1 + 100 × 16) points.
    let page = "incidents(first: 100) { nodes { id number title state priority clocks { kind dueAt met } timeline { kind body } affectedCis { id name } } }";
    let aliases: String = (0..100).map(|i| format!("a{i}: {page} ")).collect();
    let query = format!("{{ {aliases} }}");
    for n in 1..=6u64 {
        let (status, h, body) = graphql(&app, &me, &query, json!({})).await;
        assert_eq!(status, StatusCode::OK, "request {n}: {body}");
        assert!(body.get("errors").is_none(), "{body}");
        let (limit, remaining, cost) = standing(&h);
        assert_eq!((limit, cost), (1_000_000, 160_100));
        assert!(remaining >= 1_000_000 - n * 160_100, "{remaining}");
    }
    let (status, h, body) = graphql(&app, &me, &query, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Retry-After is when the bucket will hold the cost again: what is
    // missing at the refill rate (a million a minute), in whole seconds.
    // (How much was refilled meanwhile depends on the machine's speed.)
    let (_, remaining, _) = standing(&h);
    assert!(remaining < 160_100, "{remaining}");
    let missing = 160_100 - remaining;
    let expected = (missing * 60).div_ceil(1_000_000);
    let retry_after = num(&h, "retry-after");
    assert!(
        retry_after.abs_diff(expected) <= 1 && retry_after >= 1,
        "retry-after {retry_after}, {missing} missing"
    );
    // The portal's list of 50 still fits, and costs 50 × its row.
    let (status, h, _) = graphql(
        &app,
        &me,
        "{ incidents(first: 50) { pageInfo { hasNextPage endCursor } edges { cursor node { id number title state priority } } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(num(&h, "x-ratelimit-cost"), 1 + 3 + 50 * (1 + 1 + 1 + 5));
}

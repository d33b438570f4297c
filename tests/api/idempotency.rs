//! `Idempotency-Key` on POST /graphql: a retried mutation runs once per caller
//! and key, its answer replayed byte for byte; another body, a request still
//! running and a malformed key are refused; keys hold across a restart.

use chrono::{Duration, Utc};
use reqwest::{StatusCode, header::HeaderValue};
use sea_orm::{ActiveValue::Set, ColumnTrait, Database, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const CREATE: &str =
    "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id number title } }";
const LIST: &str = "query { incidents(first: 50) { totalCount nodes { id number title } } }";

/// One answer as the client sees it.
struct Reply {
    status: StatusCode,
    replayed: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// The request body of a `createIncident` titled `title`, as exact bytes.
fn create(title: &str) -> String {
    json!({ "query": CREATE, "variables": { "i": { "title": title, "impact": 2, "urgency": 2 } } })
        .to_string()
}

async fn send(app: &TestApp, token: &str, key: Option<HeaderValue>, body: &str) -> Reply {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req.send().await.expect("request sent");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Reply {
        status: resp.status(),
        replayed: header("idempotent-replayed"),
        retry_after: header("retry-after"),
        content_type: header("content-type"),
        body: resp.text().await.expect("body"),
    }
}

fn key(k: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(k).unwrap())
}

async fn incidents(app: &TestApp) -> Value {
    app.ok(&app.agent(), LIST, json!({})).await["incidents"].clone()
}

#[tokio::test]
async fn a_retried_create_with_one_key_makes_one_incident() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = create("Mail is down");

    let first = send(&app, &jane, key("portal-7f3a"), &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.replayed, None);
    let created = first.json()["data"]["createIncident"].clone();
    assert_eq!(created["number"], "INC-000001");

    let retry = send(&app, &jane, key("portal-7f3a"), &body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert_eq!(retry.body, first.body, "the stored answer, byte for byte");
    assert_eq!(retry.content_type, first.content_type);

    let list = incidents(&app).await;
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["nodes"][0]["id"], created["id"]);

    // The key makes the difference: the same body without one is a new incident.
    let again = send(&app, &jane, None, &body).await;
    assert_eq!(
        again.json()["data"]["createIncident"]["number"],
        "INC-000002"
    );
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let first = send(&app, &jane, key("k-1"), &create("Mail is down")).await;
    assert_eq!(first.status, StatusCode::OK);

    let other = send(&app, &jane, key("k-1"), &create("VPN is down")).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = other.json();
    assert_eq!(code(&body), "IDEMPOTENCY_KEY_REUSED");
    assert!(message(&body).contains("different request body"), "{body}");
    assert_eq!(other.replayed, None);

    let list = incidents(&app).await;
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["nodes"][0]["title"], "Mail is down");
}

#[tokio::test]
async fn an_answer_with_the_callers_own_error_is_replayed_too() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = json!({ "query": CREATE, "variables": { "i": { "title": "Mail", "impact": 9, "urgency": 2 } } })
        .to_string();
    let first = send(&app, &jane, key("bad-impact"), &body).await;
    assert_eq!(code(&first.json()), "VALIDATION");
    let retry = send(&app, &jane, key("bad-impact"), &body).await;
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert_eq!(retry.body, first.body);
}

#[tokio::test]
async fn callers_never_share_a_key() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    app.customer("globex").await;
    let body = create("Printer jammed");
    let callers = [
        app.token("jane@acme", "acme", &["requester"]),
        app.token("john@acme", "acme", &["requester"]),
        app.token("jane@acme", "globex", &["requester"]),
    ];
    let mut ids = Vec::new();
    for token in &callers {
        let reply = send(&app, token, key("shared-key"), &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.replayed, None, "another caller's answer leaked");
        ids.push(reply.json()["data"]["createIncident"]["id"].clone());
    }
    let distinct: std::collections::HashSet<String> = ids.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), 3, "each caller's request ran: {ids:?}");
    assert_eq!(incidents(&app).await["totalCount"], 3);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_run_once() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = create("Everything is down");
    let replies =
        futures_util::future::join_all((0..8).map(|_| send(&app, &jane, key("storm-1"), &body)))
            .await;

    let mut answers = Vec::new();
    for reply in &replies {
        match reply.status {
            StatusCode::OK => answers.push(reply.body.clone()),
            StatusCode::CONFLICT => {
                assert_eq!(code(&reply.json()), "IDEMPOTENCY_KEY_IN_FLIGHT");
                assert_eq!(reply.retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    let fresh = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK && r.replayed.is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request executed");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every success is the original answer"
    );

    let later = send(&app, &jane, key("storm-1"), &body).await;
    assert_eq!(later.replayed.as_deref(), Some("true"));
    assert_eq!(later.body, answers[0]);
    assert_eq!(incidents(&app).await["totalCount"], 1);
}

#[tokio::test]
async fn a_restarted_server_replays_the_stored_answer() {
    let mut app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = create("Mail is down");
    let first = send(&app, &jane, key("before-restart"), &body).await;
    assert_eq!(first.status, StatusCode::OK);
    app.begin_shutdown().await.unwrap().unwrap();

    let restarted = TestApp::spawn_on(Some(app.database_url.clone()), |_| {}).await;
    let retry = send(&restarted, &jane, key("before-restart"), &body).await;
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert_eq!(retry.body, first.body);
    assert_eq!(incidents(&restarted).await["totalCount"], 1);
}

#[tokio::test]
async fn a_running_claim_answers_409_and_an_abandoned_one_is_taken_over() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = create("Mail is down");
    // Claims as a server process leaves them while it runs, or when it is killed.
    let db = Database::connect(&app.database_url).await.unwrap();
    let acme = entity::organization::Entity::find()
        .filter(entity::organization::Column::Code.eq("acme"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let claim = |key: &str, expires_in: Duration| entity::idempotency_key::ActiveModel {
        organization_id: Set(acme.id),
        subject: Set("jane@acme".into()),
        key: Set(key.into()),
        request_hash: Set(hex::encode(Sha256::digest(body.as_bytes()))),
        claim_token: Set(uuid::Uuid::new_v4().to_string()),
        response_status: Set(None),
        response_content_type: Set(None),
        response_body: Set(None),
        request_id: Set(None),
        created_at: Set(Utc::now()),
        expires_at: Set(Utc::now() + expires_in),
        ..Default::default()
    };
    entity::idempotency_key::Entity::insert_many([
        claim("running", Duration::seconds(60)),
        claim("abandoned", Duration::seconds(-1)),
    ])
    .exec(&db)
    .await
    .unwrap();
    let _ = db.close().await;

    let busy = send(&app, &jane, key("running"), &body).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(code(&busy.json()), "IDEMPOTENCY_KEY_IN_FLIGHT");
    assert_eq!(busy.retry_after.as_deref(), Some("1"));
    assert_eq!(incidents(&app).await["totalCount"], 0);

    let taken = send(&app, &jane, key("abandoned"), &body).await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    assert_eq!(taken.replayed, None);
    assert_eq!(incidents(&app).await["totalCount"], 1);
    let retry = send(&app, &jane, key("abandoned"), &body).await;
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert_eq!(retry.body, taken.body);
}

#[tokio::test]
async fn a_malformed_key_is_refused() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = create("Mail is down");
    let malformed = [
        HeaderValue::from_static(""),
        HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        HeaderValue::from_static("two words"),
        HeaderValue::from_bytes("café".as_bytes()).unwrap(),
    ];
    for bad in malformed {
        let reply = send(&app, &jane, Some(bad.clone()), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        let json = reply.json();
        assert_eq!(code(&json), "VALIDATION");
        assert!(message(&json).contains("Idempotency-Key"), "{json}");
    }
    assert_eq!(incidents(&app).await["totalCount"], 0);
    // The longest allowed key works.
    let longest = send(&app, &jane, key(&"k".repeat(255)), &body).await;
    assert_eq!(longest.status, StatusCode::OK, "{}", longest.body);
}

//! The audit trail: one append-only event per change, with who, what, and the
//! request that made it; and internal errors that tell the client nothing.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::helpers::*;

const CREATE: &str =
    "mutation($i: CreateServiceInput!) { createService(input: $i) { id version } }";
const UPDATE: &str =
    "mutation($i: UpdateServiceInput!) { updateService(input: $i) { id version } }";
const TRAIL: &str = "query($id: ID!) {
    auditTrail(recordId: $id) { totalCount nodes { actor action recordType recordId changes requestId snapshot } }
}";
const EVENTS: &str = "query($f: AuditEventFilter) {
    auditEvents(filter: $f) { totalCount nodes { actor action recordType } }
}";

/// POSTs an operation, optionally with our own `x-request-id`; returns the
/// response's `x-request-id` and body.
async fn post_traced(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    request_id: Option<&str>,
) -> (String, Value) {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let header = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    (header, resp.json().await.unwrap())
}

async fn event_count(app: &TestApp) -> i64 {
    let data = app.ok(&app.admin(), EVENTS, json!({})).await;
    data["auditEvents"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn create_and_update_leave_a_trail_newest_first_with_the_request_id() {
    let app = TestApp::spawn().await;
    let (create_id, body) = post_traced(
        &app,
        &app.admin(),
        CREATE,
        json!({ "i": { "name": "Email" } }),
        None,
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(!create_id.is_empty(), "the server makes up a request id");
    let sid = body["data"]["createService"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (update_id, body) = post_traced(
        &app,
        &app.agent(),
        UPDATE,
        json!({ "i": { "id": sid, "version": 1, "name": "Mail" } }),
        Some("portal-req-update-7"),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        update_id, "portal-req-update-7",
        "a given request id is kept"
    );

    let data = app.ok(&app.agent(), TRAIL, json!({ "id": sid })).await;
    let trail = &data["auditTrail"];
    assert_eq!(trail["totalCount"], 2, "{trail}");
    let (update, create) = (&trail["nodes"][0], &trail["nodes"][1]);

    assert_eq!(update["action"], "update");
    assert_eq!(update["actor"], "agent@provider");
    assert_eq!(update["recordType"], "Service");
    assert_eq!(update["recordId"], sid.as_str());
    assert_eq!(
        update["changes"],
        json!({ "name": { "before": "Email", "after": "Mail" } })
    );
    assert_eq!(update["requestId"], update_id.as_str());
    assert_eq!(
        update["snapshot"]["name"], "Mail",
        "the record after the change"
    );

    assert_eq!(create["action"], "create");
    assert_eq!(create["actor"], "admin@provider");
    assert_eq!(create["recordId"], sid.as_str());
    assert_eq!(
        create["changes"]["name"],
        json!({ "before": null, "after": "Email" })
    );
    assert_eq!(create["requestId"], create_id.as_str());

    // The trail is for staff.
    app.customer("acme").await;
    let body = app
        .gql(
            &app.token("rita@acme", "acme", &["requester"]),
            TRAIL,
            json!({ "id": sid }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_failed_mutation_writes_no_audit_event() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let sid = s["id"].as_str().unwrap();
    app.ok(
        &app.admin(),
        UPDATE,
        json!({ "i": { "id": sid, "version": 1, "name": "Mail" } }),
    )
    .await;
    let before = event_count(&app).await;

    let stale = app
        .gql(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 1, "name": "Post" } }),
        )
        .await;
    assert_eq!(code(&stale), "CONFLICT", "{stale}");
    let duplicate = app
        .gql(&app.admin(), CREATE, json!({ "i": { "name": "MAIL" } }))
        .await;
    assert_eq!(code(&duplicate), "CONFLICT", "{duplicate}");

    assert_eq!(
        event_count(&app).await,
        before,
        "no event for a refused change"
    );
    let data = app.ok(&app.admin(), TRAIL, json!({ "id": sid })).await;
    assert_eq!(data["auditTrail"]["totalCount"], 2);
}

#[tokio::test]
async fn audit_events_are_for_admins_and_filter_by_record_type_and_actor() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    app.service(json!({ "name": "Email" })).await;
    app.ok(&app.agent(), CREATE, json!({ "i": { "name": "Payroll" } }))
        .await;

    for token in [app.agent(), app.token("rita@acme", "acme", &["requester"])] {
        let body = app.gql(&token, EVENTS, json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        assert_eq!(body["data"], Value::Null);
    }

    let data = app
        .ok(
            &app.admin(),
            EVENTS,
            json!({ "f": { "recordType": "Service" } }),
        )
        .await;
    let events = &data["auditEvents"];
    assert_eq!(events["totalCount"], 2, "{events}");
    assert!(
        events["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["recordType"] == "Service")
    );

    let data = app
        .ok(
            &app.admin(),
            EVENTS,
            json!({ "f": { "actor": "agent@provider" } }),
        )
        .await;
    assert_eq!(
        data["auditEvents"],
        json!({ "totalCount": 1, "nodes": [{ "actor": "agent@provider", "action": "create", "recordType": "Service" }] })
    );

    let data = app
        .ok(
            &app.admin(),
            EVENTS,
            json!({ "f": { "recordType": "Organization", "actor": "admin@provider" } }),
        )
        .await;
    assert_eq!(
        data["auditEvents"]["nodes"],
        json!([{ "actor": "admin@provider", "action": "create", "recordType": "Organization" }]),
        "acme, not the provider the server created itself"
    );
    let mut per_type = 0;
    for record_type in ["Organization", "Service"] {
        let data = app
            .ok(
                &app.admin(),
                EVENTS,
                json!({ "f": { "recordType": record_type } }),
            )
            .await;
        per_type += data["auditEvents"]["totalCount"].as_i64().unwrap();
    }
    assert_eq!(per_type, 4, "two organizations and two services");
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_audit_events() {
    let app = TestApp::spawn().await;
    app.service(json!({ "name": "Email" })).await;
    let before = event_count(&app).await;
    assert!(before > 0);

    let backend = if is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let db = Database::connect(&app.database_url).await.unwrap();
    for statement in [
        "UPDATE audit_events SET actor = 'x'",
        "DELETE FROM audit_events",
    ] {
        match db.execute_unprepared(statement).await {
            Ok(done) => panic!(
                "{backend} must refuse {statement}; it changed {} rows",
                done.rows_affected()
            ),
            Err(e) => assert!(
                e.to_string().contains("append-only"),
                "{backend} refuses by the append-only guard: {e}"
            ),
        }
    }
    let _ = db.close().await;

    assert_eq!(event_count(&app).await, before);
    let data = app
        .ok(&app.admin(), EVENTS, json!({ "f": { "actor": "x" } }))
        .await;
    assert_eq!(data["auditEvents"]["totalCount"], 0);
}

#[tokio::test]
async fn an_internal_error_tells_the_client_only_the_request_id() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let sid = s["id"].as_str().unwrap();

    let db = Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared("ALTER TABLE service_offerings RENAME TO so_gone")
        .await
        .unwrap();
    let _ = db.close().await;

    let (request_id, body) = post_traced(
        &app,
        &app.admin(),
        "query($id: ID!) { service(id: $id) { name offerings { name } } }",
        json!({ "id": sid }),
        None,
    )
    .await;
    assert_eq!(code(&body), "INTERNAL", "{body}");
    let msg = message(&body);
    assert!(msg.contains("request id"), "{msg}");
    assert!(
        msg.contains(&request_id),
        "the id to quote to support: {msg}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        request_id.as_str()
    );
    let text = body.to_string().to_lowercase();
    for leak in [
        "so_gone",
        "service_offerings",
        "no such table",
        "relation",
        "sqlx",
        "select",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {body}");
    }
}

/// On PostgreSQL the trail's `changes` and `snapshot` are `json` (written as
/// text, never queried inside); the migration that made them so goes down to
/// `jsonb` and up again with the events intact. (Read on fresh connections:
/// the server's prepared statements expect the column types they were
/// prepared with.)
#[tokio::test]
async fn audit_json_columns_migrate_down_and_up_with_the_trail_intact() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{EntityTrait, QueryOrder};
    let app = TestApp::spawn().await;
    app.service(json!({ "name": "Email" })).await;
    let url = app.database_url.clone();
    let read = || async {
        let db = Database::connect(&url).await.unwrap();
        let events = entity::audit_event::Entity::find()
            .order_by_asc(entity::audit_event::Column::Id)
            .all(&db)
            .await
            .unwrap();
        let column_type = if is_postgres() {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_name = 'audit_events' AND column_name = 'changes'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "data_type")
            .unwrap()
        } else {
            String::new()
        };
        let _ = db.close().await;
        (events, column_type)
    };
    let (before, ty) = read().await;
    assert!(before.iter().any(|e| e.record_type == "Service"
        && servicegraph::records::audit::changes_of(e)["name"]
            == json!({ "before": null, "after": "Email" })));
    assert!(
        before
            .iter()
            .filter(|e| e.action == "create")
            .all(|e| e.changes.is_null() && e.snapshot.is_some()),
        "a creation stores its snapshot only"
    );
    if is_postgres() {
        assert_eq!(ty, "json");
    }
    let db = Database::connect(&url).await.unwrap();
    // Down through 000008 (the migrations after it go first, however many).
    let through_08 = u32::try_from(Migrator::migrations().len() - 7).unwrap();
    Migrator::down(&db, Some(through_08)).await.unwrap();
    let (down, ty) = read().await;
    assert_eq!(down, before);
    if is_postgres() {
        assert_eq!(ty, "jsonb");
    }
    Migrator::up(&db, None).await.unwrap();
    let _ = db.close().await;
    let (up, ty) = read().await;
    assert_eq!(up, before);
    if is_postgres() {
        assert_eq!(ty, "json");
    }
}

//! Health checks, GraphiQL, request ids, CORS, development mode and configuration.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_checks_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn graphiql_is_served_at_get_graphql() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(format!("{}/graphql", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.to_lowercase().contains("graphiql"),
        "GraphiQL page expected"
    );
    assert!(
        html.contains("/graphql/ws"),
        "GraphiQL should know the subscription endpoint"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    let generated = resp
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let resp = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("x-request-id", "portal-req-42")
        .bearer_auth(app.admin())
        .json(&json!({ "query": "{ me { subject } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "portal-req-42");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app =
        TestApp::spawn_with(|c| c.cors.allowed_origins = vec!["https://portal.example.com".into()])
            .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://portal.example.com").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://portal.example.com"
    );
    let allow_headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn development_mode_generates_a_secret_seeds_demo_data_and_prints_an_admin_token() {
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.dev.seed_demo = true;
    })
    .await;
    let token = app
        .dev_token
        .clone()
        .expect("development mode yields an admin token");
    let data = app.ok(&token, "{ services { totalCount nodes { name } } organizations(filter: {kind: CUSTOMER}) { totalCount } }", json!({})).await;
    assert_eq!(data["services"]["totalCount"], 5, "demo catalogue: {data}");
    assert_eq!(data["organizations"]["totalCount"], 3);
    // A token signed with the test secret is not valid in development mode.
    let (status, _) = app
        .post(
            Some(&app.admin()),
            &json!({ "query": "{ me { subject } }" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_command_signs_with_the_servers_development_secret_and_never_invents_one() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_path_buf();
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.data_dir = data_dir.clone();
    })
    .await;
    // Run from another directory, as an operator in their home would.
    let elsewhere = tempfile::tempdir().unwrap();
    let token = |args: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_servicegraph"));
        cmd.current_dir(elsewhere.path())
            .env_clear()
            .args(["token", "--subject", "portal-bot"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    };

    let out = token(&[], &[]);
    assert!(!out.status.success(), "no secret here: refused");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("dev-jwt-secret"), "{err}");
    assert!(
        err.contains("--data-dir"),
        "says how to point at the server: {err}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        !elsewhere.path().join("data").exists(),
        "no secret invented"
    );

    let by_flag = token(&["--data-dir", data_dir.to_str().unwrap()], &[]);
    let by_env = token(&[], &[("SERVICEGRAPH_DATA_DIR", data_dir.as_path())]);
    for out in [by_flag, by_env] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let minted = String::from_utf8(out.stdout).unwrap();
        let (status, body) = app
            .post(
                Some(minted.trim()),
                &json!({ "query": "{ me { subject } }" }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the running server accepts it: {body}"
        );
        assert_eq!(body["data"]["me"]["subject"], "portal-bot");
    }
}

#[test]
fn bad_configuration_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"not-an-address\"\n").unwrap();
    let err = servicegraph::config::Config::load(Some(path.clone())).unwrap_err();
    assert!(err.contains("listen"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");

    std::fs::write(&path, "[graphql]\nmax_dept = 3\n").unwrap();
    let err = servicegraph::config::Config::load(Some(path.clone())).unwrap_err();
    assert!(err.contains("max_dept"), "unknown keys are refused: {err}");

    std::fs::write(&path, "[auth]\nhs256_secret = \"short\"\n").unwrap();
    let err = servicegraph::config::Config::load(Some(path.clone())).unwrap_err();
    assert!(err.contains("hs256_secret"), "{err}");

    let err =
        servicegraph::config::Config::load(Some(dir.path().join("missing.toml"))).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");

    std::fs::write(&path, "listen = \"0.0.0.0:9000\"\n[graphql]\nmax_depth = 7\n[cors]\nallowed_origins = [\"https://portal.example.com\"]\n").unwrap();
    let config = servicegraph::config::Config::load(Some(path)).unwrap();
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.graphql.max_depth, 7);
    assert_eq!(
        config.graphql.max_batch, 10,
        "defaults fill what the file leaves out"
    );
}

#[test]
fn the_example_configuration_file_is_valid_and_states_the_defaults() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("servicegraph.example.toml");
    let config = servicegraph::config::Config::load(Some(path)).expect("example file loads");
    let defaults = servicegraph::config::Config::default();
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.graphql.max_depth, defaults.graphql.max_depth);
    assert_eq!(config.http.max_body_bytes, defaults.http.max_body_bytes);
    assert_eq!(
        config.auth.jwks_refresh_interval,
        defaults.auth.jwks_refresh_interval
    );
    let (i, d) = (&config.ingest, &defaults.ingest);
    assert_eq!(
        (
            i.max_body_bytes,
            i.max_alerts,
            i.max_labels,
            i.max_value_bytes
        ),
        (
            d.max_body_bytes,
            d.max_alerts,
            d.max_labels,
            d.max_value_bytes
        )
    );
    assert_eq!(
        (
            i.retry_window,
            i.log_retention,
            i.reopen_window,
            i.flap_window
        ),
        (
            d.retry_window,
            d.log_retention,
            d.reopen_window,
            d.flap_window
        )
    );
    assert_eq!(i.flap_threshold, d.flap_threshold);
    let (g, dg) = (&config.graphql, &defaults.graphql);
    assert_eq!(
        (g.max_directives_per_field, g.max_directives),
        (dg.max_directives_per_field, dg.max_directives)
    );
    let (b, db) = (&config.budget, &defaults.budget);
    assert_eq!(
        (b.enabled, b.window, b.graphql_points, b.ingest_alerts),
        (db.enabled, db.window, db.graphql_points, db.ingest_alerts)
    );
}

/// A mutation that is waiting on the database when shutdown begins still
/// completes and is answered; new connections are refused afterwards.
#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let mut app = TestApp::spawn().await;
    // Hold a lock that makes the next service insert wait.
    let db = Database::connect(&app.database_url).await.unwrap();
    let txn = db.begin().await.unwrap();
    if is_postgres() {
        txn.execute_unprepared("LOCK TABLE services IN EXCLUSIVE MODE")
            .await
            .unwrap();
    } else {
        txn.execute_unprepared("INSERT INTO organizations (code, name, name_key, kind, active, version, created_at, updated_at) VALUES ('lock', 'Lock', 'lock', 'customer', true, 1, '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')").await.unwrap();
    }
    let (client, base, token) = (app.client.clone(), app.base.clone(), app.admin());
    let in_flight = tokio::spawn(async move {
        client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": "mutation { createService(input: {name: \"Finishes\"}) { name } }" }))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the mutation waits on the lock");
    let stopped = app.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopped.is_finished(),
        "the server waits for the in-flight request"
    );
    txn.rollback().await.unwrap();

    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["createService"]["name"], "Finishes", "{body}");
    stopped.await.unwrap().unwrap();
    let after = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .send()
        .await;
    assert!(after.is_err(), "no new connections after shutdown");
    let count = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM services",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        count.try_get::<i64>("", "n").unwrap(),
        1,
        "the acknowledged write is stored"
    );
}

#[tokio::test]
async fn a_request_that_finds_no_free_connection_is_unavailable_and_the_held_one_completes() {
    if !is_postgres() {
        // Needs a lock a reader waits on; SQLite's readers never wait (WAL).
        return;
    }
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::spawn_with(|c| {
        c.database.max_connections = 1;
        c.database.min_connections = 1;
        c.database.connect_timeout = std::time::Duration::from_millis(700);
        c.sla.worker_enabled = false;
    })
    .await;
    let admin = app.admin();
    let query = "{ services(first: 1) { totalCount } }";
    // Caches the admin's tenant, so the next requests need only the services.
    assert_eq!(
        app.ok(&admin, query, json!({})).await["services"]["totalCount"],
        0
    );

    // Another client holds a lock on services: the first request waits on it
    // with the pool's only connection, the second finds none free in time.
    let other = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let tx = other.begin().await.unwrap();
    tx.execute_unprepared("LOCK TABLE services IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waiting = {
        let (app_client, base, admin) = (app.client.clone(), app.base.clone(), admin.clone());
        tokio::spawn(async move {
            app_client
                .post(format!("{base}/graphql"))
                .bearer_auth(admin)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let body = app.gql(&admin, query, json!({})).await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("retry later"), "{body}");
    assert!(!message.to_lowercase().contains("pool"), "{body}");
    assert!(
        body["errors"][0]["extensions"]["requestId"].is_string(),
        "{body}"
    );

    tx.rollback().await.unwrap();
    let first = waiting.await.unwrap();
    assert_eq!(first["data"]["services"]["totalCount"], 0, "{first}");
    assert!(first.get("errors").is_none(), "{first}");
}

//! `GET /metrics`: the token, the Prometheus text (parsed strictly), and the
//! values an operator reads: operations by name and outcome, WebSockets and
//! subscriptions, ingest deliveries, the pool, the SLA worker, and open
//! incidents and SLA clocks counted in the database.
//!
//! The recorder is global to this test process, so these tests take turns
//! (`SERIAL`) and assert on labels of their own and on increases.

use std::time::Duration;

use prometheus_parse::{LineInfo, Scrape, Value as Sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{fixtures::*, helpers::*};

const TOKEN: &str = "metrics-scraper-token-0123456789";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Metrics(Scrape);

impl Metrics {
    /// The value of `metric` with exactly these labels (0 when absent).
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .find(|s| {
                labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                    && s.labels.len() == labels.len()
            })
            .map_or(0.0, |s| match &s.value {
                Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
                other => panic!("{metric} is not a number: {other:?}"),
            })
    }

    fn has(&self, metric: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == metric)
    }

    /// The buckets of a histogram with these labels.
    fn buckets(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Sample::Histogram(b) => b.iter().map(|b| (b.less_than, b.count)).collect(),
                other => panic!("{metric} is not a histogram: {other:?}"),
            })
            .unwrap_or_default()
    }
}

/// Scrapes `url` with the token; every line must be a comment, a type, help
/// or a sample (the parser alone skips what it does not understand).
async fn scrape_url(url: &str, token: Option<&str>) -> Metrics {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    for line in text.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "not Prometheus text format: {line:?}"
        );
    }
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let untyped = parsed
        .samples
        .iter()
        .filter(|s| matches!(s.value, Sample::Untyped(_)))
        .filter(|s| !s.metric.ends_with("_sum") && !s.metric.ends_with("_count"))
        .map(|s| s.metric.clone())
        .collect::<Vec<_>>();
    assert!(untyped.is_empty(), "samples without a TYPE: {untyped:?}");
    Metrics(parsed)
}

async fn scrape(app: &TestApp) -> Metrics {
    scrape_url(&format!("{}/metrics", app.base), Some(TOKEN)).await
}

async fn spawn_with_metrics() -> TestApp {
    TestApp::spawn_with(|c| {
        c.metrics.token = Some(TOKEN.into());
        c.metrics.gauge_interval = Duration::from_millis(1);
        c.sla.worker_interval = Duration::from_millis(200);
    })
    .await
}

const OPERATIONS: &str = "servicegraph_graphql_operations_total";

#[tokio::test]
async fn metrics_need_the_token() {
    let app = spawn_with_metrics().await;
    for token in [None, Some("wrong-token-of-some-length"), Some("")] {
        let mut req = app.client.get(format!("{}/metrics", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body = resp.text().await.unwrap();
        assert!(body.contains("metrics token"), "{body}");
    }
    // Without a token or a listen address, there is no /metrics at all.
    let off = TestApp::spawn().await;
    let resp = off
        .client
        .get(format!("{}/metrics", off.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_on_a_separate_address_are_not_on_the_api_address() {
    let _serial = SERIAL.lock().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::spawn_with(|c| c.metrics.listen = Some(port)).await;
    let on_api = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    app.ok(
        &app.admin(),
        "query MetricsSeparateProbe { __typename }",
        json!({}),
    )
    .await;
    let m = scrape_url(&format!("http://{port}/metrics"), None).await;
    assert!(
        m.get(
            OPERATIONS,
            &[("operation", "MetricsSeparateProbe"), ("outcome", "ok")]
        ) >= 1.0
    );
}

async fn raise(app: &TestApp, customer: &str, service: &str, impact: u8) -> String {
    let d = app
        .ok(
            &app.agent(),
            "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id priority } }",
            json!({ "i": { "title": "Metrics probe", "impact": impact, "urgency": impact,
                           "customerId": customer, "serviceId": service } }),
        )
        .await;
    d["createIncident"]["id"].as_str().unwrap().to_owned()
}

/// Open clocks of every incident as the API shows them: (running, breached,
/// with a target under four hours).
async fn clocks_in_api(app: &TestApp) -> (usize, usize, usize) {
    let d = app
        .ok(
            &app.admin(),
            "query { incidents(first: 100) { edges { node { clocks { stoppedAt paused breachedAt targetSeconds } } } } }",
            json!({}),
        )
        .await;
    let clocks: Vec<Value> = d["incidents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["node"]["clocks"].as_array().unwrap().clone())
        .filter(|c| c["stoppedAt"].is_null())
        .collect();
    let running = clocks.iter().filter(|c| c["paused"] == false).count();
    let breached = clocks.iter().filter(|c| !c["breachedAt"].is_null()).count();
    let short = clocks
        .iter()
        .filter(|c| c["targetSeconds"].as_i64().unwrap() <= 4 * 3600)
        .count();
    (running, breached, short)
}

#[tokio::test]
async fn a_scrape_shows_operations_subscriptions_deliveries_and_itsm_gauges() {
    let _serial = SERIAL.lock().await;
    let app = spawn_with_metrics().await;
    let before = scrape(&app).await;
    let ok = [("operation", "MetricsProbeOk"), ("outcome", "ok")];
    let bad = [("operation", "MetricsProbeBad"), ("outcome", "VALIDATION")];
    let sub = [("operation", "MetricsProbeSub"), ("outcome", "ok")];
    let ws_open = "servicegraph_websocket_connections";
    let subs = "servicegraph_graphql_subscriptions_active";

    // Operations: three named ones, one refused by validation.
    for _ in 0..3 {
        app.ok(
            &app.admin(),
            "query MetricsProbeOk { __typename }",
            json!({}),
        )
        .await;
    }
    let (_, body) = app
        .post(
            Some(&app.admin()),
            &json!({ "query": "query MetricsProbeBad { noSuchField }" }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");

    // A customer under an SLA named for this test, two P1 and one P4 incidents.
    let customer = app.customer("metricsco").await;
    let service = app
        .service(json!({ "name": "Metrics probe service", "status": "LIVE" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.subscribe(&service, &customer).await;
    let calendar = round_the_clock(&app).await;
    create_sla(&app, &customer, &service, &calendar).await;
    raise(&app, &customer, &service, 1).await;
    raise(&app, &customer, &service, 1).await;
    raise(&app, &customer, &service, 3).await;

    // A WebSocket with a subscription.
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(&app.admin()).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription MetricsProbeSub { serviceChanged { kind } }" } }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An accepted delivery (it raises one more P1 incident) and a refused one.
    let group = app
        .ok(
            &app.admin(),
            "mutation($i: CreateSupportGroupInput!) { createSupportGroup(input: $i) { id } }",
            json!({ "i": { "name": "Metrics NOC" } }),
        )
        .await["createSupportGroup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let setup = Setup {
        acme: customer.clone(),
        service: service.clone(),
        group,
    };
    let (_, secret) = integration(&app, &setup, "ALERTMANAGER", json!({})).await;
    let deliver = |secret: String| {
        app.client
            .post(format!("{}/ingest/alertmanager", app.base))
            .bearer_auth(secret)
            .json(&am_body(vec![am_alert(
                "firing",
                "fp-metrics",
                "db-9",
                "down",
            )]))
            .send()
    };
    let accepted = deliver(secret).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let created = accepted.json::<Value>().await.unwrap()["created"]
        .as_u64()
        .unwrap();
    assert_eq!(created, 1);
    let refused = deliver("sgi_not-a-secret".into()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let after = scrape(&app).await;
    let increase = |metric: &str, labels: &[(&str, &str)]| {
        after.get(metric, labels) - before.get(metric, labels)
    };
    assert_eq!(increase(OPERATIONS, &ok), 3.0);
    assert_eq!(increase(OPERATIONS, &bad), 1.0);
    assert_eq!(increase(OPERATIONS, &sub), 1.0);
    let buckets = after.buckets(
        "servicegraph_graphql_operation_duration_seconds",
        &[("operation", "MetricsProbeOk")],
    );
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(
        buckets.iter().any(|(le, n)| le.is_infinite() && *n >= 3.0),
        "{buckets:?}"
    );
    assert!(
        after.get(
            "servicegraph_graphql_operation_duration_seconds_count",
            &[("operation", "MetricsProbeOk")]
        ) >= 3.0
    );
    assert_eq!(increase(ws_open, &[]), 1.0);
    assert_eq!(increase(subs, &[]), 1.0);
    let deliveries = "servicegraph_ingest_deliveries_total";
    assert_eq!(
        increase(
            deliveries,
            &[("sender", "alertmanager"), ("outcome", "accepted")]
        ),
        1.0
    );
    assert_eq!(
        increase(
            deliveries,
            &[("sender", "alertmanager"), ("outcome", "unauthenticated")]
        ),
        1.0
    );

    // The database gauges: counted in this test's database at the scrape.
    let open = "servicegraph_incidents_open";
    assert_eq!(after.get(open, &[("priority", "P1")]), 2.0 + created as f64);
    assert_eq!(after.get(open, &[("priority", "P4")]), 1.0);
    assert_eq!(after.get(open, &[("priority", "P2")]), 0.0);
    let gold = [("sla", "Gold"), ("customer", "metricsco")];
    let (running, breached, _) = clocks_in_api(&app).await;
    assert!(running >= 4, "two clocks per incident: {running}");
    assert_eq!(
        after.get("servicegraph_sla_clocks_running", &gold),
        running as f64
    );
    assert_eq!(after.get("servicegraph_sla_clocks_breached", &gold), 0.0);
    assert_eq!(breached, 0);

    // The pool and the SLA worker.
    let in_use = after.get("servicegraph_db_pool_connections", &[("state", "in_use")]);
    let idle = after.get("servicegraph_db_pool_connections", &[("state", "idle")]);
    assert!(
        in_use + idle >= 1.0 && in_use + idle <= 5.0,
        "{in_use} {idle}"
    );
    assert_eq!(after.get("servicegraph_db_pool_max_connections", &[]), 5.0);
    assert!(after.has("servicegraph_sla_worker_lag_seconds"));
    assert!(after.get("servicegraph_sla_worker_last_pass_timestamp_seconds", &[]) > 1.7e9);

    // Ending the subscription and the socket brings the gauges back.
    ws.send(json!({ "id": "1", "type": "complete" })).await;
    drop(ws);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = scrape(&app).await;
        let back = now.get(subs, &[]) == before.get(subs, &[])
            && now.get(ws_open, &[]) == before.get(ws_open, &[]);
        if back {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions {} and sockets {} did not go back to {} and {}",
            now.get(subs, &[]),
            now.get(ws_open, &[]),
            before.get(subs, &[]),
            before.get(ws_open, &[])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Clocks past their targets: once the worker marks them breached
    // (breachedAt in the API is computed, the worker follows within its
    // interval), the gauge counts them.
    age_clocks(&app.database_url, 300).await;
    let (_, breached, short) = clocks_in_api(&app).await;
    // Those of the P1 incidents (60 and 240 minutes) are five hours old.
    assert!(short > 0 && breached == short, "{breached} of {short}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let later = scrape(&app).await;
        let gauge = later.get("servicegraph_sla_clocks_breached", &gold);
        if gauge == breached as f64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "breached clocks gauge {gauge}, the API shows {breached}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn database_gauges_are_reused_within_the_interval() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn_with(|c| {
        c.metrics.token = Some(TOKEN.into());
        c.metrics.gauge_interval = Duration::from_secs(3600);
    })
    .await;
    let customer = app.customer("cachedco").await;
    let service = app
        .service(json!({ "name": "Cached probe service", "status": "LIVE" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.subscribe(&service, &customer).await;
    raise(&app, &customer, &service, 1).await;
    let first = scrape(&app).await;
    assert_eq!(
        first.get("servicegraph_incidents_open", &[("priority", "P1")]),
        1.0
    );
    raise(&app, &customer, &service, 1).await;
    let second = scrape(&app).await;
    assert_eq!(
        second.get("servicegraph_incidents_open", &[("priority", "P1")]),
        1.0,
        "within metrics.gauge_interval the counts are not recomputed"
    );
    let age = second.get("servicegraph_metrics_database_gauges_age_seconds", &[]);
    assert!((0.0..3600.0).contains(&age), "{age}");
}
